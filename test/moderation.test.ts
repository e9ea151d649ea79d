// Moderation through the Worker, inside workerd, against real Postgres and Redis: room bans (the
// socket closes at once; connect, REST and edge reads and sends are refused; nothing of theirs
// commits after the ban), timed mutes, reports, tenant bans across rooms, and the before-commit
// hook against a real local HTTP receiver (test/hook-server.ts).

import { describe, expect, it } from "vitest";
import { parseTenants } from "../src/config.js";
import type { Entry, ErrorFrame, SystemEntry } from "../src/protocol/frames.js";
import {
  api,
  eventually,
  hasRedis,
  sendAndWait,
  sleep,
  sql,
  storedMessages,
  TestSocket,
  testEnv,
  uniqueRoom,
  workerFetchWith,
  BASE,
} from "./helpers.js";
import { serverApi, serverKey, tenantToken } from "./server-helpers.js";

let admins = 0;
/**
 * A public room of the default tenant with alice as its admin and bob as a member. The room is
 * created by a fresh user (room creations are limited per user across rooms) who makes alice admin.
 */
const roomWithBob = async (bob = "bob"): Promise<string> => {
  const roomId = uniqueRoom("mod");
  const creator = `creator-${Date.now().toString(36)}-${admins++}`;
  expect((await api("/v1/rooms", { user: creator, body: { roomId } })).status).toBe(201);
  expect((await api(`/v1/rooms/${roomId}/members/alice`, { method: "PUT", user: creator, body: { role: "admin" } })).status).toBe(200);
  expect((await api(`/v1/rooms/${roomId}/join`, { method: "POST", user: bob })).status).toBe(200);
  return roomId;
};

const systemEntries = (entries: Entry[], event: string): SystemEntry[] =>
  entries.filter((e): e is SystemEntry => e.kind === "system" && (e as SystemEntry).event === event);

const refusedJoin = async (roomId: string, options: { user: string; token?: string }): Promise<{ code: number; error?: ErrorFrame }> => {
  const socket = await TestSocket.open(roomId, options);
  await eventually("the refusal", () => socket.closed);
  return { code: socket.closed?.code ?? 0, error: socket.ofType("error")[0] };
};

