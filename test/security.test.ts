// Security: tokens, tenant isolation, private rooms and roles, hostile input, floods.
// Each test names the attack and checks that it fails without side effects.

import { env, runDurableObjectAlarm } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { Message } from "../src/protocol/frames.js";
import { roomStub } from "../src/room/address.js";
import {
  acmeToken,
  api,
  eventually,
  sendAndWait,
  signToken,
  sleep,
  storedMessages,
  TestSocket,
  tokenFor,
  uniqueRoom,
  workerFetch,
  BASE,
} from "./helpers.js";

type ErrorBody = { error: { code: string; message: string } };
const codeOf = (res: { body: unknown }) => (res.body as ErrorBody).error?.code;

/** Creates a room in acme as `admin` and returns its id. */
const acmeRoom = async (admin: string, visibility: "public" | "private", extra: Record<string, unknown> = {}) => {
  const roomId = uniqueRoom(visibility);
  const res = await api("/v1/rooms", { token: await acmeToken(admin), body: { roomId, visibility, name: `${visibility} room`, ...extra } });
  expect(res.status).toBe(201);
  return roomId;
};

const acmePost = async (user: string, roomId: string, clientMsgId: string, text: string) =>
  api(`/v1/rooms/${roomId}/messages`, { token: await acmeToken(user), body: { clientMsgId, text } });

describe("tokens", () => {
  it("forged, expired, alg:none, wrong-tenant, wrong-audience and malformed tokens are refused with 401 over HTTP and WebSocket", async () => {
    const roomId = await acmeRoom("boss", "public");
    const none = (claims: object) =>
      `${btoa(JSON.stringify({ alg: "none", typ: "JWT" }))}.${btoa(JSON.stringify(claims))}.`.replaceAll("=", "");
    const bad = {
      forged: await signToken({ sub: "eve", tenant: "acme", aud: "chat-acme" }, { secret: "guessed-secret" }),
      expired: await acmeToken("eve", { exp: Math.floor(Date.now() / 1000) - 3600 }),
      algNone: none({ sub: "eve", tenant: "acme", aud: "chat-acme", exp: 9e9 }),
      // Signed with the default tenant's secret but claiming acme: verified with acme's key, fails.
      wrongTenant: await signToken({ sub: "eve", tenant: "acme", aud: "chat-acme" }, { secret: "test-secret-not-for-production" }),
      unknownTenant: await signToken({ sub: "eve", tenant: "initech" }, { secret: "test-secret-not-for-production" }),
      wrongAudience: await acmeToken("eve", { aud: "chat-other" }),
      noExp: await new (await import("jose")).SignJWT({ sub: "eve", tenant: "acme", aud: "chat-acme" })
        .setProtectedHeader({ alg: "HS256" })
        .sign(new TextEncoder().encode("acme-secret-not-for-production")),
      malformed: "not.a.jwt",
      // An RS256 token for a tenant that only has an HS256 secret.
      wrongAlg: await signToken({ sub: "eve", tenant: "acme", aud: "chat-acme" }, { jwk: "RS256" }),
    };
    for (const [name, token] of Object.entries(bad)) {
      const read = await api(`/v1/rooms/${roomId}/messages`, { token });
      expect([name, read.status, codeOf(read)]).toEqual([name, 401, "unauthorized"]);
      const write = await api(`/v1/rooms/${roomId}/messages`, { token, body: { clientMsgId: name, text: "x" } });
      expect([name, write.status]).toEqual([name, 401]);
      await expect(TestSocket.open(roomId, { user: "eve", token })).rejects.toThrow(/401/);
    }
    expect(await storedMessages(roomId, "acme")).toEqual([]);
  });

  it("JWKS tenants: RS256 and ES256 tokens from the published keys work; wrong issuer, unknown key id and HS256 are refused", async () => {
    const good = await signToken({ sub: "gina", tenant: "globex", iss: "https://id.globex.test" }, { jwk: "RS256" });
    const created = await api("/v1/rooms", { token: good, body: { roomId: uniqueRoom("globex"), visibility: "public" } });
    expect(created.status).toBe(201);
    const roomId = (created.body as { room: { roomId: string } }).room.roomId;
    const ec = await signToken({ sub: "gina", tenant: "globex", iss: "https://id.globex.test" }, { jwk: "ES256" });
    expect((await api(`/v1/rooms/${roomId}/messages`, { token: ec, body: { clientMsgId: "g1", text: "hi" } })).status).toBe(201);
    const refused = [
      await signToken({ sub: "gina", tenant: "globex", iss: "https://evil.test" }, { jwk: "RS256" }),
      await signToken({ sub: "gina", tenant: "globex", iss: "https://id.globex.test" }, { jwk: "RS256", kid: "unknown" }),
      await signToken({ sub: "gina", tenant: "globex", iss: "https://id.globex.test" }, { secret: "anything" }),
    ];
    for (const token of refused) expect((await api(`/v1/rooms/${roomId}/messages`, { token })).status).toBe(401);
  });
});

