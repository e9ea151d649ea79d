// The checker checked: each invariant is fed a record that breaks it and one that does not.
// Run with `npx tsx --test chaos/check.test.ts` (node:test; no stack needed).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Entry, Message } from "../src/protocol/frames.js";
import { checkErrors, checkRoom, checkRouting, checkStream, Invariant, replicaKeyOf } from "./check.js";
import {
  type ClientRecord,
  type Delivered,
  newTally,
  type ReactionRow,
  type RoomRecord,
  type SendRecord,
  type StoredRow,
} from "./model.js";
import { Rng } from "./rng.js";

const ROOM = "r";
const row = (seq: number, userId = "u", clientMsgId = `m${seq}`): StoredRow => ({
  seq,
  id: `id${seq}`,
  userId,
  clientMsgId,
  text: `t${seq}`,
  createdAt: "2026-01-01T00:00:00.000Z",
});
const msg = (r: StoredRow): Message => ({
  roomId: ROOM,
  kind: "message",
  seq: r.seq,
  id: r.id,
  userId: r.userId,
  clientMsgId: r.clientMsgId,
  text: r.text,
  createdAt: r.createdAt,
});
const rows = (n: number): StoredRow[] => Array.from({ length: n }, (_, i) => row(i + 1));
const acked = (r: StoredRow, extra: Partial<SendRecord> = {}): SendRecord => ({
  room: ROOM,
  userId: r.userId,
  clientMsgId: r.clientMsgId,
  text: r.text,
  attempts: 1,
  uncertain: 0,
  definite: [],
  acks: [{ seq: r.seq, via: "ws", repeat: false, atMs: 0 }],
  ...extra,
});
const view = (seqs: number[], stored: StoredRow[]): Delivered[] =>
  seqs.map((seq) => ({ seq, message: msg(stored[seq - 1] ?? row(seq)), session: 1, source: "live" as const }));
const client = (seqs: number[], stored: StoredRow[], joined = false): ClientRecord => ({
  room: ROOM,
  userId: "c",
  view: view(seqs, stored),
  sessions: 1,
  truncated: { readies: 0, filled: 0 },
  protocol: [],
  joined,
  log: [],
  region: "primary",
});
const truthOf = (stored: StoredRow[]) => ({ rows: stored, lastSeq: stored.length });
const check = (record: Omit<RoomRecord, "room">, stored: StoredRow[], lastSeq: number | null = stored.length) =>
  checkRoom({ room: ROOM, ...record }, { rows: stored, lastSeq });
const invariants = (r: ReturnType<typeof check>): string[] => [...new Set(r.findings.map((f) => f.invariant))].sort();

