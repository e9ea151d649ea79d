// Hands a room's committed entries to Cloudflare Queues as webhook jobs, from a durable watermark
// per endpoint, the way the Redis mirror heals from its watermark (src/room/mirror.ts).
//
// Why the room decides the order, not the queue: Queues do not keep order, and a retried message
// comes back after newer ones. So each (room, endpoint) has at most ONE job in the queue at a
// time: a job carries the endpoint's next events in seq order; the consumer delivers them one by
// one and reports back (`report`); only then is the next job built, from the new watermark. A
// failed delivery comes back as the same events with a delay (Queues' `delaySeconds`: the
// backoff); after `maxAttempts` failures of one event it is dead-lettered and the endpoint moves
// past it. Nothing is skipped silently: every seq an endpoint subscribes to is delivered or
// dead-lettered, in seq order.
//
// What survives a crash: the state of every endpoint (`delivered`, `prev`, `failures`, and the job
// in flight) is in the object's storage. A crash between a commit and its enqueue leaves
// `delivered` below last_seq; every boot and the heal alarm resume from there. Duplicates (which
// receivers drop by event id) come from: a crash after the enqueue but before the job was saved,
// a job the queue lost or held past its deadline (re-enqueued; the old one may still deliver), a
// consumer that delivered and then could not report (the queue retries it), and the events of
// one seq before a failing one (a notification after its message.created) when that seq is retried.

import type { Entry } from "../protocol/frames.js";
import { retryDelayS, type WebhookEndpoint, type WebhookSettings } from "./config.js";
import { eventOfEntry, type WebhookEvent } from "./events.js";

/** A seq event as delivered: with the seq of the previous event this endpoint was sent in this room. */
export type SeqEvent = WebhookEvent & { seq: number; prevSeq: number };

/** One queue message for one (room, endpoint): the endpoint's next events, in order. */
export interface HookJob {
  kind: "seq";
  tenant: string;
  roomId: string;
  endpointId: string;
  /** Which job this is: a report for any other token is stale and ignored. */
  token: string;
  /** After this job, everything up to this seq is delivered (seqs without an event for this endpoint included). */
  upto: number;
  /** 1 on the first try of these events, n on the n-th. */
  attempt: number;
  events: SeqEvent[];
}

/** What the consumer says after it tried a job. */
export interface HookReport {
  endpointId: string;
  token: string;
  /** Set when a delivery failed: the seq whose events did not all arrive, those events, and why. */
  failure?: { seq: number; events: SeqEvent[]; error: string };
}

export interface EndpointState {
  /** Every event with seq ≤ this was delivered (or dead-lettered). */
  delivered: number;
  /** The seq of the last event at or below `delivered`: the next event's `prevSeq`. */
  prev: number;
  /** Consecutive failed attempts of the events after `delivered`. */
  failures: number;
  /** The job in the queue, if any; after `until` (ms) it is presumed lost and enqueued again. */
  inflight?: { token: string; upto: number; until: number; seqs: number[] };
}

export interface DispatcherDeps {
  /** Committed entries with afterSeq < seq ≤ uptoSeq, ascending (the window, else Postgres). */
  read(afterSeq: number, uptoSeq: number): Promise<Entry[]>;
  /** Events beyond the entry's own that these entries cause (notifications), in seq order. */
  extra?(entries: Entry[]): Promise<WebhookEvent[]>;
  enqueue(job: HookJob, delaySeconds: number): Promise<void>;
  /** Persists every endpoint's state (one storage write). */
  save(states: Record<string, EndpointState>): Promise<void>;
  /** Records events given up on (Postgres `webhook_dead_letters`). */
  deadLetter(endpointId: string, events: SeqEvent[], attempts: number, error: string): Promise<void>;
  lastSeq(): number;
  now(): number;
  token(): string;
}

/** Entries read per step, and the most a job carries (a queue message is at most 128 KB). */
const READ_BATCH = 100;
const JOB_EVENTS = 200;
const JOB_BYTES = 96 * 1024;
/** How long a job may take from its delivery time until it is presumed lost: above the consumer's worst case. */
export const INFLIGHT_GRACE_S = 15 * 60;