describe("tenant isolation", () => {
  it("tenant A's token never reaches tenant B's room of the same id, over HTTP or WebSocket, and cannot list it", async () => {
    const roomId = await acmeRoom("alice", "public");
    expect((await acmePost("alice", roomId, "secret-1", "acme only")).status).toBe(201);
    // The default tenant addresses the same room id: it is a different room, which does not
    // exist there (a read never creates one)…
    const other = await api(`/v1/rooms/${roomId}/messages?after=0`, { user: "mallory" });
    expect(other.status).toBe(404);
    expect(codeOf(other)).toBe("not_found");
    // …until its first socket (the default tenant has open rooms), holding none of acme's messages.
    const socket = await TestSocket.open(roomId, { user: "mallory", since: 0 });
    expect((await socket.ready()).messages).toEqual([]);
    expect((await sendAndWait(socket, "m1", "from default")).type).toBe("ack");
    socket.close();
    // Neither side sees the other's messages in Postgres.
    expect((await storedMessages(roomId, "acme")).map((m) => m.text)).toEqual(["acme only"]);
    expect((await storedMessages(roomId, "default")).map((m) => m.text)).toEqual(["from default"]);
    // Listings are per tenant.
    const acmeList = await api("/v1/rooms", { token: await acmeToken("alice") });
    expect((acmeList.body as { rooms: Array<{ roomId: string; latestSeq: number }> }).rooms).toContainEqual(
      expect.objectContaining({ roomId, latestSeq: 1 }),
    );
    const defaultList = await api("/v1/rooms", { user: "alice" });
    expect((defaultList.body as { rooms: Array<{ roomId: string }> }).rooms.map((r) => r.roomId)).not.toContain(roomId);
  });

  it("in a tenant without open rooms, an unknown room is not_found (HTTP and WebSocket) and first use does not create it", async () => {
    const roomId = uniqueRoom("nope");
    const token = await acmeToken("alice");
    expect(codeOf(await api(`/v1/rooms/${roomId}/messages`, { token }))).toBe("not_found");
    expect(codeOf(await api(`/v1/rooms/${roomId}/messages`, { token, body: { clientMsgId: "x", text: "x" } }))).toBe("not_found");
    const socket = await TestSocket.open(roomId, { user: "alice", token });
    await eventually("closed", () => socket.closed);
    expect(socket.closed?.code).toBe(4404);
    expect(socket.ofType("error")[0]?.code).toBe("not_found");
    expect(codeOf(await api(`/v1/rooms/${roomId}`, { token }))).toBe("not_found");
  });
});

