// The way in for every entry a user causes (a WebSocket frame or a REST call): authorize,
// rate-limit, answer a known resend from memory, else hand it to the writer. A user's sends are
// chained, so they reach the writer in the order they arrived even though checking may wait on
// storage (the first send of a user loads their role).

import { ErrorCode } from "../protocol/errors.js";
import type { Entry, EntryKind } from "../protocol/frames.js";
import type { Part, SendPart } from "../protocol/parts.js";
import { MAX_PENDING_SENDS_PER_USER } from "../protocol/limits.js";
import { TokenBucket } from "./access.js";
import { type Failure, failure, type SendOutcome } from "./results.js";
import type { Role } from "../storage/types.js";
import type { PendingEntry } from "./writer.js";

/** An entry a user asks for: a message, or a change of one (target), or a system entry. */
export interface SendRequestOf {
  kind: EntryKind;
  clientMsgId: string;
  text: string;
  target?: number;
  replyTo?: number;
  data?: Record<string, unknown>;
  /** A multipart send's parts as the sender wrote them (attachments by id). */
  parts?: SendPart[];
}

/** A multipart send made ready to commit: its parts resolved, its summary text final. */
export interface PreparedSend {
  text: string;
  parts: Part[];
  /** Called once, with the send's outcome (the room releases the attachments it reserved). */
  settle?: () => void;
}

export interface SendsDeps {
  /**
   * Throws a ChatError when `userId` may not send now (checked against the room as it is now);
   * otherwise their role, which the writer uses for what only admins may do.
   */
  authorize(userId: string, asServer?: boolean): Promise<Role | null>;
  /** A committed entry of this (user, clientMsgId) still in memory, if any. */
  known(userId: string, clientMsgId: string): Entry | undefined;
  submit(entry: PendingEntry): void;
  /**
   * A multipart send's check, inside the user's chain after the rate limits: resolves its
   * attachments (src/room/attachments.ts) or throws a ChatError. Absent: parts are refused.
   */
  prepare?: (userId: string, request: SendRequestOf) => Promise<PreparedSend>;
  failureOf(error: unknown, operation: string): Failure;
  /**
   * The tenant's before-commit hook (before-commit.ts), after every other check and right before
   * the writer: the final text (and parts), or the refusal. Absent: no hook.
   */
  review?: (userId: string, request: SendRequestOf, parts: Part[] | undefined) => Promise<{ text: string; parts?: Part[] } | Failure>;
  /**
   * The limit across all rooms of the tenant (src/limits.ts), checked inside the user's chain so
   * their sends keep their order; absent: no such limit.
   */
  crossRoom?: (userId: string) => Promise<{ ok: true } | { ok: false; retryAfterMs: number }>;
  /** The per-user bucket's capacity and refill rate. */
  limits: { sendBurst: number; sendRatePerSecond: number };
  now?: () => number;
  maxPendingPerUser?: number;
}

export class Sends {
  private readonly chains = new Map<string, Promise<void>>();
  /** Entries of each user that have not had their outcome yet (checked, queued or committing). */
  private readonly pending = new Map<string, number>();
  private readonly maxPending: number;
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly now: () => number;

  constructor(private readonly deps: SendsDeps) {
    this.now = deps.now ?? Date.now;
    this.maxPending = deps.maxPendingPerUser ?? MAX_PENDING_SENDS_PER_USER;
  }

  /** Queues one entry of `userId`; `deliver` is called exactly once with its fate. */
  enqueue(userId: string, request: SendRequestOf, deliver: (outcome: SendOutcome) => void, asServer = false): void {
    // While checks wait on storage, a flood would queue without limit: past a bound, refuse now.
    const pending = this.pending.get(userId) ?? 0;
    if (pending >= this.maxPending) {
      deliver({
        ...failure(ErrorCode.RateLimited, "unable to send; too many messages waiting, retry in 1000 ms"),
        retryAfterMs: 1000,
      });
      return;
    }
    this.pending.set(userId, pending + 1);
    const done = (outcome: SendOutcome): void => {
      const left = (this.pending.get(userId) ?? 1) - 1;
      if (left > 0) this.pending.set(userId, left);
      else this.pending.delete(userId);
      deliver(outcome);
    };
    this.chain(userId, request, done, asServer);
  }

