// Read cursors and exact unread counts, typing, presence (issue 13), through the Worker inside
// workerd with real Postgres. Each test names the guarantee it checks.

import { describe, expect, it } from "vitest";
import type { PresenceEntry, ReadyFrame } from "../src/protocol/frames.js";
import { api, eventually, sendAndWait, sleep, sql, TestSocket, uniqueRoom } from "./helpers.js";

const readyOf = async (s: TestSocket): Promise<ReadyFrame> => s.ready();

const cursorInPostgres = async (roomId: string, userId: string) =>
  (
    await sql<{ read_seq: string; read_count: string }>(
      "SELECT read_seq, read_count FROM read_cursors WHERE tenant = 'default' AND room_id = $1 AND user_id = $2",
      [roomId, userId],
    )
  )[0];

const roomsOf = async (user: string) =>
  ((await api("/v1/rooms", { user })).body as { rooms: Array<{ roomId: string; readSeq: number; unread: number }> }).rooms;

describe("read cursors and unread counts", () => {
  it("unread is exact across reconnects, resends, two devices and out-of-order cursor updates; own messages never count", async () => {
    const roomId = uniqueRoom("unread");
    const alice = await TestSocket.open(roomId, { user: "alice", since: 0 });
    await alice.ready();
    for (let i = 1; i <= 5; i++) expect((await sendAndWait(alice, `a${i}`, `a${i}`)).type).toBe("ack");
    // Bob has never read: all five are unread for him, none for alice (her sends moved her cursor).
    const bob = await TestSocket.open(roomId, { user: "bob", since: 0 });
    expect(await readyOf(bob)).toMatchObject({ readSeq: 0, unread: 5 });
    const alice2 = await TestSocket.open(roomId, { user: "alice", since: 5 });
    expect(await readyOf(alice2)).toMatchObject({ readSeq: 5, unread: 0 });
    // Out of order: 4, then 2 (ignored: cursors never move back), then 3 (ignored).
    bob.send({ type: "read", seq: 4 });
    bob.send({ type: "read", seq: 2 });
    bob.send({ type: "read", seq: 3 });
    await eventually("receipt", () => alice.ofType("receipt").find((r) => r.userId === "bob" && r.seq === 4));
    await sleep(400); // past the coalescing interval: durable now
    expect(alice.ofType("receipt").filter((r) => r.userId === "bob").map((r) => r.seq)).toEqual([4]);
    expect(await cursorInPostgres(roomId, "bob")).toEqual({ read_seq: "4", read_count: "4" });
    bob.close();
    // Reconnect on a second device: the cursor and the count survive.
    const bobPhone = await TestSocket.open(roomId, { user: "bob", since: 5 });
    expect(await readyOf(bobPhone)).toMatchObject({ readSeq: 4, unread: 1 });
    // A resend of an already committed message adds nothing.
    expect((await sendAndWait(alice, "a5", "a5")).type).toBe("ack");
    expect((await sendAndWait(alice, "a6", "a6")).type).toBe("ack");
    const bobLaptop = await TestSocket.open(roomId, { user: "bob", since: 6 });
    expect(await readyOf(bobLaptop)).toMatchObject({ readSeq: 4, unread: 2 });
    // Bob sends: his cursor moves to his own message, unread 0 everywhere.
    expect((await sendAndWait(bobLaptop, "b1", "b1")).type).toBe("ack");
    const bobTablet = await TestSocket.open(roomId, { user: "bob", since: 7 });
    expect(await readyOf(bobTablet)).toMatchObject({ readSeq: 7, unread: 0 });
    expect(await cursorInPostgres(roomId, "bob")).toEqual({ read_seq: "7", read_count: "7" });
    // The rooms list agrees, from counters (no scan of messages).
    expect((await roomsOf("bob")).find((r) => r.roomId === roomId)).toMatchObject({ readSeq: 7, unread: 0 });
    expect((await sendAndWait(alice, "a8", "a8")).type).toBe("ack");
    expect((await roomsOf("bob")).find((r) => r.roomId === roomId)).toMatchObject({ readSeq: 7, unread: 1 });
    expect((await roomsOf("alice")).find((r) => r.roomId === roomId)).toMatchObject({ readSeq: 8, unread: 0 });
    for (const s of [alice, alice2, bobPhone, bobLaptop, bobTablet]) s.close();
  });

  it("the rooms list counts exactly what ready counts, for every user, after a random run of sends and reads", async () => {
    const roomId = uniqueRoom("unread-rand");
    const users = ["u0", "u1", "u2", "u3"];
    const sockets = await Promise.all(users.map((u) => TestSocket.open(roomId, { user: u, since: 0 })));
    await Promise.all(sockets.map((s) => s.ready()));
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let step = 0; step < 60; step++) {
      const i = Math.floor(rand() * users.length);
      const s = sockets[i] as TestSocket;
      if (rand() < 0.6) await sendAndWait(s, `m${step}`, `m${step}`);
      else {
        const top = s.seqs().at(-1) ?? 0;
        if (top > 0) s.send({ type: "read", seq: Math.max(1, Math.floor(rand() * top) + 1) });
      }
    }
    await sleep(400);
    const listed = await Promise.all(users.map(async (u) => (await roomsOf(u)).find((r) => r.roomId === roomId)));
    for (const [i, u] of users.entries()) {
      const fresh = await TestSocket.open(roomId, { user: u, last: 1 });
      const ready = await fresh.ready();
      const row = listed[i];
      if (row) expect({ u, readSeq: row.readSeq, unread: row.unread }).toEqual({ u, readSeq: ready.readSeq, unread: ready.unread });
      // And by definition: messages of others after the cursor.
      const others = (
        await sql<{ n: string }>(
          "SELECT count(*) AS n FROM messages WHERE tenant = 'default' AND room_id = $1 AND seq > $2 AND user_id <> $3 AND kind = 'message'",
          [roomId, ready.readSeq, u],
        )
      )[0];
      expect({ u, unread: ready.unread }).toEqual({ u, unread: Number(others?.n) });
      fresh.close();
    }
    for (const s of sockets) s.close();
  });

  it("bad cursors get typed errors and the socket stays open: ahead of the room, negative, non-integer, unknown fields", async () => {
    const roomId = uniqueRoom("badread");
    const s = await TestSocket.open(roomId, { user: "c", since: 0 });
    await s.ready();
    await sendAndWait(s, "x1", "x");
    for (const frame of [{ type: "read", seq: 5 }, { type: "read", seq: -1 }, { type: "read", seq: 1.5 }, { type: "read", seq: 1, extra: true }]) {
      const before = s.ofType("error").length;
      s.send(frame);
      await eventually("error", () => (s.ofType("error").length > before ? true : undefined));
      expect(s.ofType("error").at(-1)?.code).toBe("bad_request");
    }
    expect((await sendAndWait(s, "x2", "still open")).type).toBe("ack");
    await sleep(300);
    expect(await cursorInPostgres(roomId, "c")).toEqual({ read_seq: "2", read_count: "2" });
    s.close();
  });
});

