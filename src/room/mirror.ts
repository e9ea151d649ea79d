// Mirrors committed entries to Redis strictly in seq order, from a durable watermark.
// MirrorPump: single flight, one pass at a time; a pass started while one runs is folded into it.
// It never skips: a failed write leaves the watermark where it was, and the next pass (live,
// or the heal alarm) starts from there. So the stream may lag, but never has a hole below its top.
// Mirror: when to run the pump (live after a commit, or from the heal alarm), the failure count,
// the backoff, and the heal alarm itself (HealAlarm), so the room object only says "committed".

import type { Entry } from "../protocol/frames.js";

export interface MirrorDeps {
  /** Committed messages with afterSeq < seq <= uptoSeq, ascending, in their current form (the window, else Postgres). */
  read(afterSeq: number, uptoSeq: number): Promise<Entry[]>;
  write(messages: Entry[]): Promise<void>;
  /** Takes these seqs out of the stream (a delete's redaction). */
  remove?(seqs: number[]): Promise<void>;
  /** Persists the watermark (Durable Object storage). */
  save(mirroredSeq: number): Promise<void>;
}

export class MirrorPump {
  private pass: Promise<boolean> | undefined;
  private again = false;
  private stopped = false;
  /** Set while a redaction holds the pump (see `hold`). */
  private holding: Promise<void> | undefined;

  constructor(
    private readonly deps: MirrorDeps,
    /** Everything up to here is in the stream. */
    public mirroredSeq: number,
    private readonly batchSize: number,
  ) {}

  /**
   * Mirrors until `target()` is reached. Resolves true when caught up, false after a failure
   * (the caller schedules a retry); never rejects.
   */
  catchUp(target: () => number): Promise<boolean> {
    if (this.stopped) return Promise.resolve(true);
    if (this.holding) return this.holding.then(() => this.catchUp(target));
    if (this.pass) {
      this.again = true;
      return this.pass;
    }
    this.pass = this.run(target).finally(() => {
      this.pass = undefined;
    });
    return this.pass;
  }

  private async run(target: () => number): Promise<boolean> {
    try {
      do {
        this.again = false;
        while (this.mirroredSeq < target() && !this.stopped) {
          const upto = Math.min(target(), this.mirroredSeq + this.batchSize);
          const batch = await this.deps.read(this.mirroredSeq, upto);
          const expected = upto - this.mirroredSeq;
          if (batch.length !== expected || batch[0]?.seq !== this.mirroredSeq + 1) {
            throw new Error(`mirror read ${batch.length} of ${expected} messages after seq ${this.mirroredSeq}`);
          }
          // Checked again after the read: a room deleted meanwhile must not get its stream back.
          if (this.stopped) break;
          await this.deps.write(batch);
          this.mirroredSeq = upto;
          await this.deps.save(upto);
        }
      } while (this.again);
      return true;
    } catch (error) {
      this.lastError = error;
      return false;
    }
  }

  lastError: unknown;

  /**
   * Waits for the pass in flight and keeps new ones from starting until the returned release is
   * called. A delete holds the pump from before it takes the message out of Redis until the
   * delete's outcome is published: a pass that read the message before the delete could
   * otherwise write its text back after it was removed; a pass after the release reads the
   * message in its current form (a tombstone) from the window or Postgres.
   */
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

  /** No write starts from now on; resolves once a write in flight has finished (the room is being deleted). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.pass;
  }
}

/** Retry delay after `failures` consecutive failed passes: 0.5 s doubling, capped at 30 s. */
export const mirrorBackoffMs = (failures: number): number => Math.min(30_000, 500 * 2 ** Math.max(0, failures - 1));

/** Durable Object storage key of the mirror watermark. */
export const MIRRORED_KEY = "mirroredSeq";
/** While a room is active, the heal alarm fires this often to catch up a mirror that a crash left behind. */
export const HEAL_INTERVAL_MS = 30_000;
const MIRROR_BATCH = 500;

/** The object's alarm, as the heal loop uses it. `armed` is memory only: re-armed after every wake-up. */
export class HealAlarm {
  private armed = false;
  /** Consecutive heal passes that could not finish (storage down): the backoff. */
  private failures = 0;

  constructor(private readonly storage: { setAlarm(at: number): Promise<void>; deleteAlarm(): Promise<void> }) {}

  /** Sets the alarm unless one is already set (or moves it to `delayMs` from now with `force`). */
  async arm(delayMs = HEAL_INTERVAL_MS, force = false): Promise<void> {
    if (this.armed && !force) return;
    this.armed = true;
    await this.storage.setAlarm(Date.now() + delayMs);
  }

  /** The alarm fired (the runtime cleared it). */
  fired(): void {
    this.armed = false;
  }

  /** A heal pass could not finish: come back after the next backoff step. */
  async retry(): Promise<void> {
    this.failures++;
    await this.arm(mirrorBackoffMs(this.failures), true);
  }

