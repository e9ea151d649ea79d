// Sends the server has not acknowledged yet. Each keeps its clientMsgId for its whole life, so a
// resend after a reconnect or an `unavailable` is deduplicated by the server (same user, same
// clientMsgId → the original seq): exactly once. Order is kept by having at most one send on the
// wire: if the second of two pipelined sends committed while the first failed with `unavailable`,
// the retried first would land after it. One round trip per message is plenty for people typing.
// Changes (edit, delete, react) go through the same outbox as sends, in the same order: an edit
// made right after a send is never committed before it.

import { ErrorCode } from "../protocol/errors.js";
import { Backoff, type BackoffPolicy, DEFAULT_BACKOFF } from "./backoff.js";
import type { SendPart } from "../protocol/parts.js";

/**
 * Where a pending send is: `queued` (waiting for the connection or for its turn), `sending` (on the
 * wire, waiting for the ack) or `retrying` (failed with a retryable error, waiting to be sent again).
 */
export type PendingStatus = "queued" | "sending" | "retrying";

/** What a pending entry will commit: a message (maybe a reply), or a change to message `target`. */
export type PendingAction =
  | {
      readonly type: "send";
      /** The text; for a multipart send the summary the SDK can make before the server's (parts.ts). */
      readonly text: string;
      readonly replyTo?: number;
      /** A multipart send's parts, as sent (attachments by id). */
      readonly parts?: readonly SendPart[];
      /** Users the message mentions (besides `@userId` in its text): they may get a push (docs/webhooks.md). */
      readonly mentions?: readonly string[];
    }
  | { readonly type: "edit"; readonly target: number; readonly text: string }
  | { readonly type: "delete"; readonly target: number }
  | { readonly type: "react"; readonly target: number; readonly emoji: string; readonly remove?: true };

/** The text a pending action shows: the message's or the edit's text, the emoji of a reaction, "" for a delete. */
const textOf = (action: PendingAction): string =>
  action.type === "send" || action.type === "edit" ? action.text : action.type === "react" ? action.emoji : "";

/**
 * A send (or a change: edit, delete, react) the server has not acknowledged yet, as shown to the UI
 * (`room.pending`). `type` says which; a "sending…" list usually shows only `type === "send"`.
 */
export interface PendingSend {
  readonly clientMsgId: string;
  /** The message's text (for an edit its new text, for a reaction its emoji, for a delete ""). */
  readonly text: string;
  readonly type: PendingAction["type"];
  /** The whole action, with its target (edit, delete, react) or thread (a reply's `replyTo`). */
  readonly action: PendingAction;
  readonly status: PendingStatus;
  /** How many times it has been put on the wire. */
  readonly attempts: number;
  /** With `retrying`: when it will be sent again (ms since the epoch). */
  readonly retryAt?: number;
  /** The last error the server reported for it, if any. */
  readonly lastError?: { readonly code: ErrorCode; readonly message: string };
}

/** An error the server reported for one send (an `error` frame with a clientMsgId). */
export interface SendFailure {
  code: ErrorCode;
  message: string;
  retryAfterMs?: number;
}

export type FailOutcome =
  | { kind: "retry"; entry: PendingSend; at: number }
  | { kind: "rejected"; entry: PendingSend }
  /** No pending send has that clientMsgId (it was acked already, or it is not ours). */
  | { kind: "unknown" };

/** `internal` is a server bug that may be deterministic for this message: retried this many times, then rejected. */
export const MAX_INTERNAL_RETRIES = 3;

/** When a rate-limited error carries no `retryAfterMs`. */
const DEFAULT_RATE_LIMIT_WAIT_MS = 1_000;

/**
 * Errors that will not change on a retry: the send is rejected and leaves the outbox. `conflict`:
 * the target was deleted, or (a reaction) the state already is what was asked.
 */
const TERMINAL: ReadonlySet<ErrorCode> = new Set([
  ErrorCode.Conflict,
  ErrorCode.BadRequest,
  ErrorCode.TooLarge,
  ErrorCode.Forbidden,
  ErrorCode.NotFound,
  // Moderation: resending cannot change a ban, a mute (until it ends) or the hook's verdict.
  ErrorCode.Banned,
  ErrorCode.Muted,
  ErrorCode.Rejected,
]);

interface Entry {
  clientMsgId: string;
  action: PendingAction;
  status: PendingStatus;
  attempts: number;
  retryAt: number | undefined;
  lastError: { code: ErrorCode; message: string } | undefined;
  backoff: Backoff;
  internalFailures: number;
}

const snapshot = (e: Entry): PendingSend => ({
  clientMsgId: e.clientMsgId,
  text: textOf(e.action),
  type: e.action.type,
  action: e.action,
  status: e.status,
  attempts: e.attempts,
  ...(e.retryAt === undefined ? {} : { retryAt: e.retryAt }),
  ...(e.lastError === undefined ? {} : { lastError: e.lastError }),
});

/**
 * The ordered list of unacknowledged sends. Pure: the room decides when to call it and what to put
 * on the wire.
 *
 * @example
 * outbox.enqueue(crypto.randomUUID(), "hello");
 * const next = outbox.next(Date.now()); // the head, now marked `sending`
 * if (next) socket.send(JSON.stringify({ type: "send", clientMsgId: next.clientMsgId, text: next.text }));
 * outbox.ack(next.clientMsgId);         // on the ack; a second ack for it returns undefined
 */
