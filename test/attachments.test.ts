// Attachments and multipart messages (issue #17), inside workerd with the real R2 binding
// (miniflare's local R2) and real Postgres: upload, bind, download, ranges, permissions, tenant
// isolation, spoofed types, cleanup, purge, and the failure between upload and send.

import { createExecutionContext, createScheduledController, env, waitOnExecutionContext } from "cloudflare:test";
import worker from "../src/index.js";
import { describe, expect, it } from "vitest";
import { sweepUnbound } from "../src/api/attachments.js";
import { PostgresStore } from "../src/storage/postgres.js";
import { EntryKind } from "../src/protocol/frames.js";
import type { ErrorBody } from "../src/protocol/errors.js";
import type { Message } from "../src/protocol/frames.js";
import type { AttachmentPart } from "../src/protocol/parts.js";
import type { AttachmentDescriptor } from "../src/storage/attachments.js";
import {
  acmeToken,
  api,
  BASE,
  eventually,
  hasRedis,
  mirroredStream,
  sql,
  storedMessages,
  TestSocket,
  testEnv,
  tokenFor,
  uniqueRoom,
  workerFetch,
  workerFetchWith,
} from "./helpers.js";

const bucket = (env as unknown as { ATTACHMENTS: R2Bucket }).ATTACHMENTS;
const codeOf = (res: { body: unknown }) => (res.body as ErrorBody).error?.code;

type Uploaded = AttachmentDescriptor & { url: string; urlExpiresAt: string };

/** A PNG header (signature + IHDR) of the given size: enough for the sniffer and the dimension parser. */
const png = (width: number, height: number, extra = 64): Uint8Array => {
  const bytes = new Uint8Array(33 + extra);
  bytes.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
  new DataView(bytes.buffer).setUint32(16, width);
  new DataView(bytes.buffer).setUint32(20, height);
  bytes.set([8, 2, 0, 0, 0], 24);
  for (let i = 33; i < bytes.length; i++) bytes[i] = i % 251;
  return bytes;
};

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

