// The writer's state machine in plain Node: a small in-memory model of the Postgres semantics
// the commit statement guarantees (epoch check, expected last_seq, dedup by (user, clientMsgId))
// and of Durable Object storage, with faults that make an outcome unknown. workerd and real
// Postgres test the same guarantees end to end (test/room.faults.test.ts); these pin the logic.

import { describe, expect, it } from "vitest";
import { ChatError, ErrorCode } from "../protocol/errors.js";
import type { Entry } from "../protocol/frames.js";
import {
  type BatchLookup,
  type CommitOutcome,
  type HistoryQuery,
  type NewEntry,
  type RoomKey,
  type RoomRecord,
  StorageError,
} from "../storage/types.js";
import { failure, type SendOutcome } from "./results.js";
import { EPOCH_KEY, entryOf, IN_DOUBT_KEY, type PendingEntry, Writer, type WriterStorage, type WriterStore } from "./writer.js";

const ROOM: RoomKey = { tenant: "t", roomId: "r" };

/** Postgres as the commit statement sees it, for one room. */
class FakePostgres implements WriterStore {
  lastSeq = 0;
  epoch = 0;
  exists = true;
  readonly rows: Entry[] = [];
  /** Next commit: fail before applying (nothing written) or after applying (committed, answer lost). */
  fault: "before" | "after" | undefined;
  commits: Array<{ epoch: number; expected: number; size: number }> = [];

  async readRoomState(): Promise<RoomRecord | null> {
    return this.exists ? this.record() : null;
  }

  record(): RoomRecord {
    return {
      lastSeq: this.lastSeq,
      writerEpoch: this.epoch,
      visibility: "public",
      name: "r",
      metadata: {},
      createdBy: null,
      createdAt: new Date(0).toISOString(),
      deletedAt: null,
    };
  }

  async claimWriter(_room: RoomKey, epoch: number) {
    if (!this.exists || epoch <= this.epoch) return null;
    this.epoch = epoch;
    return { lastSeq: this.lastSeq, writerEpoch: this.epoch };
  }

  async commitBatch(_room: RoomKey, epoch: number, expected: number, createdAt: string, batch: readonly NewEntry[]): Promise<CommitOutcome> {
    this.commits.push({ epoch, expected, size: batch.length });
    const fault = this.fault;
    this.fault = undefined;
    if (fault === "before") throw new StorageError("connection lost", "timeout");
    if (epoch !== this.epoch || expected !== this.lastSeq) return { kind: "rejected" };
    const duplicates = new Map<number, Entry>();
    batch.forEach((e, index) => {
      const stored = this.rows.find((r) => r.userId === e.userId && r.clientMsgId === e.clientMsgId);
      if (stored) duplicates.set(index, stored);
      else this.rows.push(entryOf(ROOM.roomId, e, ++this.lastSeq, createdAt));
    });
    if (fault === "after") throw new StorageError("did not answer in time", "timeout");
    return { kind: "committed", lastSeq: this.lastSeq, duplicates };
  }

  async readMessages(_room: RoomKey, q: HistoryQuery): Promise<Entry[]> {
    const range = this.rows.filter((r) => r.seq > q.afterSeq && r.seq <= q.uptoSeq);
    return q.from === "oldest" ? range.slice(0, q.limit) : range.slice(-q.limit);
  }

  /** The messages a batch names, as stored (this fake does not apply change effects). */
  async lookupBatch(_room: RoomKey, targets: readonly number[]): Promise<BatchLookup> {
    const found = this.rows.filter((r) => targets.includes(r.seq) && r.kind === "message");
    return {
      targets: new Map(
        found.map((r) => [
          r.seq,
          { seq: r.seq, kind: r.kind, userId: r.userId, deleted: false, version: 0, replyTo: null, edits: [], counts: new Map(), reacted: new Set() },
        ]),
      ),
      existing: new Set(),
    };
  }

  async readReactors() {
    return [];
  }
}

/** Durable Object storage: survives a new Writer (hibernation, eviction) like the real one. */
class FakeStorage implements WriterStorage {
  readonly data = new Map<string, unknown>();
  async get(keys: string[]) {
    return new Map(keys.filter((k) => this.data.has(k)).map((k) => [k, this.data.get(k)] as const));
  }
  async put(entries: Record<string, unknown>) {
    for (const [k, v] of Object.entries(entries)) this.data.set(k, v);
  }
  async delete(key: string) {
    return this.data.delete(key);
  }
}