describe("private rooms and roles", () => {
  it("a non-member cannot read, connect to or send in a private room (forbidden), and nothing is committed", async () => {
    const roomId = await acmeRoom("owner", "private");
    expect((await acmePost("owner", roomId, "o1", "for members")).status).toBe(201);
    const outsider = await acmeToken("outsider");
    expect(codeOf(await api(`/v1/rooms/${roomId}/messages`, { token: outsider }))).toBe("forbidden");
    expect(codeOf(await api(`/v1/rooms/${roomId}/messages?after=0`, { token: outsider }))).toBe("forbidden");
    expect(codeOf(await api(`/v1/rooms/${roomId}`, { token: outsider }))).toBe("forbidden");
    expect(codeOf(await api(`/v1/rooms/${roomId}/join`, { token: outsider, method: "POST" }))).toBe("forbidden");
    const post = await api(`/v1/rooms/${roomId}/messages`, { token: outsider, body: { clientMsgId: "x", text: "let me in" } });
    expect([post.status, codeOf(post)]).toEqual([403, "forbidden"]);
    const socket = await TestSocket.open(roomId, { user: "outsider", token: outsider });
    await eventually("closed", () => socket.closed);
    expect(socket.closed?.code).toBe(4403);
    expect(socket.ofType("ready")).toEqual([]);
    expect((await storedMessages(roomId, "acme")).map((m) => m.clientMsgId)).toEqual(["o1"]);
  });

  it("an admin adds a member and a viewer: the member sends, the viewer reads but cannot send, a member cannot manage", async () => {
    const roomId = await acmeRoom("owner", "private");
    const admin = await acmeToken("owner");
    expect((await api(`/v1/rooms/${roomId}/members/mia`, { token: admin, method: "PUT", body: { role: "member" } })).status).toBe(200);
    expect((await api(`/v1/rooms/${roomId}/members/vic`, { token: admin, method: "PUT", body: { role: "viewer" } })).status).toBe(200);
    expect((await acmePost("mia", roomId, "m1", "member speaks")).status).toBe(201);
    const viewer = await TestSocket.open(roomId, { user: "vic", token: await acmeToken("vic"), since: 0 });
    // The membership changes are in the timeline too, in their place (system entries).
    expect((await viewer.ready()).messages.map((m) => `${m.kind}: ${m.text}`)).toEqual([
      "system: owner added mia as member",
      "system: owner added vic as viewer",
      "message: member speaks",
    ]);
    expect(await sendAndWait(viewer, "v1", "viewer speaks")).toMatchObject({ type: "error", code: "forbidden", clientMsgId: "v1" });
    expect(codeOf(await acmePost("vic", roomId, "v2", "viewer over http"))).toBe("forbidden");
    const mia = await acmeToken("mia");
    expect(codeOf(await api(`/v1/rooms/${roomId}/members/zed`, { token: mia, method: "PUT", body: { role: "member" } }))).toBe(
      "forbidden",
    );
    expect(codeOf(await api(`/v1/rooms/${roomId}`, { token: mia, method: "PATCH", body: { name: "mine" } }))).toBe("forbidden");
    const members = await api(`/v1/rooms/${roomId}/members`, { token: mia });
    expect((members.body as { members: Array<{ userId: string; role: string }> }).members.map((m) => [m.userId, m.role])).toEqual([
      ["owner", "admin"],
      ["mia", "member"],
      ["vic", "viewer"],
    ]);
    // Only mia's message, besides the two membership entries (system entries have their own clientMsgIds).
    expect((await storedMessages(roomId, "acme")).filter((m) => !m.clientMsgId.startsWith("system:")).map((m) => m.clientMsgId)).toEqual(["m1"]);
    viewer.close();
  });

  it("removing a member closes their live socket at once; a public room turned private drops non-members' sockets", async () => {
    const roomId = await acmeRoom("owner", "private");
    const admin = await acmeToken("owner");
    await api(`/v1/rooms/${roomId}/members/rex`, { token: admin, method: "PUT", body: { role: "member" } });
    const rex = await TestSocket.open(roomId, { user: "rex", token: await acmeToken("rex") });
    await rex.ready();
    expect((await api(`/v1/rooms/${roomId}/members/rex`, { token: admin, method: "DELETE" })).body).toEqual({ removed: true });
    // Closed by the time the call returned (no polling needed beyond event delivery).
    await eventually("rex closed", () => rex.closed, 2000);
    expect(rex.closed?.code).toBe(4403);
    expect(rex.ofType("error").at(-1)?.code).toBe("forbidden");
    expect(codeOf(await acmePost("rex", roomId, "r1", "still here?"))).toBe("forbidden");

    const open = await acmeRoom("owner", "public");
    const passerby = await TestSocket.open(open, { user: "pat", token: await acmeToken("pat") });
    await passerby.ready();
    const patched = await api(`/v1/rooms/${open}`, { token: admin, method: "PATCH", body: { visibility: "private" } });
    expect((patched.body as { room: { visibility: string } }).room.visibility).toBe("private");
    await eventually("passerby closed", () => passerby.closed, 2000);
    expect(passerby.closed?.code).toBe(4403);
  });
});

