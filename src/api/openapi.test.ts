// The OpenAPI document and the frame schemas cannot drift from the server:
//  1. every route the Hono app registers is in the document, and every documented route is in the app;
//  2. every example validates against its schema, and every schema compiles (strict mode);
//  3. generated bodies and frames, valid and invalid, are accepted and refused alike by the codec
//     (what the server runs) and by the schema (what other clients read).
// ajv runs here, in Node, never in the Worker (it compiles validators with new Function).

import type { ValidateFunction } from "ajv/dist/2020.js";
import { describe, expect, it } from "vitest";
import {
  type Decoded,
  decodeClientFrame,
  decodeDeleteRequest,
  decodeEditRequest,
  decodeProfileUpdate,
  decodeReactRequest,
  decodeReadRequest,
  decodeRole,
  decodeRoomInit,
  decodeRoomUpdate,
  decodeSendRequest,
} from "../protocol/codec.js";
import { ClientFrameType, EntryKind, ServerFrameType } from "../protocol/frames.js";
import {
  ClientFrameSchema,
  ClientFrameSchemas,
  DeleteRequestSchema,
  EditRequestSchema,
  EntrySchemas,
  ProfileUpdateSchema,
  ReactRequestSchema,
  ReadRequestSchema,
  RoleRequestSchema,
  RoomInitSchema,
  RoomUpdateSchema,
  SendRequestSchema,
  ServerFrameSchema,
  ServerFrameSchemas,
} from "../protocol/schemas.js";
import { schemaValidator } from "../protocol/schema-validator.js";
import { decodeKeyRequest, decodeReport, decodeRestriction, decodeServerSend } from "../protocol/moderation-codec.js";
import { KeyRequestSchema, ReportRequestSchema, RestrictionRequestSchema, ServerSendRequestSchema } from "../protocol/schemas.js";
import { app } from "./app.js";
import { OPERATIONS, openApiDocument } from "./openapi.js";

const ajv = schemaValidator();
const compile = (schema: object): ValidateFunction => ajv.compile(schema);

/** Hono's `/v1/rooms/:roomId` as OpenAPI's `/v1/rooms/{roomId}`. */
const openApiPath = (honoPath: string) => honoPath.replace(/:(\w+)/g, "{$1}");