const hex = async (bytes: Uint8Array): Promise<string> =>
  [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");

const uploadRaw = async (
  roomId: string,
  body: Uint8Array,
  options: { user?: string; token?: string; type?: string; name?: string; overrides?: Record<string, unknown> } = {},
): Promise<{ status: number; body: unknown; headers: Headers }> => {
  const token = options.token ?? (await tokenFor(options.user ?? "alice"));
  const url = `${BASE}/v1/rooms/${roomId}/attachments?name=${encodeURIComponent(options.name ?? "file.bin")}`;
  const init: RequestInit = {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": options.type ?? "application/octet-stream", "content-length": String(body.byteLength) },
    body,
  };
  const res = options.overrides ? await workerFetchWith(options.overrides, url, init) : await workerFetch(url, init);
  const raw = await res.text();
  let parsed: unknown = raw;
  try {
    parsed = JSON.parse(raw);
  } catch {}
  return { status: res.status, body: parsed, headers: res.headers };
};

const upload = async (roomId: string, body: Uint8Array, options: Parameters<typeof uploadRaw>[2] = {}): Promise<Uploaded> => {
  const res = await uploadRaw(roomId, body, options);
  if (res.status !== 201) throw new Error(`upload refused: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body as { attachment: Uploaded }).attachment;
};

const objectsOf = async (tenant: string, roomId: string): Promise<string[]> =>
  (await bucket.list({ prefix: `t/${tenant}/r/${roomId}/` })).objects.map((o) => o.key);

const rowsOf = (tenant: string, roomId: string) =>
  sql<{ id: string; bound_seq: string | null; user_id: string }>(
    "SELECT id, bound_seq, user_id FROM attachments WHERE tenant = $1 AND room_id = $2 ORDER BY created_at",
    [tenant, roomId],
  );

const sendParts = async (roomId: string, user: string, clientMsgId: string, parts: unknown[], token?: string) =>
  api(`/v1/rooms/${roomId}/messages`, { ...(token ? { token } : { user }), body: { clientMsgId, parts } });

const latestSeq = async (roomId: string, user: string, token?: string): Promise<number> =>
  ((await api(`/v1/rooms/${roomId}/messages`, token ? { token } : { user })).body as { latestSeq: number }).latestSeq;

describe("upload, bind, download", () => {
  it("an uploaded image is described (size, type, sha256, dimensions), bound by the message that names it, and served back byte for byte", async () => {
    const roomId = uniqueRoom("att");
    const bytes = png(640, 480);
    const a = await upload(roomId, bytes, { user: "alice", type: "image/png", name: "cat photo.png" });
    expect(a).toMatchObject({ name: "cat photo.png", size: bytes.byteLength, type: "image/png", width: 640, height: 480, sha256: await hex(bytes) });
    expect(await objectsOf("default", roomId)).toEqual([`t/default/r/${roomId}/${a.id}`]);
    expect(await rowsOf("default", roomId)).toEqual([{ id: a.id, bound_seq: null, user_id: "alice" }]);

    const watcher = await TestSocket.open(roomId, { user: "bob" });
    await watcher.ready();
    const sender = await TestSocket.open(roomId, { user: "alice" });
    await sender.ready();
    sender.send({
      type: "send",
      clientMsgId: "m1",
      parts: [{ type: "text", text: "look" }, { type: "link", url: "https://example.com/a b" }, { type: "attachment", id: a.id }],
    });
    const ack = await eventually("ack", () => sender.frames.find((f) => f.type === "ack" || f.type === "error"));
    expect(ack.type).toBe("ack");
    await watcher.untilSeq(1);
    const live = watcher.messages()[0] as Message;
    const part: AttachmentPart = { type: "attachment", id: a.id, name: "cat photo.png", size: bytes.byteLength, contentType: "image/png", width: 640, height: 480 };
    expect(live.parts).toEqual([{ type: "text", text: "look" }, { type: "link", url: "https://example.com/a%20b" }, part]);
    // Older clients read `text`: the summary of the parts.
    expect(live.text).toBe("look\nhttps://example.com/a%20b");
    expect(await rowsOf("default", roomId)).toEqual([{ id: a.id, bound_seq: "1", user_id: "alice" }]);

    // History (REST), a fresh socket's ready, and the Redis mirror all carry the parts.
    const history = (await api(`/v1/rooms/${roomId}/messages?limit=10`, { user: "carol" })).body as { messages: Message[] };
    expect(history.messages[0]?.parts).toEqual(live.parts);
    const late = await TestSocket.open(roomId, { user: "carol" });
    expect(((await late.ready()).messages[0] as Message | undefined)?.parts).toEqual(live.parts);
    if (hasRedis()) {
      await expect.poll(async () => (await mirroredStream(roomId))[0]?.parts, { timeout: 10_000 }).toEqual(live.parts);
      // The edge read path (a full page after a cursor, from Redis) serves them too.
      const edge = await api(`/v1/rooms/${roomId}/messages?after=0&limit=1`, { user: "carol" });
      expect(edge.headers.get("x-chat-source")).toBe("redis");
      expect((edge.body as { messages: Message[] }).messages[0]?.parts).toEqual(live.parts);
    }

    // Another reader downloads it: the bytes, the type, inline (an allowed image), nosniff, an ETag.
    const res = await workerFetch(`${BASE}/v1/rooms/${roomId}/attachments/${a.id}`, { headers: { authorization: `Bearer ${await tokenFor("carol")}` } });
    expect(res.status).toBe(200);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(bytes);
    expect(res.headers.get("content-type")).toBe("image/png");
    expect(res.headers.get("content-disposition")).toBe(`inline; filename="cat photo.png"; filename*=UTF-8''cat%20photo.png`);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("cache-control")).toBe("private, max-age=3600");
    const etag = res.headers.get("etag");
    expect(etag).toBeTruthy();
    const again = await workerFetch(`${BASE}/v1/rooms/${roomId}/attachments/${a.id}`, {
      headers: { authorization: `Bearer ${await tokenFor("carol")}`, "if-none-match": etag ?? "" },
    });
    expect(again.status).toBe(304);
    for (const s of [watcher, sender, late]) s.close();
  });

  it("a file that is not an inline image is served as a download; a text-only parts message works without any upload", async () => {
    const roomId = uniqueRoom("att");
    const a = await upload(roomId, text("%PDF-1.7 hello"), { user: "alice", type: "application/pdf", name: "report.pdf" });
    const sent = await sendParts(roomId, "alice", "m1", [{ type: "attachment", id: a.id }]);
    expect(sent.status).toBe(201);
    // Attachments only: the summary is the file names.
    expect((sent.body as { message: Message }).message.text).toBe("📎 report.pdf");
    const res = await workerFetch(`${BASE}/v1/rooms/${roomId}/attachments/${a.id}`, { headers: { authorization: `Bearer ${await tokenFor("bob")}` } });
    expect(res.headers.get("content-disposition")).toMatch(/^attachment; filename="report.pdf"/);
    expect(await res.text()).toBe("%PDF-1.7 hello");
    const plain = await sendParts(roomId, "alice", "m2", [{ type: "text", text: "just words" }]);
    expect(plain.status).toBe(201);
    expect((plain.body as { message: Message }).message).toMatchObject({ seq: 2, text: "just words", parts: [{ type: "text", text: "just words" }] });
    // A plain text send is unchanged: no parts field at all.
    const old = await api(`/v1/rooms/${roomId}/messages`, { user: "alice", body: { clientMsgId: "m3", text: "plain" } });
    expect((old.body as { message: Message }).message).not.toHaveProperty("parts");
  });

  it("range requests: a middle range, a suffix, and a range past the end (416)", async () => {
    const roomId = uniqueRoom("att");
    const body = text("0123456789abcdefghijklmnopqrstuvwxyz");
    const a = await upload(roomId, body, { user: "alice", type: "text/plain", name: "alphabet.txt" });
    const token = await tokenFor("alice");
    const get = (range: string) => workerFetch(`${BASE}/v1/rooms/${roomId}/attachments/${a.id}`, { headers: { authorization: `Bearer ${token}`, range } });
    const mid = await get("bytes=10-15");
    expect(mid.status).toBe(206);
    expect(mid.headers.get("content-range")).toBe(`bytes 10-15/${body.byteLength}`);
    expect(await mid.text()).toBe("abcdef");
    const tail = await get("bytes=-3");
    expect(tail.status).toBe(206);
    expect(await tail.text()).toBe("xyz");
    const past = await get("bytes=100-");
    expect(past.status).toBe(416);
    expect(past.headers.get("content-range")).toBe(`bytes */${body.byteLength}`);
    expect((await get("bytes=0-")).status).toBe(206);
  });

  it("a signed URL serves the bytes without a token until it expires; a tampered one is refused", async () => {
    const roomId = uniqueRoom("att");
    const bytes = png(2, 3);
    const a = await upload(roomId, bytes, { user: "alice", type: "image/png", name: "p.png" });
    const signed = await workerFetch(a.url);
    expect(signed.status).toBe(200);
    expect(new Uint8Array(await signed.arrayBuffer())).toEqual(bytes);
    // A public room's URL may sit in a shared cache until it expires; a private room's only in the browser.
    expect(signed.headers.get("cache-control")).toMatch(/^public, max-age=\d+, immutable$/);
    const issued = await api(`/v1/rooms/${roomId}/attachments/${a.id}/url`, { user: "alice" });
    expect((issued.body as { attachment: Uploaded }).attachment.url).toMatch(/scope=public/);
    const url = new URL(a.url);
    const tampered = [
      a.url.replace(roomId, uniqueRoom("other")),
      a.url.replace(/exp=\d+/, `exp=${Number(url.searchParams.get("exp")) + 3600}`),
      a.url.replace("scope=public", "scope=private"),
      a.url.replace(/sig=[^&]+/, "sig=AAAA"),
      a.url.replace("/default/", "/acme/"),
    ];
    for (const t of tampered) expect((await workerFetch(t)).status).toBe(403);
  });
});

describe("bad uploads store nothing", () => {
  const refused = async (roomId: string, res: { status: number; body: unknown }, status: number, code: string) => {
    expect(res.status).toBe(status);
    expect(codeOf(res)).toBe(code);
    expect(await objectsOf("default", roomId)).toEqual([]);
    expect(await rowsOf("default", roomId)).toEqual([]);
  };

  it("a spoofed content type (HTML as image/png, a PNG as a PDF, markup as text/plain) is refused", async () => {
    const roomId = uniqueRoom("att");
    await refused(roomId, await uploadRaw(roomId, text("<html><script>alert(1)</script></html>"), { type: "image/png", name: "x.png" }), 400, "bad_request");
    await refused(roomId, await uploadRaw(roomId, png(1, 1), { type: "application/pdf", name: "x.pdf" }), 400, "bad_request");
    await refused(roomId, await uploadRaw(roomId, text("  <!DOCTYPE html><p>hi"), { type: "text/plain", name: "x.txt" }), 400, "bad_request");
    await refused(roomId, await uploadRaw(roomId, text("<svg onload=alert(1)>"), { type: "image/svg+xml", name: "x.svg" }), 400, "bad_request");
    await refused(roomId, await uploadRaw(roomId, png(1, 1), { type: "text/html", name: "x.html" }), 400, "bad_request");
  });

  it("a body that ends before its Content-Length (the client went away mid-upload) stores nothing", async () => {
    const roomId = uniqueRoom("att");
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(text("x".repeat(500)));
        c.close();
      },
    });
    const res = await workerFetch(`${BASE}/v1/rooms/${roomId}/attachments?name=cut.txt`, {
      method: "POST",
      headers: { authorization: `Bearer ${await tokenFor("alice")}`, "content-type": "text/plain", "content-length": "1000" },
      body,
    });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(await objectsOf("default", roomId)).toEqual([]);
    expect(await rowsOf("default", roomId)).toEqual([]);
  });

  it("zero bytes, an oversized body (413 before a byte is read), and a chunked body are refused", async () => {
    const roomId = uniqueRoom("att");
    await refused(roomId, await uploadRaw(roomId, new Uint8Array(0)), 400, "bad_request");
    await refused(roomId, await uploadRaw(roomId, new Uint8Array(2000), { overrides: { ATTACHMENT_MAX_BYTES: "1000" } }), 413, "too_large");
    const chunked = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(text("hello"));
        c.close();
      },
    });
    const res = await workerFetch(`${BASE}/v1/rooms/${roomId}/attachments?name=a.txt`, {
      method: "POST",
      headers: { authorization: `Bearer ${await tokenFor("alice")}`, "content-type": "text/plain" },
      body: chunked,
    });
    await refused(roomId, { status: res.status, body: await res.json() }, 400, "bad_request");
  });

  it("names with path tricks, control or direction characters, or over 255 bytes are refused", async () => {
    const roomId = uniqueRoom("att");
    for (const name of ["../../etc/passwd", "a/b.txt", "..\\win.ini", "..", "bad\u0000.txt", "evil\u202Egpj.exe", "line\nbreak.txt", "", `${"x".repeat(256)}.txt`]) {
      await refused(roomId, await uploadRaw(roomId, text("hello"), { type: "text/plain", name }), 400, "bad_request");
    }
    expect((await upload(roomId, text("hello"), { type: "text/plain", name: "  ünïcødé – ok.txt " })).name).toBe("ünïcødé – ok.txt");
  });
});

describe("who may upload, send and download", () => {
  const acmeRoom = async (admin: string, visibility: "public" | "private"): Promise<string> => {
    const roomId = uniqueRoom("attp");
    const res = await api("/v1/rooms", { token: await acmeToken(admin), body: { roomId, visibility } });
    expect(res.status).toBe(201);
    return roomId;
  };

  it("a viewer and a non-member of a private room cannot upload; a non-member cannot download; members can", async () => {
    const roomId = await acmeRoom("owner", "private");
    const owner = await acmeToken("owner");
    expect((await api(`/v1/rooms/${roomId}/members/viewer`, { token: owner, method: "PUT", body: { role: "viewer" } })).status).toBe(200);
    expect((await api(`/v1/rooms/${roomId}/members/member`, { token: owner, method: "PUT", body: { role: "member" } })).status).toBe(200);
    const viewerUp = await uploadRaw(roomId, text("hi"), { token: await acmeToken("viewer"), type: "text/plain", name: "a.txt" });
    expect([viewerUp.status, codeOf(viewerUp)]).toEqual([403, "forbidden"]);
    const outsiderUp = await uploadRaw(roomId, text("hi"), { token: await acmeToken("outsider"), type: "text/plain", name: "a.txt" });
    expect([outsiderUp.status, codeOf(outsiderUp)]).toEqual([403, "forbidden"]);
    expect(await objectsOf("acme", roomId)).toEqual([]);

    const a = await upload(roomId, text("secret plans"), { token: await acmeToken("member"), type: "text/plain", name: "plans.txt" });
    expect(a.url).toMatch(/scope=private/);
    expect((await workerFetch(a.url)).headers.get("cache-control")).toMatch(/^private, max-age=\d+, immutable$/);
    expect((await sendParts(roomId, "member", "m1", [{ type: "attachment", id: a.id }], await acmeToken("member"))).status).toBe(201);
    const get = async (token: string) => workerFetch(`${BASE}/v1/rooms/${roomId}/attachments/${a.id}`, { headers: { authorization: `Bearer ${token}` } });
    expect((await get(await acmeToken("outsider"))).status).toBe(403);
    expect((await api(`/v1/rooms/${roomId}/attachments/${a.id}/url`, { token: await acmeToken("outsider") })).status).toBe(403);
    const viewerGet = await get(await acmeToken("viewer"));
    expect(viewerGet.status).toBe(200);
    expect(await viewerGet.text()).toBe("secret plans");
    // Another tenant with the same room id sees nothing of it.
    expect((await get(await tokenFor("owner"))).status).toBe(404);
  });

  it("a send naming another user's, another room's or another tenant's upload, or an unknown id, is refused and consumes no seq", async () => {
    const roomId = uniqueRoom("att");
    const otherRoom = uniqueRoom("att");
    const mine = await upload(roomId, text("mine"), { user: "alice", type: "text/plain", name: "a.txt" });
    const bobs = await upload(roomId, text("bob's"), { user: "bob", type: "text/plain", name: "b.txt" });
    const elsewhere = await upload(otherRoom, text("elsewhere"), { user: "alice", type: "text/plain", name: "c.txt" });
    const acmeRoomId = await acmeRoom("alice", "public");
    const acmeUpload = await upload(acmeRoomId, text("acme"), { token: await acmeToken("alice"), type: "text/plain", name: "d.txt" });
    expect((await api(`/v1/rooms/${roomId}/messages`, { user: "alice", body: { clientMsgId: "m0", text: "first" } })).status).toBe(201);
    for (const id of [bobs.id, elsewhere.id, acmeUpload.id, crypto.randomUUID()]) {
      const res = await sendParts(roomId, "alice", `bad-${id}`, [{ type: "text", text: "x" }, { type: "attachment", id }]);
      expect([res.status, codeOf(res)]).toEqual([404, "not_found"]);
    }
    // Bob's unbound upload is not downloadable by anyone else yet.
    expect((await workerFetch(`${BASE}/v1/rooms/${roomId}/attachments/${bobs.id}`, { headers: { authorization: `Bearer ${await tokenFor("alice")}` } })).status).toBe(404);
    expect(await latestSeq(roomId, "alice")).toBe(1);
    expect(await storedMessages(roomId)).toHaveLength(1);
    // Still usable by its owner.
    expect((await sendParts(roomId, "alice", "ok", [{ type: "attachment", id: mine.id }])).status).toBe(201);
  });

  it("a bound attachment cannot be reused, not even by two sends racing in one batch; the loser consumes no seq", async () => {
    const roomId = uniqueRoom("att");
    const a = await upload(roomId, text("once"), { user: "alice", type: "text/plain", name: "once.txt" });
    const [x, y] = await Promise.all([
      sendParts(roomId, "alice", "x", [{ type: "attachment", id: a.id }]),
      sendParts(roomId, "alice", "y", [{ type: "attachment", id: a.id }]),
    ]);
    expect([x.status, y.status].sort()).toEqual([201, 409]);
    const again = await sendParts(roomId, "alice", "z", [{ type: "attachment", id: a.id }]);
    expect([again.status, codeOf(again)]).toEqual([409, "conflict"]);
    expect(await latestSeq(roomId, "alice")).toBe(1);
    // A resend of the committed one (same clientMsgId) is answered with the original.
    const winner = x.status === 201 ? "x" : "y";
    const resend = await sendParts(roomId, "alice", winner, [{ type: "attachment", id: a.id }]);
    expect(resend.status).toBe(200);
  });

  it("invalid parts are typed errors: a javascript: link, text with parts, too many parts, an unknown part type", async () => {
    const roomId = uniqueRoom("att");
    const cases: Array<[unknown, string]> = [
      [[{ type: "link", url: "javascript:alert(1)" }], "bad_request"],
      [[{ type: "link", url: "https://user:pw@bank.example/" }], "bad_request"],
      [Array.from({ length: 11 }, () => ({ type: "text", text: "x" })), "too_large"],
      [[{ type: "video", id: "x" }], "bad_request"],
      [[], "bad_request"],
      [[{ type: "attachment", id: "../../etc" }], "bad_request"],
    ];
    for (const [parts, code] of cases) {
      const res = await sendParts(roomId, "alice", "m", parts as unknown[]);
      expect(codeOf(res)).toBe(code);
    }
    const both = await api(`/v1/rooms/${roomId}/messages`, { user: "alice", body: { clientMsgId: "m", text: "x", parts: [{ type: "text", text: "y" }] } });
    expect(codeOf(both)).toBe("bad_request");
    expect(await storedMessages(roomId)).toEqual([]);
  });
});

describe("the commit statement's own guard (below the room's check)", () => {
  it("commits nothing when an attachment part names another user's, a bound, or a missing upload, or one twice; binds in the same statement otherwise", async () => {
    const roomId = uniqueRoom("att");
    const mine = await upload(roomId, text("mine"), { user: "alice", type: "text/plain", name: "a.txt" });
    const bobs = await upload(roomId, text("bob's"), { user: "bob", type: "text/plain", name: "b.txt" });
    // The room's own writer holds an epoch; this test plays a writer that skipped the room's check.
    const store = new PostgresStore({ connectionString: testEnv.DATABASE_URL, statementTimeoutMs: 5000, idleTimeoutMs: 1000, maxConnections: 1 });
    try {
      const [state] = await sql<{ writer_epoch: string; last_seq: string }>("SELECT writer_epoch, last_seq FROM rooms WHERE tenant = 'default' AND room_id = $1", [roomId]);
      const epoch = Number(state?.writer_epoch);
      const last = Number(state?.last_seq);
      const entry = (clientMsgId: string, ids: string[]) => ({
        id: crypto.randomUUID(),
        kind: EntryKind.Message,
        userId: "alice",
        clientMsgId,
        text: "x",
        parts: ids.map((id) => ({ type: "attachment" as const, id, name: "a.txt", size: 4, contentType: "text/plain" })),
      });
      const key = { tenant: "default", roomId };
      const now = new Date().toISOString();
      for (const ids of [[bobs.id], [crypto.randomUUID()], [mine.id, mine.id]]) {
        expect(await store.commitBatch(key, epoch, last, now, [entry(`bad-${ids.join("-")}`, ids)])).toEqual({ kind: "rejected" });
      }
      expect(await rowsOf("default", roomId)).toEqual([
        { id: mine.id, bound_seq: null, user_id: "alice" },
        { id: bobs.id, bound_seq: null, user_id: "bob" },
      ]);
      expect((await store.commitBatch(key, epoch, last, now, [entry("ok", [mine.id])])).kind).toBe("committed");
      expect((await rowsOf("default", roomId))[0]?.bound_seq).toBe(String(last + 1));
      // Bound now: a second message naming it is rejected too.
      expect(await store.commitBatch(key, epoch, last + 1, now, [entry("again", [mine.id])])).toEqual({ kind: "rejected" });
      expect(await storedMessages(roomId)).toHaveLength(1);
    } finally {
      await store.close();
    }
  });
});

describe("lifecycle", () => {
  it("the sweep deletes uploads never bound once they are older than the TTL, and keeps young and bound ones", async () => {
    const roomId = uniqueRoom("att");
    const old = await upload(roomId, text("old"), { user: "alice", type: "text/plain", name: "old.txt" });
    const young = await upload(roomId, text("young"), { user: "alice", type: "text/plain", name: "young.txt" });
    const bound = await upload(roomId, text("bound"), { user: "alice", type: "text/plain", name: "bound.txt" });
    expect((await sendParts(roomId, "alice", "m", [{ type: "attachment", id: bound.id }])).status).toBe(201);
    await sql("UPDATE attachments SET created_at = now() - interval '25 hours' WHERE tenant = 'default' AND room_id = $1 AND id = ANY($2::text[])", [
      roomId,
      [old.id, bound.id],
    ]);
    expect(await sweepUnbound(env as unknown as Env)).toBeGreaterThanOrEqual(1);
    expect((await rowsOf("default", roomId)).map((r) => r.id).sort()).toEqual([young.id, bound.id].sort());
    expect((await objectsOf("default", roomId)).sort()).toEqual([young.id, bound.id].map((id) => `t/default/r/${roomId}/${id}`).sort());
  });

  it("the cron trigger runs the sweep (the Worker's scheduled handler, as wrangler.toml schedules it)", async () => {
    const roomId = uniqueRoom("att");
    const old = await upload(roomId, text("old"), { user: "alice", type: "text/plain", name: "old.txt" });
    await sql("UPDATE attachments SET created_at = now() - interval '25 hours' WHERE tenant = 'default' AND room_id = $1", [roomId]);
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "*/15 * * * *" }), env as unknown as Env, ctx);
    await waitOnExecutionContext(ctx);
    expect(await rowsOf("default", roomId)).toEqual([]);
    expect(await objectsOf("default", roomId)).toEqual([]);
    void old;
  });

  it("an upload close to its expiry can no longer be bound (the sweep could be deleting it)", async () => {
    const roomId = uniqueRoom("att");
    const a = await upload(roomId, text("late"), { user: "alice", type: "text/plain", name: "late.txt" });
    await sql("UPDATE attachments SET created_at = now() - interval '23 hours 30 minutes' WHERE tenant = 'default' AND room_id = $1", [roomId]);
    const res = await sendParts(roomId, "alice", "m", [{ type: "attachment", id: a.id }]);
    expect([res.status, codeOf(res)]).toEqual([404, "not_found"]);
  });

  it("deleting a message deletes its attachments' objects and records; its parts are gone from history and its attachment from downloads", async () => {
    const roomId = uniqueRoom("att");
    const a = await upload(roomId, text("to be deleted"), { user: "alice", type: "text/plain", name: "gone.txt" });
    const keep = await upload(roomId, text("kept"), { user: "alice", type: "text/plain", name: "kept.txt" });
    expect((await sendParts(roomId, "alice", "m1", [{ type: "text", text: "bye" }, { type: "attachment", id: a.id }])).status).toBe(201);
    expect((await sendParts(roomId, "alice", "m2", [{ type: "attachment", id: keep.id }])).status).toBe(201);
    // The `delete` frame (issue #14); the REST route says the same.
    const socket = await TestSocket.open(roomId, { user: "alice" });
    await socket.ready();
    socket.send({ type: "delete", clientMsgId: "d1", target: 1 });
    const answer = await eventually("delete outcome", () => socket.frames.find((f) => (f.type === "ack" || f.type === "error") && f.clientMsgId === "d1"));
    expect(answer.type).toBe("ack");
    socket.close();
    // After the commit, objects first, then rows (src/room/attachments.ts): wait for both.
    await expect.poll(() => objectsOf("default", roomId), { timeout: 5000 }).toEqual([`t/default/r/${roomId}/${keep.id}`]);
    await expect.poll(async () => (await rowsOf("default", roomId)).map((r) => r.id), { timeout: 5000 }).toEqual([keep.id]);
    const history = (await api(`/v1/rooms/${roomId}/messages?limit=10`, { user: "bob" })).body as { messages: Message[] };
    const tombstone = history.messages.find((m) => m.seq === 1);
    expect(tombstone).toMatchObject({ deleted: true, text: "" });
    expect(tombstone).not.toHaveProperty("parts");
    const res = await workerFetch(`${BASE}/v1/rooms/${roomId}/attachments/${a.id}`, { headers: { authorization: `Bearer ${await tokenFor("bob")}` } });
    expect(res.status).toBe(404);
  });

  it("purging a room deletes its objects and their records", async () => {
    const roomId = uniqueRoom("att");
    expect((await api("/v1/rooms", { user: "alice", body: { roomId } })).status).toBe(201);
    const a = await upload(roomId, text("a"), { user: "alice", type: "text/plain", name: "a.txt" });
    await upload(roomId, text("b"), { user: "alice", type: "text/plain", name: "b.txt" });
    expect((await sendParts(roomId, "alice", "m", [{ type: "attachment", id: a.id }])).status).toBe(201);
    const other = uniqueRoom("att");
    await upload(other, text("kept"), { user: "alice", type: "text/plain", name: "kept.txt" });
    const res = await api(`/v1/rooms/${roomId}?purge=true`, { user: "alice", method: "DELETE" });
    expect(res.status).toBe(200);
    expect(await objectsOf("default", roomId)).toEqual([]);
    expect(await rowsOf("default", roomId)).toEqual([]);
    expect(await objectsOf("default", other)).toHaveLength(1);
  });

  it("an object lost between upload and send (R2 failure, operator): the send is refused with not_found, nothing is committed, and a fresh upload succeeds", async () => {
    const roomId = uniqueRoom("att");
    const a = await upload(roomId, text("doomed"), { user: "alice", type: "text/plain", name: "doomed.txt" });
    await bucket.delete(`t/default/r/${roomId}/${a.id}`);
    const res = await sendParts(roomId, "alice", "m", [{ type: "text", text: "see file" }, { type: "attachment", id: a.id }]);
    expect([res.status, codeOf(res)]).toEqual([404, "not_found"]);
    expect((res.body as ErrorBody).error.message).toMatch(/upload it again/);
    expect(await storedMessages(roomId)).toEqual([]);
    expect((await rowsOf("default", roomId))[0]?.bound_seq).toBeNull();
    const b = await upload(roomId, text("doomed"), { user: "alice", type: "text/plain", name: "doomed.txt" });
    const retry = await sendParts(roomId, "alice", "m", [{ type: "text", text: "see file" }, { type: "attachment", id: b.id }]);
    expect(retry.status).toBe(201);
    expect((retry.body as { message: Message }).message.seq).toBe(1);
  });

  it("a user's unsent uploads per room are capped (20): the next one is rate_limited and stores nothing", async () => {
    const roomId = uniqueRoom("att");
    for (let i = 0; i < 20; i++) await upload(roomId, text(`f${i}`), { user: "hoarder", type: "text/plain", name: `f${i}.txt` });
    const res = await uploadRaw(roomId, text("one more"), { user: "hoarder", type: "text/plain", name: "more.txt" });
    expect([res.status, codeOf(res)]).toEqual([429, "rate_limited"]);
    expect(await objectsOf("default", roomId)).toHaveLength(20);
  });
});