describe("room bans", () => {
  it("a ban closes the user's open socket at once (4451) and refuses their connect, REST read, edge read and send; nothing of theirs commits", async () => {
    const roomId = await roomWithBob();
    for (let i = 0; i < 4; i++) expect((await api(`/v1/rooms/${roomId}/messages`, { user: "alice", body: { clientMsgId: `a-${i}`, text: `hi ${i}` } })).status).toBe(201);
    const bob = await TestSocket.open(roomId, { user: "bob" });
    await bob.ready();
    if (hasRedis()) {
      // Before the ban bob reads a full page at the edge (Redis), so the refusal below is the edge path's.
      await eventually("an edge read", async () => (await api(`/v1/rooms/${roomId}/messages?after=0&limit=2`, { user: "bob" })).headers.get("x-chat-source") === "redis");
    }
    const ban = await api(`/v1/rooms/${roomId}/bans/bob`, { method: "PUT", user: "alice", body: { reason: "spam" } });
    expect(ban.status).toBe(200);
    expect((ban.body as { restriction: { kind: string; until: null } }).restriction).toMatchObject({ kind: "ban", until: null, reason: "spam" });
    // At once: the call returned after the socket was closed.
    await eventually("bob's socket closed", () => bob.closed);
    expect(bob.closed?.code).toBe(4451);
    expect(bob.ofType("error").at(-1)?.code).toBe("banned");

    const join = await refusedJoin(roomId, { user: "bob" });
    expect(join.code).toBe(4451);
    expect(join.error?.code).toBe("banned");
    const edge = await api(`/v1/rooms/${roomId}/messages?after=0&limit=2`, { user: "bob" });
    expect(edge.status).toBe(403);
    expect((edge.body as { error: { code: string } }).error.code).toBe("banned");
    expect((await api(`/v1/rooms/${roomId}/messages`, { user: "bob" })).status).toBe(403);
    const send = await api(`/v1/rooms/${roomId}/messages`, { user: "bob", body: { clientMsgId: "b-1", text: "let me in" } });
    expect(send.status).toBe(403);
    expect((send.body as { error: { code: string } }).error.code).toBe("banned");
    expect((await storedMessages(roomId)).some((m) => m.userId === "bob" && m.clientMsgId === "b-1")).toBe(false);
    // Joining again is refused too (a ban is not a membership).
    expect((await api(`/v1/rooms/${roomId}/join`, { method: "POST", user: "bob" })).status).toBe(403);

    // The timeline says what happened: bob was removed (he was a member), then banned.
    const history = (await api(`/v1/rooms/${roomId}/messages?limit=50`, { user: "alice" })).body as { messages: Entry[] };
    expect(systemEntries(history.messages, "member_removed").map((e) => e.subject)).toEqual(["bob"]);
    expect(systemEntries(history.messages, "member_banned").map((e) => e.subject)).toEqual(["bob"]);

    // Lifted: bob reads the public room again, and may join again.
    expect((await api(`/v1/rooms/${roomId}/bans/bob`, { method: "DELETE", user: "alice" })).body).toEqual({ lifted: true });
    expect((await api(`/v1/rooms/${roomId}/messages`, { user: "bob" })).status).toBe(200);
    expect((await api(`/v1/rooms/${roomId}/join`, { method: "POST", user: "bob" })).status).toBe(200);
    const again = await TestSocket.open(roomId, { user: "bob" });
    await again.ready();
    again.close();
  });

  it("a banned user's concurrent sends while the ban lands: none is committed after the ban's entry (30 runs)", async () => {
    for (let run = 0; run < 30; run++) {
      // A fresh "bob" per run: the sends of one user across rooms are limited (LIMIT_SEND).
      const bobId = `bob-${run}-${Date.now().toString(36)}`;
      const roomId = await roomWithBob(bobId);
      const bob = await TestSocket.open(roomId, { user: bobId });
      await bob.ready();
      const rest = Array.from({ length: 6 }, (_, i) =>
        api(`/v1/rooms/${roomId}/messages`, { user: bobId, body: { clientMsgId: `h-${i}`, text: `rest ${i}` } }),
      );
      for (let i = 0; i < 10; i++) bob.send({ type: "send", clientMsgId: `s-${i}`, text: `socket ${i}` });
      // The ban lands after a random part of the burst.
      await sleep(run % 4);
      const ban = api(`/v1/rooms/${roomId}/bans/${bobId}`, { method: "PUT", user: "alice" });
      const [banned, ...answers] = await Promise.all([ban, ...rest]);
      expect(banned.status).toBe(200);
      for (const a of answers) expect([201, 403]).toContain(a.status);
      const stored = await storedMessages(roomId);
      const banSeq = (await sql<{ seq: string }>(
        "SELECT seq FROM messages WHERE tenant = 'default' AND room_id = $1 AND kind = 'system' AND data->>'event' = 'member_banned'",
        [roomId],
      ))[0]?.seq;
      expect(banSeq, `run ${run}: the ban's entry`).toBeDefined();
      const bobs = stored.filter((m) => m.userId === bobId).map((m) => m.seq);
      expect(bobs.every((seq) => seq < Number(banSeq)), `run ${run}: bob's seqs ${bobs} vs ban ${banSeq}`).toBe(true);
      // Every REST send that was told "committed" is there; every refusal is a typed ban or rate error.
      for (const a of answers) {
        if (a.status === 201) expect(bobs).toContain((a.body as { message: Entry }).message.seq);
        else expect((a.body as { error: { code: string } }).error.code).toBe("banned");
      }
      bob.close();
    }
  }, 120_000);

  it("only admins ban, never another admin or themselves; the server API may", async () => {
    const roomId = await roomWithBob();
    expect((await api(`/v1/rooms/${roomId}/bans/alice`, { method: "PUT", user: "bob" })).status).toBe(403);
    expect((await api(`/v1/rooms/${roomId}/bans/alice`, { method: "PUT", user: "alice" })).status).toBe(400);
    expect((await api(`/v1/rooms/${roomId}/members/carol`, { method: "PUT", user: "alice", body: { role: "admin" } })).status).toBe(200);
    const other = await api(`/v1/rooms/${roomId}/bans/carol`, { method: "PUT", user: "alice" });
    expect(other.status).toBe(403);
    const { key } = await serverKey("default");
    expect((await serverApi(key, `/v1/server/rooms/${roomId}/bans/carol`, { method: "PUT", body: { durationS: 60 } })).status).toBe(200);
    expect((await api(`/v1/rooms/${roomId}`, { user: "carol" })).status).toBe(403);
  });
});