describe("OpenAPI: routes", () => {
  it("every route of the app is in the document and every documented route is in the app", () => {
    // Middleware (app.use: method ALL) and the demo page's catch-all (GET /*, assets) are not API routes.
    const inApp = new Set(
      app.routes.filter((r) => r.method !== "ALL" && r.path !== "/*").map((r) => `${r.method} ${openApiPath(r.path)}`),
    );
    const documented = new Set(OPERATIONS.map((op) => `${op.method.toUpperCase()} ${op.path}`));
    const undocumented = [...inApp].filter((r) => !documented.has(r));
    const missing = [...documented].filter((r) => !inApp.has(r));
    expect(
      undocumented,
      `routes registered in src/api/app.ts but not described in OPERATIONS (src/api/openapi.ts): add an entry with its request/response schemas and examples for ${undocumented.join(", ")}`,
    ).toEqual([]);
    expect(missing, `routes described in src/api/openapi.ts that the app does not register (removed or renamed?): ${missing.join(", ")}`).toEqual([]);
  });

  it("GET /openapi.json serves the document, OpenAPI 3.1, with the request's origin as its server", async () => {
    const res = await app.request("http://chat.test/openapi.json", {}, { LOG_LEVEL: "warn" });
    expect(res.status).toBe(200);
    const doc = (await res.json()) as ReturnType<typeof openApiDocument>;
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.servers).toEqual([{ url: "http://chat.test" }]);
    expect(Object.keys(doc.paths)).toContain("/v1/rooms/{roomId}/messages");
    expect(JSON.parse(JSON.stringify(openApiDocument("http://chat.test")))).toEqual(doc);
  });

  it("every request and response example validates against its schema, and every schema compiles in strict mode", () => {
    const failures: string[] = [];
    for (const op of OPERATIONS) {
      const name = `${op.method.toUpperCase()} ${op.path}`;
      for (const [part, schema, example] of [
        ["request", op.request?.schema, op.request?.example],
        ["response", op.response.schema, op.response.example],
      ] as const) {
        if (!schema) continue;
        const validate = compile(schema);
        if (example === undefined) {
          if (part === "request" || op.response.status !== 200 || op.path !== "/openapi.json") failures.push(`${name}: the ${part} has no example`);
          continue;
        }
        if (!validate(example)) failures.push(`${name} ${part} example: ${ajv.errorsText(validate.errors)}`);
      }
      for (const param of op.params ?? []) compile(param.schema);
    }
    // The document itself: its error bodies and components compile too.
    const doc = openApiDocument();
    for (const schema of Object.values(doc.components.schemas)) compile(schema);
    expect(failures).toEqual([]);
  });

  it("the documented request bodies are exactly the ones the server decodes (one schema per codec decoder)", () => {
    const bodies = OPERATIONS.filter((op) => op.request).map((op) => `${op.method.toUpperCase()} ${op.path}`);
    // Each of these has its codec ≡ schema property test below (the dev token's body is checked in app.ts).
    expect(bodies.sort()).toEqual([
      "DELETE /v1/rooms/{roomId}/messages/{seq}",
      "PATCH /v1/rooms/{roomId}",
      "PATCH /v1/rooms/{roomId}/messages/{seq}",
      "POST /v1/dev/token",
      "POST /v1/rooms",
      "POST /v1/rooms/{roomId}/messages",
      "POST /v1/rooms/{roomId}/messages/{seq}/reactions",
      "PUT /v1/rooms/{roomId}/members/{userId}",
      "PUT /v1/rooms/{roomId}/read",
      "PUT /v1/users/me",
      // Moderation and the server API (src/protocol/moderation-codec.ts).
      "POST /v1/rooms/{roomId}/reports",
      "POST /v1/server/keys",
      "POST /v1/server/rooms",
      "POST /v1/server/rooms/{roomId}/messages",
      "PATCH /v1/server/rooms/{roomId}",
      "PUT /v1/rooms/{roomId}/bans/{userId}",
      "PUT /v1/rooms/{roomId}/mutes/{userId}",
      "PUT /v1/server/bans/{userId}",
      "PUT /v1/server/rooms/{roomId}/bans/{userId}",
      "PUT /v1/server/rooms/{roomId}/members/{userId}",
      "PUT /v1/server/rooms/{roomId}/mutes/{userId}",
    ].sort());
  });

  it("every frame type and entry kind of the protocol (frames.ts) has its schema, and nothing else does", () => {
    expect(Object.keys(ClientFrameSchemas).sort(), "ClientFrameType ↔ ClientFrameSchemas in src/protocol/schemas.ts").toEqual(Object.values(ClientFrameType).sort());
    expect(Object.keys(ServerFrameSchemas).sort(), "ServerFrameType ↔ ServerFrameSchemas in src/protocol/schemas.ts").toEqual(Object.values(ServerFrameType).sort());
    expect(Object.keys(EntrySchemas).sort(), "EntryKind ↔ EntrySchemas in src/protocol/schemas.ts").toEqual(Object.values(EntryKind).sort());
  });
});

// --- the codec and the schemas agree on generated input -----------------------------------------

/** A small seeded PRNG (mulberry32), so a failure is reproducible from the seed in its message. */
const rng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
type Random = () => number;
const pick = <T>(random: Random, values: readonly T[]): T => values[Math.floor(random() * values.length)] as T;