/** One room object's memory: a writer plus what its hooks saw, in order. */
const harness = (pg: FakePostgres, storage: FakeStorage) => {
  const events: string[] = [];
  const published: Entry[] = [];
  const announced: Entry[] = [];
  let lost = 0;
  let alarms = 0;
  const redactions: number[][] = [];
  const writer = new Writer(ROOM, () => pg, storage, {
    loadRoom: async () => {
      const state = await pg.readRoomState();
      if (!state) throw new ChatError(ErrorCode.NotFound, "unable to find the room");
      return state;
    },
    booted: ({ recent }) => events.push(`boot ${recent.map((e) => e.seq).join(",")}`),
    publish: (entries) => {
      published.push(...entries);
      for (const e of entries) events.push(`publish ${e.seq}`);
    },
    announce: (entries) => {
      announced.push(...entries);
      for (const e of entries) events.push(`announce ${e.seq}`);
    },
    lostRole: () => {
      lost++;
      events.push("lost role");
    },
    armAlarm: async () => {
      alarms++;
    },
    failureOf: (error) =>
      error instanceof ChatError ? failure(error.code, error.message) : failure(ErrorCode.Unavailable, "unavailable"),
    redact: async (seqs) => {
      redactions.push(seqs);
      events.push(`hold ${seqs.join(",")}`);
      return () => events.push("release");
    },
  }, { windowEntries: 3, bootKeys: [], pipeline: { maxBatchSize: 100, maxBatchBytes: 1 << 20 } });
  const send = (clientMsgId: string, userId = "u"): Promise<SendOutcome> =>
    new Promise((resolve) => {
      const pending: PendingEntry = {
        id: `id-${clientMsgId}`,
        kind: "message",
        userId,
        clientMsgId,
        text: clientMsgId,
        bytes: 10,
        deliver: (outcome) => {
          events.push(`deliver ${clientMsgId} ${outcome.ok ? outcome.message.seq : outcome.code}`);
          resolve(outcome);
        },
      };
      writer.submit(pending);
    });
  const submitEntry = (fields: Pick<PendingEntry, "kind" | "clientMsgId" | "text" | "target">, userId = "u"): Promise<SendOutcome> =>
    new Promise((resolve) => writer.submit({ id: `id-${fields.clientMsgId}`, userId, bytes: 10, ...fields, deliver: resolve }));
  return { writer, events, published, announced, send, submitEntry, redactions, lost: () => lost, alarms: () => alarms };
};

const seqOf = (outcome: SendOutcome): number | string => (outcome.ok ? outcome.message.seq : outcome.code);

describe("Writer: claim", () => {
  it("claims epoch = max(saved, Postgres) + 1, persisting it before the claim, and starts at Postgres' last_seq", async () => {
    const pg = new FakePostgres();
    pg.epoch = 4;
    pg.lastSeq = 0;
    const storage = new FakeStorage();
    storage.data.set(EPOCH_KEY, 7);
    const { writer } = harness(pg, storage);
    await writer.ensure();
    expect(pg.epoch).toBe(8);
    expect(storage.data.get(EPOCH_KEY)).toBe(8);
    expect(writer.lastSeq).toBe(0);
  });

  it("a claim that Postgres refuses (a newer epoch is there) fails the batch with unavailable and commits nothing", async () => {
    const pg = new FakePostgres();
    const storage = new FakeStorage();
    const { send } = harness(pg, storage);
    const realClaim = pg.claimWriter.bind(pg);
    pg.claimWriter = async () => null;
    expect(seqOf(await send("a"))).toBe("unavailable");
    expect(pg.rows).toEqual([]);
    pg.claimWriter = realClaim;
    expect(seqOf(await send("a"))).toBe(1);
  });

  it("a room that does not exist answers not_found and leaves no state behind", async () => {
    const pg = new FakePostgres();
    pg.exists = false;
    const { send, writer } = harness(pg, new FakeStorage());
    expect(seqOf(await send("a"))).toBe("not_found");
    expect(writer.record).toBeUndefined();
  });
});

