// Message lifecycle (issue 14): edits, deletes with redaction, reactions, replies and system
// entries, each an entry of the one stream, through the Worker inside workerd with real Postgres
// and Redis. Each test names the guarantee it checks.

import { abortAllDurableObjects } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { type Entry, EntryKind, type Message, type ReadyFrame, type ServerFrame } from "../src/protocol/frames.js";
import { applyChange, targetOf } from "../src/protocol/lifecycle.js";
import {
  acmeToken,
  api,
  eventually,
  hasRedis,
  mirroredStream,
  sendAndWait,
  setFault,
  setRedisDown,
  sleep,
  sql,
  TestSocket,
  uniqueRoom,
} from "./helpers.js";

type Outcome = Extract<ServerFrame, { type: "ack" | "error" }>;

/** Sends any entry frame and waits for its ack or error. */
const commit = async (socket: TestSocket, frame: Record<string, unknown> & { clientMsgId: string }): Promise<Outcome> => {
  const seen = socket.frames.length;
  socket.send(frame);
  return eventually(`outcome of ${frame.clientMsgId}`, () =>
    socket.frames
      .slice(seen)
      .find((f): f is Outcome => (f.type === "ack" || f.type === "error") && "clientMsgId" in f && f.clientMsgId === frame.clientMsgId),
  );
};

const ackSeq = (o: ServerFrame): number => {
  if (o.type !== "ack") throw new Error(`expected an ack, got ${JSON.stringify(o)}`);
  return o.seq;
};

const latestSeq = async (roomId: string): Promise<number> =>
  ((await api(`/v1/rooms/${roomId}/status`, { user: "ops" })).body as { latestSeq: number }).latestSeq;

const historyOf = async (roomId: string, user: string, query = "") =>
  (await api(`/v1/rooms/${roomId}/messages?limit=1000${query}`, { user })).body as { messages: Entry[]; latestSeq: number };

const rowOf = async (roomId: string, seq: number, tenant = "default") =>
  (
    await sql<{ text: string; deleted: boolean; version: number; kind: string; reply_count: number }>(
      "SELECT text, deleted, version, kind, reply_count FROM messages WHERE tenant = $1 AND room_id = $2 AND seq = $3",
      [tenant, roomId, seq],
    )
  )[0];

const joinFresh = async (roomId: string, user: string, since = 0): Promise<ReadyFrame> => {
  const s = await TestSocket.open(roomId, { user, since });
  const ready = await s.ready();
  s.close();
  return ready;
};

/** A client's view: messages by seq, every change entry applied with the shared rule. */
const applyAll = (view: Map<number, Message>, entries: readonly Entry[], viewer: string): void => {
  for (const entry of entries) {
    if (entry.kind === EntryKind.Message && !view.has(entry.seq)) view.set(entry.seq, entry);
    const target = targetOf(entry);
    const held = target === undefined ? undefined : view.get(target);
    if (held && target !== undefined) view.set(target, applyChange(held, entry, viewer));
  }
};

afterEach(async () => {
  await setFault({ mode: "none" });
  if (hasRedis()) await setRedisDown(false);
});

