// The batch planner (changes.ts) as a pure function: what a batch of changes may do, given the
// state its lookup found, in batch order.
import { describe, expect, it } from "vitest";
import { EntryKind } from "../protocol/frames.js";
import type { BatchLookup, TargetState } from "../storage/types.js";
import { type PlannedInput, planBatch } from "./changes.js";
import { sendKey } from "./pipeline.js";

const message = (seq: number, userId: string, extra: Partial<TargetState> = {}): TargetState => ({
  seq,
  kind: EntryKind.Message,
  userId,
  deleted: false,
  version: 0,
  replyTo: null,
  edits: [],
  counts: new Map(),
  reacted: new Set(),
  ...extra,
});
const lookup = (targets: TargetState[], existing: string[] = []): BatchLookup => ({
  targets: new Map(targets.map((t) => [t.seq, t])),
  existing: new Set(existing),
});
let n = 0;
const entry = (kind: PlannedInput["kind"], userId: string, fields: Partial<PlannedInput> = {}): PlannedInput => ({
  kind,
  userId,
  clientMsgId: `c${++n}`,
  text: "t",
  ...fields,
});
const AT = "2026-12-03T00:00:00.000Z";

describe("planBatch", () => {
  it("numbers accepted entries densely after lastSeq and gives refused ones no seq", () => {
    const plan = planBatch(
      [
        entry(EntryKind.Message, "a"),
        entry(EntryKind.Edit, "b", { target: 1, text: "not yours" }),
        entry(EntryKind.Edit, "a", { target: 1, text: "v2" }),
        entry(EntryKind.Reaction, "b", { target: 9, data: { emoji: "👍" } }),
        entry(EntryKind.Message, "b"),
      ],
      lookup([message(1, "a")]),
      10,
      AT,
    );
    expect(plan.verdicts.map((v) => (v.ok ? v.seq : v.code))).toEqual([11, "forbidden", 12, "not_found", 13]);
    expect(plan.effects.updates).toEqual([{ seq: 1, text: "v2", editedAt: AT, version: 1, deleted: false, replyDelta: 0, updatedSeq: 12 }]);
  });

  it("an edit after a delete in the same batch is refused; an edit before it is committed without its text, and listed in redacts", () => {
    const plan = planBatch(
      [
        entry(EntryKind.Edit, "a", { target: 1, text: "secret" }),
        entry(EntryKind.Delete, "a", { target: 1 }),
        entry(EntryKind.Edit, "a", { target: 1, text: "late" }),
      ],
      lookup([message(1, "a", { edits: [4] })]),
      5,
      AT,
    );
    expect(plan.verdicts.map((v) => (v.ok ? `${v.seq}:${v.text}` : v.code))).toEqual(["6:", "7:", "conflict"]);
    expect(plan.verdicts[1]).toMatchObject({ ok: true, data: { redacts: [1, 4, 6] } });
    expect(plan.effects.deleted).toEqual([1]);
    expect(plan.effects.updates[0]).toMatchObject({ seq: 1, deleted: true, text: undefined, updatedSeq: 7 });
  });

  it("only authors edit; authors and admins delete; nothing changes a system entry or a tombstone", () => {
    const targets = lookup([message(1, "a"), message(2, "a", { deleted: true }), { ...message(3, "a"), kind: EntryKind.System }]);
    const verdicts = planBatch(
      [
        entry(EntryKind.Delete, "b", { target: 1, role: "member" }),
        entry(EntryKind.Delete, "b", { target: 1, role: "admin" }),
        entry(EntryKind.Delete, "a", { target: 2 }),
        entry(EntryKind.Edit, "a", { target: 3 }),
        entry(EntryKind.Reaction, "a", { target: 2, data: { emoji: "👍" } }),
        entry(EntryKind.Message, "a", { replyTo: 2 }),
      ],
      targets,
      0,
      AT,
    ).verdicts;
    expect(verdicts.map((v) => (v.ok ? "ok" : v.code))).toEqual(["forbidden", "ok", "conflict", "bad_request", "conflict", "conflict"]);
  });

  it("reactions: idempotent per (user, emoji), counted, net row changes only; a delete drops its message's reactions", () => {
    const target = message(1, "a", { counts: new Map([["👍", 2]]), reacted: new Set(["👍 b"]) });
    const plan = planBatch(
      [
        entry(EntryKind.Reaction, "b", { target: 1, data: { emoji: "👍" } }),
        entry(EntryKind.Reaction, "c", { target: 1, data: { emoji: "👍" } }),
        entry(EntryKind.Reaction, "b", { target: 1, data: { emoji: "👍", remove: true } }),
        entry(EntryKind.Reaction, "b", { target: 1, data: { emoji: "👍", remove: true } }),
        entry(EntryKind.Reaction, "c", { target: 1, data: { emoji: "🎉" } }),
        entry(EntryKind.Reaction, "c", { target: 1, data: { emoji: "🎉", remove: true } }),
      ],
      lookup([target]),
      0,
      AT,
    );
    expect(plan.verdicts.map((v) => (v.ok ? v.data : v.code))).toEqual([
      "conflict",
      { emoji: "👍", count: 3 },
      { emoji: "👍", remove: true, count: 2 },
      "conflict",
      { emoji: "🎉", count: 1 },
      { emoji: "🎉", remove: true, count: 0 },
    ]);
    expect(plan.effects.reactionsAdded).toEqual([{ target: 1, emoji: "👍", userId: "c" }]);
    expect(plan.effects.reactionsRemoved).toEqual([{ target: 1, emoji: "👍", userId: "b" }]);
    const deleted = planBatch(
      [entry(EntryKind.Reaction, "c", { target: 1, data: { emoji: "🎉" } }), entry(EntryKind.Delete, "a", { target: 1 })],
      lookup([target]),
      0,
      AT,
    );
    expect(deleted.effects.reactionsAdded).toEqual([]);
    expect(deleted.effects.deleted).toEqual([1]);
  });

  it("replies: to a top-level message only; the parent's count and last reply follow the batch", () => {
    const plan = planBatch(
      [
        entry(EntryKind.Message, "a", { replyTo: 1 }),
        entry(EntryKind.Message, "b", { replyTo: 2 }),
        entry(EntryKind.Message, "b", { replyTo: 1 }),
      ],
      lookup([message(1, "x"), message(2, "x", { replyTo: 1 })]),
      20,
      AT,
    );
    expect(plan.verdicts.map((v) => (v.ok ? v.seq : v.code))).toEqual([21, "bad_request", 22]);
    expect(plan.effects.updates).toEqual([{ seq: 1, version: 0, deleted: false, replyDelta: 2, lastReplySeq: 22, updatedSeq: 22 }]);
  });

  it("a resend of a stored entry is accepted as it is, whatever its target became, and takes no seq", () => {
    const resend = entry(EntryKind.Edit, "a", { target: 1 });
    const plan = planBatch([resend, entry(EntryKind.Message, "a")], lookup([message(1, "a", { deleted: true })], [sendKey("a", resend.clientMsgId)]), 3, AT);
    expect(plan.verdicts.map((v) => (v.ok ? (v.seq ?? "stored") : v.code))).toEqual(["stored", 4]);
    expect(plan.effects.expectedDuplicates).toBe(1);
  });

  it("caps the distinct emojis on a message", () => {
    const counts = new Map(Array.from({ length: 50 }, (_, i) => [`:e${i}:`, 1] as [string, number]));
    const verdicts = planBatch(
      [entry(EntryKind.Reaction, "a", { target: 1, data: { emoji: ":new:" } }), entry(EntryKind.Reaction, "a", { target: 1, data: { emoji: ":e1:" } })],
      lookup([message(1, "x", { counts })]),
      0,
      AT,
    ).verdicts;
    expect(verdicts.map((v) => (v.ok ? "ok" : v.code))).toEqual(["bad_request", "ok"]);
  });
});