/** A client-side presence model: the snapshot, then every delta. */
const presenceModel = (s: TestSocket): Set<string> => {
  const ready = s.frames.find((f) => f.type === "ready") as ReadyFrame | undefined;
  const online = new Set((ready?.presence ?? []).map((p: PresenceEntry) => p.userId));
  for (const f of s.ofType("presence")) {
    if (f.online) online.add(f.userId);
    else online.delete(f.userId);
  }
  return online;
};

describe("presence", () => {
  it("golden frames: the snapshot includes me, a newcomer is announced once, a leaver after the grace period", async () => {
    const roomId = uniqueRoom("pres-golden");
    const a = await TestSocket.open(roomId, { user: "ann", since: 0 });
    expect((await a.ready()).presence).toEqual([{ userId: "ann" }]);
    const b = await TestSocket.open(roomId, { user: "ben", since: 0 });
    expect((await b.ready()).presence).toEqual([{ userId: "ann" }, { userId: "ben" }]);
    await eventually("ben online", () => a.ofType("presence")[0]);
    expect(a.ofType("presence")).toEqual([{ type: "presence", userId: "ben", online: true }]);
    b.send({ type: "presence", data: { status: "away" } });
    await eventually("data", () => a.ofType("presence")[1]);
    expect(a.ofType("presence")[1]).toEqual({ type: "presence", userId: "ben", online: true, data: { status: "away" } });
    b.close();
    await sleep(800);
    expect(a.ofType("presence").length).toBe(2); // still inside the grace period
    await eventually("ben offline", () => a.ofType("presence")[2], 3000);
    expect(a.ofType("presence")[2]).toEqual({ type: "presence", userId: "ben", online: false });
    const status = (await api(`/v1/rooms/${roomId}/status`, { user: "ann" })).body as { users: number; sockets: number };
    expect(status).toMatchObject({ users: 1, sockets: 1 });
    a.close();
  });

  it("a reconnect within the grace period produces no offline/online pair; devices of one user count once", async () => {
    const roomId = uniqueRoom("pres-flap");
    const watcher = await TestSocket.open(roomId, { user: "w", since: 0 });
    await watcher.ready();
    const phone = await TestSocket.open(roomId, { user: "flap", since: 0 });
    await phone.ready();
    const laptop = await TestSocket.open(roomId, { user: "flap", since: 0 });
    await laptop.ready();
    await sleep(100);
    phone.close();
    laptop.close();
    await sleep(300);
    const again = await TestSocket.open(roomId, { user: "flap", since: 0 });
    await again.ready();
    await sleep(2000);
    expect(watcher.ofType("presence").filter((p) => p.userId === "flap")).toEqual([{ type: "presence", userId: "flap", online: true }]);
    watcher.close();
    again.close();
  });

  it("snapshot + deltas stay consistent with the room under concurrent joins and leaves (every client agrees with the room)", async () => {
    const roomId = uniqueRoom("pres-race");
    const open: TestSocket[] = [];
    for (let round = 0; round < 6; round++) {
      const joins = await Promise.all(Array.from({ length: 5 }, (_, i) => TestSocket.open(roomId, { user: `p${(round * 3 + i) % 9}`, since: 0 })));
      open.push(...joins);
      // Close a few at the same time as the joins settle.
      for (const s of open.splice(0, 3)) s.close();
      await Promise.all(joins.map((s) => s.ready().catch(() => undefined)));
    }
    await sleep(2200); // every grace period is over
    const truth = ((await api(`/v1/rooms/${roomId}/presence`, { user: "observer" })).body as { presence: PresenceEntry[] }).presence
      .map((p) => p.userId)
      .sort();
    expect(truth.length).toBeGreaterThan(0);
    for (const s of open) expect([...presenceModel(s)].sort()).toEqual(truth);
    for (const s of open) s.close();
  });

  it("oversized presence data is refused (too_large) and nothing is stored or broadcast", async () => {
    const roomId = uniqueRoom("pres-big");
    const a = await TestSocket.open(roomId, { user: "a", since: 0 });
    const b = await TestSocket.open(roomId, { user: "b", since: 0 });
    await Promise.all([a.ready(), b.ready()]);
    a.send({ type: "presence", data: { blob: "x".repeat(2000) } });
    await eventually("error", () => a.ofType("error")[0]);
    expect(a.ofType("error")[0]?.code).toBe("too_large");
    await sleep(50);
    expect(b.ofType("presence").filter((p) => p.userId === "a" && p.data)).toEqual([]);
    a.close();
    b.close();
  });
});

