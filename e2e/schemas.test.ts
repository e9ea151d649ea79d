// The published contract against the real server (wrangler dev, real Postgres and Redis): every
// documented route is called and its answer validates against the response schema of
// GET /openapi.json; a WebSocket session produces every server frame type and every entry kind,
// and each validates against its JSON Schema (src/protocol/schemas.ts). The unit test
// (src/api/openapi.test.ts) holds the schemas to the codec; this one holds them to what the
// server actually sends.

import { describe, expect, it } from "vitest";
import { WebSocket as NodeWebSocket } from "ws";
import { OPERATIONS } from "../src/api/openapi.js";
import { EntryKind, ServerFrameType } from "../src/protocol/frames.js";
import { schemaValidator } from "../src/protocol/schema-validator.js";
import { EntrySchemas, ServerFrameSchema, ServerFrameSchemas } from "../src/protocol/schemas.js";
import { inject } from "vitest";
import { mintApiKey } from "../src/api/apikeys.js";
import { neonPool } from "../tools/local/neon.js";
import { baseUrl, eventually, mintToken, uniqueRoom } from "./helpers.js";

/** The tenant's first API key, written the way `npm run api-key` writes it (only its hash). */
const firstApiKey = async (tenant: string): Promise<string> => {
  const db = neonPool(inject("databaseUrl"), inject("neonWsProxy") || undefined, 1);
  try {
    const minted = await mintApiKey();
    await db.query("INSERT INTO api_keys (id, tenant, name, secret_hash) VALUES ($1, $2, $3, $4)", [minted.id, tenant, "e2e", minted.secretHash]);
    return minted.key;
  } finally {
    await db.end().catch(() => {});
  }
};

const ajv = schemaValidator();
const check = (what: string, schema: object, value: unknown): void => {
  const validate = ajv.compile(schema);
  expect(validate(value), `${what}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value).slice(0, 600)}`).toBe(true);
};

interface Called {
  key: string;
  status: number;
  body: unknown;
}

