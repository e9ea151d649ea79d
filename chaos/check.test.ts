// The checker checked: each invariant is fed a record that breaks it and one that does not.
// Run with `npx tsx --test chaos/check.test.ts` (node:test; no stack needed).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Message } from "../src/protocol/frames.js";
import { checkErrors, checkRoom, checkStream, Invariant } from "./check.js";
import { type ClientRecord, type Delivered, newTally, type RoomRecord, type SendRecord, type StoredRow } from "./model.js";
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
const msg = (r: StoredRow): Message => ({ roomId: ROOM, kind: "message", ...r });
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
});
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
    assert.equal(checkStream(ROOM, stored, { exists: true, entries: stored.map(entry) }, 1000).diffs, 0);
    assert.equal(checkStream(ROOM, stored, { exists: true, entries: stored.slice(4).map(entry) }, 6).diffs, 0);
  });
  it("a lagging, holed, altered or missing stream differs", () => {
    const stored = rows(10);
    assert.ok(checkStream(ROOM, stored, { exists: true, entries: stored.slice(0, 9).map(entry) }, 1000).diffs > 0);
    assert.ok(checkStream(ROOM, stored, { exists: true, entries: stored.filter((r) => r.seq !== 5).map(entry) }, 1000).diffs > 0);
    const altered = stored.map(entry);
    altered[3] = { id: "4-0", fields: ["message", JSON.stringify({ ...msg(row(4)), text: "x" })] };
    assert.equal(checkStream(ROOM, stored, { exists: true, entries: altered }, 1000).diffs, 1);
    assert.equal(checkStream(ROOM, stored, { exists: false, entries: [] }, 1000).diffs, 1);
    assert.ok(checkStream(ROOM, stored, { exists: true, entries: stored.slice(6).map(entry) }, 6).diffs > 0);
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