describe("typing", () => {
  it("others see who types (not themselves); a flood is one broadcast; a send, a stop, a close or 5 s of silence ends it", async () => {
    const roomId = uniqueRoom("typing");
    const ann = await TestSocket.open(roomId, { user: "ann", since: 0 });
    const bob = await TestSocket.open(roomId, { user: "bob", since: 0 });
    await Promise.all([ann.ready(), bob.ready()]);
    for (let i = 0; i < 50; i++) ann.send({ type: "typing" });
    await eventually("typing", () => bob.ofType("typing")[0]);
    await sleep(100);
    expect(bob.ofType("typing")).toEqual([{ type: "typing", userIds: ["ann"] }]);
    expect(ann.ofType("typing")).toEqual([{ type: "typing", userIds: [] }]);
    // A message ends it at once.
    await sendAndWait(ann, "t1", "done typing");
    await eventually("cleared", () => bob.ofType("typing")[1]);
    expect(bob.ofType("typing")[1]).toEqual({ type: "typing", userIds: [] });
    // Stop frame.
    bob.send({ type: "typing" });
    await eventually("bob typing", () => ann.ofType("typing").find((t) => t.userIds.includes("bob")));
    bob.send({ type: "typing", stop: true });
    await eventually("bob stopped", () => (ann.ofType("typing").at(-1)?.userIds.length === 0 ? true : undefined));
    // Expiry without a refresh.
    await sleep(600);
    ann.send({ type: "typing" });
    await eventually("ann typing again", () => (bob.ofType("typing").at(-1)?.userIds[0] === "ann" ? true : undefined));
    const before = bob.ofType("typing").length;
    await sleep(4500);
    expect(bob.ofType("typing").length).toBe(before);
    await eventually("expired", () => (bob.ofType("typing").at(-1)?.userIds.length === 0 ? true : undefined), 2000);
    // Close of the last socket.
    ann.send({ type: "typing" });
    await eventually("typing once more", () => (bob.ofType("typing").at(-1)?.userIds[0] === "ann" ? true : undefined));
    ann.close();
    await eventually("closed clears", () => (bob.ofType("typing").at(-1)?.userIds.length === 0 ? true : undefined), 2000);
    expect(await sql("SELECT 1 FROM messages WHERE room_id = $1 AND kind <> 'message'", [roomId])).toEqual([]);
    bob.close();
  });
});