export class HookDispatcher {
  private readonly states = new Map<string, EndpointState>();
  private pass: Promise<boolean> | undefined;
  private again = false;
  private holding: Promise<void> | undefined;
  private stopped = false;
  lastError: unknown;

  constructor(
    private readonly tenant: string,
    private readonly endpoints: readonly WebhookEndpoint[],
    private readonly settings: WebhookSettings,
    private readonly deps: DispatcherDeps,
  ) {}

  get active(): boolean {
    return this.endpoints.length > 0 && !this.stopped;
  }

  /** Is a job in the queue or something left to enqueue (the heal alarm keeps checking)? */
  get pending(): boolean {
    const last = this.deps.lastSeq();
    return [...this.states.values()].some((s) => s.inflight !== undefined || s.delivered < last);
  }

  state(endpointId: string): EndpointState | undefined {
    return this.states.get(endpointId);
  }

  /**
   * After a claim: the saved states; an endpoint seen for the first time starts at `lastSeq` (it
   * hears what is committed from now on, no backfill). The start is saved at once: the runtime's
   * output gate holds every ack until it is durable, so nothing acked can be skipped.
   */
  boot(saved: unknown, lastSeq: number): void {
    // A room deleted and created again boots the same instance anew.
    this.stopped = false;
    this.states.clear();
    const known = (typeof saved === "object" && saved !== null ? saved : {}) as Record<string, EndpointState | undefined>;
    let fresh = false;
    for (const endpoint of this.endpoints) {
      const s = known[endpoint.id];
      if (s && typeof s.delivered === "number") {
        this.states.set(endpoint.id, { ...s, delivered: Math.min(s.delivered, lastSeq), prev: Math.min(s.prev, lastSeq) });
      } else {
        this.states.set(endpoint.id, { delivered: lastSeq, prev: 0, failures: 0 });
        fresh = true;
      }
    }
    if (fresh) void this.save().catch(() => {});
    if (this.pending) void this.run();
  }

  private save(): Promise<void> {
    return this.deps.save(Object.fromEntries(this.states));
  }

  /** Builds and enqueues the next job of every endpoint that has none. Resolves false after a failure; never rejects. */
  run(): Promise<boolean> {
    if (!this.active) return Promise.resolve(true);
    if (this.holding) return this.holding.then(() => this.run());
    if (this.pass) {
      this.again = true;
      return this.pass;
    }
    this.pass = this.loop().finally(() => {
      this.pass = undefined;
    });
    return this.pass;
  }

  private async loop(): Promise<boolean> {
    let ok = true;
    do {
      this.again = false;
      for (const endpoint of this.endpoints) {
        try {
          await this.pump(endpoint);
        } catch (error) {
          this.lastError = error;
          ok = false;
        }
      }
    } while (this.again && ok);
    return ok;
  }

  private async pump(endpoint: WebhookEndpoint): Promise<void> {
    const st = this.states.get(endpoint.id);
    if (!st) return;
    if (st.inflight && this.deps.now() < st.inflight.until) return;
    // No job, or one presumed lost (local queues are memory only; a real one may sit past its deadline).
    st.inflight = undefined;
    while (!this.stopped && st.delivered < this.deps.lastSeq()) {
      const upto = Math.min(this.deps.lastSeq(), st.delivered + READ_BATCH);
      const entries = await this.deps.read(st.delivered, upto);
      if (entries.length !== upto - st.delivered || entries[0]?.seq !== st.delivered + 1) {
        throw new Error(`webhooks read ${entries.length} of ${upto - st.delivered} entries after seq ${st.delivered}`);
      }
      const events = await this.eventsFor(endpoint, entries);
      const job = this.jobOf(endpoint, st, events, upto);
      if (!job) {
        // Nothing this endpoint subscribes to: the watermark moves on without a delivery.
        st.delivered = upto;
        st.failures = 0;
        await this.save();
        continue;
      }
      const delay = st.failures > 0 ? retryDelayS(st.failures, this.settings.retryBaseS) : 0;
      st.inflight = { token: job.token, upto: job.upto, until: this.deps.now() + (delay + INFLIGHT_GRACE_S) * 1000, seqs: job.events.map((e) => e.seq) };
      // Saved before the send: a crash after it leaves a job that is re-sent after its deadline
      // (a crash before the send is the same case); a crash between send and save cannot lose it.
      await this.save();
      try {
        await this.deps.enqueue(job, delay);
      } catch (error) {
        st.inflight = undefined;
        await this.save().catch(() => {});
        throw error;
      }
      return;
    }
  }

