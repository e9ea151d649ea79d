// The write path under faults: eviction, Postgres down, ambiguous commits, slow Postgres and a
// stale writer. Each test injects the fault through the real proxy in front of real Postgres.

import { abortAllDurableObjects, env, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { COMMIT_STATEMENT, PostgresStore } from "../src/storage/postgres.js";
import { roomStub } from "../src/room/address.js";
import {
  api,
  eventually,
  isContiguous,
  sendAndWait,
  setFault,
  sleep,
  sql,
  storedMessages,
  TestSocket,
  testEnv,
  uniqueRoom,
} from "./helpers.js";

afterEach(async () => {
  await setFault({ mode: "none" });
});

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("eviction", () => {
  it("an object evicted mid-stream keeps history, and seq continues with no gap and no reuse", async () => {
    const room = uniqueRoom("evict");
    const writer = await TestSocket.open(room, { user: "w" });
    const reader = await TestSocket.open(room, { user: "r" });
    await Promise.all([writer.ready(), reader.ready()]);
    for (let i = 1; i <= 40; i++) writer.send({ type: "send", clientMsgId: `a${i}`, text: `a${i}` });
    await sleep(5);
    // Evict every object while sends are in flight: memory (seq counter, window, queue) is gone.
    await abortAllDurableObjects();
    await eventually("sockets closed by the eviction", () => (writer.closed && reader.closed ? true : undefined));

    // Whatever was acked before the eviction is durable; unacked sends are resent (same ids).
    const acked = new Set(writer.ofType("ack").map((a) => a.clientMsgId));
    const seenByReader = reader.seqs();
    expect(isContiguous(seenByReader)).toBe(true);
    const resumeFrom = seenByReader[seenByReader.length - 1] ?? 0;

    const writer2 = await TestSocket.open(room, { user: "w", last: 1 });
    const reader2 = await TestSocket.open(room, { user: "r", since: resumeFrom });
    await Promise.all([writer2.ready(), reader2.ready()]);
    for (let i = 1; i <= 40; i++) if (!acked.has(`a${i}`)) writer2.send({ type: "send", clientMsgId: `a${i}`, text: `a${i}` });
    for (let i = 1; i <= 10; i++) writer2.send({ type: "send", clientMsgId: `b${i}`, text: `b${i}` });
    await reader2.untilSeq(50);

    const stored = await storedMessages(room);
    expect(stored.map((m) => m.seq)).toEqual(range(1, 50));
    expect(new Set(stored.map((m) => m.clientMsgId)).size).toBe(50);
    // The reader's two sessions together saw 1..50 exactly once each, in order.
    expect([...seenByReader, ...reader2.seqs()]).toEqual(range(1, 50));
    for (const id of acked) expect(stored.some((m) => m.clientMsgId === id)).toBe(true);
    writer2.close();
    reader2.close();
  });
});

describe("Postgres unavailable", () => {
  it("sends get `unavailable` with their clientMsgId, nothing is broadcast, nothing acked is lost, and seq resumes after recovery", async () => {
    const room = uniqueRoom("pgdown");
    const writer = await TestSocket.open(room, { user: "w" });
    const reader = await TestSocket.open(room, { user: "r" });
    await Promise.all([writer.ready(), reader.ready()]);
    for (let i = 1; i <= 5; i++) expect((await sendAndWait(writer, `ok${i}`, `ok${i}`)).type).toBe("ack");
    await reader.untilSeq(5);

    await setFault({ mode: "refuse" });
    const failed = await sendAndWait(writer, "down1", "while down");
    expect(failed).toMatchObject({ type: "error", code: "unavailable", clientMsgId: "down1" });
    const failed2 = await sendAndWait(writer, "down2", "while down");
    expect(failed2).toMatchObject({ type: "error", code: "unavailable", clientMsgId: "down2" });
    await sleep(50);
    expect(reader.seqs()).toEqual(range(1, 5));

    await setFault({ mode: "none" });
    const ack = await sendAndWait(writer, "after", "after recovery");
    expect(ack).toMatchObject({ type: "ack", seq: 6 });
    await reader.untilSeq(6);
    expect(reader.seqs()).toEqual(range(1, 6));
    const stored = await storedMessages(room);
    expect(stored.map((m) => m.clientMsgId)).toEqual(["ok1", "ok2", "ok3", "ok4", "ok5", "after"]);
    writer.close();
    reader.close();
  });

  it("a room that cannot reach Postgres refuses the join with an `unavailable` frame and close 4503 instead of serving a guess", async () => {
    const room = uniqueRoom("pgdown-join");
    await setFault({ mode: "refuse" });
    const socket = await TestSocket.open(room, { user: "a" });
    await eventually("closed", () => socket.closed);
    expect(socket.frames).toEqual([{ type: "error", code: "unavailable", message: expect.stringContaining("unable to join") }]);
    expect(socket.closed?.code).toBe(4503);
  });

  it("slow Postgres: a send that times out gets `unavailable`; its retry commits it exactly once", async () => {
    const room = uniqueRoom("pgslow");
    const writer = await TestSocket.open(room, { user: "w" });
    const reader = await TestSocket.open(room, { user: "r" });
    await Promise.all([writer.ready(), reader.ready()]);
    expect((await sendAndWait(writer, "s1", "before")).type).toBe("ack");
    await setFault({ mode: "pause" });
    expect(await sendAndWait(writer, "s2", "slow", 10_000)).toMatchObject({ type: "error", code: "unavailable" });
    await setFault({ mode: "none" });
    writer.send({ type: "send", clientMsgId: "s2", text: "slow" });
    await eventually("retry ack", () => writer.ofType("ack").find((a) => a.clientMsgId === "s2"));
    await reader.untilSeq(2);
    await sleep(50);
    expect(reader.seqs()).toEqual([1, 2]);
    expect((await storedMessages(room)).map((m) => m.clientMsgId)).toEqual(["s1", "s2"]);
    writer.close();
    reader.close();
  });
});

describe("ambiguous commit", () => {
  it("connection cut after the commit statement was sent: the retry returns the original seq, every socket gets it once, no seq is reused", async () => {
    const room = uniqueRoom("ambig");
    const writer = await TestSocket.open(room, { user: "w" });
    const reader = await TestSocket.open(room, { user: "r" });
    await Promise.all([writer.ready(), reader.ready()]);
    for (let i = 1; i <= 3; i++) await sendAndWait(writer, `p${i}`, `p${i}`);

    await setFault({ mode: "cut-after", pattern: COMMIT_STATEMENT, once: true });
    const outcome = await sendAndWait(writer, "amb", "ambiguous");
    expect(outcome).toMatchObject({ type: "error", code: "unavailable", clientMsgId: "amb" });
    // It did commit (the proxy forwarded it): Postgres has it as seq 4.
    expect((await storedMessages(room)).map((m) => m.clientMsgId)).toEqual(["p1", "p2", "p3", "amb"]);

    writer.send({ type: "send", clientMsgId: "amb", text: "ambiguous" });
    const ack = await eventually("retry ack", () => writer.ofType("ack").find((a) => a.clientMsgId === "amb"));
    expect(ack.seq).toBe(4);
    expect((await sendAndWait(writer, "next", "next")).type).toBe("ack");
    await reader.untilSeq(5);
    await sleep(50);
    expect(reader.seqs()).toEqual([1, 2, 3, 4, 5]);
    expect(writer.seqs()).toEqual([1, 2, 3, 4, 5]);
    expect((await storedMessages(room)).map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    writer.close();
    reader.close();
  });

  it("an ambiguous commit that did happen is broadcast before any newer message, even if the sender never retries", async () => {
    const room = uniqueRoom("ambig2");
    const writer = await TestSocket.open(room, { user: "w" });
    const other = await TestSocket.open(room, { user: "o" });
    await Promise.all([writer.ready(), other.ready()]);
    await setFault({ mode: "cut-after", pattern: COMMIT_STATEMENT, once: true });
    expect((await sendAndWait(writer, "lost-ack", "x")).type).toBe("error");
    expect((await sendAndWait(other, "o1", "y")).type).toBe("ack");
    await writer.untilSeq(2);
    expect(writer.messages().map((m) => m.clientMsgId)).toEqual(["lost-ack", "o1"]);
    expect(other.messages().map((m) => m.clientMsgId)).toEqual(["lost-ack", "o1"]);
    writer.close();
    other.close();
  });

  it("an unknown outcome outlives the object's memory while its sockets stay open (hibernation): the next instance broadcasts what did commit", async () => {
    // Found by `npm run chaos -- --scenario quiet-cut`: the room went quiet after an ambiguous
    // commit, hibernated (memory gone, sockets open), and woke without announcing that seq.
    const room = uniqueRoom("ambig-hib");
    const writer = await TestSocket.open(room, { user: "w" });
    const reader = await TestSocket.open(room, { user: "r" });
    await Promise.all([writer.ready(), reader.ready()]);
    for (let i = 1; i <= 3; i++) await sendAndWait(writer, `p${i}`, `p${i}`);
    await setFault({ mode: "cut-after", pattern: COMMIT_STATEMENT, once: true });
    expect((await sendAndWait(writer, "amb", "ambiguous")).type).toBe("error");
    // What hibernation does to the object: a new instance with empty memory, same sockets.
    await runInDurableObject(roomStub(env, { tenant: "default", roomId: room }), (instance) => {
      const memory = instance as unknown as { writer: unknown; createWriter(): unknown };
      memory.writer = memory.createWriter();
    });
    expect((await api(`/v1/rooms/${room}/messages`, { user: "other", body: { clientMsgId: "o1", text: "after" } })).status).toBe(201);
    await reader.untilSeq(5);
    await sleep(50);
    expect(reader.messages().map((m) => m.clientMsgId)).toEqual(["p1", "p2", "p3", "amb", "o1"]);
    expect(writer.seqs()).toEqual([1, 2, 3, 4, 5]);
    writer.close();
    reader.close();
  });
});

describe("fencing", () => {
  it("a writer with an older epoch cannot commit (store level)", async () => {
    const room = { tenant: "default", roomId: uniqueRoom("fence") };
    const store = new PostgresStore({
      connectionString: testEnv.DATABASE_URL,
      statementTimeoutMs: 5000,
      idleTimeoutMs: 1000,
      maxConnections: 2,
    });
    expect(await store.claimWriter(room, 1)).toBeNull(); // rooms must exist before anyone writes
    expect(await store.createRoom(room, { visibility: "public", name: "f", metadata: {}, createdBy: "u", creatorRole: "admin" })).not.toBeNull();
    const old = await store.claimWriter(room, 1);
    expect(old).toEqual({ lastSeq: 0, writerEpoch: 1 });
    const msg = (id: string) => ({ id: crypto.randomUUID(), kind: "message" as const, userId: "u", clientMsgId: id, text: id });
    expect((await store.commitBatch(room, 1, 0, new Date().toISOString(), [msg("a")])).kind).toBe("committed");
    // A newer instance claims epoch 2; the old one can no longer commit, nor re-claim lower.
    expect(await store.claimWriter(room, 2)).toEqual({ lastSeq: 1, writerEpoch: 2 });
    expect(await store.claimWriter(room, 1)).toBeNull();
    expect(await store.claimWriter(room, 2)).toBeNull();
    expect((await store.commitBatch(room, 1, 1, new Date().toISOString(), [msg("stale")])).kind).toBe("rejected");
    // The new writer with a stale last_seq cannot reuse seq 1 either.
    expect((await store.commitBatch(room, 2, 0, new Date().toISOString(), [msg("reuse")])).kind).toBe("rejected");
    expect((await store.commitBatch(room, 2, 1, new Date().toISOString(), [msg("b")])).kind).toBe("committed");
    expect((await storedMessages(room.roomId)).map((m) => [m.seq, m.clientMsgId])).toEqual([
      [1, "a"],
      [2, "b"],
    ]);
    await store.close();
  });

  it("a room object fenced by a newer instance commits nothing, tells its clients to reconnect, and the next instance continues the seq", async () => {
    const room = uniqueRoom("fence-do");
    const writer = await TestSocket.open(room, { user: "w" });
    await writer.ready();
    expect((await sendAndWait(writer, "f1", "f1")).type).toBe("ack");
    // Another instance of this room claims the writer role (what the platform does when it
    // starts a replacement while this one still runs).
    await sql("UPDATE rooms SET writer_epoch = writer_epoch + 1 WHERE tenant = 'default' AND room_id = $1", [room]);
    expect(await sendAndWait(writer, "f2", "stale")).toMatchObject({ type: "error", code: "unavailable", clientMsgId: "f2" });
    await eventually("socket closed", () => writer.closed);
    expect(writer.closed?.code).toBe(4503);
    expect((await storedMessages(room)).map((m) => m.clientMsgId)).toEqual(["f1"]);

    const again = await TestSocket.open(room, { user: "w", since: 1 });
    await again.ready();
    expect(await sendAndWait(again, "f2", "stale")).toMatchObject({ type: "ack", seq: 2 });
    expect((await storedMessages(room)).map((m) => m.clientMsgId)).toEqual(["f1", "f2"]);
    again.close();
  });
});