describe("mutes", () => {
  it("a muted user reads but cannot send (typed muted, nothing committed, socket open), until the mute expires", async () => {
    const roomId = await roomWithBob();
    const bob = await TestSocket.open(roomId, { user: "bob" });
    await bob.ready();
    const mute = await api(`/v1/rooms/${roomId}/mutes/bob`, { method: "PUT", user: "alice", body: { durationS: 2 } });
    expect(mute.status).toBe(200);
    const until = (mute.body as { restriction: { until: string } }).restriction.until;
    expect(Date.parse(until)).toBeGreaterThan(Date.now());
    const refused = await sendAndWait(bob, "m-1", "can you hear me");
    expect(refused).toMatchObject({ type: "error", code: "muted", clientMsgId: "m-1" });
    expect(bob.closed).toBeUndefined();
    const rest = await api(`/v1/rooms/${roomId}/messages`, { user: "bob", body: { clientMsgId: "m-2", text: "or me" } });
    expect((rest.body as { error: { code: string } }).error.code).toBe("muted");
    expect((await api(`/v1/rooms/${roomId}/messages`, { user: "bob" })).status).toBe(200);
    expect((await storedMessages(roomId)).some((m) => m.userId === "bob" && m.clientMsgId.startsWith("m-"))).toBe(false);
    // The mute is in the timeline, with its end.
    await eventually("the mute entry", () => bob.messages().some((e) => e.kind === "system" && (e as SystemEntry).event === "member_muted"));
    await sleep(Math.max(0, Date.parse(until) - Date.now()) + 100);
    const later = await sendAndWait(bob, "m-3", "back");
    expect(later).toMatchObject({ type: "ack", clientMsgId: "m-3" });
    bob.close();
  });

  it("a mute needs a duration; a mute can be lifted early", async () => {
    const roomId = await roomWithBob();
    expect((await api(`/v1/rooms/${roomId}/mutes/bob`, { method: "PUT", user: "alice", body: {} })).status).toBe(400);
    expect((await api(`/v1/rooms/${roomId}/mutes/bob`, { method: "PUT", user: "alice", body: { durationS: 3600 } })).status).toBe(200);
    expect((await api(`/v1/rooms/${roomId}/messages`, { user: "bob", body: { clientMsgId: "x", text: "no" } })).status).toBe(403);
    expect((await api(`/v1/rooms/${roomId}/mutes/bob`, { method: "DELETE", user: "alice" })).body).toEqual({ lifted: true });
    expect((await api(`/v1/rooms/${roomId}/messages`, { user: "bob", body: { clientMsgId: "y", text: "yes" } })).status).toBe(201);
  });
});