  private async eventsFor(endpoint: WebhookEndpoint, entries: Entry[]): Promise<WebhookEvent[]> {
    const own = entries.map((e) => eventOfEntry(this.tenant, e));
    const extra = this.deps.extra ? await this.deps.extra(entries) : [];
    // Each seq's own event first, then what it caused (its notifications), in seq order.
    const all = [...own, ...extra].map((e, i) => ({ e, i })).sort((a, b) => (a.e.seq ?? 0) - (b.e.seq ?? 0) || a.i - b.i);
    return all.map(({ e }) => e).filter((e) => endpoint.events.has(e.type));
  }

  /** The next job: whole seqs only (a seq's events travel together), within the size limits; undefined if `events` is empty. */
  private jobOf(endpoint: WebhookEndpoint, st: EndpointState, events: WebhookEvent[], readUpto: number): HookJob | undefined {
    if (events.length === 0) return undefined;
    const picked: SeqEvent[] = [];
    let bytes = 0;
    let prev = st.prev;
    let upto = readUpto;
    for (let i = 0; i < events.length; i++) {
      const event = events[i] as WebhookEvent & { seq: number };
      const size = JSON.stringify(event).length;
      const startsSeq = i === 0 || (events[i - 1]?.seq ?? 0) !== event.seq;
      if (picked.length > 0 && startsSeq && (picked.length >= JOB_EVENTS || bytes + size > JOB_BYTES)) {
        upto = event.seq - 1;
        break;
      }
      picked.push({ ...event, prevSeq: prev });
      prev = event.seq;
      bytes += size;
    }
    return {
      kind: "seq",
      tenant: this.tenant,
      roomId: picked[0]?.roomId ?? "",
      endpointId: endpoint.id,
      token: this.deps.token(),
      upto,
      attempt: st.failures + 1,
      events: picked,
    };
  }

  /**
   * The consumer's report. Stale reports (another token: a job re-sent after its deadline) change
   * nothing. Success: the watermark moves to the job's end. Failure: it moves to just before the
   * failing seq, and the rest is sent again after the backoff, or dead-lettered after `maxAttempts`.
   */
  async report(report: HookReport): Promise<"applied" | "stale"> {
    const st = this.states.get(report.endpointId);
    const job = st?.inflight;
    if (!st || !job || job.token !== report.token) return "stale";
    const advance = (through: number) => {
      if (through <= st.delivered) return;
      st.delivered = through;
      const seqs = job.seqs.filter((s) => s <= through);
      if (seqs.length > 0) st.prev = seqs[seqs.length - 1] ?? st.prev;
    };
    if (!report.failure) {
      advance(job.upto);
      st.failures = 0;
    } else {
      advance(report.failure.seq - 1);
      st.failures++;
      if (st.failures >= this.settings.maxAttempts) {
        await this.deps.deadLetter(report.endpointId, report.failure.events, st.failures, report.failure.error);
        advance(report.failure.seq);
        st.failures = 0;
      }
    }
    st.inflight = undefined;
    await this.save();
    void this.run();
    return "applied";
  }

  /** The queue gave up on a job (its dead-letter queue): enqueue it again now rather than after its deadline. */
  async lost(endpointId: string, token: string): Promise<void> {
    const st = this.states.get(endpointId);
    if (!st?.inflight || st.inflight.token !== token) return;
    st.inflight = undefined;
    await this.save();
    void this.run();
  }

  /** Waits for a pass in flight and starts none until released (tests: a crash between commit and enqueue). */
  async hold(): Promise<() => void> {
    while (this.holding || this.pass) await (this.holding ?? this.pass);
    let done: () => void = () => {};
    this.holding = new Promise<void>((resolve) => {
      done = resolve;
    });
    return () => {
      this.holding = undefined;
      done();
    };
  }

  /** The room is being deleted: nothing is enqueued from now on. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.pass;
  }
}