describe("Writer: commit", () => {
  it("gives consecutive seqs in submission order; publishes before it delivers; resends get the original seq", async () => {
    const pg = new FakePostgres();
    const { send, events } = harness(pg, new FakeStorage());
    const outcomes = await Promise.all([send("a"), send("b"), send("a"), send("c")]);

    expect(outcomes.map(seqOf)).toEqual([1, 2, 1, 3]);
    expect(outcomes[2]).toMatchObject({ ok: true, duplicate: true });
    // Each entry is published before its sender hears the ack (a sender sees its own entry first).
    for (const seq of [1, 2, 3]) {
      const delivered = events.findIndex((e) => e.startsWith("deliver") && e.endsWith(` ${seq}`));
      expect(events.indexOf(`publish ${seq}`)).toBeGreaterThanOrEqual(0);
      expect(events.indexOf(`publish ${seq}`)).toBeLessThan(delivered);
    }
    // Submitted in the same turn as the batch's deliveries: it must start a pass of its own.
    expect(seqOf(await send("b"))).toBe(2); // already stored: Postgres dedups
    expect(pg.rows.map((r) => r.clientMsgId)).toEqual(["a", "b", "c"]);
  });

  it("every commit names the writer's epoch and the last_seq it expects", async () => {
    const pg = new FakePostgres();
    const { send } = harness(pg, new FakeStorage());
    await send("a");
    await send("b");
    expect(pg.commits).toEqual([
      { epoch: 1, expected: 0, size: 1 },
      { epoch: 1, expected: 1, size: 1 },
    ]);
  });
});