describe("edit", () => {
  it("the author changes the text exactly once per clientMsgId; every read serves the current form; others, missing targets and non-messages are refused and consume no seq", async () => {
    const roomId = uniqueRoom("edit");
    const alice = await TestSocket.open(roomId, { user: "alice", since: 0 });
    const bob = await TestSocket.open(roomId, { user: "bob", since: 0 });
    await Promise.all([alice.ready(), bob.ready()]);
    expect(ackSeq(await sendAndWait(alice, "m1", "helo"))).toBe(1);
    const edited = await commit(alice, { type: "edit", clientMsgId: "e1", target: 1, text: "hello" });
    expect(ackSeq(edited)).toBe(2);
    // A resend of the same edit is the same entry, not a second edit.
    expect(ackSeq(await commit(alice, { type: "edit", clientMsgId: "e1", target: 1, text: "hello" }))).toBe(2);
    await bob.untilSeq(2);
    expect(bob.messages().find((m) => m.seq === 2)).toMatchObject({ kind: "edit", target: 1, text: "hello", version: 1, userId: "alice" });
    // Refused, nothing committed: someone else's message, a missing one, an entry that is not a message.
    expect(await commit(bob, { type: "edit", clientMsgId: "b1", target: 1, text: "mine now" })).toMatchObject({ code: "forbidden" });
    expect(await commit(alice, { type: "edit", clientMsgId: "e2", target: 99, text: "x" })).toMatchObject({ code: "not_found" });
    expect(await commit(alice, { type: "edit", clientMsgId: "e3", target: 2, text: "x" })).toMatchObject({ code: "bad_request" });
    expect(await commit(alice, { type: "edit", clientMsgId: "e4", target: 1, text: "" })).toMatchObject({ code: "bad_request" });
    expect(await commit(alice, { type: "edit", clientMsgId: "e5", target: 1, text: "x", extra: 1 })).toMatchObject({ code: "bad_request" });
    expect(await latestSeq(roomId)).toBe(2);
    expect(ackSeq(await commit(alice, { type: "edit", clientMsgId: "e6", target: 1, text: "hello!" }))).toBe(3);
    // Current form everywhere: ready (window), REST history, Postgres, and ready after eviction (Postgres).
    const current = { seq: 1, text: "hello!", version: 2, updatedSeq: 3 };
    expect((await joinFresh(roomId, "carol")).messages[0]).toMatchObject(current);
    expect((await historyOf(roomId, "carol")).messages[0]).toMatchObject(current);
    expect((await historyOf(roomId, "carol")).messages[0]).toHaveProperty("editedAt");
    expect(await rowOf(roomId, 1)).toMatchObject({ text: "hello!", version: 2 });
    // The socket survived every refusal.
    expect(alice.closed).toBeUndefined();
    await abortAllDurableObjects();
    expect((await joinFresh(roomId, "carol")).messages[0]).toMatchObject(current);
    // The edit counts for nothing unread.
    expect(await joinFresh(roomId, "dave")).toMatchObject({ readSeq: 0, unread: 1 });
    for (const s of [alice, bob]) s.close();
  });
});