describe("the OpenAPI document against the real server", () => {
  it("every documented route answers with a body that validates against its response schema", async () => {
    const roomId = uniqueRoom("oas");
    const tokens = { alice: await mintToken("alice"), bob: await mintToken("bob"), server: await firstApiKey("e2esrv") };
    const called = new Map<string, Called>();
    const call = async (
      method: string,
      template: string,
      path: string,
      options: { as?: keyof typeof tokens; body?: unknown; raw?: { bytes: Uint8Array; type: string } } = {},
    ) => {
      const headers: Record<string, string> = {};
      if (options.as) headers.authorization = `Bearer ${tokens[options.as]}`;
      if (options.body !== undefined) headers["content-type"] = "application/json";
      if (options.raw) headers["content-type"] = options.raw.type;
      const res = await fetch(new URL(path, baseUrl()), {
        method,
        headers,
        ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        ...(options.raw ? { body: new Blob([options.raw.bytes as BlobPart]) } : {}),
      });
      const text = await res.text();
      // Downloads answer bytes, not JSON: only JSON answers are checked against a schema.
      const json = (res.headers.get("content-type") ?? "").startsWith("application/json");
      const body: unknown = text === "" || !json ? undefined : JSON.parse(text);
      const key = `${method} ${template}`;
      const op = OPERATIONS.find((o) => `${o.method.toUpperCase()} ${o.path}` === key);
      if (!op) throw new Error(`${key} is not in OPERATIONS (src/api/openapi.ts)`);
      // A resend answers 200 where a first send answers 201: both are the documented success.
      expect([op.response.status, 200], `${key} answered ${res.status}: ${text.slice(0, 300)}`).toContain(res.status);
      if (op.response.schema) check(`${key} response`, op.response.schema, body);
      called.set(key, { key, status: res.status, body });
      return body as Record<string, unknown>;
    };
    const room = `/v1/rooms/${roomId}`;

    await call("GET", "/healthz", "/healthz");
    await call("GET", "/openapi.json", "/openapi.json");
    await call("POST", "/v1/dev/token", "/v1/dev/token", { body: { userId: "carol" } });
    await call("POST", "/v1/rooms", "/v1/rooms", { as: "alice", body: { roomId, name: "Contract", visibility: "public", metadata: { k: 1 } } });
    await call("GET", "/v1/rooms/{roomId}", room, { as: "alice" });
    await call("PATCH", "/v1/rooms/{roomId}", room, { as: "alice", body: { name: "Contract, renamed" } });
    const sent = (await call("POST", "/v1/rooms/{roomId}/messages", `${room}/messages`, { as: "alice", body: { clientMsgId: "m1", text: "hello" } })) as {
      message: { seq: number };
    };
    const seq = sent.message.seq;
    await call("POST", "/v1/rooms/{roomId}/messages", `${room}/messages`, { as: "alice", body: { clientMsgId: "m2", text: "a reply", replyTo: seq } });
    await call("PATCH", "/v1/rooms/{roomId}/messages/{seq}", `${room}/messages/${seq}`, { as: "alice", body: { clientMsgId: "e1", text: "hello, edited" } });
    await call("POST", "/v1/rooms/{roomId}/messages/{seq}/reactions", `${room}/messages/${seq}/reactions`, { as: "alice", body: { clientMsgId: "r1", emoji: "👍" } });
    await call("GET", "/v1/rooms/{roomId}/messages", `${room}/messages?limit=50`, { as: "alice" });
    await call("GET", "/v1/rooms/{roomId}/messages", `${room}/messages?thread=${seq}`, { as: "alice" });
    await call("GET", "/v1/rooms/{roomId}/messages", `${room}/messages?after=0`, { as: "alice" });
    await call("POST", "/v1/rooms/{roomId}/join", `${room}/join`, { as: "bob" });
    await call("PUT", "/v1/rooms/{roomId}/members/{userId}", `${room}/members/bob`, { as: "alice", body: { role: "viewer" } });
    await call("GET", "/v1/rooms/{roomId}/members", `${room}/members`, { as: "alice" });
    await call("PUT", "/v1/rooms/{roomId}/read", `${room}/read`, { as: "bob", body: { seq } });
    await call("GET", "/v1/rooms/{roomId}/presence", `${room}/presence`, { as: "alice" });
    await call("GET", "/v1/rooms/{roomId}/status", `${room}/status`, { as: "alice" });
    await call("GET", "/v1/rooms", "/v1/rooms", { as: "alice" });
    await call("DELETE", "/v1/rooms/{roomId}/members/{userId}", `${room}/members/bob`, { as: "alice" });
    await call("POST", "/v1/rooms/{roomId}/join", `${room}/join`, { as: "bob" });
    await call("POST", "/v1/rooms/{roomId}/leave", `${room}/leave`, { as: "bob" });
    await call("PUT", "/v1/users/me", "/v1/users/me", { as: "alice", body: { name: "Alice", avatarUrl: "https://example.com/a.png", data: { x: 1 } } });
    await call("GET", "/v1/users/{userId}", "/v1/users/alice", { as: "bob" });
    await call("GET", "/v1/users", "/v1/users?ids=alice,bob", { as: "bob" });
    const uploaded = (await call("POST", "/v1/rooms/{roomId}/attachments", `${room}/attachments?name=notes.txt`, {
      as: "alice",
      raw: { bytes: new TextEncoder().encode("contract notes"), type: "text/plain" },
    })) as { attachment: { id: string } };
    const fileId = uploaded.attachment.id;
    await call("POST", "/v1/rooms/{roomId}/messages", `${room}/messages`, { as: "alice", body: { clientMsgId: "m3", parts: [{ type: "attachment", id: fileId }] } });
    await call("GET", "/v1/rooms/{roomId}/attachments/{id}", `${room}/attachments/${fileId}`, { as: "bob" });
    const signed = (await call("GET", "/v1/rooms/{roomId}/attachments/{id}/url", `${room}/attachments/${fileId}/url`, { as: "bob" })) as { attachment: { url: string } };
    const signedUrl = new URL(signed.attachment.url);
    await call("GET", "/v1/attachments/{tenant}/{roomId}/{id}", `${signedUrl.pathname}${signedUrl.search}`);
    // Moderation, by the room's admin (alice) and any reader (reports).
    await call("POST", "/v1/rooms/{roomId}/join", `${room}/join`, { as: "bob" });
    await call("POST", "/v1/rooms/{roomId}/reports", `${room}/reports`, { as: "bob", body: { seq, userId: "alice", reason: "e2e" } });
    await call("PUT", "/v1/rooms/{roomId}/mutes/{userId}", `${room}/mutes/bob`, { as: "alice", body: { durationS: 60, reason: "calm down" } });
    await call("DELETE", "/v1/rooms/{roomId}/mutes/{userId}", `${room}/mutes/bob`, { as: "alice" });
    await call("PUT", "/v1/rooms/{roomId}/bans/{userId}", `${room}/bans/bob`, { as: "alice", body: { reason: "e2e" } });
    await call("DELETE", "/v1/rooms/{roomId}/bans/{userId}", `${room}/bans/bob`, { as: "alice" });
    // The server API, with a tenant API key.
    const srvRoom = uniqueRoom("oas-srv");
    const srv = `/v1/server/rooms/${srvRoom}`;
    const created = (await call("POST", "/v1/server/keys", "/v1/server/keys", { as: "server", body: { name: "second" } })) as { key: { id: string } };
    await call("GET", "/v1/server/keys", "/v1/server/keys", { as: "server" });
    await call("DELETE", "/v1/server/keys/{keyId}", `/v1/server/keys/${created.key.id}`, { as: "server" });
    await call("POST", "/v1/server/rooms", "/v1/server/rooms", { as: "server", body: { roomId: srvRoom, name: "Server room", visibility: "private", metadata: {} } });
    await call("GET", "/v1/server/rooms", "/v1/server/rooms?limit=5", { as: "server" });
    await call("GET", "/v1/server/rooms/{roomId}", srv, { as: "server" });
    await call("PATCH", "/v1/server/rooms/{roomId}", srv, { as: "server", body: { name: "Server room, renamed" } });
    await call("PUT", "/v1/server/rooms/{roomId}/members/{userId}", `${srv}/members/carol`, { as: "server", body: { role: "member" } });
    await call("GET", "/v1/server/rooms/{roomId}/members", `${srv}/members`, { as: "server" });
    await call("POST", "/v1/server/rooms/{roomId}/messages", `${srv}/messages`, { as: "server", body: { clientMsgId: "sys-1", text: "Welcome!" } });
    await call("PUT", "/v1/server/rooms/{roomId}/mutes/{userId}", `${srv}/mutes/carol`, { as: "server", body: { durationS: 60 } });
    await call("DELETE", "/v1/server/rooms/{roomId}/mutes/{userId}", `${srv}/mutes/carol`, { as: "server" });
    await call("PUT", "/v1/server/rooms/{roomId}/bans/{userId}", `${srv}/bans/carol`, { as: "server", body: { reason: "e2e" } });
    await call("DELETE", "/v1/server/rooms/{roomId}/bans/{userId}", `${srv}/bans/carol`, { as: "server" });
    await call("DELETE", "/v1/server/rooms/{roomId}/members/{userId}", `${srv}/members/carol`, { as: "server" });
    const banned = `oas-banned-${Date.now().toString(36)}`;
    await call("PUT", "/v1/server/bans/{userId}", `/v1/server/bans/${banned}`, { as: "server", body: { reason: "e2e" } });
    await call("DELETE", "/v1/server/bans/{userId}", `/v1/server/bans/${banned}`, { as: "server" });
    await call("GET", "/v1/server/reports", "/v1/server/reports?limit=5", { as: "server" });
    await call("GET", "/v1/server/users/{userId}/export", "/v1/server/users/carol/export", { as: "server" });
    await call("DELETE", "/v1/server/users/{userId}", `/v1/server/users/${banned}`, { as: "server" });
    await call("DELETE", "/v1/server/rooms/{roomId}", srv, { as: "server" });
    await call("DELETE", "/v1/rooms/{roomId}/messages/{seq}", `${room}/messages/${seq}`, { as: "alice" });
    await call("DELETE", "/v1/rooms/{roomId}", `${room}?purge=true`, { as: "alice" });

    // The socket route answers 101, not a body: the WebSocket test below covers it.
    const uncalled = OPERATIONS.map((o) => `${o.method.toUpperCase()} ${o.path}`).filter((k) => !called.has(k) && k !== "GET /v1/rooms/{roomId}/ws");
    expect(uncalled, `documented routes this test does not call yet (add a call in e2e/schemas.test.ts): ${uncalled.join(", ")}`).toEqual([]);
  });
});

