// The recent-history window kept in the room object's memory: the newest committed messages,
// contiguous by seq. It only makes reads cheaper; losing it (eviction) costs one Postgres read.

import { type Entry, EntryKind, type Message } from "../protocol/frames.js";
import { utf8Length } from "../protocol/codec.js";
import { applyChange, targetOf } from "../protocol/lifecycle.js";
import { sendKey } from "./pipeline.js";


export class RecentWindow {
  private messages: Entry[] = [];
  private bytes = 0;
  /** (user, clientMsgId) → message, so a resend is recognised without scanning (it is on the send path). */
  private readonly bySend = new Map<string, Entry>();
  /**
   * Who reacted with what, for the messages held (target → emoji → users): the shared forms carry
   * counts only, and `personalize` adds each reader's `me` flags from here.
   */
  private readonly reactors = new Map<number, Map<string, Set<string>>>();

  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
  ) {}

  /** The first seq held, or lastSeq + 1 when empty: everything from here to lastSeq is in memory. */
  firstSeq(lastSeq: number): number {
    return this.messages[0]?.seq ?? lastSeq + 1;
  }

  get size(): number {
    return this.messages.length;
  }

  /**
   * Replaces the contents (after a cold start or a resync). `messages` must be contiguous and in
   * their current form (as Postgres serves them); `reactors` are the reactions on them.
   */
  reset(messages: Entry[], reactors: ReadonlyArray<{ target: number; emoji: string; userId: string }> = []): void {
    this.clear();
    for (const message of messages) this.push(message);
    for (const r of reactors) this.reactorsOf(r.target, r.emoji)?.add(r.userId);
    this.trim();
  }

  private clear(): void {
    this.messages = [];
    this.bytes = 0;
    this.bySend.clear();
    this.reactors.clear();
  }

  /**
   * Appends newly committed entries in seq order, applying the changes among them to the
   * messages held (so the window always serves current forms); a gap would make reads wrong, so
   * it restarts the window.
   */
  append(messages: readonly Entry[]): void {
    for (const message of messages) {
      const last = this.messages[this.messages.length - 1];
      if (last && message.seq !== last.seq + 1) this.clear();
      this.applyToHeld(message);
      this.push(message);
    }
    this.trim();
  }

  private push(message: Entry): void {
    this.messages.push(message);
    this.bytes += sizeOf(message);
    this.bySend.set(sendKey(message.userId, message.clientMsgId), message);
  }

  private trim(): void {
    // One splice for everything that fell out (shifting entry by entry was a per-message cost).
    let drop = 0;
    let bytes = this.bytes;
    while (
      drop < this.messages.length - 1 &&
      (this.messages.length - drop > this.maxMessages || bytes > this.maxBytes)
    ) {
      const dropped = this.messages[drop];
      if (!dropped) break;
      bytes -= sizeOf(dropped);
      this.bySend.delete(sendKey(dropped.userId, dropped.clientMsgId));
      this.reactors.delete(dropped.seq);
      drop++;
    }
    if (drop === 0) return;
    this.messages.splice(0, drop);
    this.bytes = bytes;
  }

  /** The held entry at `seq`, if any. */
  private at(seq: number): Entry | undefined {
    const first = this.messages[0]?.seq;
    return first === undefined ? undefined : this.messages[seq - first];
  }

  private replace(seq: number, next: Entry): void {
    const first = this.messages[0]?.seq;
    const before = this.at(seq);
    if (first === undefined || !before || before === next) return;
    this.messages[seq - first] = next;
    this.bytes += sizeOf(next) - sizeOf(before);
    this.bySend.set(sendKey(next.userId, next.clientMsgId), next);
  }

  /** A change entry's effect on the message it names (and, for a delete, on that message's edits). */
  private applyToHeld(change: Entry): void {
    const target = targetOf(change);
    if (target === undefined) return;
    const held = this.at(target);
    if (held?.kind === EntryKind.Message) this.replace(target, applyChange(held, change));
    if (change.kind === EntryKind.Reaction) {
      const users = this.reactorsOf(target, change.emoji);
      if (change.remove) users?.delete(change.userId);
      else users?.add(change.userId);
    }
    if (change.kind === EntryKind.Delete) {
      this.reactors.delete(target);
      for (const seq of change.redacts) {
        const edit = this.at(seq);
        if (edit && edit.kind === EntryKind.Edit) this.replace(seq, { ...edit, text: "" });
      }
    }
  }

  private reactorsOf(target: number, emoji: string): Set<string> | undefined {
    if (!this.at(target)) return undefined;
    let byEmoji = this.reactors.get(target);
    if (!byEmoji) {
      byEmoji = new Map();
      this.reactors.set(target, byEmoji);
    }
    let users = byEmoji.get(emoji);
    if (!users) {
      users = new Set();
      byEmoji.set(emoji, users);
    }
    return users;
  }

  /** `entries` (from this window) as `viewer` reads them: their reactions say which are theirs. */
  personalize(entries: readonly Entry[], viewer: string): Entry[] {
    return entries.map((entry) => {
      if (entry.kind !== EntryKind.Message || !entry.reactions) return entry;
      const byEmoji = this.reactors.get(entry.seq);
      const reactions = entry.reactions.map(({ emoji, count }) =>
        byEmoji?.get(emoji)?.has(viewer) ? { emoji, count, me: true as const } : { emoji, count },
      );
      return { ...entry, reactions } satisfies Message;
    });
  }

  /** Messages with afterSeq < seq <= uptoSeq, if the window holds all of them; otherwise undefined. */
  range(afterSeq: number, uptoSeq: number, lastSeq: number): Entry[] | undefined {
    if (uptoSeq <= afterSeq) return [];
    const first = this.firstSeq(lastSeq);
    if (afterSeq + 1 < first || uptoSeq > lastSeq) return undefined;
    return this.messages.slice(afterSeq + 1 - first, uptoSeq + 1 - first);
  }

  find(userId: string, clientMsgId: string): Entry | undefined {
    return this.bySend.get(sendKey(userId, clientMsgId));
  }
}

/** Approximate wire size of a message (its text dominates); used for the window and `ready` caps. */
export const sizeOf = (message: Entry): number => utf8Length(message.text) + 200;