// Values around every boundary the codec checks: lengths in UTF-16 units and in code points
// (an emoji is 2 units, 1 code point), NUL, unpaired surrogates, sizes of JSON in bytes, types.
const strings = [
  "",
  "a",
  "hello",
  "Grüße",
  "x".repeat(64),
  "x".repeat(65),
  "😀".repeat(32),
  "😀".repeat(33),
  "a\u0000b",
  "\uD800",
  "a\uDC00b",
  "😀",
  "x".repeat(100),
  "x".repeat(101),
  "😀".repeat(100),
  "😀".repeat(101),
  "x".repeat(200),
  "x".repeat(201),
  "é".repeat(4000),
  "é".repeat(4001),
  "😀".repeat(4000),
  "😀".repeat(4001),
  "\\u0000",
] as const;
const others = [0, 1, -1, 1.5, true, false, null, [], ["a"], {}, { a: 1 }, 2 ** 53, "5"] as const;
const seqs = [0, 1, 42, -1, -0, 1.5, 2 ** 53 - 1, 2 ** 53, 1e300, "1", null] as const;
const objects = [
  {},
  { team: "core" },
  { nested: { a: [1, 2] } },
  { a: "x".repeat(4080) },
  { a: "x".repeat(4090) },
  { a: "é".repeat(2040) },
  { a: "x".repeat(1010) },
  { a: "x".repeat(1020) },
  { k: "\u0000" },
  { "\u0000": 1 },
  [],
  null,
  "text",
] as const;
const urls = ["https://example.com/a.png", "http://x", "HTTPS://EXAMPLE.COM/", "ftp://example.com", "http://", "not a url", `https://e.com/${"x".repeat(2040)}`, null] as const;

const fieldValues: Record<string, readonly unknown[]> = {
  clientMsgId: strings,
  text: strings,
  roomId: ["lobby", "a-b_C9", "x".repeat(128), "x".repeat(129), "bad id", "", 7],
  name: strings,
  visibility: ["public", "private", "secret", ""],
  metadata: objects,
  role: ["admin", "member", "viewer", "owner", ""],
  seq: seqs,
  avatarUrl: urls,
  data: objects,
  stop: [true, false, 1, null],
  replyTo: [1, 42, 0, -1, 1.5, "3", null, 2 ** 53],
  target: [1, 42, 0, -1, 1.5, "3", null, 2 ** 53],
  emoji: ["👍", "👍🏽", "🇫🇷", "1️⃣", "👨‍👩‍👧", ":thumbs_up:", ":+1:", ":Bad:", "::", `:${"a".repeat(33)}:`, "a", "", "👍👍", "\uD83D", "❤", "x".repeat(40)],
  remove: [true, false, 1, null],
  durationS: [1, 60, 0, -1, 1.5, 366 * 24 * 60 * 60, 366 * 24 * 60 * 60 + 1, "60", null],
  reason: [...strings, " ", "spam", "a\u0000b", "x".repeat(500), "x".repeat(501)],
  userId: ["bob", "a@b.c", "bad id", "", "x".repeat(64), "x".repeat(65), "~system", 7],
  // Every client frame type the protocol has, and one it does not.
  type: [...Object.values(ClientFrameType), "hello", 1],
};
/** Field names a generated body may carry even where its schema does not list them (catches a field the codec learns first). */
const ANY_FIELDS = Object.keys(fieldValues).filter((f) => f !== "type");

/** A body with a random subset of `fields`, each a random value (usually one of its own, sometimes of another type). */
const generateBody = (random: Random, fields: readonly string[], fixed: Record<string, unknown> = {}): unknown => {
  const roll = random();
  if (roll < 0.04) return pick(random, [null, [], "text", 3, [{ clientMsgId: "a", text: "b" }]]);
  const body: Record<string, unknown> = { ...fixed };
  for (const field of fields) {
    if (random() < 0.25) continue;
    const own = fieldValues[field] ?? strings;
    body[field] = random() < 0.85 ? pick(random, own) : pick(random, others);
  }
  if (random() < 0.1) body[pick(random, ["extra", "sq", "nme"])] = 1;
  if (random() < 0.1) {
    const field = pick(random, ANY_FIELDS);
    body[field] = pick(random, fieldValues[field] ?? strings);
  }
  // Through JSON, as the server receives it.
  return JSON.parse(JSON.stringify(body));
};