/** A raw protocol-2 socket that records every frame. */
const open = async (roomId: string, userId: string, query = "last=50") => {
  const token = await mintToken(userId);
  const url = `${baseUrl().replace(/^http/, "ws")}/v1/rooms/${roomId}/ws?v=2&${query}&token=${encodeURIComponent(token)}`;
  const ws = new NodeWebSocket(url);
  const frames: Array<Record<string, unknown>> = [];
  ws.on("message", (data) => frames.push(JSON.parse(String(data)) as Record<string, unknown>));
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  await eventually(`${userId}'s ready`, () => frames.find((f) => f.type === "ready"));
  const send = (frame: unknown) => ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  const until = (what: string, test: (f: Record<string, unknown>) => boolean) => eventually(what, () => frames.find(test));
  return { ws, frames, send, until };
};

const entryOf = (f: Record<string, unknown>) => f.message as { kind?: string; seq?: number } | undefined;

describe("WebSocket frames against the real server", () => {
  it("a session that produces every server frame type and every entry kind: each frame and entry validates against its schema", async () => {
    const roomId = uniqueRoom("frames");
    const alice = await open(roomId, "alice");
    const bob = await open(roomId, "bob");
    alice.send({ type: "send", clientMsgId: "m1", text: "hi" });
    await alice.until("ack", (f) => f.type === "ack");
    bob.send({ type: "typing" });
    await alice.until("typing", (f) => f.type === "typing");
    bob.send({ type: "read", seq: 1 });
    await alice.until("receipt", (f) => f.type === "receipt");
    bob.send({ type: "presence", data: { status: "away" } });
    await alice.until("presence data", (f) => f.type === "presence" && f.data !== undefined);
    alice.send({ type: "ping" });
    await alice.until("pong", (f) => f.type === "pong");
    alice.send("{not json");
    await alice.until("error", (f) => f.type === "error");
    alice.send({ type: "send", clientMsgId: "m2", text: "a reply", replyTo: 1 });
    alice.send({ type: "edit", clientMsgId: "e1", target: 1, text: "hi, edited" });
    alice.send({ type: "react", clientMsgId: "r1", target: 1, emoji: "👍" });
    alice.send({ type: "delete", clientMsgId: "d1", target: 2 });
    await alice.until("the delete", (f) => entryOf(f)?.kind === EntryKind.Delete);
    // A system entry: bob becomes a member (the room was opened by first use: alice is its member).
    const join = await fetch(new URL(`/v1/rooms/${roomId}/join`, baseUrl()), { method: "POST", headers: { authorization: `Bearer ${await mintToken("bob")}` } });
    expect(join.status).toBe(200);
    await alice.until("a system entry", (f) => entryOf(f)?.kind === EntryKind.System);
    // A late joiner's ready carries every kind, messages in their current form.
    const carol = await open(roomId, "carol", "since=0");

    const frames = [...alice.frames, ...bob.frames, ...carol.frames];
    const union = ajv.compile(ServerFrameSchema);
    const entries: Array<{ kind?: string }> = [];
    for (const frame of frames) {
      const type = frame.type as keyof typeof ServerFrameSchemas;
      check(`${type} frame`, ServerFrameSchemas[type] ?? { not: {} }, frame);
      expect(union(frame), `${type} frame (union): ${ajv.errorsText(union.errors)}`).toBe(true);
      if (type === "message") entries.push(frame.message as { kind?: string });
      if (type === "ready") entries.push(...(frame.messages as Array<{ kind?: string }>));
    }
    for (const entry of entries) {
      const kind = entry.kind as keyof typeof EntrySchemas;
      check(`${kind} entry`, EntrySchemas[kind] ?? { not: {} }, entry);
    }
    expect(new Set(frames.map((f) => f.type)), "server frame types seen").toEqual(new Set(Object.values(ServerFrameType)));
    expect(new Set(entries.map((e) => e.kind)), "entry kinds seen").toEqual(new Set(Object.values(EntryKind)));
    for (const s of [alice, bob, carol]) s.ws.close();
  });
});
