// Sends, from send() to the committed message: the outbox pump (one send on the wire at a time),
// acks and send errors, the ack timeout, and acked sends that wait for their message to reach the
// list. The Outbox decides what goes out and when to retry; this file holds the promises and the
// timers, and reaches the socket and the list only through the two small interfaces below. Changes
// (edit, delete, react: changes.ts) are queued here too, as actions of the same outbox: exactly once
// by clientMsgId across reconnects, one on the wire at a time, in the order they were made.

import {
  decodeDeleteRequest,
  decodeEditRequest,
  decodeReactRequest,
  decodeSendRequest,
  encodeFrame,
  utf8Length,
} from "../protocol/codec.js";
import { ErrorCode, type ErrorReason } from "../protocol/errors.js";
import {
  type AckFrame,
  type ClientFrame,
  ClientFrameType,
  type EntryFrame,
  EntryKind,
  type ErrorFrame,
  type Message,
} from "../protocol/frames.js";
import { MAX_FRAME_BYTES } from "../protocol/limits.js";
import type { BackoffPolicy } from "./backoff.js";
import { type AnyEntry, isMessage } from "./decode.js";
import { ChatClientError, type ChatClientErrorCode } from "./errors.js";
import { newClientMsgId, Outbox, type PendingAction, type PendingSend } from "./outbox.js";
import { clearTimer, type Timer } from "./timers.js";
import { type SendPart, summaryOf } from "../protocol/parts.js";

/** What the server said when it refused a change: its code, message and (for some conflicts) reason. */
export interface RefusedChange {
  code: ErrorCode;
  message: string;
  reason?: ErrorReason;
}

/** The socket, as the sender sees it (Connection implements it). */
export interface SenderWire {
  /** Whether a send may go out now: the socket is open and has delivered its `ready`. */
  readonly ready: boolean;
  write(frame: ClientFrame): boolean;
  /** Give up on the socket (no ack in time): it is replaced, and the send goes out again on the next one. */
  drop(reason: string): void;
}

/** The message list, as the sender sees it (History implements it). */
export interface SenderList {
  /** The committed entry with this seq, if the list holds it. */
  get(seq: number): AnyEntry | undefined;
  /** The oldest seq the list holds (or the next one when it is empty). */
  readonly firstSeq: number | undefined;
  /** An ack says `seq` exists: if its message frame never comes, it becomes a hole to fill. */
  noteLatest(seq: number): void;
}

export interface SenderHost {
  /** `pending` changed (queued, on the wire, retried, acknowledged or rejected). */
  pendingChanged(pending: readonly PendingSend[]): void;
  /** An ack was applied: what waits on the list may move (a hole to fill, a join to settle). */
  changed(): void;
  report(error: unknown, operation?: string): void;
}

export interface SenderConfig {
  roomId: string;
  /** Backoff for `unavailable` and `internal` retries. */
  reconnect: BackoffPolicy;
  random: () => number;
  ackTimeoutMs: number;
  /** The current user (the token's `sub`), for the rare message rebuilt from its ack. */
  userId: () => string | undefined;
}

interface SendWaiter {
  action: PendingAction;
  /** "send the message", "edit the message"…: the start of its error messages. */
  operation: string;
  /** Settles with the ack, once the entry is in the list (or older than it, or the room ended). */
  resolve: (ack: AckFrame) => void;
  /**
   * A refusal that leaves the state as the caller wanted it (a reaction already there): settles
   * the promise as a success and returns true; false to reject as usual.
   */
  accept?: (failure: { code: ErrorCode; message: string }) => boolean;
  reject: (error: ChatClientError) => void;
}

interface CommitWaiter {
  ack: AckFrame;
  waiter: SendWaiter;
}

/** How a queued action is settled, given by its caller (Room.send, Changes). */
export interface Settle<T> {
  /** From the ack, once its entry is in the list (or older than the list, or the room ended). */
  committed: (ack: AckFrame) => T;
  /** A refusal that counts as success (see SendWaiter.accept): its result, or undefined to reject. */
  refused?: (failure: RefusedChange) => T | undefined;
}