describe("REST: read cursor, presence, profiles", () => {
  it("PUT …/read moves the cursor durably and answers readSeq and unread; ahead of the room is bad_request; never back", async () => {
    const roomId = uniqueRoom("rest-read");
    for (let i = 1; i <= 4; i++) expect((await api(`/v1/rooms/${roomId}/messages`, { user: "w", body: { clientMsgId: `m${i}`, text: "x" } })).status).toBe(201);
    const read = (seq: unknown, user = "r") => api(`/v1/rooms/${roomId}/read`, { user, method: "PUT", body: { seq } });
    expect((await read(3)).body).toEqual({ readSeq: 3, unread: 1 });
    expect((await cursorInPostgres(roomId, "r"))?.read_seq).toBe("3");
    expect((await read(1)).body).toEqual({ readSeq: 3, unread: 1 });
    expect((await read(9)).status).toBe(400);
    expect((await read(-2)).status).toBe(400);
    expect((await api(`/v1/rooms/${roomId}/read`, { user: "r", method: "PUT", body: { seq: 2, more: 1 } })).status).toBe(400);
    const presence = await api(`/v1/rooms/${roomId}/presence`, { user: "r" });
    expect(presence.body).toEqual({ users: 0, sockets: 0, presence: [] });
  });

  it("profiles: set mine, read one and a batch; the token's name stands until a profile is set; tenants never see each other's", async () => {
    const { acmeToken } = await import("./helpers.js");
    const me = `prof-${Date.now().toString(36)}`;
    const put = await api("/v1/users/me", { user: me, method: "PUT", body: { name: "Zoë", avatarUrl: "https://img.example/z.png", data: { tz: "UTC" } } });
    expect(put.status).toBe(200);
    expect((put.body as { profile: unknown }).profile).toMatchObject({ userId: me, name: "Zoë", avatarUrl: "https://img.example/z.png", data: { tz: "UTC" } });
    expect(((await api(`/v1/users/${me}`, { user: "someone" })).body as { profile: { name: string } }).profile.name).toBe("Zoë");
    const batch = (await api(`/v1/users?ids=${me},nobody-${me}`, { user: "someone" })).body as { profiles: Array<{ userId: string; name: string | null }> };
    expect(batch.profiles.map((p) => [p.userId, p.name])).toEqual([
      [me, "Zoë"],
      [`nobody-${me}`, null],
    ]);
    // Another tenant's token does not see the default tenant's profile.
    const other = await api(`/v1/users/${me}`, { token: await acmeToken("spy") });
    expect((other.body as { profile: { name: string | null } }).profile.name).toBeNull();
    // Bad input: typed errors, nothing stored.
    for (const body of [{ name: "" }, { name: "x".repeat(101) }, { avatarUrl: "javascript:alert(1)" }, { data: { big: "x".repeat(5000) } }, { nick: "n" }, {}]) {
      const res = await api("/v1/users/me", { user: me, method: "PUT", body });
      expect({ body, status: res.status }).toEqual({ body, status: res.status === 413 ? 413 : 400 });
    }
    expect(((await api(`/v1/users/${me}`, { user: me })).body as { profile: { name: string } }).profile.name).toBe("Zoë");
    expect((await api("/v1/users?ids=", { user: me })).status).toBe(400);
  });
});

describe("tenant isolation for cursors and presence", () => {
  it("another tenant's token addresses a different room: its read and presence calls never reach this room's cursors or sockets", async () => {
    const { acmeToken } = await import("./helpers.js");
    const roomId = uniqueRoom("iso-live");
    const here = await TestSocket.open(roomId, { user: "local", since: 0 });
    await here.ready();
    await sendAndWait(here, "l1", "local only");
    const spy = await acmeToken("local");
    // Same room id, same user id, other tenant: that room does not exist there (acme has no open rooms).
    expect((await api(`/v1/rooms/${roomId}/read`, { token: spy, method: "PUT", body: { seq: 1 } })).status).toBe(404);
    expect((await api(`/v1/rooms/${roomId}/presence`, { token: spy })).status).toBe(404);
    expect(await sql("SELECT 1 FROM read_cursors WHERE tenant = 'acme' AND room_id = $1", [roomId])).toEqual([]);
    expect(((await api(`/v1/rooms/${roomId}/presence`, { user: "local" })).body as { users: number }).users).toBe(1);
    here.close();
  });
});