describe("reports", () => {
  it("a reader reports a message; the report is a row the server API lists, not an entry of the room", async () => {
    const roomId = await roomWithBob();
    const sent = await api(`/v1/rooms/${roomId}/messages`, { user: "bob", body: { clientMsgId: "r-1", text: "rude" } });
    const seq = (sent.body as { message: Entry }).message.seq;
    const report = await api(`/v1/rooms/${roomId}/reports`, { user: "carol", body: { seq, userId: "bob", reason: "rude" } });
    expect(report.status).toBe(201);
    const id = (report.body as { report: { id: string } }).report.id;
    const rows = await sql<{ reporter: string; subject: string; seq: string }>("SELECT reporter, subject, seq FROM reports WHERE id = $1", [id]);
    expect(rows).toEqual([{ reporter: "carol", subject: "bob", seq: String(seq) }]);
    const latest = (await api(`/v1/rooms/${roomId}/messages?limit=5`, { user: "alice" })).body as { latestSeq: number };
    expect(latest.latestSeq).toBe(seq);
    const { key } = await serverKey("default");
    const listed = await eventually("the report listed", async () => {
      let after: string | null = null;
      for (;;) {
        const page: { body: unknown } = await serverApi(key, `/v1/server/reports?limit=1000${after ? `&after=${after}` : ""}`);
        const body = page.body as { reports: Array<{ id: string }>; next: string | null };
        const found = body.reports.find((r) => r.id === id);
        if (found || !body.next) return found;
        after = body.next;
      }
    });
    expect(listed).toMatchObject({ id, roomId, reporter: "carol", subject: "bob", seq, reason: "rude" });
    expect((await api(`/v1/rooms/${roomId}/reports`, { user: "carol", body: { reason: "nothing named" } })).status).toBe(400);
    expect((await api(`/v1/rooms/${roomId}/reports`, { user: "carol", body: { seq: seq + 100, reason: "future" } })).status).toBe(404);
  });
});

describe("tenant bans", () => {
  it("a tenant ban closes the user's sockets in every room at once and refuses connect, reads and sends everywhere; lifting it restores access", async () => {
    const { key } = await serverKey("modt");
    // Postgres outlives a run: a user of this run only.
    const mallory = `mallory-${Date.now().toString(36)}`;
    const rooms = [uniqueRoom("tb"), uniqueRoom("tb")];
    const sockets: TestSocket[] = [];
    for (const roomId of rooms) {
      const token = await tenantToken("modt", mallory);
      const socket = await TestSocket.open(roomId, { user: mallory, token });
      await socket.ready().catch((error: unknown) => {
        throw new Error(`${String(error)}: ${JSON.stringify(socket.frames)} ${JSON.stringify(socket.closed)}`);
      });
      expect(await sendAndWait(socket, `m-${roomId}`, "hello")).toMatchObject({ type: "ack" });
      sockets.push(socket);
    }
    const ban = await serverApi(key, `/v1/server/bans/${mallory}`, { method: "PUT", body: { reason: "abuse" } });
    expect(ban.status).toBe(200);
    // Closed by the rooms before the call returned (the close frames reach the test a moment later).
    for (const s of sockets) expect((await eventually("closed", () => s.closed, 1000)).code).toBe(4451);
    const token = await tenantToken("modt", mallory);
    for (const roomId of rooms) {
      expect((await refusedJoin(roomId, { user: mallory, token })).code).toBe(4451);
      const read = await api(`/v1/rooms/${roomId}/messages?after=0&limit=1`, { token });
      expect((read.body as { error: { code: string } }).error.code).toBe("banned");
      const send = await api(`/v1/rooms/${roomId}/messages`, { token, body: { clientMsgId: "again", text: "x" } });
      expect((send.body as { error: { code: string } }).error.code).toBe("banned");
    }
    // A room that was never opened learns it from Postgres.
    const fresh = uniqueRoom("tb");
    expect((await refusedJoin(fresh, { user: mallory, token })).code).toBe(4451);
    expect((await serverApi(key, `/v1/server/bans/${mallory}`, { method: "DELETE" })).body).toEqual({ lifted: true });
    const back = await TestSocket.open(rooms[0] ?? "", { user: mallory, token });
    await back.ready();
    back.close();
  });
});

/** A socket of a hook tenant's user. */
const hookSocket = async (tenant: "hooked" | "hookedc", roomId: string, user: string): Promise<TestSocket> => {
  const socket = await TestSocket.open(roomId, { user, token: await tenantToken(tenant, user) });
  await socket.ready();
  return socket;
};

