// The room's read cursor, its unread count, and everyone's read receipts. The server keeps the
// cursor (one per room and user, in Postgres, never moving back) and counts unread exactly; the
// SDK starts from what `ready` says and then follows the stream itself, so the badge moves with
// every message without a request.
//
// The count is kept exact by one rule: `ready.unread` counts the messages of others after
// `ready.readSeq` up to `ready.latestSeq` (the "top"), and every entry after the top is looked at
// once, in seq order (the list's `onEntries`), by this file. Everything else that moves the cursor
// (markRead, a receipt from another device of ours, our own message) recounts from the entries the
// list holds. A new socket starts again from its `ready`, so nothing drifts across reconnects.

import { ErrorCode } from "../protocol/errors.js";
import { type ClientFrame, ClientFrameType } from "../protocol/frames.js";
import { type AnyEntry, type InboundReadyFrame, isMessage } from "./decode.js";
import { ChatClientError } from "./errors.js";
import { clearTimer, type Timer } from "./timers.js";

/**
 * At most one `read` frame per this interval; the calls in between are coalesced into the next
 * frame, which carries the newest seq. The server writes cursors on the same beat.
 */
export const READ_THROTTLE_MS = 250;

/** The socket, as the cursor sees it (Connection implements it). */
export interface CursorWire {
  readonly ready: boolean;
  write(frame: ClientFrame): boolean;
}

/** The room's list, as the cursor sees it (History implements it). */
export interface CursorList {
  /** The entry with this seq, if the list holds it. */
  get(seq: number): AnyEntry | undefined;
  /** The seq the list is complete up to (undefined before the first `ready` of a `last=` join). */
  readonly lastSeq: number | undefined;
}

export interface CursorHost {
  /** `readSeq` or `unread` changed. */
  changed(readSeq: number, unread: number): void;
  /** A user's read cursor moved forward (a receipt, or a message of theirs: sending moves it). */
  receipt(userId: string, seq: number): void;
}

export interface CursorConfig {
  /** The current user (the token's `sub`): their own messages never count as unread. */
  userId: () => string | undefined;
}

/**
 * One room's read cursor, unread count and receipts.
 *
 * @example
 * const cursors = new ReadCursors(config, connection, history, host);
 * cursors.beforeReady(ready);    // the server's cursor and count
 * history.applyReady(ready);     // … whose entries reach cursors.onEntries
 * cursors.afterReady();          // re-sends a cursor the server lost
 * cursors.markRead();            // everything the list holds
 */
export class ReadCursors {
  readonly #config: CursorConfig;
  readonly #wire: CursorWire;
  readonly #list: CursorList;
  readonly #host: CursorHost;

  #readSeq = 0;
  #unread = 0;
  /** The highest seq counted: `ready.latestSeq`, then every entry that joined the list after it. */
  #top = 0;
  /**
   * The highest cursor this client has told the server (or is about to), or learned from a
   * receipt of its own user: both may be lost if the room's memory goes before its next write
   * (at most 250 ms), and are re-sent when a `ready` shows a lower cursor.
   */
  #claimed = 0;
  /** The highest seq put in a `read` frame; a frame never carries less. */
  #sent = 0;
  #lastWriteAt = Number.NEGATIVE_INFINITY;
  #timer: Timer | undefined;
  /** From beforeReady to afterReady: the server's cursor, when ours is ahead of it. */
  #behind: number | undefined;
  /** From beforeReady to afterReady: what the app last saw, to tell it once what the `ready` changed. */
  #beforeReady: { readSeq: number; unread: number } | undefined;
  readonly #receipts = new Map<string, number>();

  constructor(config: CursorConfig, wire: CursorWire, list: CursorList, host: CursorHost) {
    this.#config = config;
    this.#wire = wire;
    this.#list = list;
    this.#host = host;
  }

  get readSeq(): number {
    return this.#readSeq;
  }

  get unread(): number {
    return this.#unread;
  }

  /** Each user's read cursor as far as this client has seen (receipts, and each user's own messages). */
  get receipts(): ReadonlyMap<string, number> {
    return this.#receipts;
  }

