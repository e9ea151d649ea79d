// The room's history as the app sees it: entries ordered by seq, contiguous, each exactly once.
// Every source of entries (the `ready` frame, live `message` frames, REST pages) goes through one
// insert, so no ordering of arrivals can put a hole or a duplicate into the list. An entry that
// arrives beyond a hole is held back until the hole is filled over REST.
//
// Every seq is an entry of some kind, and all of them are kept, even kinds this SDK does not know:
// the cursor is a seq, so skipping one would look like a hole that no REST fill could ever close.
// `messages` is the view the app reads: the entries of kind `message`.

import type { Message } from "../protocol/frames.js";
import { MAX_HISTORY_LIMIT } from "../protocol/limits.js";
import { type AnyEntry, isMessage } from "./decode.js";

/** The next REST page to fetch: `GET …/messages?after=<after>&limit=<limit>`. */
export interface GapRequest {
  after: number;
  limit: number;
}

/** What the list reads from a `ready` frame (the protocol's ReadyFrame and the SDK's decoded one both fit). */
export interface ReadyHistory {
  messages: readonly AnyEntry[];
  latestSeq: number;
}

/**
 * A contiguous, duplicate-free list of one room's entries, and its messages.
 *
 * `cursor` is the highest seq up to which the list is complete: it is what the SDK resumes from
 * (`since=cursor`). It is undefined until the first `ready` of a `last=` join says where the list starts.
 *
 * @example
 * const timeline = new Timeline();            // a `last=` join: start where `ready` starts
 * const shown = timeline.applyReady(ready);   // entries the app may show now, in order
 * const gap = timeline.gap();                 // if defined, fetch it and applyPage() the result
 */
export class Timeline {
  #entries: readonly AnyEntry[] = [];
  /** The entries of kind `message`, kept as their own array so the app's list is not rebuilt on every read. */
  #messages: readonly Message[] = [];
  #cursor: number | undefined;
  /** Entries beyond a hole, waiting for it to be filled. */
  readonly #held = new Map<number, AnyEntry>();
  /** The highest seq known to exist (from `ready.latestSeq`, frames, acks, REST pages). */
  #knownLatest = 0;

  /** @param since the seq the list is complete up to, for a `since=` join; omit for a `last=` join. */
  constructor(since?: number) {
    this.#cursor = since;
    this.#knownLatest = since ?? 0;
  }

  /** The messages, oldest first. A new array after every change to them, so it can be compared by identity. */
  get messages(): readonly Message[] {
    return this.#messages;
  }

  /** Every entry, of every kind, oldest first. */
  get entries(): readonly AnyEntry[] {
    return this.#entries;
  }

  get cursor(): number | undefined {
    return this.#cursor;
  }

  /** The highest seq known to exist; above `cursor` while a hole is waiting to be filled. */
  get knownLatest(): number {
    return this.#knownLatest;
  }

  /** Whether entries are held back beyond a hole (so the hole is certain, not just a late frame). */
  get holding(): boolean {
    return this.#held.size > 0;
  }

  /** The seq of the oldest entry in the list (or the one right after `cursor` when it is empty). */
  get firstSeq(): number | undefined {
    const first = this.#entries[0];
    if (first) return first.seq;
    return this.#cursor === undefined ? undefined : this.#cursor + 1;
  }

  /** The entry with this seq, if it is in the list. */
  get(seq: number): AnyEntry | undefined {
    const first = this.#entries[0];
    // Contiguous, so the index is arithmetic.
    return first ? this.#entries[seq - first.seq] : undefined;
  }