export class Outbox {
  #entries: Entry[] = [];

  constructor(
    private readonly policy: BackoffPolicy = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {}

  /** The pending sends, oldest first (a fresh snapshot). */
  get pending(): readonly PendingSend[] {
    return this.#entries.map(snapshot);
  }

  get size(): number {
    return this.#entries.length;
  }

  has(clientMsgId: string): boolean {
    return this.#entries.some((e) => e.clientMsgId === clientMsgId);
  }

  /** Queues a send of `text` (a string), or any action. */
  enqueue(clientMsgId: string, what: string | PendingAction): PendingSend {
    if (this.has(clientMsgId)) throw new Error(`clientMsgId ${clientMsgId} is already pending`);
    const entry: Entry = {
      clientMsgId,
      action: typeof what === "string" ? { type: "send", text: what } : what,
      status: "queued",
      attempts: 0,
      retryAt: undefined,
      lastError: undefined,
      backoff: new Backoff(this.policy, this.random),
      internalFailures: 0,
    };
    this.#entries.push(entry);
    return snapshot(entry);
  }

  /**
   * The send to put on the wire now, marked `sending`; undefined if the head is already on the wire,
   * is waiting out a retry delay, or the outbox is empty. Later sends always wait behind the head.
   */
  next(now: number): PendingSend | undefined {
    const head = this.#entries[0];
    if (!head || head.status === "sending") return undefined;
    if (head.status === "retrying" && head.retryAt !== undefined && now < head.retryAt) return undefined;
    head.status = "sending";
    head.retryAt = undefined;
    head.attempts++;
    return snapshot(head);
  }

  /** When the head may be sent again, if it is waiting out a retry delay. */
  wakeAt(): number | undefined {
    const head = this.#entries[0];
    return head?.status === "retrying" ? head.retryAt : undefined;
  }

  /** The send on the wire, if any. */
  inFlight(): PendingSend | undefined {
    const head = this.#entries[0];
    return head?.status === "sending" ? snapshot(head) : undefined;
  }

  /** Removes an acknowledged send. Undefined if it is not pending: a repeated ack settles nothing twice. */
  ack(clientMsgId: string): PendingSend | undefined {
    const index = this.#entries.findIndex((e) => e.clientMsgId === clientMsgId);
    if (index < 0) return undefined;
    const [entry] = this.#entries.splice(index, 1);
    return entry && snapshot(entry);
  }

  /** Applies an error the server reported for one send: schedule a retry, or reject and remove it. */
  fail(clientMsgId: string, failure: SendFailure, now: number): FailOutcome {
    const index = this.#entries.findIndex((e) => e.clientMsgId === clientMsgId);
    const entry = this.#entries[index];
    if (!entry) return { kind: "unknown" };
    entry.lastError = { code: failure.code, message: failure.message };
    if (failure.code === ErrorCode.Internal) entry.internalFailures++;
    if (TERMINAL.has(failure.code) || entry.internalFailures > MAX_INTERNAL_RETRIES) {
      this.#entries.splice(index, 1);
      return { kind: "rejected", entry: snapshot(entry) };
    }
    let at: number;
    if (failure.code === ErrorCode.RateLimited) {
      at = now + (failure.retryAfterMs ?? DEFAULT_RATE_LIMIT_WAIT_MS);
    } else if (failure.code === ErrorCode.Unauthorized) {
      // The socket is being replaced with a fresh token; send again as soon as it is ready.
      at = now;
    } else {
      // unavailable: not committed (or not known to be); internal: maybe transient.
      at = now + entry.backoff.next();
    }
    entry.status = "retrying";
    entry.retryAt = at;
    return { kind: "retry", entry: snapshot(entry), at };
  }

  /**
   * The socket went away: a send on the wire may or may not have been committed. It goes back to
   * `queued` at the head, to be resent first on the next socket (the server dedups it if it was).
   */
  connectionLost(): void {
    for (const entry of this.#entries) if (entry.status === "sending") entry.status = "queued";
  }

  /** Empties the outbox (leaving the room) and returns what was pending. */
  clear(): PendingSend[] {
    const all = this.#entries.map(snapshot);
    this.#entries = [];
    return all;
  }
}

/** The part of Web Crypto used here (typed locally: browsers, Node and Workers type `crypto` differently). */
export interface RandomSource {
  getRandomValues<T extends Uint8Array>(array: T): T;
  randomUUID?: () => string;
}

/**
 * A fresh clientMsgId (UUID v4). `crypto.randomUUID` exists only in secure contexts in browsers
 * (https or localhost), so a page served over plain http on a LAN falls back to getRandomValues.
 *
 * @example
 * newClientMsgId(); // "3b241101-e2bb-4255-8caf-4136c566a962"
 */
export const newClientMsgId = (cryptoImpl: RandomSource = crypto): string => {
  if (typeof cryptoImpl.randomUUID === "function") return cryptoImpl.randomUUID();
  const bytes = cryptoImpl.getRandomValues(new Uint8Array(16));
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40; // version 4
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(bytes, (b: number) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
};
