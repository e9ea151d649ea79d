// The room's history as the app sees it: messages ordered by seq, contiguous, each exactly once.
// Every source of messages (the `ready` frame, live `message` frames, REST pages) goes through one
// insert, so no ordering of arrivals can put a hole or a duplicate into the list. A message that
// arrives beyond a hole is held back until the hole is filled over REST.

import type { Message, ReadyFrame } from "../protocol/frames.js";
import { MAX_HISTORY_LIMIT } from "../protocol/limits.js";

/** The next REST page to fetch: `GET …/messages?after=<after>&limit=<limit>`. */
export interface GapRequest {
  after: number;
  limit: number;
}

/**
 * A contiguous, duplicate-free list of one room's messages.
 *
 * `cursor` is the highest seq up to which the list is complete: it is what the SDK resumes from
 * (`since=cursor`). It is undefined until the first `ready` of a `last=` join says where the list starts.
 *
 * @example
 * const timeline = new Timeline();            // a `last=` join: start where `ready` starts
 * const shown = timeline.applyReady(ready);   // messages the app may show now, in order
 * const gap = timeline.gap();                 // if defined, fetch it and applyPage() the result
 */
export class Timeline {
  #messages: readonly Message[] = [];
  #cursor: number | undefined;
  /** Messages beyond a hole, waiting for it to be filled. */
  readonly #held = new Map<number, Message>();
  /** The highest seq known to exist (from `ready.latestSeq`, frames, acks, REST pages). */
  #knownLatest = 0;

  /** @param since the seq the list is complete up to, for a `since=` join; omit for a `last=` join. */
  constructor(since?: number) {
    this.#cursor = since;
    this.#knownLatest = since ?? 0;
  }

  /** The list, oldest first. A new array after every change, so it can be compared by identity. */
  get messages(): readonly Message[] {
    return this.#messages;
  }

  get cursor(): number | undefined {
    return this.#cursor;
  }

  /** The highest seq known to exist; above `cursor` while a hole is waiting to be filled. */
  get knownLatest(): number {
    return this.#knownLatest;
  }

  /** Whether messages are held back beyond a hole (so the hole is certain, not just a late frame). */
  get holding(): boolean {
    return this.#held.size > 0;
  }

  /** The seq of the oldest message in the list (or the one right after `cursor` when it is empty). */
  get firstSeq(): number | undefined {
    const first = this.#messages[0];
    if (first) return first.seq;
    return this.#cursor === undefined ? undefined : this.#cursor + 1;
  }

  /** The message with this seq, if it is in the list. */
  get(seq: number): Message | undefined {
    const first = this.#messages[0];
    // Contiguous, so the index is arithmetic.
    return first ? this.#messages[seq - first.seq] : undefined;
  }

  /**
   * Applies a `ready` frame. The first `ready` of a `last=` join defines where the list starts: right
   * before its first message. A truncated `ready` of a `since=` join leaves a hole between the cursor
   * and its first message: its messages are held until {@link gap} has been filled.
   * Returns the messages appended to the list, in order.
   */
  applyReady(frame: ReadyFrame): Message[] {
    if (this.#cursor === undefined) this.#cursor = (frame.messages[0]?.seq ?? frame.latestSeq + 1) - 1;
    return this.#insertAll(frame.messages, frame.latestSeq);
  }

  /** Applies a live `message` frame. Returns the messages appended (none, one, or several if it closed a hole). */
  applyMessage(message: Message): Message[] {
    return this.#insertAll([message], message.seq);
  }

  /** Applies a REST page fetched to fill a hole. Returns the messages appended, in order. */
  applyPage(messages: readonly Message[], latestSeq: number): Message[] {
    return this.#insertAll(messages, latestSeq);
  }

  /** Records that `seq` exists (an ack for our own send) so that a missing `message` frame becomes a hole to fill. */
  noteLatest(seq: number): void {
    if (seq > this.#knownLatest) this.#knownLatest = seq;
  }

  /**
   * The next page to fetch over REST to close the hole after the cursor, or undefined when the list
   * is complete up to everything known. Pages stop right before the first held message.
   */
  gap(): GapRequest | undefined {
    const cursor = this.#cursor;
    if (cursor === undefined || this.#knownLatest <= cursor) return undefined;
    let end = this.#knownLatest;
    for (const seq of this.#held.keys()) if (seq - 1 < end) end = seq - 1;
    return { after: cursor, limit: Math.max(1, Math.min(MAX_HISTORY_LIMIT, end - cursor)) };
  }

  /**
   * Puts older messages (from `loadOlder`) in front of the list. Only the run that ends right before
   * the first message and has no hole is taken; anything else is dropped. Returns what was added.
   */
  prependOlder(page: readonly Message[]): Message[] {
    const firstSeq = this.firstSeq;
    if (firstSeq === undefined) return [];
    const bySeq = new Map(page.map((m) => [m.seq, m]));
    const added: Message[] = [];
    for (let seq = firstSeq - 1; seq >= 1; seq--) {
      const message = bySeq.get(seq);
      if (!message) break;
      added.push(message);
    }
    added.reverse();
    if (added.length > 0) this.#messages = [...added, ...this.#messages];
    return added;
  }

  #insertAll(incoming: readonly Message[], latestSeq: number): Message[] {
    this.noteLatest(latestSeq);
    const cursor = this.#cursor;
    for (const message of incoming) {
      this.noteLatest(message.seq);
      // Before the first `ready` of a `last=` join (cursor undefined) nobody knows yet whether the
      // list will start before or after a message: stage everything, the `ready` decides.
      // Otherwise anything at or below the cursor is a duplicate and is dropped here.
      if (cursor === undefined || message.seq > cursor) this.#held.set(message.seq, message);
    }
    const appended = this.#drain();
    if (appended.length > 0) this.#messages = this.#messages.concat(appended);
    return appended;
  }

  /** Moves the held messages that now continue the list onto it. */
  #drain(): Message[] {
    const appended: Message[] = [];
    if (this.#cursor === undefined) return appended;
    let cursor = this.#cursor;
    for (let next = this.#held.get(cursor + 1); next; next = this.#held.get(cursor + 1)) {
      this.#held.delete(cursor + 1);
      appended.push(next);
      cursor++;
    }
    this.#cursor = cursor;
    // Held messages at or below the cursor are duplicates (or older than a `last=` list's start).
    for (const seq of this.#held.keys()) if (seq <= cursor) this.#held.delete(seq);
    return appended;
  }
}