describe("before-commit hook", () => {
  it("allows, rejects (typed rejected, no seq used) and rewrites; every call carries a valid signature", async () => {
    await fetch(`${testEnv.TEST_HOOK_URL}/reset`, { method: "POST" });
    const roomId = uniqueRoom("hook");
    const s = await hookSocket("hooked", roomId, "ann");
    const allowed = await sendAndWait(s, "h-1", "hello");
    expect(allowed).toMatchObject({ type: "ack", seq: 1 });
    const rejected = await sendAndWait(s, "h-2", "please reject this");
    expect(rejected).toMatchObject({ type: "error", code: "rejected", clientMsgId: "h-2" });
    expect((rejected as ErrorFrame).message).toContain("not allowed here");
    const rewritten = await sendAndWait(s, "h-3", "darn it");
    // The rejected message took no seq: the next one is 2.
    expect(rewritten).toMatchObject({ type: "ack", seq: 2 });
    expect((await storedMessages(roomId, "hooked")).map((m) => [m.seq, m.text])).toEqual([
      [1, "hello"],
      [2, "d**n it"],
    ]);
    // Edits are reviewed too.
    const edit = await api(`/v1/rooms/${roomId}/messages/1`, { method: "PATCH", token: await tenantToken("hooked", "ann"), body: { clientMsgId: "e-1", text: "reject edit" } });
    expect((edit.body as { error: { code: string } }).error.code).toBe("rejected");
    const calls = (await (await fetch(`${testEnv.TEST_HOOK_URL}/calls`)).json()) as { calls: number; badSignatures: number };
    expect(calls).toEqual({ calls: 4, badSignatures: 0 });
    s.close();
  });

  it("fail open: a hook that times out or answers garbage lets the message through unchanged", async () => {
    const roomId = uniqueRoom("hook");
    const s = await hookSocket("hooked", roomId, "ann");
    const started = Date.now();
    expect(await sendAndWait(s, "o-1", "slow one")).toMatchObject({ type: "ack", seq: 1 });
    // The tenant's timeout is 300 ms: the ack did not wait for the 1.5 s answer.
    expect(Date.now() - started).toBeLessThan(1400);
    expect(await sendAndWait(s, "o-2", "garbage answer")).toMatchObject({ type: "ack", seq: 2 });
    expect((await storedMessages(roomId, "hooked")).map((m) => m.text)).toEqual(["slow one", "garbage answer"]);
    s.close();
  });

  it("fail closed: a hook that times out refuses the message with unavailable and commits nothing; a retry once it answers commits it", async () => {
    const roomId = uniqueRoom("hook");
    const s = await hookSocket("hookedc", roomId, "ann");
    expect(await sendAndWait(s, "c-1", "fine")).toMatchObject({ type: "ack", seq: 1 });
    expect(await sendAndWait(s, "c-2", "slow one")).toMatchObject({ type: "error", code: "unavailable", clientMsgId: "c-2" });
    expect(await sendAndWait(s, "c-3", "garbage answer")).toMatchObject({ type: "error", code: "unavailable", clientMsgId: "c-3" });
    expect(await sendAndWait(s, "c-4", "please reject")).toMatchObject({ type: "error", code: "rejected" });
    expect(await sendAndWait(s, "c-5", "next")).toMatchObject({ type: "ack", seq: 2 });
    expect((await storedMessages(roomId, "hookedc")).map((m) => m.clientMsgId)).toEqual(["c-1", "c-5"]);
    s.close();
  });

  it("a hook URL on a private or loopback address is refused unless ALLOW_PRIVATE_URLS=true (SSRF)", async () => {
    const tenants = JSON.stringify({ t: { secret: "x".repeat(20), beforeCommit: { url: `${testEnv.TEST_HOOK_URL}/review`, secret: "s".repeat(20) } } });
    expect(parseTenants({ TENANTS: tenants, ALLOW_PRIVATE_URLS: "false" }).error).toMatch(/beforeCommit\.url .*(private|https)/);
    expect(parseTenants({ TENANTS: tenants, ALLOW_PRIVATE_URLS: "true" }).error).toBeUndefined();
    // The whole deployment refuses to run half-configured (the house rule for bad config).
    const res = await workerFetchWith({ ALLOW_PRIVATE_URLS: "false" }, `${BASE}/v1/rooms`, { headers: { authorization: "Bearer x" } });
    expect(res.status).toBe(500);
  });
});
