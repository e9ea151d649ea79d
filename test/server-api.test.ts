// The server API through the server SDK (src/server/) against the real Worker inside workerd,
// real Postgres and Redis: API keys (hashed at rest, revocable, one tenant each), super-user
// actions on rooms, system and on-behalf sends, paging the tenant's rooms, exporting and erasing
// a user (live clients get the deletes).

import { describe, expect, it } from "vitest";
import type { DeleteEntry, Entry } from "../src/protocol/frames.js";
import { ChatServer, ServerApiError } from "../src/server/index.js";
import { acmeToken, api, BASE, eventually, sendAndWait, sql, storedMessages, TestSocket, tokenFor, uniqueRoom, workerFetch } from "./helpers.js";
import { serverKey } from "./server-helpers.js";

const sdk = (apiKey: string): ChatServer => new ChatServer({ baseUrl: BASE, apiKey, fetch: workerFetch });

const refusal = async (call: Promise<unknown>): Promise<ServerApiError> => {
  try {
    await call;
  } catch (error) {
    if (error instanceof ServerApiError) return error;
    throw error;
  }
  throw new Error("expected the call to be refused");
};

describe("API keys", () => {
  it("a created key works, is stored only as a hash, is listed without its secret, and once revoked is refused", async () => {
    const { key: bootstrap } = await serverKey("default", "bootstrap");
    const admin = sdk(bootstrap);
    const { key, secret } = await admin.createKey("ci");
    expect(secret).toMatch(/^ecsk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    const [row] = await sql<{ secret_hash: string }>("SELECT secret_hash FROM api_keys WHERE id = $1", [key.id]);
    expect(row?.secret_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toContain(secret.slice(22));
    const listed = await admin.listKeys();
    expect(listed.find((k) => k.id === key.id)).toEqual({ id: key.id, name: "ci", createdAt: key.createdAt, revokedAt: null });
    expect(JSON.stringify(listed)).not.toContain(secret);
    const ci = sdk(secret);
    expect((await ci.listRooms({ limit: 1 })).rooms.length).toBeLessThanOrEqual(1);
    await admin.revokeKey(key.id);
    const revoked = await refusal(ci.listRooms());
    expect([revoked.status, revoked.code]).toEqual([401, "unauthorized"]);
  });

  it("refuses user tokens, malformed keys and a right id with a wrong secret, all alike", async () => {
    const { id } = await serverKey("default");
    for (const token of [await tokenFor("alice"), "ecsk_nope", `ecsk_${id}_${"A".repeat(43)}`]) {
      const res = await api("/v1/server/rooms", { token });
      expect(res.status).toBe(401);
      expect((res.body as { error: { code: string } }).error.code).toBe("unauthorized");
    }
    expect((await api("/v1/server/rooms")).status).toBe(401);
  });

  it("a key acts for its own tenant only: another tenant's rooms, keys and users are not found, and nothing of theirs is listed", async () => {
    const { key: defaultKey, id: defaultKeyId } = await serverKey("default");
    const { key: acmeKey } = await serverKey("acme");
    const roomId = uniqueRoom("own");
    await sdk(defaultKey).createRoom({ roomId, name: "default's" });
    const acme = sdk(acmeKey);
    const notFound = await refusal(acme.getRoom(roomId));
    expect([notFound.status, notFound.code]).toEqual([404, "not_found"]);
    expect((await refusal(acme.revokeKey(defaultKeyId))).code).toBe("not_found");
    expect((await acme.listKeys()).some((k) => k.id === defaultKeyId)).toBe(false);
    const page = await acme.listRooms({ after: roomId.slice(0, -1), limit: 5 });
    expect(page.rooms.some((r) => r.roomId === roomId)).toBe(false);
    // A send into "the same" room id makes acme's own room, never default's.
    expect((await refusal(acme.send(roomId, { clientMsgId: "x", text: "hi" }))).code).toBe("not_found");
    expect(await storedMessages(roomId, "acme")).toEqual([]);
  });
});

describe("super-user actions", () => {
  it("creates a private room without joining it, manages members, sends as the system and on behalf of a user, updates and deletes it", async () => {
    const { key } = await serverKey("acme");
    const chat = sdk(key);
    const roomId = uniqueRoom("su");
    const room = await chat.createRoom({ roomId, name: "Launch", visibility: "private", metadata: { team: "core" } });
    expect(room).toMatchObject({ roomId, name: "Launch", visibility: "private", createdBy: "~system" });
    expect(await chat.members(roomId)).toEqual([]);
    await chat.setMember(roomId, "alice", "admin");
    await chat.setMember(roomId, "bob", "member");
    const alice = await TestSocket.open(roomId, { user: "alice", token: await acmeToken("alice") });
    await alice.ready();
    const system = await chat.send(roomId, { clientMsgId: "welcome", text: "Welcome!" });
    expect(system).toMatchObject({ kind: "message", userId: "~system", text: "Welcome!" });
    // Exactly once: the same clientMsgId is the same message.
    expect((await chat.send(roomId, { clientMsgId: "welcome", text: "Welcome!" })).seq).toBe(system.seq);
    // On behalf of a user who is not a member.
    const onBehalf = await chat.send(roomId, { clientMsgId: "c-1", text: "from carol", userId: "carol" });
    expect(onBehalf).toMatchObject({ userId: "carol", text: "from carol" });
    await alice.untilSeq(onBehalf.seq);
    expect(alice.messages().map((m) => m.text)).toContain("from carol");
    expect((await chat.updateRoom(roomId, { name: "Launched" })).name).toBe("Launched");
    await chat.removeMember(roomId, "bob");
    expect((await chat.members(roomId)).map((m) => m.userId)).toEqual(["alice"]);
    // A muted user cannot be sent for either.
    await chat.mute(roomId, "carol", { durationS: 60 });
    expect((await refusal(chat.send(roomId, { clientMsgId: "c-2", text: "again", userId: "carol" }))).code).toBe("muted");
    expect(await chat.deleteRoom(roomId)).toEqual({ deleted: true, purged: false });
    await eventually("alice's socket closed", () => alice.closed);
    expect((await refusal(chat.getRoom(roomId))).code).toBe("not_found");
  });

  it("lists the tenant's rooms in pages, in id order, each once", async () => {
    const { key } = await serverKey("acme");
    const chat = sdk(key);
    const prefix = uniqueRoom("pg");
    const ids = [1, 2, 3, 4, 5].map((n) => `${prefix}-${n}`);
    for (const roomId of ids) await chat.createRoom({ roomId });
    const seen: string[] = [];
    let after: string | undefined = prefix;
    for (let pages = 0; pages < 10; pages++) {
      const page: { rooms: Array<{ roomId: string }>; next: string | null } = await chat.listRooms({ limit: 2, ...(after ? { after } : {}) });
      expect(page.rooms.length).toBeLessThanOrEqual(2);
      seen.push(...page.rooms.map((r) => r.roomId).filter((id) => id.startsWith(prefix)));
      if (!page.next?.startsWith(prefix)) break;
      after = page.next ?? undefined;
    }
    expect(seen).toEqual(ids);
  });
});

describe("users", () => {
  it("erasing a user turns their messages into tombstones in every room, live clients get the deletes, and their profile, cursors and memberships go", async () => {
    const { key } = await serverKey("default");
    const chat = sdk(key);
    const dave = `dave-${Date.now().toString(36)}`;
    const rooms = [uniqueRoom("er"), uniqueRoom("er")];
    const daveToken = await tokenFor(dave);
    expect((await api("/v1/users/me", { method: "PUT", token: daveToken, body: { name: "Dave" } })).status).toBe(200);
    const watchers: TestSocket[] = [];
    for (const roomId of rooms) {
      await chat.createRoom({ roomId });
      await chat.setMember(roomId, dave, "member");
      const d = await TestSocket.open(roomId, { user: dave });
      await d.ready();
      for (let i = 0; i < 3; i++) expect(await sendAndWait(d, `d-${i}`, `dave ${i}`)).toMatchObject({ type: "ack" });
      expect((await api(`/v1/rooms/${roomId}/read`, { method: "PUT", token: daveToken, body: { seq: 2 } })).status).toBe(200);
      const w = await TestSocket.open(roomId, { user: "erin" });
      await w.ready();
      watchers.push(w);
      d.close();
    }
    const exported = await chat.exportUser(dave);
    expect(exported.profile?.name).toBe("Dave");
    expect(exported.memberships?.map((m) => m.roomId).sort()).toEqual([...rooms].sort());
    expect(exported.messages.filter((m) => m.kind === "message").map((m) => m.text)).toEqual(["dave 0", "dave 1", "dave 2", "dave 0", "dave 1", "dave 2"]);
    const paged = await chat.exportUser(dave, { limit: 2 });
    expect(paged.next).not.toBeNull();
    const second = await chat.exportUser(dave, { limit: 2, after: paged.next ?? "" });
    expect(second.profile).toBeUndefined();
    expect(second.messages[0]?.seq).not.toBe(paged.messages[0]?.seq);

    const erased = await chat.eraseUser(dave);
    expect(erased).toMatchObject({ erased: true, rooms: 2, deleted: 6 });
    for (const [index, roomId] of rooms.entries()) {
      const daves = (await storedMessages(roomId)).filter((m) => m.userId === dave);
      expect(daves.map((m) => m.text)).toEqual(["", "", ""]);
      const watcher = watchers[index];
      if (!watcher) throw new Error("no watcher");
      const deletes = await eventually("the deletes", () => {
        const found = watcher.messages().filter((e): e is DeleteEntry => e.kind === "delete");
        return found.length === 3 ? found : undefined;
      });
      const daveSeqs = watcher.messages().filter((e: Entry) => e.userId === dave && e.kind === "message").map((e) => e.seq);
      expect(deletes.map((d) => d.target)).toEqual(daveSeqs);
      watcher.close();
    }
    for (const table of ["room_members", "read_cursors", "profiles"]) {
      const rows = await sql(`SELECT 1 FROM ${table} WHERE tenant = 'default' AND user_id = $1`, [dave]);
      expect(rows, table).toEqual([]);
    }
    // Retrying is safe and finds nothing more to do.
    expect(await chat.eraseUser(dave)).toMatchObject({ erased: true, deleted: 0 });
  });
});