describe("delete", () => {
  it("redaction is real: after the delete commits, no read path serves the message's text or its edits' text (Postgres, ready, REST, window, after eviction, edge reads, Redis stream)", async () => {
    const roomId = uniqueRoom("redact");
    const alice = await TestSocket.open(roomId, { user: "alice", since: 0 });
    const bob = await TestSocket.open(roomId, { user: "bob", since: 0 });
    await Promise.all([alice.ready(), bob.ready()]);
    ackSeq(await sendAndWait(alice, "m1", "SECRET-ONE"));
    ackSeq(await sendAndWait(bob, "m2", "plain"));
    ackSeq(await commit(alice, { type: "edit", clientMsgId: "e1", target: 1, text: "SECRET-TWO" }));
    ackSeq(await sendAndWait(bob, "m4", "plain again"));
    if (hasRedis()) {
      await eventually("mirrored", async () => ((await api(`/v1/rooms/${roomId}/status`, { user: "ops" })).body as { mirrorLag: number }).mirrorLag === 0);
      // Before the delete, the edit's text is in the stream (an edit entry is served as committed).
      expect(JSON.stringify(await mirroredStream(roomId))).toContain("SECRET-TWO");
    }
    const deleted = await commit(alice, { type: "delete", clientMsgId: "d1", target: 1 });
    expect(ackSeq(deleted)).toBe(5);
    await bob.untilSeq(5);
    expect(bob.messages().find((m) => m.seq === 5)).toMatchObject({ kind: "delete", target: 1, redacts: [1, 3], text: "" });

    const leaks = (what: string, value: unknown) => {
      const json = JSON.stringify(value);
      expect(json.includes("SECRET-ONE") || json.includes("SECRET-TWO"), `${what} serves deleted text: ${json.slice(0, 300)}`).toBe(false);
    };
    leaks("Postgres", await sql("SELECT * FROM messages WHERE tenant = 'default' AND room_id = $1", [roomId]));
    expect(await rowOf(roomId, 1)).toMatchObject({ text: "", deleted: true });
    expect(await rowOf(roomId, 3)).toMatchObject({ text: "", kind: "edit" });
    const fromWindow = await joinFresh(roomId, "carol");
    leaks("ready (window)", fromWindow);
    expect(fromWindow.messages[0]).toMatchObject({ seq: 1, deleted: true, text: "", updatedSeq: 5 });
    expect(fromWindow.messages[0]).not.toHaveProperty("editedAt");
    leaks("REST history", await historyOf(roomId, "carol"));
    leaks("REST history after a cursor (edge path)", await historyOf(roomId, "carol", "&after=0"));
    if (hasRedis()) {
      await eventually("mirrored", async () => ((await api(`/v1/rooms/${roomId}/status`, { user: "ops" })).body as { mirrorLag: number }).mirrorLag === 0);
      const stream = await mirroredStream(roomId);
      leaks("Redis stream", stream);
      // The deleted message and its edit left the stream; the delete entry itself is there.
      expect(stream.map((m) => m.seq)).not.toContain(1);
      expect(stream.map((m) => m.seq)).not.toContain(3);
      expect(stream.map((m) => m.seq)).toContain(5);
    }
    await abortAllDurableObjects();
    leaks("ready after eviction (Postgres)", await joinFresh(roomId, "carol"));
    leaks("REST after eviction", await historyOf(roomId, "carol", "&after=0"));
    // A tombstone cannot be changed any more, and a second delete is a conflict; a resend is the original.
    const a2 = await TestSocket.open(roomId, { user: "alice", since: 5 });
    await a2.ready();
    expect(await commit(a2, { type: "edit", clientMsgId: "e9", target: 1, text: "back" })).toMatchObject({ code: "conflict" });
    expect(await commit(a2, { type: "react", clientMsgId: "r9", target: 1, emoji: "👍" })).toMatchObject({ code: "conflict", reason: "deleted" });
    expect(await commit(a2, { type: "send", clientMsgId: "s9", text: "re", replyTo: 1 })).toMatchObject({ code: "conflict" });
    expect(await commit(a2, { type: "delete", clientMsgId: "d2", target: 1 })).toMatchObject({ code: "conflict" });
    expect(ackSeq(await commit(a2, { type: "delete", clientMsgId: "d1", target: 1 }))).toBe(5);
    expect(await latestSeq(roomId)).toBe(5);
    for (const s of [alice, bob, a2]) s.close();
  });

  it("an edit and a delete of the same message in one batch: the edit's text is never stored nor sent to any socket", async () => {
    const roomId = uniqueRoom("redact-batch");
    const alice = await TestSocket.open(roomId, { user: "alice", since: 0 });
    const bob = await TestSocket.open(roomId, { user: "bob", since: 0 });
    await Promise.all([alice.ready(), bob.ready()]);
    ackSeq(await sendAndWait(alice, "m1", "first"));
    // Hold Postgres so the next frames queue behind one commit and form one batch.
    await setFault({ mode: "pause" });
    // Alice's own send first: her role is known, so her next frames reach the writer while it waits.
    alice.send({ type: "send", clientMsgId: "blocker", text: "blocker" });
    await sleep(100);
    alice.send({ type: "edit", clientMsgId: "e1", target: 1, text: "LEAKED-EDIT" });
    alice.send({ type: "delete", clientMsgId: "d1", target: 1 });
    await sleep(100);
    await setFault({ mode: "none" });
    await bob.untilSeq(4);
    // The blocker went first, alone; the edit and the delete came in the next batch, in order.
    expect(bob.messages().map((m) => `${m.seq}:${m.kind}`)).toEqual(["1:message", "2:message", "3:edit", "4:delete"]);
    expect(JSON.stringify(bob.frames)).not.toContain("LEAKED-EDIT");
    expect(JSON.stringify(alice.frames)).not.toContain("LEAKED-EDIT");
    expect(JSON.stringify(await sql("SELECT * FROM messages WHERE tenant = 'default' AND room_id = $1", [roomId]))).not.toContain("LEAKED-EDIT");
    const entries = bob.messages();
    expect(entries.find((m) => m.kind === "edit")).toMatchObject({ target: 1, text: "" });
    expect(entries.find((m) => m.kind === "delete")).toMatchObject({ target: 1 });
    for (const s of [alice, bob]) s.close();
  });

  it("authors delete their own; admins delete any; members cannot delete others'; unread drops with a deleted unread message", async () => {
    const roomId = uniqueRoom("del-roles");
    const owner = await acmeToken("owner");
    expect((await api("/v1/rooms", { token: owner, body: { roomId, visibility: "private" } })).status).toBe(201);
    for (const u of ["mia", "max"]) {
      expect((await api(`/v1/rooms/${roomId}/members/${u}`, { token: owner, method: "PUT", body: { role: "member" } })).status).toBe(200);
    }
    const mia = await acmeToken("mia");
    const max = await acmeToken("max");
    const post = async (token: string, id: string, text: string) =>
      ((await api(`/v1/rooms/${roomId}/messages`, { token, body: { clientMsgId: id, text } })).body as { message: Entry }).message.seq;
    const s1 = await post(mia, "a", "mia one");
    const s2 = await post(mia, "b", "mia two");
    const s3 = await post(owner, "c", "owner one");
    // max has read nothing: three unread.
    const unreadOfMax = async () =>
      ((await api("/v1/rooms", { token: max })).body as { rooms: Array<{ roomId: string; unread: number }> }).rooms.find((r) => r.roomId === roomId)?.unread;
    expect(await unreadOfMax()).toBe(3);
    const del = (token: string, seq: number, body?: unknown) => api(`/v1/rooms/${roomId}/messages/${seq}`, { token, method: "DELETE", ...(body ? { body } : {}) });
    expect((await del(max, s1)).status).toBe(403);
    expect((await del(mia, s3)).status).toBe(403);
    // REST error bodies carry the reason too.
    expect((await api(`/v1/rooms/${roomId}/messages/${s3}/reactions`, { token: max, body: { clientMsgId: "x1", emoji: "👍", remove: true } })).body).toMatchObject({
      error: { code: "conflict", reason: "not_reacted" },
    });
    expect((await del(mia, s1)).status).toBe(201);
    // Without a body the clientMsgId comes from the target: a retried DELETE is the same delete.
    expect((await del(mia, s1)).status).toBe(200);
    expect((await del(owner, s2)).status).toBe(201);
    expect(await unreadOfMax()).toBe(1);
    const maxSocket = await TestSocket.open(roomId, { user: "max", token: max, since: 0 });
    expect(await maxSocket.ready()).toMatchObject({ unread: 1 });
    maxSocket.close();
    expect((await del(owner, 999)).status).toBe(404);
    expect((await api(`/v1/rooms/${roomId}/messages/0`, { token: owner, method: "DELETE" })).status).toBe(400);
  });

  it.skipIf(!hasRedis())("fails closed: while the mirror cannot be redacted a delete is refused (unavailable) and commits nothing; it succeeds once Redis is back", async () => {
    const roomId = uniqueRoom("del-redis");
    const alice = await TestSocket.open(roomId, { user: "alice", since: 0 });
    await alice.ready();
    ackSeq(await sendAndWait(alice, "m1", "to delete"));
    await setRedisDown(true);
    expect(await commit(alice, { type: "delete", clientMsgId: "d1", target: 1 })).toMatchObject({ code: "unavailable" });
    // Sends and other changes still commit while Redis is down.
    expect(ackSeq(await commit(alice, { type: "edit", clientMsgId: "e1", target: 1, text: "edited" }))).toBe(2);
    expect(await rowOf(roomId, 1)).toMatchObject({ deleted: false });
    await setRedisDown(false);
    expect(ackSeq(await commit(alice, { type: "delete", clientMsgId: "d1", target: 1 }))).toBe(3);
    expect(await rowOf(roomId, 1)).toMatchObject({ deleted: true, text: "" });
    alice.close();
  });
});