  /**
   * Applies a `ready` frame. The first `ready` of a `last=` join defines where the list starts: right
   * before its first entry. A truncated `ready` of a `since=` join leaves a hole between the cursor
   * and its first entry: its entries are held until {@link gap} has been filled.
   * Returns the entries appended to the list, in order.
   */
  applyReady(frame: ReadyHistory): AnyEntry[] {
    if (this.#cursor === undefined) this.#cursor = (frame.messages[0]?.seq ?? frame.latestSeq + 1) - 1;
    return this.#insertAll(frame.messages, frame.latestSeq);
  }

  /**
   * Applies a live `message` frame (the frame's name for an entry of any kind). Returns the entries
   * appended (none, one, or several if it closed a hole).
   */
  applyMessage(entry: AnyEntry): AnyEntry[] {
    return this.#insertAll([entry], entry.seq);
  }

  /** Applies a REST page fetched to fill a hole. Returns the entries appended, in order. */
  applyPage(entries: readonly AnyEntry[], latestSeq: number): AnyEntry[] {
    return this.#insertAll(entries, latestSeq);
  }

  /** Records that `seq` exists (an ack for our own send) so that a missing `message` frame becomes a hole to fill. */
  noteLatest(seq: number): void {
    if (seq > this.#knownLatest) this.#knownLatest = seq;
  }

  /**
   * The next page to fetch over REST to close the hole after the cursor, or undefined when the list
   * is complete up to everything known. Pages stop right before the first held entry.
   */
  gap(): GapRequest | undefined {
    const cursor = this.#cursor;
    if (cursor === undefined || this.#knownLatest <= cursor) return undefined;
    let end = this.#knownLatest;
    for (const seq of this.#held.keys()) if (seq - 1 < end) end = seq - 1;
    return { after: cursor, limit: Math.max(1, Math.min(MAX_HISTORY_LIMIT, end - cursor)) };
  }

  /**
   * Puts older entries (from `loadOlder`) in front of the list. Only the run that ends right before
   * the first entry and has no hole is taken; anything else is dropped. Returns what was added.
   */
  prependOlder(page: readonly AnyEntry[]): AnyEntry[] {
    const firstSeq = this.firstSeq;
    if (firstSeq === undefined) return [];
    const bySeq = new Map(page.map((e) => [e.seq, e]));
    const added: AnyEntry[] = [];
    for (let seq = firstSeq - 1; seq >= 1; seq--) {
      const entry = bySeq.get(seq);
      if (!entry) break;
      added.push(entry);
    }
    added.reverse();
    if (added.length > 0) {
      this.#entries = [...added, ...this.#entries];
      const messages = added.filter(isMessage);
      if (messages.length > 0) this.#messages = [...messages, ...this.#messages];
    }
    return added;
  }

  #insertAll(incoming: readonly AnyEntry[], latestSeq: number): AnyEntry[] {
    this.noteLatest(latestSeq);
    const cursor = this.#cursor;
    for (const entry of incoming) {
      this.noteLatest(entry.seq);
      // Before the first `ready` of a `last=` join (cursor undefined) nobody knows yet whether the
      // list will start before or after an entry: stage everything, the `ready` decides.
      // Otherwise anything at or below the cursor is a duplicate and is dropped here.
      if (cursor === undefined || entry.seq > cursor) this.#held.set(entry.seq, entry);
    }
    const appended = this.#drain();
    if (appended.length > 0) {
      this.#entries = this.#entries.concat(appended);
      const messages = appended.filter(isMessage);
      if (messages.length > 0) this.#messages = this.#messages.concat(messages);
    }
    return appended;
  }

  /** Moves the held entries that now continue the list onto it. */
  #drain(): AnyEntry[] {
    const appended: AnyEntry[] = [];
    if (this.#cursor === undefined) return appended;
    let cursor = this.#cursor;
    for (let next = this.#held.get(cursor + 1); next; next = this.#held.get(cursor + 1)) {
      this.#held.delete(cursor + 1);
      appended.push(next);
      cursor++;
    }
    this.#cursor = cursor;
    // Held entries at or below the cursor are duplicates (or older than a `last=` list's start).
    for (const seq of this.#held.keys()) if (seq <= cursor) this.#held.delete(seq);
    return appended;
  }
}
