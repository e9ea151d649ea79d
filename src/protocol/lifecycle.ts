// How a change entry (edit, delete, reaction, or a reply) changes the message it names. One pure
// function, used by the room for its in-memory window and by the SDK for its timeline, so the two
// cannot disagree about what a message looks like after a run of changes.
//
// Convergence: every message form carries `updatedSeq`, the seq of the last change already in it.
// A change with a seq at or below it is skipped. So a client that holds a message in its current
// form (from history or `ready`) and then replays change entries it had not seen, from any cursor,
// ends where a client that stayed connected ends: changes are applied once each, in seq order.

import { EntryKind, type Entry, type Message, type ReactionSummary } from "./frames.js";

/** The seq of the message an entry changes, if it changes one (a reply changes its thread's parent). */
export const targetOf = (entry: Entry): number | undefined => {
  switch (entry.kind) {
    case EntryKind.Edit:
    case EntryKind.Delete:
    case EntryKind.Reaction:
      return entry.target;
    case EntryKind.Message:
      return entry.replyTo;
    default:
      return undefined;
  }
};

/** The seq of the last change in a message's form (its own seq when nothing changed it). */
export const lastChangeOf = (message: Message): number => message.updatedSeq ?? message.seq;

/**
 * `message` after `change` (a new object; `message` is not modified), or `message` itself when the
 * change does not apply to it or is already included. `viewer`: whose `me` flags to keep current
 * (the SDK's own user); the room's shared forms pass none and carry no `me`.
 */
export const applyChange = (message: Message, change: Entry, viewer?: string): Message => {
  if (targetOf(change) !== message.seq || change.seq <= lastChangeOf(message)) return message;
  switch (change.kind) {
    case EntryKind.Edit:
      if (message.deleted) return { ...message, updatedSeq: change.seq };
      return { ...message, text: change.text, editedAt: change.createdAt, version: change.version, updatedSeq: change.seq };
    case EntryKind.Delete:
      return tombstone(message, change.seq);
    case EntryKind.Reaction: {
      const mine = viewer === undefined || change.userId !== viewer ? undefined : !change.remove;
      const { reactions: before, ...rest } = message;
      const reactions = withReaction(before ?? [], change.emoji, change.count, mine);
      return reactions ? { ...rest, reactions, updatedSeq: change.seq } : { ...rest, updatedSeq: change.seq };
    }
    case EntryKind.Message:
      return { ...message, replyCount: (message.replyCount ?? 0) + 1, lastReplySeq: change.seq, updatedSeq: change.seq };
    default:
      return message;
  }
};

/** The form of a deleted message: no text, no parts, no reactions, nothing but its place in the stream. */
export const tombstone = (message: Message, updatedSeq: number): Message => {
  const { editedAt: _e, version: _v, reactions: _r, parts: _p, ...rest } = message;
  return { ...rest, text: "", deleted: true, updatedSeq };
};

/**
 * The summary with `emoji` at `count` (removed at 0). Sorted by emoji in code point order, the
 * order Postgres returns (`COLLATE "C"`), so a summary built from live entries and one read from
 * history are equal. `mine`: the viewer's own flag after the change (undefined: the change was
 * someone else's, the flag stays).
 */
const withReaction = (summary: ReactionSummary[], emoji: string, count: number, mine: boolean | undefined): ReactionSummary[] | undefined => {
  const out = summary.filter((item) => item.emoji !== emoji);
  const before = summary.find((item) => item.emoji === emoji);
  if (count > 0) {
    const item = reaction(emoji, count, mine ?? before?.me === true);
    const at = out.findIndex((other) => compareCodePoints(emoji, other.emoji) < 0);
    if (at === -1) out.push(item);
    else out.splice(at, 0, item);
  }
  return out.length > 0 ? out : undefined;
};

/** Code point order (UTF-16 code unit order differs for characters above U+E000). */
export const compareCodePoints = (a: string, b: string): number => {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = (x[i]?.codePointAt(0) ?? 0) - (y[i]?.codePointAt(0) ?? 0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
};

const reaction = (emoji: string, count: number, me: boolean): ReactionSummary => (me ? { emoji, count, me: true } : { emoji, count });

/** The redacted form of an edit entry whose target was deleted: its text is gone too. */
export const redactEntry = (entry: Entry): Entry => (entry.kind === EntryKind.Message ? tombstone(entry, entry.updatedSeq ?? entry.seq) : { ...entry, text: "" });