describe("reactions", () => {
  it("are idempotent per (user, message, emoji), counted exactly, and carry `me` for the reader only", async () => {
    const roomId = uniqueRoom("react");
    const alice = await TestSocket.open(roomId, { user: "alice", since: 0 });
    const bob = await TestSocket.open(roomId, { user: "bob", since: 0 });
    await Promise.all([alice.ready(), bob.ready()]);
    ackSeq(await sendAndWait(alice, "m1", "react to me"));
    expect(ackSeq(await commit(alice, { type: "react", clientMsgId: "r1", target: 1, emoji: "👍" }))).toBe(2);
    expect(ackSeq(await commit(bob, { type: "react", clientMsgId: "r2", target: 1, emoji: "👍" }))).toBe(3);
    expect(ackSeq(await commit(bob, { type: "react", clientMsgId: "r3", target: 1, emoji: ":tada:" }))).toBe(4);
    // Idempotent: a second 👍 by bob is a conflict, a resend is the original, nothing is counted twice.
    expect(await commit(bob, { type: "react", clientMsgId: "r4", target: 1, emoji: "👍" })).toMatchObject({ code: "conflict", reason: "already_reacted" });
    expect(ackSeq(await commit(bob, { type: "react", clientMsgId: "r2", target: 1, emoji: "👍" }))).toBe(3);
    expect(await commit(alice, { type: "react", clientMsgId: "r5", target: 1, emoji: ":tada:", remove: true })).toMatchObject({ code: "conflict", reason: "not_reacted" });
    await alice.untilSeq(4);
    expect(alice.messages().find((m) => m.seq === 3)).toMatchObject({ kind: "reaction", emoji: "👍", count: 2, userId: "bob" });
    // Bad emoji: two graphemes, plain text, oversized shortcode, a space.
    for (const [i, emoji] of ["👍👍", "ab", `:${"x".repeat(40)}:`, " ", "👍 "].entries()) {
      expect(await commit(alice, { type: "react", clientMsgId: `bad${i}`, target: 1, emoji })).toMatchObject({ code: "bad_request" });
    }
    expect(await latestSeq(roomId)).toBe(4);
    const summary = (ready: ReadyFrame) => (ready.messages[0] as Message).reactions;
    expect(summary(await joinFresh(roomId, "bob"))).toEqual([
      { emoji: ":tada:", count: 1, me: true },
      { emoji: "👍", count: 2, me: true },
    ]);
    expect(summary(await joinFresh(roomId, "alice"))).toEqual([
      { emoji: ":tada:", count: 1 },
      { emoji: "👍", count: 2, me: true },
    ]);
    expect(ackSeq(await commit(bob, { type: "react", clientMsgId: "r6", target: 1, emoji: "👍", remove: true }))).toBe(5);
    const restForBob = (await historyOf(roomId, "bob")).messages[0] as Message;
    expect(restForBob.reactions).toEqual([
      { emoji: ":tada:", count: 1, me: true },
      { emoji: "👍", count: 1 },
    ]);
    // Over REST too, with the same rules; after eviction the counts come from Postgres.
    const carol = await acmeToken("carol"); // another tenant: the same room id is another room
    expect((await api(`/v1/rooms/${roomId}/messages/1/reactions`, { token: carol, body: { clientMsgId: "x", emoji: "👍" } })).status).toBe(404);
    expect((await api(`/v1/rooms/${roomId}/messages/1/reactions`, { user: "carol", body: { clientMsgId: "c1", emoji: "👍" } })).status).toBe(201);
    await abortAllDurableObjects();
    expect(summary(await joinFresh(roomId, "carol"))).toEqual([
      { emoji: ":tada:", count: 1 },
      { emoji: "👍", count: 2, me: true },
    ]);
    expect(await sql("SELECT emoji, user_id FROM reactions WHERE tenant = 'default' AND room_id = $1 ORDER BY emoji, user_id", [roomId])).toEqual([
      { emoji: ":tada:", user_id: "bob" },
      { emoji: "👍", user_id: "alice" },
      { emoji: "👍", user_id: "carol" },
    ]);
    for (const s of [alice, bob]) s.close();
  });
});