const agree = (
  name: string,
  decode: (input: unknown) => Decoded<unknown>,
  schema: object,
  generate: (random: Random) => unknown,
  runs = 3000,
) => {
  it(`${name}: the codec and the schema accept and refuse the same ${runs} generated inputs (both outcomes occur)`, () => {
    const validate = compile(schema);
    const seed = 0x5eed + name.length;
    const random = rng(seed);
    let accepted = 0;
    for (let i = 0; i < runs; i++) {
      const input = generate(random);
      const byCodec = decode(input).ok;
      const bySchema = validate(input) as boolean;
      if (byCodec !== bySchema) {
        const shown = JSON.stringify(input, (_k, v: unknown) => (typeof v === "string" && v.length > 60 ? `${v.slice(0, 20)}…(${v.length} units)` : v));
        throw new Error(
          `${name} (seed ${seed}, run ${i}): the codec ${byCodec ? "accepts" : "refuses"} but the schema ${bySchema ? "accepts" : "refuses"} ${shown}${
            bySchema ? "" : `: ${ajv.errorsText(validate.errors)}`
          }`,
        );
      }
      if (byCodec) accepted++;
    }
    expect(accepted).toBeGreaterThan(runs * 0.02);
    expect(accepted).toBeLessThan(runs * 0.98);
  });
};

describe("request bodies: codec ≡ schema", () => {
  agree("POST /v1/rooms/{roomId}/messages", decodeSendRequest, SendRequestSchema, (r) => generateBody(r, ["clientMsgId", "text"]));
  agree("POST /v1/rooms", decodeRoomInit, RoomInitSchema, (r) => generateBody(r, ["roomId", "name", "visibility", "metadata"]));
  agree("PATCH /v1/rooms/{roomId}", decodeRoomUpdate, RoomUpdateSchema, (r) => generateBody(r, ["name", "visibility", "metadata"]));
  agree("PUT /v1/rooms/{roomId}/members/{userId}", decodeRole, RoleRequestSchema, (r) => generateBody(r, ["role"]));
  agree("PUT /v1/rooms/{roomId}/read", decodeReadRequest, ReadRequestSchema, (r) => generateBody(r, ["seq"]));
  agree("PUT /v1/users/me", decodeProfileUpdate, ProfileUpdateSchema, (r) => generateBody(r, ["name", "avatarUrl", "data"]));
  agree("PATCH /v1/rooms/{roomId}/messages/{seq}", decodeEditRequest, EditRequestSchema, (r) => generateBody(r, ["clientMsgId", "text"]));
  agree("DELETE /v1/rooms/{roomId}/messages/{seq}", decodeDeleteRequest, DeleteRequestSchema, (r) => generateBody(r, ["clientMsgId"]));
  agree("POST /v1/rooms/{roomId}/messages/{seq}/reactions", decodeReactRequest, ReactRequestSchema, (r) =>
    generateBody(r, ["clientMsgId", "emoji", "remove"]),
  );
  agree("PUT …/bans/{userId}", (input) => decodeRestriction(input, false), RestrictionRequestSchema, (r) => generateBody(r, ["durationS", "reason"]));
  agree(
    "PUT …/mutes/{userId}",
    (input) => decodeRestriction(input, true),
    { ...RestrictionRequestSchema, required: ["durationS"] },
    (r) => generateBody(r, ["durationS", "reason"]),
  );
  agree("POST /v1/rooms/{roomId}/reports", decodeReport, ReportRequestSchema, (r) => generateBody(r, ["seq", "userId", "reason"]));
  agree("POST /v1/server/rooms/{roomId}/messages", decodeServerSend, ServerSendRequestSchema, (r) => generateBody(r, ["clientMsgId", "text", "userId"]));
  agree("POST /v1/server/keys", decodeKeyRequest, KeyRequestSchema, (r) => generateBody(r, ["name"]));
});

describe("WebSocket client frames: codec ≡ schema", () => {
  // The fields each frame's schema names; a frame type without a schema gets any of them.
  const frameFields: Record<string, readonly string[]> = Object.fromEntries(
    Object.entries(ClientFrameSchemas).map(([type, schema]) => [type, Object.keys(schema.properties).filter((f) => f !== "type")]),
  );
  agree(
    "client frames",
    (frame) => decodeClientFrame(JSON.stringify(frame)),
    ClientFrameSchema,
    (r) => {
      const type = pick(r, fieldValues.type ?? []);
      const fields = typeof type === "string" ? (frameFields[type] ?? ANY_FIELDS) : ["seq"];
      const body = generateBody(r, fields, r() < 0.05 ? {} : { type });
      return body;
    },
    10_000,
  );
});