/** The frame that puts an action on the wire. */
export const frameOf = (clientMsgId: string, action: PendingAction): EntryFrame => {
  switch (action.type) {
    case "send": {
      // A multipart send leaves its text to the server (it writes the summary with file names).
      const text = action.parts === undefined ? { text: action.text } : { text: "", parts: [...action.parts] };
      const body = action.mentions === undefined ? text : { ...text, mentions: [...action.mentions] };
      return action.replyTo === undefined
        ? { type: ClientFrameType.Send, clientMsgId, ...body }
        : { type: ClientFrameType.Send, clientMsgId, ...body, replyTo: action.replyTo };
    }
    case "edit":
      return { type: ClientFrameType.Edit, clientMsgId, target: action.target, text: action.text };
    case "delete":
      return { type: ClientFrameType.Delete, clientMsgId, target: action.target };
    case "react":
      return action.remove
        ? { type: ClientFrameType.React, clientMsgId, target: action.target, emoji: action.emoji, remove: true }
        : { type: ClientFrameType.React, clientMsgId, target: action.target, emoji: action.emoji };
  }
};

/** What the server would refuse about an action (the codec's own checks), or undefined when it is well formed. */
const refusalOf = (clientMsgId: string, action: PendingAction): { code: ErrorCode; message: string } | undefined => {
  if (action.type !== "send" && !(Number.isSafeInteger(action.target) && action.target > 0)) {
    return { code: ErrorCode.BadRequest, message: "the target must be the seq of a message (a positive integer)" };
  }
  const checked =
    action.type === "send"
      ? decodeSendRequest({
          clientMsgId,
          ...(action.parts === undefined ? { text: action.text } : { parts: action.parts }),
          ...(action.replyTo === undefined ? {} : { replyTo: action.replyTo }),
          ...(action.mentions === undefined ? {} : { mentions: action.mentions }),
        })
      : action.type === "edit"
        ? decodeEditRequest({ clientMsgId, text: action.text })
        : action.type === "delete"
          ? decodeDeleteRequest({ clientMsgId })
          : decodeReactRequest(action.remove ? { clientMsgId, emoji: action.emoji, remove: true } : { clientMsgId, emoji: action.emoji });
  if (!checked.ok) return checked.error;
  // Text of at most 4000 characters can still make a frame over 16 KiB once JSON escapes it
  // (a control character becomes six bytes); the server would close the socket for it.
  if (utf8Length(encodeFrame(frameOf(clientMsgId, action))) > MAX_FRAME_BYTES) {
    return { code: ErrorCode.TooLarge, message: `it is over ${MAX_FRAME_BYTES} bytes as a frame` };
  }
  return undefined;
};

/**
 * The room's sends. Each send() resolves once, with the committed message, after its ack and once
 * the message is in the list; or rejects with the error that ended it.
 *
 * @example
 * const sender = new Sender(config, connection, history, host);
 * const message = await sender.send("hello");
 */
export class Sender {
  readonly #config: SenderConfig;
  readonly #wire: SenderWire;
  readonly #list: SenderList;
  readonly #host: SenderHost;
  readonly #outbox: Outbox;

  #pending: readonly PendingSend[] = [];
  readonly #sends = new Map<string, SendWaiter>();
  /** Acked sends whose message is not in the list yet (its `message` frame is on its way). */
  readonly #committing = new Map<number, CommitWaiter[]>();
  #ackTimer: Timer | undefined;
  #sendTimer: Timer | undefined;
  /** Why sending ended (for sends attempted afterwards). */
  #ended: { code: ChatClientErrorCode; reason: string } | undefined;

  constructor(config: SenderConfig, wire: SenderWire, list: SenderList, host: SenderHost) {
    this.#config = config;
    this.#wire = wire;
    this.#list = list;
    this.#host = host;
    this.#outbox = new Outbox(config.reconnect, config.random);
  }

  /** Sends not yet acknowledged, oldest first; the same array until something changes. */
  get pending(): readonly PendingSend[] {
    return this.#pending;
  }