describe("replies and threads", () => {
  it("a reply names an existing top-level message; the parent carries its reply count and last reply; a thread pages its replies only", async () => {
    const roomId = uniqueRoom("thread");
    const alice = await TestSocket.open(roomId, { user: "alice", since: 0 });
    await alice.ready();
    ackSeq(await sendAndWait(alice, "p", "parent"));
    ackSeq(await sendAndWait(alice, "o", "other"));
    expect(ackSeq(await commit(alice, { type: "send", clientMsgId: "r1", text: "reply one", replyTo: 1 }))).toBe(3);
    ackSeq(await sendAndWait(alice, "o2", "other two"));
    expect(ackSeq(await commit(alice, { type: "send", clientMsgId: "r2", text: "reply two", replyTo: 1 }))).toBe(5);
    expect(await commit(alice, { type: "send", clientMsgId: "r3", text: "nested", replyTo: 3 })).toMatchObject({ code: "bad_request" });
    expect(await commit(alice, { type: "send", clientMsgId: "r4", text: "nowhere", replyTo: 77 })).toMatchObject({ code: "not_found" });
    expect(await commit(alice, { type: "send", clientMsgId: "r5", text: "bad", replyTo: 0 })).toMatchObject({ code: "bad_request" });
    const ready = await joinFresh(roomId, "bob");
    expect(ready.messages[0]).toMatchObject({ seq: 1, replyCount: 2, lastReplySeq: 5 });
    expect(ready.messages[2]).toMatchObject({ seq: 3, replyTo: 1 });
    expect((await historyOf(roomId, "bob", "&thread=1")).messages.map((m) => m.seq)).toEqual([3, 5]);
    expect((await historyOf(roomId, "bob", "&thread=1&after=3")).messages.map((m) => m.seq)).toEqual([5]);
    expect((await api(`/v1/rooms/${roomId}/messages?thread=x`, { user: "bob" })).status).toBe(400);
    expect(await rowOf(roomId, 1)).toMatchObject({ reply_count: 2 });
    // Replies are messages: they count as unread for others.
    expect(ready).toMatchObject({ unread: 5 });
    alice.close();
  });
});