describe("rooms API", () => {
  it("create, get, update, join/leave, list, delete with history kept or purged", async () => {
    const admin = await acmeToken("owner");
    const roomId = await acmeRoom("owner", "public", { metadata: { topic: "launch", tags: ["a", "b"] } });
    const got = await api(`/v1/rooms/${roomId}`, { token: admin });
    expect((got.body as { room: object }).room).toMatchObject({
      roomId,
      name: "public room",
      visibility: "public",
      metadata: { topic: "launch", tags: ["a", "b"] },
      createdBy: "owner",
      latestSeq: 0,
      role: "admin",
    });
    expect(codeOf(await api("/v1/rooms", { token: admin, body: { roomId } }))).toBe("conflict");
    expect(codeOf(await api("/v1/rooms", { token: admin, body: { metadata: { big: "x".repeat(5000) } } }))).toBe("too_large");
    expect(codeOf(await api("/v1/rooms", { token: admin, body: { visibility: "secret" } }))).toBe("bad_request");
    // A public room in a closed tenant: reading is open, sending needs joining.
    const joe = await acmeToken("joe");
    expect((await api(`/v1/rooms/${roomId}/messages`, { token: joe })).status).toBe(200);
    expect(codeOf(await acmePost("joe", roomId, "j1", "hi"))).toBe("forbidden");
    expect((await api(`/v1/rooms/${roomId}/join`, { token: joe, method: "POST" })).body).toMatchObject({
      member: { userId: "joe", role: "member" },
    });
    expect((await acmePost("joe", roomId, "j1", "hi")).status).toBe(201);
    const listed = await api("/v1/rooms", { token: joe });
    expect((listed.body as { rooms: object[] }).rooms).toContainEqual({
      roomId,
      name: "public room",
      visibility: "public",
      role: "member",
      latestSeq: 2, // 1: "joe joined" (a system entry), 2: his message
      readSeq: 2, // joe's own send moved his cursor
      unread: 0,
    });
    expect((await api(`/v1/rooms/${roomId}/leave`, { token: joe, method: "POST" })).body).toEqual({ removed: true });
    expect(codeOf(await acmePost("joe", roomId, "j2", "bye"))).toBe("forbidden");

    const socket = await TestSocket.open(roomId, { user: "owner", token: admin });
    await socket.ready();
    expect(codeOf(await api(`/v1/rooms/${roomId}`, { token: joe, method: "DELETE" }))).toBe("forbidden");
    expect((await api(`/v1/rooms/${roomId}`, { token: admin, method: "DELETE" })).body).toEqual({ deleted: true, purged: false });
    await eventually("socket closed", () => socket.closed);
    expect(socket.closed?.code).toBe(4404);
    expect(codeOf(await api(`/v1/rooms/${roomId}`, { token: admin }))).toBe("not_found");
    expect(codeOf(await api(`/v1/rooms/${roomId}/messages`, { token: admin }))).toBe("not_found");
    // History kept: the rows stay for the operator; the id stays taken.
    expect((await storedMessages(roomId, "acme")).map((m) => m.text)).toEqual(["joe joined", "hi", "joe left"]);
    expect(codeOf(await api("/v1/rooms", { token: admin, body: { roomId } }))).toBe("conflict");
    // Nothing is left scheduled that would wake the deleted room again.
    expect(await runDurableObjectAlarm(roomStub(env, { tenant: "acme", roomId }))).toBe(false);

    const purged = await acmeRoom("owner", "private");
    await acmePost("owner", purged, "p1", "gone soon");
    expect((await api(`/v1/rooms/${purged}?purge=true`, { token: admin, method: "DELETE" })).body).toEqual({
      deleted: true,
      purged: true,
    });
    expect(await storedMessages(purged, "acme")).toEqual([]);
  });
});