describe("Writer: unknown outcome", () => {
  it("a commit that did happen but whose answer was lost: unavailable, marker saved, and the entry is published before the next seq", async () => {
    const pg = new FakePostgres();
    const storage = new FakeStorage();
    const { send, events, published, alarms } = harness(pg, storage);
    expect(seqOf(await send("a"))).toBe(1);
    pg.fault = "after";
    expect(seqOf(await send("lost"))).toBe("unavailable");
    expect(storage.data.get(IN_DOUBT_KEY)).toBe(1); // sockets were told up to 1
    expect(alarms()).toBeGreaterThan(0);
    // The resend resolves against Postgres: same seq, not a new one; the stored entry was published first.
    expect(seqOf(await send("next"))).toBe(3);
    expect(published.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(events.indexOf("publish 2")).toBeLessThan(events.indexOf("publish 3"));
    expect(storage.data.has(IN_DOUBT_KEY)).toBe(false);
    expect(seqOf(await send("lost"))).toBe(2);
    expect(pg.rows.map((r) => r.seq)).toEqual([1, 2, 3]);
  });

  it("a commit that did not happen: nothing is published for it, and the next seq follows the last committed one", async () => {
    const pg = new FakePostgres();
    const storage = new FakeStorage();
    const { send, published } = harness(pg, storage);
    await send("a");
    pg.fault = "before";
    expect(seqOf(await send("b"))).toBe("unavailable");
    expect(seqOf(await send("c"))).toBe(2);
    expect(published.map((e) => e.clientMsgId)).toEqual(["a", "c"]);
    expect(storage.data.has(IN_DOUBT_KEY)).toBe(false);
  });

  it("the heal alarm's kick resolves an unknown outcome without any new send", async () => {
    const pg = new FakePostgres();
    const { send, writer, published } = harness(pg, new FakeStorage());
    await send("a");
    pg.fault = "after";
    await send("b");
    expect(writer.inDoubt).toBe(true);
    await writer.kick();
    expect(writer.inDoubt).toBe(false);
    expect(published.map((e) => e.seq)).toEqual([1, 2]);
  });

  it("a stale last_seq (rejected) commits nothing, resyncs, and the retry commits once", async () => {
    const pg = new FakePostgres();
    const { send, published } = harness(pg, new FakeStorage());
    await send("a");
    // Someone (an older instance before it was fenced, in a model with a hole) advanced last_seq.
    pg.rows.push({ roomId: "r", seq: 2, id: "x", kind: "message", userId: "v", text: "x", clientMsgId: "x", createdAt: "" });
    pg.lastSeq = 2;
    expect(seqOf(await send("b"))).toBe("unavailable");
    expect(published.map((e) => e.seq)).toEqual([1, 2]);
    expect(seqOf(await send("b"))).toBe(3);
  });
});

describe("Writer: fencing and wake-up", () => {
  it("a newer instance's claim makes the old one stop: its batch fails, then lostRole, and it never commits again", async () => {
    const pg = new FakePostgres();
    const storage = new FakeStorage();
    const old = harness(pg, storage);
    expect(seqOf(await old.send("a"))).toBe(1);
    // A second instance claims (its own storage: a replaced instance's storage is not shared).
    const fresh = harness(pg, new FakeStorage());
    await fresh.writer.ensure();
    pg.fault = "after"; // nothing: the stale statement matches no row before the fault matters
    expect(seqOf(await old.send("b"))).toBe("unavailable");
    expect(old.events.slice(-2)).toEqual(["deliver b unavailable", "lost role"]);
    expect(old.lost()).toBe(1);
    expect(pg.rows.map((r) => r.clientMsgId)).toEqual(["a"]);
    expect(seqOf(await fresh.send("c"))).toBe(2);
  });

  it("after hibernation (memory gone, storage kept) the next instance announces what the previous one left in doubt, once", async () => {
    const pg = new FakePostgres();
    const storage = new FakeStorage();
    const first = harness(pg, storage);
    await first.send("a");
    pg.fault = "after";
    expect(seqOf(await first.send("amb"))).toBe("unavailable");
    // Wake-up: a new writer over the same storage and Postgres.
    const second = harness(pg, storage);
    await second.writer.ensure();
    expect(second.announced.map((e) => e.seq)).toEqual([2]);
    expect(second.events).toEqual(["boot 1,2", "announce 2"]);
    expect(storage.data.has(IN_DOUBT_KEY)).toBe(false);
    // A third wake-up announces nothing again.
    const third = harness(pg, storage);
    await third.writer.ensure();
    expect(third.announced).toEqual([]);
    expect(seqOf(await third.send("n"))).toBe(3);
  });
});

describe("Writer: deletes and the mirror", () => {
  it("a delete takes its message out of the mirror before it commits; after an unknown outcome the mirror stays held until the resync has published what committed", async () => {
    const pg = new FakePostgres();
    const h = harness(pg, new FakeStorage());
    expect(seqOf(await h.send("a"))).toBe(1);
    pg.fault = "after"; // the delete commits, but its answer is lost
    expect(seqOf(await h.submitEntry({ kind: "delete", clientMsgId: "d", text: "", target: 1 }))).toBe("unavailable");
    expect(h.redactions).toEqual([[1]]);
    expect(h.events).not.toContain("release");
    // The next send resyncs first: the delete did commit (seq 2); only then is the mirror released.
    expect(seqOf(await h.send("b"))).toBe(3);
    const events = h.events;
    expect(events.indexOf("publish 2")).toBeGreaterThan(-1);
    expect(events.indexOf("release")).toBeGreaterThan(events.indexOf("publish 2"));
    expect(events.indexOf("release")).toBeLessThan(events.indexOf("publish 3"));
  });

  it("a delete that commits releases the mirror after its entry is published; one that is refused before the commit never holds it", async () => {
    const pg = new FakePostgres();
    const h = harness(pg, new FakeStorage());
    expect(seqOf(await h.send("a"))).toBe(1);
    expect(seqOf(await h.submitEntry({ kind: "delete", clientMsgId: "x", text: "", target: 9 }))).toBe("not_found");
    expect(h.redactions).toEqual([]);
    expect(seqOf(await h.submitEntry({ kind: "delete", clientMsgId: "d", text: "", target: 1 }))).toBe(2);
    expect(h.events.slice(-3)).toEqual(["hold 1", "publish 2", "release"]);
  });
});

describe("Writer: repeats in a planned batch", () => {
  it("a resend that lands in the same batch as its first copy and a change is answered with the first copy's seq (it was never answered: found by the chaos checker)", async () => {
    const pg = new FakePostgres();
    const h = harness(pg, new FakeStorage());
    expect(seqOf(await h.send("a"))).toBe(1);
    // Submitted in one turn: one batch holding an edit (so it is planned), a send and its resend.
    const edit = h.submitEntry({ kind: "edit", clientMsgId: "e1", text: "a2", target: 1 });
    const first = h.send("b");
    const again = h.send("b");
    const outcomes = await Promise.race([
      Promise.all([edit, first, again]).then((all) => all.map(seqOf)),
      new Promise<string[]>((resolve) => setTimeout(() => resolve(["never delivered"]), 500)),
    ]);
    expect(outcomes).toEqual([2, 3, 3]);
    expect(await again).toMatchObject({ ok: true, duplicate: true });
  });
});