describe("system entries", () => {
  it("joins, leaves, member and role changes and room updates are entries of the stream, in their place", async () => {
    const roomId = uniqueRoom("system");
    const owner = await acmeToken("owner");
    expect((await api("/v1/rooms", { token: owner, body: { roomId, visibility: "public" } })).status).toBe(201);
    const watcher = await TestSocket.open(roomId, { user: "owner", token: owner, since: 0 });
    await watcher.ready();
    const joe = await acmeToken("joe");
    expect((await api(`/v1/rooms/${roomId}/join`, { token: joe, method: "POST" })).status).toBe(200);
    expect((await api(`/v1/rooms/${roomId}/members/ann`, { token: owner, method: "PUT", body: { role: "viewer" } })).status).toBe(200);
    expect((await api(`/v1/rooms/${roomId}/members/ann`, { token: owner, method: "PUT", body: { role: "member" } })).status).toBe(200);
    // No change, no entry.
    expect((await api(`/v1/rooms/${roomId}/members/ann`, { token: owner, method: "PUT", body: { role: "member" } })).status).toBe(200);
    expect((await api(`/v1/rooms/${roomId}`, { token: owner, method: "PATCH", body: { name: "Launch" } })).status).toBe(200);
    expect((await api(`/v1/rooms/${roomId}/members/ann`, { token: owner, method: "DELETE" })).status).toBe(200);
    expect((await api(`/v1/rooms/${roomId}/leave`, { token: joe, method: "POST" })).status).toBe(200);
    await watcher.untilSeq(6);
    expect(watcher.messages().map((m) => [m.seq, m.kind, m.text])).toEqual([
      [1, "system", "joe joined"],
      [2, "system", "owner added ann as viewer"],
      [3, "system", "owner made ann member"],
      [4, "system", "owner renamed the room to Launch"],
      [5, "system", "owner removed ann"],
      [6, "system", "joe left"],
    ]);
    expect(watcher.messages()[2]).toMatchObject({ event: "role_changed", subject: "ann", role: "member", userId: "owner" });
    expect(watcher.messages()[3]).toMatchObject({ event: "room_updated", changes: { name: "Launch" } });
    // System entries are not unread messages.
    const ready = await (async () => {
      const s = await TestSocket.open(roomId, { user: "owner", token: owner, since: 0 });
      const r = await s.ready();
      s.close();
      return r;
    })();
    expect(ready.unread).toBe(0);
    expect(ready.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    watcher.close();
  });
});

describe("replay convergence", () => {
  it("a client that resumes from any cursor of a mixed run ends with the same messages as one that stayed connected (window and Postgres paths)", async () => {
    const roomId = uniqueRoom("converge");
    const users = ["u0", "u1", "u2"];
    const viewer = "u0";
    const sockets = await Promise.all(users.map((u) => TestSocket.open(roomId, { user: u, since: 0 })));
    await Promise.all(sockets.map((s) => s.ready()));
    let seed = 1414;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    const mine = new Map<string, number[]>(users.map((u) => [u, []]));
    const all: number[] = [];
    let refused = 0;
    for (let step = 0; step < 90; step++) {
      const u = Math.floor(rand() * users.length);
      const user = users[u] as string;
      const s = sockets[u] as TestSocket;
      const r = rand();
      const id = `${user}-${step}`;
      let out: Outcome;
      if (r < 0.35 || all.length === 0) out = await commit(s, { type: "send", clientMsgId: id, text: `t${step}` });
      else if (r < 0.5) out = await commit(s, { type: "send", clientMsgId: id, text: `reply ${step}`, replyTo: pick(all) });
      else if (r < 0.65) out = await commit(s, { type: "edit", clientMsgId: id, target: pick(mine.get(user)?.length ? (mine.get(user) as number[]) : all), text: `edit ${step}` });
      else if (r < 0.75) out = await commit(s, { type: "delete", clientMsgId: id, target: pick(all) });
      else out = await commit(s, { type: "react", clientMsgId: id, target: pick(all), emoji: pick(["👍", "🎉", ":fire:"]), ...(rand() < 0.3 ? { remove: true } : {}) });
      if (out.type === "ack") {
        if (r < 0.5 || all.length === 0) {
          all.push(out.seq);
          mine.get(user)?.push(out.seq);
        }
      } else refused++;
    }
    const latest = await latestSeq(roomId);
    expect(refused).toBeGreaterThan(5); // the run did exercise refusals…
    expect(latest).toBe(90 - refused); // …and none of them consumed a seq
    // Every user stayed connected: their views (with their own `me` flags) are the reference.
    const finals = new Map<string, Map<number, Message>>();
    const streams = new Map<string, Entry[]>();
    for (const [i, user] of users.entries()) {
      const stayed = sockets[i] as TestSocket;
      await stayed.untilSeq(latest);
      const view = new Map<number, Message>();
      applyAll(view, stayed.messages(), user);
      finals.set(user, view);
      streams.set(user, stayed.messages());
    }
    const resumeFrom = async (user: string, cursor: number) => {
      const view = new Map<number, Message>();
      applyAll(view, (streams.get(user) ?? []).filter((e) => e.seq <= cursor), user);
      const ready = await joinFresh(roomId, user, cursor);
      expect(ready.truncated).toBe(false);
      applyAll(view, ready.messages, user);
      return view;
    };
    for (const pass of ["window", "postgres"]) {
      for (let cursor = 0; cursor <= latest; cursor += pass === "window" ? 1 : 5) {
        // The user rotates (each has its own `me` flags; and socket opens are limited per user).
        const user = users[cursor % users.length] as string;
        const view = await resumeFrom(user, cursor);
        expect([...view.entries()], `${user} resumed from ${cursor} (${pass})`).toEqual([...(finals.get(user) ?? new Map()).entries()]);
      }
      // The second pass reads every ready from Postgres: a new instance.
      await abortAllDurableObjects();
    }
    const finalView = finals.get(viewer) ?? new Map<number, Message>();
    // And what the REST history serves is that same current form.
    const rest = (await historyOf(roomId, viewer)).messages.filter((m): m is Message => m.kind === "message");
    expect(rest).toEqual([...finalView.values()]);
    for (const s of sockets) s.close();
  });
});
