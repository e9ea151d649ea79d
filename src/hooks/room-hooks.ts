// The room object's webhook part: the dispatcher (watermarks, jobs, retries), the notifier and
// the dead-letter record, wired to the room through a few callbacks, so room.ts only says
// "booted", "committed", "alarm" and forwards the consumer's reports.

import type { Entry } from "../protocol/frames.js";
import type { RoomKey } from "../storage/types.js";
import { retryDelayS, type WebhookEndpoint, WebhookEventType, type WebhookSettings } from "./config.js";
import type { QueueJob } from "./consumer.js";
import { type EndpointState, HookDispatcher, type HookReport } from "./dispatcher.js";
import { type RoomEventType, roomEvent, type WebhookEvent } from "./events.js";
import { Notifier, type NotifyDeps } from "./notify.js";
import type { DeadLetterStore } from "./store.js";

/** Durable Object storage key of every endpoint's delivery state in this room. */
export const WEBHOOKS_KEY = "webhooks";

export interface RoomHooksDeps extends NotifyDeps {
  key: RoomKey;
  endpoints: readonly WebhookEndpoint[];
  settings: WebhookSettings;
  /** The producer binding (undefined: webhooks off in this deployment). */
  queue: Queue<QueueJob> | undefined;
  read(afterSeq: number, uptoSeq: number): Promise<Entry[]>;
  lastSeq(): number;
  /** Persists the states; `confirmed` false lets acks go out before the write is confirmed (see save). */
  save(states: Record<string, EndpointState>, confirmed: boolean): Promise<void>;
  deadLetters(): DeadLetterStore;
  /** Arms the heal alarm `delayMs` from now. */
  retryIn(delayMs: number): Promise<void>;
  warn(message: string, cause: unknown): void;
  /** Commits within this many ms share one pass (the mirror's linger, MIRROR_LINGER_MS). */
  lingerMs: number;
}

export class RoomHooks {
  readonly dispatcher: HookDispatcher;
  private readonly notifier: Notifier;
  private lingering = false;
  private failures = 0;
  private booted = false;

  constructor(private readonly deps: RoomHooksDeps) {
    const endpoints = deps.queue ? deps.endpoints : [];
    this.notifier = new Notifier(deps.key.tenant, deps);
    const wantsNotifications = endpoints.some((e) => e.events.has(WebhookEventType.Notification));
    let bootSave = true;
    this.dispatcher = new HookDispatcher(deps.key.tenant, endpoints, deps.settings, {
      read: deps.read,
      ...(wantsNotifications ? { extra: (entries: Entry[]) => this.notifier.eventsFor(entries) } : {}),
      enqueue: async (job, delaySeconds) => {
        await deps.queue?.send(job, delaySeconds > 0 ? { delaySeconds, contentType: "json" } : { contentType: "json" });
      },
      // The first save (new endpoints' start at boot) is confirmed: the output gate then holds
      // every ack until it is durable. Later saves only move watermarks forward or record a job;
      // one lost in a crash makes the room send those events again (duplicates), never skip them,
      // so they do not hold acks back.
      save: (states) => {
        const confirmed = bootSave;
        bootSave = false;
        return deps.save(states, confirmed);
      },
      deadLetter: (endpointId, events, attempts, error) => deps.deadLetters().record(deps.key, endpointId, events, attempts, error),
      lastSeq: deps.lastSeq,
      now: () => Date.now(),
      token: () => crypto.randomUUID(),
    });
  }

  get active(): boolean {
    return this.dispatcher.active;
  }

  boot(saved: unknown, lastSeq: number): void {
    if (!this.active) return;
    this.booted = true;
    this.dispatcher.boot(saved, lastSeq);
  }

  /** Something was committed: enqueue after the linger. Never awaited by a send. */
  committed(): void {
    if (!this.active || !this.booted) return;
    if (this.deps.lingerMs <= 0) {
      void this.run();
      return;
    }
    if (this.lingering) return;
    this.lingering = true;
    setTimeout(() => {
      this.lingering = false;
      void this.run();
    }, this.deps.lingerMs);
  }

  /** One pass; on failure (queue or storage down) the heal alarm retries with backoff. Never rejects. */
  async run(): Promise<boolean> {
    if (!this.active || !this.booted) return true;
    const ok = await this.dispatcher.run();
    if (ok) {
      this.failures = 0;
      return true;
    }
    this.failures++;
    const delay = Math.min(30_000, 500 * 2 ** (this.failures - 1));
    this.deps.warn(`webhooks: unable to enqueue (failure ${this.failures}, retry in ${delay} ms)`, this.dispatcher.lastError);
    await this.deps.retryIn(delay).catch(() => {});
    return false;
  }

  /** The heal alarm fired: catch up, and keep an alarm while a job is out (a lost one is re-sent after its deadline). */
  async alarm(heartbeatMs: number): Promise<void> {
    if (!this.active || !this.booted) return;
    if ((await this.run()) && this.dispatcher.pending) await this.deps.retryIn(heartbeatMs).catch(() => {});
  }

  report(report: HookReport): Promise<"applied" | "stale"> {
    return this.dispatcher.report(report);
  }

  lost(endpointId: string, token: string): Promise<void> {
    return this.dispatcher.lost(endpointId, token);
  }

  /** A room event the queue gave up on. */
  deadLetter(endpointId: string, event: WebhookEvent): Promise<void> {
    return this.deps.deadLetters().record(this.deps.key, endpointId, [event], this.deps.settings.maxAttempts, "the queue's retries were exhausted");
  }

  /**
   * room.created / room.deleted take no seq: one queue message per subscribed endpoint, retried
   * by the queue itself (not ordered with the seq events; docs/webhooks.md).
   */
  async roomChanged(type: RoomEventType, data: Record<string, unknown>): Promise<void> {
    const queue = this.deps.queue;
    if (!queue) return;
    const event = roomEvent(this.deps.key.tenant, this.deps.key.roomId, type, new Date().toISOString(), data);
    const jobs = this.deps.endpoints.filter((e) => e.events.has(type)).map((e) => ({ body: { kind: "room" as const, tenant: this.deps.key.tenant, endpointId: e.id, event }, contentType: "json" as const }));
    if (jobs.length > 0) await queue.sendBatch(jobs).catch((error: unknown) => this.deps.warn(`webhooks: unable to enqueue ${type}`, error));
  }

  /** The room is deleted: nothing more is enqueued. */
  stop(): Promise<void> {
    return this.dispatcher.stop();
  }

  /** Per endpoint: what is delivered, failing, out (tests and ops). */
  status(): Record<string, EndpointState & { retryInS?: number }> {
    const out: Record<string, EndpointState & { retryInS?: number }> = {};
    for (const endpoint of this.deps.endpoints) {
      const s = this.dispatcher.state(endpoint.id);
      if (s) out[endpoint.id] = { ...s, ...(s.failures > 0 ? { retryInS: retryDelayS(s.failures, this.deps.settings.retryBaseS) } : {}) };
    }
    return out;
  }
}
