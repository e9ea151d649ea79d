// A message's lifecycle after it was sent: edit, delete, react, reply, and a thread's pages. Each
// change is an entry of the room's one stream, committed exactly once by its clientMsgId, so it
// goes through the room's outbox like a send (sender.ts): resent with the same clientMsgId across
// reconnects, one on the wire at a time, in the order the calls were made. What a change does to
// `room.messages` is not decided here: the list applies each change entry as it arrives, from
// whichever socket or page it comes (timeline.ts, with the protocol's applyChange).

import { ErrorCode, ErrorReason } from "../protocol/errors.js";
import type { AckFrame, Message } from "../protocol/frames.js";
import { DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT } from "../protocol/limits.js";
import { type AnyEntry, isMessage, type MessagesPage } from "./decode.js";
import { ChatClientError } from "./errors.js";
import { newClientMsgId, type PendingAction } from "./outbox.js";
import type { RefusedChange, Settle } from "./sender.js";

/** What an edit, delete, react or unreact resolves with. */
export interface ChangeResult {
  clientMsgId: string;
  /**
   * The seq of the change entry committed; undefined when nothing needed committing (a reaction
   * that was already there, or one to take back that was already gone: the `conflict` the server
   * answered means the state already is what was asked).
   */
  seq: number | undefined;
  /** When the change was committed (with `seq`). */
  createdAt: string | undefined;
  /** The target in its current form in `room.messages` once the change is in it; undefined if the list does not hold it. */
  message: Message | undefined;
}

/** Options of every change call. */
export interface ChangeOptions {
  /** Your own idempotency key (default: a fresh UUID); a repeated one is committed once. */
  clientMsgId?: string;
}

/** Options of {@link Changes.thread}. */
export interface ThreadOptions {
  /** Replies with seq > after, oldest first. Without it: the newest `limit` replies. */
  after?: number;
  /** 1–1000, default 50. */
  limit?: number;
  signal?: AbortSignal;
}

/** The outbox, as changes see it (Sender implements it). */
export interface ChangeQueue {
  enqueue<T>(action: PendingAction, clientMsgId: string | undefined, operation: string, settle: Settle<T>): Promise<T>;
  send(text: string, options: { clientMsgId?: string; replyTo?: number }): Promise<Message>;
}

/** The list, as changes see it (History implements it). */
export interface ChangeList {
  get(seq: number): AnyEntry | undefined;
}

/** The REST route of threads (RestApi implements it). */
export interface ThreadSource {
  listThread(roomId: string, thread: number, options: ThreadOptions): Promise<MessagesPage>;
}

/**
 * The room's message changes. Room exposes them as room.edit, room.delete, room.react,
 * room.unreact, room.reply and room.thread.
 *
 * @example
 * const changes = new Changes("r1", sender, history, rest);
 * await changes.edit(42, "fixed typo");
 */
export class Changes {
  constructor(
    private readonly roomId: string,
    private readonly queue: ChangeQueue,
    private readonly list: ChangeList,
    private readonly rest: ThreadSource,
  ) {}

  /** See Room.edit. */
  edit(seq: number, text: string, options: ChangeOptions = {}): Promise<ChangeResult> {
    return this.#change({ type: "edit", target: seq, text }, options, "edit the message");
  }

  /** See Room.delete. */
  delete(seq: number, options: ChangeOptions = {}): Promise<ChangeResult> {
    return this.#change({ type: "delete", target: seq }, options, "delete the message");
  }

  /** See Room.react and Room.unreact. */
  react(seq: number, emoji: string, options: ChangeOptions & { remove?: boolean } = {}): Promise<ChangeResult> {
    const action: PendingAction = options.remove
      ? { type: "react", target: seq, emoji, remove: true }
      : { type: "react", target: seq, emoji };
    return this.#change(action, options, options.remove ? "remove the reaction" : "react to the message", (failure) =>
      this.#alreadyDone(seq, failure),
    );
  }

  /** See Room.reply. */
  reply(seq: number, text: string, options: ChangeOptions = {}): Promise<Message> {
    return this.queue.send(text, { ...options, replyTo: seq });
  }

  /** See Room.thread. */
  async thread(seq: number, options: ThreadOptions = {}): Promise<MessagesPage> {
    if (!Number.isSafeInteger(seq) || seq < 1) {
      throw new ChatClientError(ErrorCode.BadRequest, "unable to load the thread; seq must be the seq of a message (a positive integer)");
    }
    const limit = options.limit ?? DEFAULT_HISTORY_LIMIT;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_HISTORY_LIMIT) {
      throw new ChatClientError(ErrorCode.BadRequest, `unable to load the thread; limit must be 1–${MAX_HISTORY_LIMIT}`);
    }
    const page = await this.rest.listThread(this.roomId, seq, { ...options, limit });
    // A reply the list holds may be newer than the page (a change that arrived since): the list's form wins.
    const messages = page.messages.map((m) => {
      const held = this.list.get(m.seq);
      return held && isMessage(held) && (held.updatedSeq ?? held.seq) >= (m.updatedSeq ?? m.seq) ? held : m;
    });
    return { messages, latestSeq: page.latestSeq };
  }

  #change(
    action: PendingAction & { target: number },
    options: ChangeOptions,
    operation: string,
    refused?: (failure: RefusedChange) => boolean,
  ): Promise<ChangeResult> {
    const target = action.target;
    const clientMsgId = options.clientMsgId ?? newClientMsgId();
    const current = (): Message | undefined => {
      const held = this.list.get(target);
      return held && isMessage(held) ? held : undefined;
    };
    return this.queue.enqueue<ChangeResult>(action, clientMsgId, operation, {
      committed: (ack: AckFrame) => ({ clientMsgId: ack.clientMsgId, seq: ack.seq, createdAt: ack.createdAt, message: current() }),
      ...(refused === undefined
        ? {}
        : {
            refused: (failure) =>
              refused(failure)
                ? { clientMsgId, seq: undefined, createdAt: undefined, message: current() }
                : undefined,
          }),
    });
  }

  /**
   * Whether a refused reaction leaves the state as asked: `conflict` answers both "you reacted
   * with it already" (or "you did not react", for a removal) and "the message was deleted"; the
   * error's `reason` says which. A server from before reasons is told apart by the list (the target
   * is a tombstone) or by its message naming the deletion.
   */
  #alreadyDone(target: number, failure: RefusedChange): boolean {
    if (failure.code !== ErrorCode.Conflict) return false;
    if (failure.reason !== undefined) return failure.reason === ErrorReason.AlreadyReacted || failure.reason === ErrorReason.NotReacted;
    const held = this.list.get(target);
    if (held && isMessage(held) && held.deleted) return false;
    return !/\bdeleted\b/.test(failure.message);
  }
}