  /** See Room.send and Room.reply. `input`: the text, or a multipart message's parts. */
  send(
    input: string | { parts: readonly SendPart[] },
    options: { clientMsgId?: string; replyTo?: number; mentions?: readonly string[] } = {},
  ): Promise<Message> {
    const content = typeof input === "string" ? { text: input } : { text: summaryOf(input.parts), parts: input.parts };
    const body = options.mentions === undefined || options.mentions.length === 0 ? content : { ...content, mentions: [...options.mentions] };
    const action: PendingAction =
      options.replyTo === undefined ? { type: "send", ...body } : { type: "send", ...body, replyTo: options.replyTo };
    return this.enqueue(action, options.clientMsgId, options.replyTo === undefined ? "send the message" : "reply", {
      committed: (ack) => this.#committed(ack, action),
    });
  }

  /**
   * Queues any action (a send or a change) behind the ones already queued; resolves as `settle`
   * says once it is committed, rejects with the error that ended it. `operation` starts the error
   * messages ("unable to <operation>; <reason>").
   */
  enqueue<T>(action: PendingAction, clientMsgId: string | undefined, operation: string, settle: Settle<T>): Promise<T> {
    const id = clientMsgId ?? newClientMsgId();
    const refuse = (code: ChatClientErrorCode, reason: string) =>
      Promise.reject(new ChatClientError(code, `unable to ${operation}; ${reason}`, { clientMsgId: id }));
    if (this.#ended) return refuse(this.#ended.code, this.#ended.reason);
    // The server would refuse these; say so now, with the same codes, instead of after a round trip.
    const refusal = refusalOf(id, action);
    if (refusal) return refuse(refusal.code, refusal.message);
    if (this.#sends.has(id)) return refuse(ErrorCode.BadRequest, "that clientMsgId is already pending");
    return new Promise<T>((resolve, reject) => {
      const refused = settle.refused;
      this.#sends.set(id, {
        action,
        operation,
        resolve: (ack) => resolve(settle.committed(ack)),
        ...(refused === undefined
          ? {}
          : {
              accept: (failure: RefusedChange) => {
                const result = refused(failure);
                if (result === undefined) return false;
                resolve(result);
                return true;
              },
            }),
        reject,
      });
      this.#outbox.enqueue(id, action);
      this.#pendingChanged();
      this.pump();
    });
  }