  /** Before the list applies a `ready`: take the server's cursor and count as of `latestSeq`. */
  beforeReady(frame: InboundReadyFrame): void {
    this.#beforeReady = this.#snapshot();
    this.#top = frame.latestSeq;
    this.#behind = undefined;
    // A server from before read cursors: keep what we have and count from here on.
    if (frame.readSeq === undefined) return;
    const server = frame.readSeq;
    const claim = Math.min(this.#claimed, frame.latestSeq);
    this.#unread = frame.unread ?? 0;
    this.#readSeq = server;
    // Ahead of the server: a `read` it accepted but lost with its memory before writing it, or one
    // that was waiting for this socket. Counted and re-sent once the list holds this ready's entries.
    if (claim > server) this.#behind = server;
  }

  /** After the list applied the `ready`: re-send a cursor the server lost, recount from there, say what changed. */
  afterReady(): void {
    const before = this.#beforeReady ?? this.#snapshot();
    this.#beforeReady = undefined;
    const server = this.#behind;
    this.#behind = undefined;
    if (server !== undefined) {
      const claim = Math.min(this.#claimed, this.#top);
      this.#readSeq = claim;
      this.#recount(server, claim);
      clearTimer(this.#timer);
      this.#timer = undefined;
      this.#write(claim);
    }
    this.#changedSince(before);
  }

  /** Entries that joined the end of the list, once each, in seq order. */
  onEntries(entries: readonly AnyEntry[]): void {
    const before = this.#snapshot();
    const me = this.#config.userId();
    for (const entry of entries) {
      if (!isMessage(entry)) {
        if (entry.seq > this.#top) this.#top = entry.seq;
        continue;
      }
      // Sending moves the sender's cursor to their message (the server does it in the commit).
      this.#bumpReceipt(entry.userId, entry.seq);
      // At or below the top: counted by the server in `ready.unread` already.
      if (entry.seq <= this.#top) continue;
      this.#top = entry.seq;
      if (entry.userId === me) {
        // Everything up to our own message is read, and nothing after it exists yet.
        if (entry.seq > this.#readSeq) this.#readSeq = entry.seq;
        this.#unread = 0;
      } else if (entry.seq > this.#readSeq) {
        this.#unread++;
      }
    }
    this.#changedSince(before);
  }

  /** A `receipt` frame: someone's cursor moved. Our own user's (another device, or this one's echo) moves ours. */
  onReceipt(userId: string, seq: number): void {
    this.#bumpReceipt(userId, seq);
    if (userId !== this.#config.userId() || seq <= this.#readSeq) return;
    const before = this.#snapshot();
    const from = this.#readSeq;
    this.#readSeq = seq;
    if (seq > this.#claimed) this.#claimed = seq;
    this.#recount(from, seq);
    this.#changedSince(before);
  }

  /** See Room.markRead. */
  markRead(seq?: number): void {
    const known = Math.max(this.#top, this.#list.lastSeq ?? 0);
    const target = seq ?? this.#list.lastSeq ?? this.#top;
    if (!Number.isSafeInteger(target) || target < 0) {
      throw new ChatClientError(ErrorCode.BadRequest, "unable to mark read; seq must be a non-negative integer");
    }
    if (target > known) {
      throw new ChatClientError(
        ErrorCode.BadRequest,
        `unable to mark read; seq ${target} is after the latest seq known (${known})`,
      );
    }
    // Cursors never move back, and one already there needs no frame.
    if (target <= this.#readSeq) return;
    const before = this.#snapshot();
    const from = this.#readSeq;
    this.#readSeq = target;
    if (target > this.#claimed) this.#claimed = target;
    this.#recount(from, target);
    this.#changedSince(before);
    this.#schedule();
  }

  close(): void {
    clearTimer(this.#timer);
    this.#timer = undefined;
  }

  // ---------------------------------------------------------------------------------------------

  /** Leading edge, then at most one frame per READ_THROTTLE_MS with the newest claim. */
  #schedule(): void {
    if (this.#timer !== undefined) return;
    const wait = this.#lastWriteAt + READ_THROTTLE_MS - Date.now();
    if (wait <= 0) {
      this.#flush();
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flush();
    }, wait);
  }

  #flush(): void {
    // Not connected: the next `ready` shows a cursor below the claim, and afterReady sends it.
    if (this.#claimed > this.#sent && this.#wire.ready) this.#write(this.#claimed);
  }

  #write(seq: number): void {
    if (!this.#wire.write({ type: ClientFrameType.Read, seq })) return;
    if (seq > this.#sent) this.#sent = seq;
    this.#lastWriteAt = Date.now();
  }

  /**
   * The cursor moved from `from` to `to` (`to` > `from`): the new count, from the entries the list
   * holds. Exact when it holds every entry after `to` up to the top, or every entry it skipped
   * over; otherwise (a seq older than the list's start) the best bound it has, until the next `ready`.
   */
  #recount(from: number, to: number): void {
    if (to >= this.#top) {
      this.#unread = 0;
      return;
    }
    const after = this.#othersIn(to, this.#top);
    if (after.unknown === 0) {
      this.#unread = after.others;
      return;
    }
    const skipped = this.#othersIn(from, to);
    this.#unread =
      skipped.unknown === 0 ? Math.max(0, this.#unread - skipped.others) : Math.min(this.#unread, after.others + after.unknown);
  }

  /** Messages of others with from < seq ≤ to that the list holds, and how many seqs in that range it does not hold. */
  #othersIn(from: number, to: number): { others: number; unknown: number } {
    const me = this.#config.userId();
    let others = 0;
    let unknown = 0;
    for (let seq = from + 1; seq <= to; seq++) {
      const entry = this.#list.get(seq);
      if (!entry) unknown++;
      else if (isMessage(entry) && entry.userId !== me) others++;
    }
    return { others, unknown };
  }

  #bumpReceipt(userId: string, seq: number): void {
    if (seq <= (this.#receipts.get(userId) ?? 0)) return;
    this.#receipts.set(userId, seq);
    this.#host.receipt(userId, seq);
  }

  #snapshot(): { readSeq: number; unread: number } {
    return { readSeq: this.#readSeq, unread: this.#unread };
  }

  #changedSince(before: { readSeq: number; unread: number }): void {
    if (before.readSeq !== this.#readSeq || before.unread !== this.#unread) this.#host.changed(this.#readSeq, this.#unread);
  }
}