describe("checkRoom", () => {
  it("a clean room passes", () => {
    const stored = rows(5);
    const r = check(
      { sends: stored.map((s) => acked(s)), clients: [client([1, 2, 3, 4, 5], stored, true), client([3, 4, 5], stored, true)] },
      stored,
    );
    assert.deepEqual(r.findings, []);
    assert.equal(r.counts.acked, 5);
    assert.deepEqual(r.counts.delivered, [5, 3]);
  });

  it("an acked message missing from Postgres is lost", () => {
    const stored = rows(3);
    const ghost = acked(row(4));
    const r = check({ sends: [...stored.map((s) => acked(s)), ghost], clients: [] }, stored);
    assert.equal(r.counts.lost, 1);
    assert.deepEqual(invariants(r), [Invariant.AckedStoredOnce]);
  });

  it("a gap, a duplicate and a reorder in a client's view are each counted", () => {
    const stored = rows(6);
    const sends = stored.map((s) => acked(s));
    assert.equal(check({ sends, clients: [client([1, 2, 4, 5, 6], stored)] }, stored).counts.lost, 1);
    assert.equal(check({ sends, clients: [client([1, 2, 2, 3, 4, 5, 6], stored)] }, stored).counts.duplicated, 1);
    const reordered = check({ sends, clients: [client([1, 3, 2, 4, 5, 6], stored)] }, stored);
    assert.equal(reordered.counts.misordered, 1);
    assert.equal(reordered.counts.lost, 0);
  });

  it("a member that did not catch up with Postgres fails liveness", () => {
    const stored = rows(4);
    const r = check({ sends: stored.map((s) => acked(s)), clients: [client([1, 2], stored, true)] }, stored);
    assert.deepEqual(invariants(r), [Invariant.Liveness]);
    assert.equal(r.counts.lost, 2);
  });

  it("a client told different content for a seq disagrees", () => {
    const stored = rows(2);
    const c = client([1, 2], stored);
    const second = c.view[1];
    if (second) second.message = { ...second.message, text: "other" };
    const r = check({ sends: stored.map((s) => acked(s)), clients: [c] }, stored);
    assert.equal(r.counts.disagreements, 1);
    assert.deepEqual(invariants(r), [Invariant.ClientsAgree]);
  });

  it("one clientMsgId acked with two seqs is a duplicate", () => {
    const stored = rows(2);
    const first = acked(stored[0] ?? row(1));
    first.acks.push({ seq: 2, via: "http", status: 201, repeat: true, atMs: 1 });
    const r = check({ sends: [first, acked(row(2, "u", "other"))], clients: [] }, [stored[0] ?? row(1), row(2, "u", "other")]);
    assert.ok(r.counts.duplicated >= 1);
    assert.ok(invariants(r).includes(Invariant.AckedStoredOnce));
  });

  it("a committed message nobody acked is a phantom unless its sender had an unknown outcome", () => {
    const stored = rows(2);
    const unacked = (uncertain: number, definite: string[] = []): SendRecord => ({
      ...acked(stored[1] ?? row(2)),
      acks: [],
      uncertain,
      definite,
    });
    const phantom = check({ sends: [acked(stored[0] ?? row(1)), unacked(0, ["internal"])], clients: [] }, stored);
    assert.equal(phantom.counts.phantoms, 1);
    assert.ok(invariants(phantom).includes(Invariant.NoPhantom));
    const ambiguous = check({ sends: [acked(stored[0] ?? row(1)), unacked(1)], clients: [] }, stored);
    assert.equal(ambiguous.counts.phantoms, 0);
    assert.equal(ambiguous.counts.ambiguousOpen, 1);
    const nobody = check({ sends: [acked(stored[0] ?? row(1))], clients: [] }, stored);
    assert.equal(nobody.counts.phantoms, 1);
  });

  it("Postgres with a hole or a last_seq that disagrees fails", () => {
    const stored = [row(1), row(3)];
    const r = check({ sends: stored.map((s) => acked(s)), clients: [] }, stored, 3);
    assert.deepEqual(invariants(r), [Invariant.PostgresContiguous]);
    assert.deepEqual(invariants(check({ sends: [acked(row(1))], clients: [] }, [row(1)], 2)), [Invariant.PostgresContiguous]);
  });

  it("a send that is neither acked nor stored after the heal is stuck", () => {
    const r = check({ sends: [{ ...acked(row(1)), acks: [], uncertain: 3 }], clients: [] }, []);
    assert.equal(r.counts.stuck, 1);
    assert.deepEqual(invariants(r), [Invariant.Liveness]);
  });
});

describe("checkStream", () => {
  const entry = (r: StoredRow) => ({ id: `${r.seq}-0`, fields: ["message", JSON.stringify(msg(r))] });
  it("the newest window, contiguous and equal, passes; a trimmed-away head is fine", () => {
    const stored = rows(10);
    assert.equal(checkStream(ROOM, truthOf(stored), { exists: true, entries: stored.map(entry) }, 1000).diffs, 0);
    assert.equal(checkStream(ROOM, truthOf(stored), { exists: true, entries: stored.slice(4).map(entry) }, 6).diffs, 0);
  });
  it("a lagging, holed, altered or missing stream differs", () => {
    const stored = rows(10);
    assert.ok(checkStream(ROOM, truthOf(stored), { exists: true, entries: stored.slice(0, 9).map(entry) }, 1000).diffs > 0);
    assert.ok(
      checkStream(ROOM, truthOf(stored), { exists: true, entries: stored.filter((r) => r.seq !== 5).map(entry) }, 1000).diffs > 0,
    );
    const altered = stored.map(entry);
    altered[3] = { id: "4-0", fields: ["message", JSON.stringify({ ...msg(row(4)), text: "x" })] };
    assert.equal(checkStream(ROOM, truthOf(stored), { exists: true, entries: altered }, 1000).diffs, 1);
    assert.equal(checkStream(ROOM, truthOf(stored), { exists: false, entries: [] }, 1000).diffs, 1);
    assert.ok(checkStream(ROOM, truthOf(stored), { exists: true, entries: stored.slice(6).map(entry) }, 6).diffs > 0);
  });
});