  private chain(userId: string, request: SendRequestOf, deliver: (outcome: SendOutcome) => void, asServer: boolean): void {
    const previous = this.chains.get(userId) ?? Promise.resolve();
    const next = previous.then(async () => {
      let role: Role | null;
      try {
        role = await this.deps.authorize(userId, asServer);
      } catch (error) {
        deliver(this.deps.failureOf(error, "unable to send"));
        return;
      }
      const limited = this.takeToken(userId) ?? (await this.crossRoom(userId));
      if (limited) {
        deliver(limited);
        return;
      }
      if (this.deps.known(userId, request.clientMsgId)) {
        // A resend answered from memory (its attachments are bound, its review done already).
        this.submit(userId, request, role, deliver);
        return;
      }
      let prepared: PreparedSend | undefined;
      if (request.parts !== undefined) {
        try {
          if (!this.deps.prepare) throw new Error("multipart sends without a prepare step");
          prepared = await this.deps.prepare(userId, request);
        } catch (error) {
          deliver(this.deps.failureOf(error, "unable to send"));
          return;
        }
      }
      const settle = prepared?.settle;
      const settled = (outcome: SendOutcome): void => {
        settle?.();
        deliver(outcome);
      };
      let text = prepared?.text ?? request.text;
      let parts = prepared?.parts;
      if (this.deps.review) {
        let reviewed: { text: string; parts?: Part[] } | Failure;
        try {
          reviewed = await this.deps.review(userId, { ...request, text }, parts);
        } catch (error) {
          reviewed = this.deps.failureOf(error, "unable to send");
        }
        if ("ok" in reviewed) {
          settled(reviewed);
          return;
        }
        text = reviewed.text;
        parts = reviewed.parts;
      }
      this.submit(userId, { ...request, text }, role, settled, parts);
    });
    this.chains.set(userId, next);
    void next.finally(() => {
      if (this.chains.get(userId) === next) this.chains.delete(userId);
    });
  }

  private async crossRoom(userId: string): Promise<Failure | undefined> {
    const outcome = await this.deps.crossRoom?.(userId);
    if (!outcome || outcome.ok) return undefined;
    return {
      ...failure(ErrorCode.RateLimited, `unable to send; too many messages across rooms, retry in ${outcome.retryAfterMs} ms`),
      retryAfterMs: outcome.retryAfterMs,
    };
  }

  /** The per-user token bucket (memory only: a restart forgives, which is acceptable for a flood guard). */
  private takeToken(userId: string): Failure | undefined {
    const now = this.now();
    let bucket = this.buckets.get(userId);
    if (!bucket) {
      if (this.buckets.size > 10_000) for (const [u, b] of this.buckets) if (b.isIdle(now)) this.buckets.delete(u);
      bucket = new TokenBucket(this.deps.limits.sendBurst, this.deps.limits.sendRatePerSecond, now);
      this.buckets.set(userId, bucket);
    }
    const taken = bucket.take(now);
    if (taken.ok) return undefined;
    return {
      ...failure(ErrorCode.RateLimited, `unable to send; too many messages, retry in ${taken.retryAfterMs} ms`),
      retryAfterMs: taken.retryAfterMs,
    };
  }

  private submit(userId: string, request: SendRequestOf, role: Role | null, deliver: (outcome: SendOutcome) => void, parts?: Part[]): void {
    // A resend of something already committed and still in memory is answered at once.
    const known = this.deps.known(userId, request.clientMsgId);
    if (known) {
      deliver({ ok: true, message: known, duplicate: true });
      return;
    }
    this.deps.submit({
      id: crypto.randomUUID(),
      kind: request.kind,
      userId,
      clientMsgId: request.clientMsgId,
      text: request.text,
      ...(request.target === undefined ? {} : { target: request.target }),
      ...(request.replyTo === undefined ? {} : { replyTo: request.replyTo }),
      ...(request.data === undefined ? {} : { data: request.data }),
      ...(parts === undefined ? {} : { parts }),
      role,
      bytes: request.text.length * 3 + request.clientMsgId.length + (parts === undefined ? 0 : JSON.stringify(parts).length * 3),
      deliver,
    });
  }
}