describe("hostile input", () => {
  it("SQL-looking and HTML-looking text is stored and returned verbatim", async () => {
    const roomId = uniqueRoom("verbatim");
    const texts = [
      "'); DROP TABLE messages; --",
      "<script>alert(1)</script><img src=x onerror=alert(2)>",
      "Robert'); DELETE FROM rooms WHERE ('1'='1",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the payload is a template-injection probe
      "$1 $2 \\x00 %s %n {{7*7}} ${7*7}",
      "emoji 😀 and RTL \u202e text",
    ];
    for (const [i, text] of texts.entries()) {
      expect((await api(`/v1/rooms/${roomId}/messages`, { user: "a", body: { clientMsgId: `t${i}`, text } })).status).toBe(201);
    }
    const read = await api(`/v1/rooms/${roomId}/messages?after=0`, { user: "b" });
    expect((read.body as { messages: Message[] }).messages.map((m) => m.text)).toEqual(texts);
    expect((await storedMessages(roomId)).map((m) => m.text)).toEqual(texts);
  });

  it("deeply nested and oversized JSON, invalid UTF-8 and binary frames get typed errors and commit nothing", async () => {
    const roomId = uniqueRoom("hostile");
    const token = await tokenFor("a");
    const nested = `${"[".repeat(8000)}${"]".repeat(8000)}`;
    const post = (body: BodyInit) =>
      workerFetch(`${BASE}/v1/rooms/${roomId}/messages`, { method: "POST", headers: { authorization: `Bearer ${token}` }, body });
    const deep = await post(nested);
    expect([deep.status, ((await deep.json()) as ErrorBody).error.code]).toEqual([400, "bad_request"]);
    const deepObject = await post(`{"clientMsgId":"d","text":"x","extra":${nested.slice(0, 6000)}${nested.slice(-6000)}}`);
    expect(deepObject.status).toBe(201); // unknown fields are ignored, however deep
    const huge = await post(JSON.stringify({ clientMsgId: "h", text: "x", pad: "y".repeat(20_000) }));
    expect([huge.status, ((await huge.json()) as ErrorBody).error.code]).toEqual([413, "too_large"]);
    const invalidUtf8 = new Uint8Array([...new TextEncoder().encode('{"clientMsgId":"u","text":"'), 0xc3, 0x28, ...new TextEncoder().encode('"}')]);
    const bad = await post(invalidUtf8);
    expect([bad.status, ((await bad.json()) as ErrorBody).error.code]).toEqual([400, "bad_request"]);
    const socket = await TestSocket.open(roomId, { user: "a" });
    await socket.ready();
    socket.sendRaw(invalidUtf8.buffer as ArrayBuffer);
    socket.sendRaw(nested);
    await eventually("two errors", () => (socket.ofType("error").length === 2 ? true : undefined));
    expect(socket.ofType("error").map((e) => e.code)).toEqual(["bad_request", "bad_request"]);
    expect((await storedMessages(roomId)).map((m) => m.clientMsgId)).toEqual(["d"]);
    socket.close();
  });
});

describe("abuse limits", () => {
  it("a send flood hits the rate limit with retryAfterMs, and every accepted message is committed once and delivered in order", async () => {
    const roomId = uniqueRoom("flood");
    const flooder = await TestSocket.open(roomId, { user: "flooder" });
    const reader = await TestSocket.open(roomId, { user: "reader" });
    await Promise.all([flooder.ready(), reader.ready()]);
    const total = 400; // burst is 200 in tests
    for (let i = 0; i < total; i++) flooder.send({ type: "send", clientMsgId: `f${i}`, text: `f${i}` });
    await eventually("every send answered", () =>
      flooder.ofType("ack").length + flooder.ofType("error").length === total ? true : undefined,
    );
    const limited = flooder.ofType("error");
    expect(limited.length).toBeGreaterThan(0);
    for (const e of limited) {
      expect(e.code).toBe("rate_limited");
      expect(e.retryAfterMs).toBeGreaterThan(0);
    }
    const acked = flooder.ofType("ack");
    expect(acked.length).toBeGreaterThanOrEqual(200);
    const stored = await storedMessages(roomId);
    expect(stored.map((m) => m.clientMsgId).sort()).toEqual(acked.map((a) => a.clientMsgId).sort());
    expect(stored.map((m) => m.seq)).toEqual(acked.map((_, i) => i + 1));
    await reader.untilSeq(acked.length);
    expect(reader.seqs()).toEqual(stored.map((m) => m.seq));
    // The HTTP answer carries Retry-After. Sent all at once, so they outrun the refill however
    // slow the database is (the bucket is checked before the commit).
    const http = await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        api(`/v1/rooms/${roomId}/messages`, { user: "flooder", body: { clientMsgId: `h${i}`, text: "h" } }),
      ),
    );
    const limitedHttp = http.find((res) => res.status === 429);
    expect(limitedHttp?.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(http.every((res) => res.status === 201 || res.status === 429)).toBe(true);
    flooder.close();
    reader.close();
  });

  it("a user cannot hold more than the per-room socket cap; others are unaffected", async () => {
    const roomId = uniqueRoom("cap");
    const sockets = await Promise.all([1, 2, 3, 4].map(() => TestSocket.open(roomId, { user: "hog" })));
    await Promise.all(sockets.map((s) => s.ready()));
    const fifth = await TestSocket.open(roomId, { user: "hog" });
    await eventually("refused", () => fifth.closed);
    expect(fifth.closed?.code).toBe(4429);
    expect(fifth.ofType("error")[0]?.code).toBe("rate_limited");
    const other = await TestSocket.open(roomId, { user: "someone-else" });
    await other.ready();
    sockets[0]?.close();
    await sleep(50);
    const again = await TestSocket.open(roomId, { user: "hog" });
    await again.ready();
    for (const s of [...sockets, other, again]) s.close();
  });
});