// --- The message lifecycle: edits, deletes, reactions, replies ---------------------------------
//
// One room's worth, consistent end to end: 1 "hello" by u, edited by 2, reacted 👍 by v at 3,
// replied to by v at 4; 5 "bye" by u, deleted by 6. Postgres holds current forms (1 edited with a
// reply and a reaction, 5 a tombstone). `live` got every entry as committed; `late` got them all
// in one `ready` as of seq 6, in current form. Each test plants one violation in a copy.

const AT = "2026-01-01T00:00:00.000Z";
const base = (seq: number, userId: string, clientMsgId: string, text: string, kind: string): StoredRow => ({
  seq,
  id: `id${seq}`,
  userId,
  clientMsgId,
  text,
  createdAt: AT,
  kind,
  version: 0,
  deleted: false,
  replyCount: 0,
});

interface Lifecycle {
  stored: StoredRow[];
  reactions: ReactionRow[];
  sends: SendRecord[];
  live: Entry[];
  late: Entry[];
}

const lifecycle = (): Lifecycle => {
  const stored: StoredRow[] = [
    { ...base(1, "u", "m1", "hello edited", "message"), version: 1, editedAt: AT, replyCount: 1, lastReplySeq: 4, updatedSeq: 4 },
    { ...base(2, "u", "m2", "hello edited", "edit"), target: 1, data: { version: 1 } },
    { ...base(3, "v", "m1", "👍", "reaction"), target: 1, data: { emoji: "👍", count: 1 } },
    { ...base(4, "v", "m2", "re", "message"), replyTo: 1 },
    { ...base(5, "u", "m3", "", "message"), deleted: true, updatedSeq: 6 },
    { ...base(6, "u", "m4", "", "delete"), target: 5, data: { redacts: [5] } },
  ];
  const ack = (seq: number) => [{ seq, via: "ws" as const, repeat: false, atMs: seq }];
  const req = (userId: string, clientMsgId: string, seq: number, extra: Partial<SendRecord>): SendRecord => ({
    room: ROOM,
    userId,
    clientMsgId,
    text: "",
    attempts: 1,
    uncertain: 0,
    definite: [],
    acks: ack(seq),
    ...extra,
  });
  const sends = [
    req("u", "m1", 1, { op: "send", text: "hello" }),
    req("u", "m2", 2, { op: "edit", target: 1, text: "hello edited" }),
    req("v", "m1", 3, { op: "react", target: 1, emoji: "👍" }),
    req("v", "m2", 4, { op: "send", text: "re", replyTo: 1 }),
    req("u", "m3", 5, { op: "send", text: "bye" }),
    req("u", "m4", 6, { op: "delete", target: 5 }),
  ];
  const env = (seq: number) => {
    const r = stored[seq - 1] ?? row(seq);
    return { roomId: ROOM, seq, id: r.id, userId: r.userId, clientMsgId: r.clientMsgId, createdAt: AT };
  };
  const live: Entry[] = [
    { ...env(1), kind: "message", text: "hello" },
    { ...env(2), kind: "edit", text: "hello edited", target: 1, version: 1 },
    { ...env(3), kind: "reaction", text: "👍", target: 1, emoji: "👍", count: 1 },
    { ...env(4), kind: "message", text: "re", replyTo: 1 },
    { ...env(5), kind: "message", text: "bye" },
    { ...env(6), kind: "delete", text: "", target: 5, redacts: [5] },
  ];
  const late: Entry[] = [
    {
      ...env(1),
      kind: "message",
      text: "hello edited",
      editedAt: AT,
      version: 1,
      reactions: [{ emoji: "👍", count: 1 }],
      replyCount: 1,
      lastReplySeq: 4,
      updatedSeq: 4,
    },
    ...live.slice(1, 4),
    { ...env(5), kind: "message", text: "", deleted: true, updatedSeq: 6 },
    live[5] as Entry,
  ];
  return { stored, reactions: [{ target: 1, emoji: "👍", userId: "v" }], sends, live, late };
};