  /** A heal pass finished. */
  healed(): void {
    this.failures = 0;
  }

  /** Nothing left to heal, ever (the room was deleted). */
  async cancel(): Promise<void> {
    await this.storage.deleteAlarm();
    this.armed = false;
  }
}

export interface MirrorHooks extends Omit<MirrorDeps, "save"> {
  /** The committed high-water mark now. */
  lastSeq(): number;
  /** Persists the watermark. */
  save(mirroredSeq: number): Promise<void>;
  /** Arms the heal alarm `delayMs` from now (moving it earlier). */
  retryIn(delayMs: number): Promise<void>;
  /** After every pass: how many seqs Redis is behind, and whether the pass succeeded (metrics). */
  passed?(lagSeqs: number, ok: boolean): void;
  /** Says the mirror is behind; `cause` must be logged without its text (it can echo user content). */
  warn(message: string, cause: unknown): void;
}

/**
 * The mirror of one room: off (no Upstash configured) or a pump from the watermark saved at boot.
 * During a Redis outage, live commits do not retry; the heal alarm does, with backoff.
 */
export class Mirror {
  private pump: MirrorPump | undefined;
  private failures = 0;
  private retryAt = 0;

  /** Set while a linger timer is pending: later commits ride on the same pass. */
  private lingering = false;

  constructor(
    private readonly hooks: MirrorHooks,
    /** How many entries the stream keeps (MAXLEN): older ones never need mirroring again. */
    private readonly maxLen: number,
    /**
     * How long to wait after a commit before writing (MIRROR_LINGER_MS). Each Redis request costs the
     * room's single thread about the same whatever it carries, so commits that arrive within the
     * linger share one request: fewer requests on the ack path's thread, for that much more lag.
     */
    private readonly lingerMs = 0,
    private readonly later: (run: () => void, ms: number) => void = (run, ms) => void setTimeout(run, ms),
  ) {}

  /** Everything up to here is in the stream (null before the first boot). */
  get mirroredSeq(): number | null {
    return this.pump ? this.pump.mirroredSeq : null;
  }

  /** Consecutive failed passes (the heal alarm's backoff uses it too). */
  get failureCount(): number {
    return this.failures;
  }

  /** After a claim: restart from the saved watermark and heal whatever a crash left behind. */
  boot(saved: number | undefined, lastSeq: number): void {
    // No watermark yet (a new room, or storage that was reset): the stream only ever needs the
    // newest `maxLen` entries, so older ones are not pushed again.
    const mirrored = saved ?? Math.max(0, lastSeq - this.maxLen);
    this.pump = new MirrorPump(this.hooks, Math.min(mirrored, lastSeq), MIRROR_BATCH);
    if (this.pump.mirroredSeq < lastSeq) void this.run();
  }

  /**
   * The room is being deleted: no mirror write starts from now on, and this resolves once a
   * write in flight has finished, so dropping the stream afterwards cannot be undone by it.
   */
  async stop(): Promise<void> {
    const pump = this.pump;
    this.pump = undefined;
    await pump?.stop();
  }

  /**
   * Before a delete commits: the deleted message and its edits leave the stream, with the pump
   * held until `release` (MirrorPump.hold). Rejects when Redis cannot be reached (the delete is
   * then refused: fail closed). A room without a mirror has nothing to redact.
   */
  async redact(seqs: number[]): Promise<() => void> {
    const pump = this.pump;
    if (!pump || !this.hooks.remove) return () => {};
    const release = await pump.hold();
    try {
      await this.hooks.remove(seqs);
    } catch (error) {
      release();
      throw error;
    }
    return release;
  }

  /** Something was committed: catch up (after the linger) unless an outage is backing off. Never rejects. */
  committed(): void {
    if (this.lingerMs <= 0) {
      void this.run();
      return;
    }
    if (this.lingering) return;
    this.lingering = true;
    this.later(() => {
      this.lingering = false;
      void this.run();
    }, this.lingerMs);
  }

  /** Catches the mirror up to the committed seq; on failure, schedules a retry from the watermark. */
  async run(fromAlarm = false): Promise<void> {
    const pump = this.pump;
    if (!pump || (!fromAlarm && Date.now() < this.retryAt)) return;
    const ok = await pump.catchUp(() => this.hooks.lastSeq());
    this.hooks.passed?.(this.hooks.lastSeq() - pump.mirroredSeq, ok);
    if (ok) {
      this.failures = 0;
      this.retryAt = 0;
      return;
    }
    this.failures++;
    const delay = mirrorBackoffMs(this.failures);
    this.retryAt = Date.now() + delay;
    this.hooks.warn(
      `mirror behind by ${this.hooks.lastSeq() - pump.mirroredSeq} (failure ${this.failures}, retry in ${delay} ms)`,
      pump.lastError,
    );
    await this.hooks.retryIn(delay).catch(() => {});
  }
}
