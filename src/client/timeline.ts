// The room's history as the app sees it: entries ordered by seq, contiguous, each exactly once.
// Every source of entries (the `ready` frame, live `message` frames, REST pages) goes through one
// insert, so no ordering of arrivals can put a hole or a duplicate into the list. An entry that
// arrives beyond a hole is held back until the hole is filled over REST.
//
// Every seq is an entry of some kind, and all of them are kept, even kinds this SDK does not know:
// the cursor is a seq, so skipping one would look like a hole that no REST fill could ever close.
// `messages` is the view the app reads: the entries of kind `message`, each in its current form.
//
// Changes (edit, delete, reaction entries, and replies, which change their thread's parent) are
// applied here, as each joins the list, with the protocol's own applyChange (lifecycle.ts): the
// function the room uses for its window, so the two cannot disagree. Every message form carries
// `updatedSeq`, so a change already included in a form read from `ready` or REST is skipped, and a
// change to a message older than the list is ignored: it is not ours to show.

import { type Entry, EntryKind, type Message, type SystemEntry } from "../protocol/frames.js";
import { applyChange, redactEntry, targetOf } from "../protocol/lifecycle.js";
import { MAX_HISTORY_LIMIT } from "../protocol/limits.js";
import { type AnyEntry, isMessage } from "./decode.js";

/** A line of the room's timeline as a chat shows it: a message, or a system entry ("alice joined"). */
export type TimelineLine = Message | SystemEntry;

/** Whether an entry is a line of the timeline (a message or a system entry). */
export const isLine = (entry: AnyEntry): entry is TimelineLine => entry.kind === EntryKind.Message || entry.kind === EntryKind.System;

/** The arrays one insert builds: fresh copies (messages and lines made only if they change). */
interface Lists {
  entries: AnyEntry[];
  messages: Message[] | undefined;
  lines: TimelineLine[] | undefined;
}

/** Whether an entry is a system entry (membership and room changes). */
export const isSystem = (entry: AnyEntry): entry is SystemEntry => entry.kind === EntryKind.System;

/** A message the list holds that a change entry changed: its form before and after. */
export interface MessageUpdate {
  message: Message;
  previous: Message;
  change: AnyEntry;
}

const KNOWN_KINDS: ReadonlySet<string> = new Set(Object.values(EntryKind));

/** Whether an entry is of a kind this SDK knows (so its own fields were decoded). */
const isKnown = (entry: AnyEntry): entry is Entry => KNOWN_KINDS.has(entry.kind);

/** Whether an entry changes a message: an edit, a delete, a reaction, or a reply (its thread's parent). */
export const isChange = (entry: AnyEntry): entry is Entry =>
  isKnown(entry) && entry.kind !== EntryKind.System && (entry.kind !== EntryKind.Message || entry.replyTo !== undefined);

/** The index of the item with `seq` in a list sorted by seq, or -1. */
const indexBySeq = (list: readonly { seq: number }[], seq: number): number => {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const at = list[mid]?.seq ?? 0;
    if (at === seq) return mid;
    if (at < seq) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
};

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
  /** Messages and system entries: what a chat shows as lines. */
  #lines: readonly TimelineLine[] = [];
  /** Updates made by the last insert, keyed by the seq of the change that made them. */
  #updates = new Map<number, MessageUpdate>();
  /** Whose `me` flags on reactions to keep current (the SDK's user; undefined until known). */
  readonly #viewer: () => string | undefined;
  #cursor: number | undefined;
  /** Entries beyond a hole, waiting for it to be filled. */
  readonly #held = new Map<number, AnyEntry>();
  /** The highest seq known to exist (from `ready.latestSeq`, frames, acks, REST pages). */
  #knownLatest = 0;

  /**
   * @param since the seq the list is complete up to, for a `since=` join; omit for a `last=` join.
   * @param viewer the SDK's user, whose `me` flags on reactions the list keeps current.
   */
  constructor(since?: number, viewer: () => string | undefined = () => undefined) {
    this.#viewer = viewer;
    this.#cursor = since;
    this.#knownLatest = since ?? 0;
  }

  /** The messages, oldest first. A new array after every change to them, so it can be compared by identity. */
  get messages(): readonly Message[] {
    return this.#messages;
  }

  /** Messages and system entries, oldest first, messages in their current form. A new array after each change. */
  get lines(): readonly TimelineLine[] {
    return this.#lines;
  }

  /**
   * The messages the last applyReady/applyMessage/applyPage changed, keyed by the seq of the change
   * entry that changed each (so the room can tell the app in stream order). Emptied by reading it.
   */
  takeUpdates(): Map<number, MessageUpdate> {
    const updates = this.#updates;
    this.#updates = new Map();
    return updates;
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
      // Older pages are read in current form: a change in them names a message in them (a target
      // is older than its change), already applied there, or an even older one that is not held.
      this.#entries = [...added, ...this.#entries];
      const messages = added.filter(isMessage);
      if (messages.length > 0) this.#messages = [...messages, ...this.#messages];
      const lines = added.filter(isLine);
      if (lines.length > 0) this.#lines = [...lines, ...this.#lines];
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
      const newMessages = appended.filter(isMessage);
      const newLines = appended.filter(isLine);
      // Arrays are replaced only when they change, so the app can compare them by identity.
      const lists: Lists = {
        entries: this.#entries.concat(appended),
        messages: newMessages.length > 0 ? this.#messages.concat(newMessages) : undefined,
        lines: newLines.length > 0 ? this.#lines.concat(newLines) : undefined,
      };
      // In seq order, so a change lands on the form its predecessors left (and on a message that
      // joined in this same batch).
      for (const change of appended) this.#applyChange(change, lists);
      this.#entries = lists.entries;
      if (lists.messages) this.#messages = lists.messages;
      if (lists.lines) this.#lines = lists.lines;
    }
    return appended;
  }

  /**
   * Applies one change entry to the message it names, if the list holds it (older than the list:
   * ignored), in the three arrays (fresh copies, owned by the caller). A delete also blanks the
   * text of the edits it redacts.
   */
  #applyChange(change: AnyEntry, lists: Lists): void {
    if (!isChange(change)) return;
    const { entries } = lists;
    const target = targetOf(change);
    const first = entries[0]?.seq;
    if (target === undefined || first === undefined || target < first) return;
    const at = target - first;
    const previous = entries[at];
    if (!previous || !isMessage(previous)) return;
    const next = applyChange(previous, change, this.#viewer());
    if (next !== previous) {
      entries[at] = next;
      lists.messages ??= [...this.#messages];
      const m = indexBySeq(lists.messages, target);
      if (m >= 0) lists.messages[m] = next;
      lists.lines ??= [...this.#lines];
      const l = indexBySeq(lists.lines, target);
      if (l >= 0) lists.lines[l] = next;
      this.#updates.set(change.seq, { message: next, previous, change });
    }
    if (change.kind === EntryKind.Delete) {
      // The server redacted these edits' text; the copies this list holds go too.
      for (const seq of change.redacts) {
        const redacted = entries[seq - first];
        if (redacted && isKnown(redacted) && redacted.kind === EntryKind.Edit && redacted.text !== "") {
          entries[seq - first] = redactEntry(redacted);
        }
      }
    }
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
