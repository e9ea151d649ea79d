// The convergence rule: a change applies once, in seq order, whatever form the message is in.
import { describe, expect, it } from "vitest";
import { type Entry, EntryKind, type Message } from "./frames.js";
import { applyChange, compareCodePoints } from "./lifecycle.js";

const base = { roomId: "r", id: "i", clientMsgId: "c", createdAt: "2026-12-03T00:00:00.000Z" };
const msg = (seq: number, extra: Partial<Message> = {}): Message => ({ ...base, seq, kind: EntryKind.Message, userId: "a", text: "hi", ...extra });
const edit = (seq: number, target: number, text: string, version: number): Entry => ({ ...base, seq, kind: EntryKind.Edit, userId: "a", text, target, version });
const react = (seq: number, target: number, userId: string, emoji: string, count: number, remove = false): Entry => ({
  ...base,
  seq,
  kind: EntryKind.Reaction,
  userId,
  text: emoji,
  target,
  emoji,
  count,
  ...(remove ? { remove: true as const } : {}),
});

describe("applyChange", () => {
  it("applies each change once: replaying changes already in the form changes nothing", () => {
    const changes = [edit(2, 1, "v1", 1), react(3, 1, "b", "👍", 1), react(4, 1, "a", "🎉", 1), edit(5, 1, "v2", 2), react(6, 1, "b", "👍", 0, true)];
    const live = changes.reduce<Message>((m, c) => applyChange(m, c, "a"), msg(1));
    expect(live).toMatchObject({ text: "v2", version: 2, reactions: [{ emoji: "🎉", count: 1, me: true }], updatedSeq: 6 });
    // A form that already includes everything up to 4, then the whole run replayed: same result.
    const current = changes.slice(0, 3).reduce<Message>((m, c) => applyChange(m, c, "a"), msg(1));
    expect(changes.reduce<Message>((m, c) => applyChange(m, c, "a"), current)).toEqual(live);
  });

  it("replies are counted once even when a form that already counts them replays them (the count is a delta)", () => {
    const current = applyChange(msg(1), msg(2, { replyTo: 1 }));
    expect(applyChange(applyChange(current, msg(2, { replyTo: 1 })), msg(3, { replyTo: 1 }))).toMatchObject({ replyCount: 2, lastReplySeq: 3 });
  });

  it("a delete makes a tombstone; later edits do not bring text back", () => {
    const deleted = applyChange(applyChange(msg(1), edit(2, 1, "x", 1)), { ...base, seq: 3, kind: EntryKind.Delete, userId: "a", text: "", target: 1, redacts: [1, 2] });
    expect(deleted).toEqual({ ...msg(1), text: "", deleted: true, updatedSeq: 3 });
    expect(applyChange(deleted, edit(4, 1, "again", 2)).text).toBe("");
  });

  it("ignores changes of other messages, and replies count on their parent", () => {
    expect(applyChange(msg(1), edit(2, 7, "x", 1))).toEqual(msg(1));
    expect(applyChange(msg(1), msg(2, { replyTo: 1 }))).toMatchObject({ replyCount: 1, lastReplySeq: 2, updatedSeq: 2 });
  });

  it("sorts a summary in code point order, as Postgres does with COLLATE \"C\"", () => {
    const m = [react(2, 1, "b", "😀", 1), react(3, 1, "b", ":a:", 1), react(4, 1, "b", "❤️", 1), react(5, 1, "b", "\uffe0", 1)].reduce<Message>(
      (x, c) => applyChange(x, c),
      msg(1),
    );
    expect(m.reactions?.map((r) => r.emoji)).toEqual([":a:", "❤️", "\uffe0", "😀"]);
    expect(compareCodePoints("\uffe0", "😀")).toBeLessThan(0); // UTF-16 order would say the opposite
  });
});