const viewer = (userId: string, entries: Entry[], source: "live" | "ready", asOf?: number): ClientRecord => ({
  room: ROOM,
  userId,
  view: entries.map((message) => ({ seq: message.seq, message, session: 1, source, ...(asOf === undefined ? {} : { asOf }) })),
  sessions: 1,
  truncated: { readies: 0, filled: 0 },
  protocol: [],
  joined: true,
  log: [],
  region: "primary",
});

const checkLifecycle = (l: Lifecycle) =>
  checkRoom(
    { room: ROOM, sends: l.sends, clients: [viewer("c", l.live, "live"), viewer("d", l.late, "ready", 6)] },
    { rows: l.stored, lastSeq: l.stored.length, reactions: l.reactions },
  );

describe("checkRoom: edits, deletes, reactions, replies", () => {
  it("a consistent room passes: live and late viewers converge on Postgres' current forms", () => {
    const r = checkLifecycle(lifecycle());
    assert.deepEqual(r.findings, []);
    assert.equal(r.counts.changes, 4);
    assert.equal(r.counts.diverged, 0);
  });

  it("a view that misses an edit diverges (a form claiming the edit without its text)", () => {
    const l = lifecycle();
    // The late viewer's form of 1 says it includes everything up to seq 4, but has the old text:
    // the edit entry after it is then skipped by applyChange, and the view never gets it.
    const stale = { ...(l.late[0] as Message), text: "hello", editedAt: undefined, version: undefined } as Message;
    l.late[0] = stale;
    const r = checkLifecycle(l);
    assert.deepEqual(invariants(r), [Invariant.ViewsConverge]);
    assert.equal(r.counts.diverged, 1);
    assert.match(r.findings[0]?.detail ?? "", /d's seq 1 .*text "hello"≠"hello edited"/);
  });

  it("a live viewer that never receives the edit entry diverges too (besides the hole)", () => {
    const l = lifecycle();
    l.live.splice(1, 1);
    const r = checkLifecycle(l);
    assert.ok(invariants(r).includes(Invariant.ViewsConverge));
    assert.ok(invariants(r).includes(Invariant.ViewContiguous));
  });

  it("a deleted message's text left in its row, in an edit of it, or elsewhere is not redacted", () => {
    const inRow = lifecycle();
    inRow.stored[4] = { ...(inRow.stored[4] as StoredRow), text: "bye" };
    const a = checkLifecycle(inRow);
    assert.ok(invariants(a).includes(Invariant.Redacted));
    assert.match(
      a.findings.find((f) => f.invariant === Invariant.Redacted)?.detail ?? "",
      /deleted message 5 still has text "bye"/,
    );

    const elsewhere = lifecycle();
    elsewhere.stored[5] = { ...(elsewhere.stored[5] as StoredRow), data: { redacts: [5], note: "was: bye" } };
    assert.deepEqual(invariants(checkLifecycle(elsewhere)), [Invariant.Redacted]);

    // 1 deleted after its edit: both texts must be gone.
    const edited = lifecycle();
    edited.stored[0] = { ...(edited.stored[0] as StoredRow), text: "", deleted: true, editedAt: undefined, updatedSeq: 7 };
    edited.stored.push({ ...base(7, "u", "m5", "", "delete"), target: 1, data: { redacts: [1, 2] } });
    edited.sends.push({
      ...(edited.sends[5] as SendRecord),
      clientMsgId: "m5",
      target: 1,
      acks: [{ seq: 7, via: "ws", repeat: false, atMs: 7 }],
    });
    edited.reactions = [];
    (edited.stored[1] as StoredRow).text = "";
    const clean = checkRoom({ room: ROOM, sends: edited.sends, clients: [] }, { rows: edited.stored, lastSeq: 7, reactions: [] });
    assert.deepEqual(clean.findings, []);
    (edited.stored[1] as StoredRow).text = "hello edited";
    const leak = checkRoom({ room: ROOM, sends: edited.sends, clients: [] }, { rows: edited.stored, lastSeq: 7, reactions: [] });
    assert.deepEqual(invariants(leak), [Invariant.Redacted]);
  });

  it("a ready read after the delete that still shows the text is not redacted", () => {
    const l = lifecycle();
    l.late[4] = { ...(l.late[4] as Message), text: "bye", deleted: undefined } as Message;
    const r = checkLifecycle(l);
    assert.ok(invariants(r).includes(Invariant.Redacted));
    // The same form read before the delete (as of seq 5) is fine there (and then converges by the delete entry).
    const before = checkRoom(
      {
        room: ROOM,
        sends: l.sends,
        clients: [
          viewer(
            "d",
            [...l.live.slice(0, 4), { ...(l.late[4] as Message), updatedSeq: undefined }, l.live[5] as Entry],
            "ready",
            5,
          ),
        ],
      },
      { rows: l.stored, lastSeq: 6, reactions: l.reactions },
    );
    assert.deepEqual(before.findings, []);
  });

  it("a reaction count off by one fails: in the table, in an entry, in a client's view", () => {
    const table = lifecycle();
    table.reactions = [];
    const a = checkLifecycle(table);
    assert.ok(invariants(a).includes(Invariant.ReactionsExact));
    assert.ok(invariants(a).includes(Invariant.ViewsConverge)); // both viewers count 1; Postgres serves none

    const entry = lifecycle();
    (entry.stored[2] as StoredRow).data = { emoji: "👍", count: 2 };
    (entry.live[2] as { count: number }).count = 2;
    (entry.late[2] as { count: number }).count = 2;
    const b = checkLifecycle(entry);
    assert.ok(invariants(b).includes(Invariant.ReactionsExact));
    assert.ok(invariants(b).includes(Invariant.ViewsConverge)); // the live viewer applied count 2

    const seen = lifecycle();
    (seen.late[0] as Message).reactions = [{ emoji: "👍", count: 2 }];
    const c = checkLifecycle(seen);
    assert.deepEqual(invariants(c), [Invariant.ViewsConverge]);
  });

  it("a current form that disagrees with its change entries fails current-forms", () => {
    const l = lifecycle();
    l.stored[0] = { ...(l.stored[0] as StoredRow), version: 2 };
    assert.ok(invariants(checkLifecycle(l)).includes(Invariant.CurrentForms));
    const replies = lifecycle();
    replies.stored[0] = { ...(replies.stored[0] as StoredRow), replyCount: 2 };
    assert.ok(invariants(checkLifecycle(replies)).includes(Invariant.CurrentForms));
  });

  it("an acked change stored as something else, or a refused change stored, fails", () => {
    const l = lifecycle();
    (l.sends[2] as SendRecord).emoji = "🎉";
    assert.ok(invariants(checkLifecycle(l)).includes(Invariant.AckedStoredOnce));
    const refused = lifecycle();
    refused.sends[2] = { ...(refused.sends[2] as SendRecord), acks: [], definite: ["conflict"], refused: "conflict" };
    const r = checkLifecycle(refused);
    assert.ok(invariants(r).includes(Invariant.NoPhantom));
  });

  it("a conflict is fine for a reaction on a message deleted meanwhile, not on one that is not deleted", () => {
    const l = lifecycle();
    const onDeleted: SendRecord = {
      ...(l.sends[2] as SendRecord),
      clientMsgId: "m9",
      target: 5,
      acks: [],
      definite: ["conflict"],
      refused: "conflict",
    };
    const onLive: SendRecord = { ...onDeleted, clientMsgId: "m10", target: 1 };
    l.sends.push(onDeleted);
    assert.equal(checkLifecycle(l).counts.refused, 1);
    assert.deepEqual(checkLifecycle(l).findings, []);
    l.sends.push(onLive);
    assert.deepEqual(invariants(checkLifecycle(l)), [Invariant.DocumentedErrors]);
  });
});

describe("checkStream: holes for changed messages", () => {
  const entry = (e: Entry) => ({ id: `${e.seq}-0`, fields: ["message", JSON.stringify(e)] });
  const truth = (l: Lifecycle) => ({ rows: l.stored, lastSeq: l.stored.length, reactions: l.reactions });
  it("a stream without the changed messages (1 edited, 5 deleted) equals Postgres", () => {
    const l = lifecycle();
    const entries = l.live.filter((e) => e.seq !== 1 && e.seq !== 5).map(entry);
    assert.deepEqual(checkStream(ROOM, truth(l), { exists: true, entries }, 1000, l.sends).findings, []);
  });
  it("a stream that misses an unchanged entry, or still holds a changed or deleted one, differs", () => {
    const l = lifecycle();
    const without4 = l.live.filter((e) => e.seq !== 1 && e.seq !== 5 && e.seq !== 4).map(entry);
    assert.equal(checkStream(ROOM, truth(l), { exists: true, entries: without4 }, 1000, l.sends).diffs, 1);
    const stale = l.live.filter((e) => e.seq !== 5).map(entry);
    assert.equal(checkStream(ROOM, truth(l), { exists: true, entries: stale }, 1000, l.sends).diffs, 1);
    const deleted = l.live.filter((e) => e.seq !== 1).map(entry);
    const r = checkStream(ROOM, truth(l), { exists: true, entries: deleted }, 1000, l.sends);
    assert.ok(r.findings.some((f) => f.invariant === Invariant.Redacted));
    assert.ok(r.findings.some((f) => f.invariant === Invariant.RedisEqualsPostgres));
  });
});

describe("checkErrors", () => {
  it("unavailable and rate_limited are fine; other documented codes and unknown ones fail", () => {
    const tally = newTally();
    tally.codes.set("unavailable", 3);
    tally.codes.set("rate_limited", 1);
    assert.deepEqual(checkErrors("s", tally), []);
    tally.codes.set("internal", 1);
    tally.codes.set("kaboom", 2);
    assert.equal(checkErrors("s", tally).length, 2);
  });
});

describe("Rng", () => {
  it("the same seed and label give the same stream", () => {
    const a = new Rng(42).fork("x");
    const b = new Rng(42).fork("x");
    assert.deepEqual([a.next(), a.int(1, 6), a.next()], [b.next(), b.int(1, 6), b.next()]);
    assert.notEqual(new Rng(42).fork("y").next(), new Rng(42).fork("x").next());
  });
});

describe("checkRouting", () => {
  const expected = new Map([
    ["weur#0", ["w2"]],
    ["weur#1", ["w3", "j1"]],
  ]);
  const seen = [
    { name: "default:r@weur#0", sockets: 1, deliveredSeq: 9 },
    { name: "default:r@weur#1", sockets: 2, deliveredSeq: 9 },
    { name: "default:r@apac#0", sockets: 0, deliveredSeq: null },
  ];
  it("reads a replica's region and shard from its name", () => {
    assert.equal(replicaKeyOf("default:a-b@weur#1"), "weur#1");
    assert.equal(replicaKeyOf("default:a-b"), undefined);
  });
  it("passes when every routed client's replica is there, holds its sockets and is caught up", () => {
    assert.deepEqual(checkRouting(ROOM, expected, seen, 9), []);
  });
  it("nothing to check without replica clients", () => {
    assert.deepEqual(checkRouting(ROOM, new Map(), undefined, 9), []);
  });
  it("flags an unreadable /status, a missing or unreachable replica, too few sockets, a replica behind", () => {
    const kinds = (f: ReturnType<typeof checkRouting>) => f.map((x) => x.detail);
    assert.match(kinds(checkRouting(ROOM, expected, undefined, 9))[0] ?? "", /unreadable/);
    assert.match(kinds(checkRouting(ROOM, expected, seen.slice(1), 9))[0] ?? "", /no replica weur#0/);
    const unreachable = [{ name: "default:r@weur#0", unreachable: true }, ...seen.slice(1)];
    assert.match(kinds(checkRouting(ROOM, expected, unreachable, 9))[0] ?? "", /weur#0 did not answer/);
    const few = [seen[0], { name: "default:r@weur#1", sockets: 1, deliveredSeq: 9 }].filter((x) => x !== undefined);
    assert.match(kinds(checkRouting(ROOM, expected, few, 9))[0] ?? "", /weur#1 holds 1 socket/);
    const behind = checkRouting(ROOM, expected, seen, 10);
    assert.equal(behind.length, 2);
    assert.ok(behind.every((f) => f.invariant === Invariant.ReplicaRouted && /Postgres is at 10/.test(f.detail)));
  });
});