describe("WebSocket server frames: golden frames validate", () => {
  // The shapes test/room.protocol.test.ts and test/room.live.test.ts pin as golden frames;
  // e2e/schemas.test.ts also validates every frame a real server sends in a session.
  const message = {
    roomId: "r",
    seq: 1,
    id: "0f8b1c2e-4d1a-4f7e-9a51-2b8e8d2f9c10",
    kind: "message",
    userId: "alice",
    text: "hi",
    clientMsgId: "c-1",
    createdAt: "2026-12-03T12:00:00.000Z",
  };
  const entries = [
    message,
    { ...message, seq: 2, replyTo: 1, reactions: [{ emoji: "👍", count: 2, me: true }], editedAt: message.createdAt, version: 1, updatedSeq: 4 },
    { ...message, seq: 3, deleted: true, text: "" },
    { ...message, seq: 4, kind: "edit", text: "hi!", clientMsgId: "e-1", target: 1, version: 1 },
    { ...message, seq: 5, kind: "delete", text: "", clientMsgId: "d-1", target: 3, redacts: [3] },
    { ...message, seq: 6, kind: "reaction", text: "👍", clientMsgId: "r-1", target: 1, emoji: "👍", count: 1 },
    { ...message, seq: 7, kind: "system", userId: "alice", text: "alice added bob as member", clientMsgId: "sys-7", event: "member_added", subject: "bob", role: "member" },
  ];
  it("entries of every kind validate against their kind's schema and the envelope", () => {
    for (const entry of entries) {
      const own = compile(EntrySchemas[entry.kind as keyof typeof EntrySchemas]);
      expect(own(entry), `${entry.kind}: ${ajv.errorsText(own.errors)}`).toBe(true);
      const frame = compile(ServerFrameSchemas.message);
      expect(frame({ type: "message", message: entry })).toBe(true);
    }
    expect(new Set(entries.map((e) => e.kind))).toEqual(new Set(Object.values(EntryKind)));
    const edit = compile(EntrySchemas.edit);
    expect(edit({ ...message, kind: "edit" }), "an edit without its target is refused").toBe(false);
  });
  const golden = [
    { type: "ready", roomId: "r", messages: [], latestSeq: 0, truncated: false, protocol: 2, readSeq: 0, unread: 0, presence: [{ userId: "alice" }] },
    { type: "ready", roomId: "r", messages: [message], latestSeq: 1, truncated: false, protocol: 2, readSeq: 0, unread: 1, presence: [{ userId: "bob", data: { s: 1 } }] },
    { type: "presence", userId: "bob", online: true },
    { type: "presence", userId: "bob", online: true, data: { status: "away" } },
    { type: "message", message },
    { type: "ack", clientMsgId: "c-1", seq: 1, id: message.id, createdAt: message.createdAt },
    { type: "pong" },
    { type: "receipt", userId: "bob", seq: 1 },
    { type: "typing", userIds: ["bob"] },
    { type: "error", code: "rate_limited", message: "slow down", clientMsgId: "c-2", retryAfterMs: 100 },
    { type: "error", code: "unavailable", message: "too far behind: reconnect with since=<your last seq>" },
  ];
  it("each golden frame validates against its type's schema and against the union; every server frame type has one", () => {
    const union = compile(ServerFrameSchema);
    for (const frame of golden) {
      const own = compile(ServerFrameSchemas[frame.type as keyof typeof ServerFrameSchemas]);
      expect(own(frame), `${frame.type}: ${ajv.errorsText(own.errors)}`).toBe(true);
      expect(union(frame), `${frame.type} (union): ${ajv.errorsText(union.errors)}`).toBe(true);
    }
    expect(new Set(golden.map((f) => f.type))).toEqual(new Set(Object.keys(ServerFrameSchemas)));
  });
  it("frames that break the contract are refused (the schemas are not vacuous)", () => {
    const union = compile(ServerFrameSchema);
    for (const bad of [
      { type: "ack", clientMsgId: "c", seq: 0, id: "x", createdAt: message.createdAt },
      { type: "message", message: { ...message, seq: "1" } },
      { type: "typing", userIds: "bob" },
      { type: "error", code: "oops", message: "x" },
      { type: "ready", roomId: "r", messages: [], latestSeq: 0 },
    ]) {
      expect(union(bad), JSON.stringify(bad)).toBe(false);
    }
  });
});