  /** Puts the head of the outbox on the wire if the socket is ready and nothing else is in flight. */
  pump(): void {
    clearTimer(this.#sendTimer);
    this.#sendTimer = undefined;
    if (this.#ended || !this.#wire.ready) return;
    const now = Date.now();
    const next = this.#outbox.next(now);
    if (next) {
      this.#pendingChanged();
      if (!this.#wire.write(frameOf(next.clientMsgId, next.action))) return;
      clearTimer(this.#ackTimer);
      // The server answers every send with an ack or an error; silence means the socket or the room is stuck.
      this.#ackTimer = setTimeout(() => {
        this.#host.report(new ChatClientError(ErrorCode.Unavailable, "unable to get an ack in time; reconnecting to resend"));
        this.#wire.drop("no ack in time");
      }, this.#config.ackTimeoutMs);
      return;
    }
    const wakeAt = this.#outbox.wakeAt();
    if (wakeAt !== undefined) this.#sendTimer = setTimeout(() => this.pump(), Math.max(0, wakeAt - now));
  }

  onAck(frame: AckFrame): void {
    const entry = this.#outbox.ack(frame.clientMsgId);
    const waiter = this.#sends.get(frame.clientMsgId);
    // A repeated ack (or one for a send this room does not know) settles nothing.
    if (!entry || !waiter) return;
    this.#sends.delete(frame.clientMsgId);
    clearTimer(this.#ackTimer);
    this.#ackTimer = undefined;
    this.#pendingChanged();
    this.#list.noteLatest(frame.seq);
    const committed = this.#list.get(frame.seq);
    const firstSeq = this.#list.firstSeq ?? 1;
    if (committed || frame.seq < firstSeq) waiter.resolve(frame);
    else {
      const list = this.#committing.get(frame.seq) ?? [];
      list.push({ ack: frame, waiter });
      this.#committing.set(frame.seq, list);
    }
    this.#host.changed();
    this.pump();
  }

  /** An `error` frame about one send. False when no pending send has that clientMsgId. */
  onError(frame: ErrorFrame & { clientMsgId: string }): boolean {
    const { clientMsgId } = frame;
    const waiter = this.#sends.get(clientMsgId);
    if (!waiter) return false;
    const wasInFlight = this.#outbox.inFlight()?.clientMsgId === clientMsgId;
    const retryAfter = frame.retryAfterMs === undefined ? {} : { retryAfterMs: frame.retryAfterMs };
    const outcome = this.#outbox.fail(clientMsgId, { code: frame.code, message: frame.message, ...retryAfter }, Date.now());
    if (wasInFlight) {
      clearTimer(this.#ackTimer);
      this.#ackTimer = undefined;
    }
    if (outcome.kind === "rejected") {
      this.#sends.delete(clientMsgId);
      if (!waiter.accept?.({ code: frame.code, message: frame.message, ...(frame.reason === undefined ? {} : { reason: frame.reason }) })) {
        waiter.reject(new ChatClientError(frame.code, `unable to ${waiter.operation}; ${frame.message}`, { clientMsgId, ...retryAfter }));
      }
    }
    this.#pendingChanged();
    // `unauthorized`: the socket is being replaced with a new token; the send goes out on the next
    // one. Pumping now would put it straight back on the socket that refused it.
    if (frame.code !== ErrorCode.Unauthorized) this.pump();
    return true;
  }

  /** The socket went away: the send on the wire may or may not have been committed, so it is resent first on the next socket. */
  connectionLost(): void {
    this.#clearTimers();
    this.#outbox.connectionLost();
    this.#pendingChanged();
  }

  /** Resolves acked sends whose message has reached the list. */
  settleCommitted(): void {
    for (const [seq, waiters] of this.#committing) {
      if (!this.#list.get(seq)) continue;
      this.#committing.delete(seq);
      for (const { ack, waiter } of waiters) waiter.resolve(ack);
    }
  }

  /** Ends sending: acked sends resolve, every other one is rejected with `code`. */
  close(code: ChatClientErrorCode, reason: string): void {
    if (this.#ended) return;
    this.#ended = { code, reason };
    this.#clearTimers();
    // Acked sends are committed: resolve them even though their message frame will not come now.
    for (const waiters of this.#committing.values()) {
      for (const { ack, waiter } of waiters) waiter.resolve(ack);
    }
    this.#committing.clear();
    const unacked = [...this.#sends.entries()];
    this.#sends.clear();
    this.#outbox.clear();
    this.#pendingChanged();
    for (const [clientMsgId, waiter] of unacked) {
      const maybe = code === "left" ? " before the server acknowledged it (it may still have been committed)" : "";
      waiter.reject(new ChatClientError(code, `unable to ${waiter.operation}; ${reason}${maybe}`, { clientMsgId }));
    }
  }

  #clearTimers(): void {
    clearTimer(this.#ackTimer);
    clearTimer(this.#sendTimer);
    this.#ackTimer = this.#sendTimer = undefined;
  }

  /**
   * The committed message of an acked send: the list's own object when it holds it, so send()
   * resolves with exactly what is in `room.messages`; otherwise rebuilt from the ack (its seq is
   * older than the list, or the room ended before the message frame came).
   */
  #committed(ack: AckFrame, action: PendingAction & { type: "send" }): Message {
    const entry = this.#list.get(ack.seq);
    if (entry && isMessage(entry)) return entry;
    return {
      roomId: this.#config.roomId,
      seq: ack.seq,
      id: ack.id,
      kind: EntryKind.Message,
      userId: this.#config.userId() ?? "",
      text: action.text,
      clientMsgId: ack.clientMsgId,
      createdAt: ack.createdAt,
      ...(action.replyTo === undefined ? {} : { replyTo: action.replyTo }),
      ...(action.mentions === undefined ? {} : { mentions: [...action.mentions] }),
    };
  }

  /** Emits `pending` only when what the UI would show changed. */
  #pendingChanged(): void {
    const next = this.#outbox.pending;
    const same =
      next.length === this.#pending.length &&
      next.every((p, i) => {
        const q = this.#pending[i];
        return (
          q && p.clientMsgId === q.clientMsgId && p.status === q.status && p.attempts === q.attempts && p.retryAt === q.retryAt
        );
      });
    if (same) return;
    this.#pending = next;
    this.#host.pendingChanged(next);
  }
}
