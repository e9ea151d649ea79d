// The REST API as OpenAPI 3.1, served at GET /openapi.json. The bodies' schemas are the ones in
// src/protocol/schemas.ts (which src/api/openapi.test.ts holds to the codec the server validates
// with), and the same test checks that every route the Hono app registers is described here and
// that nothing here is missing from the app, and validates every example. So a route added to
// app.ts without an entry below fails CI with the route's name.
//
// Written by hand (no generator library): the server's validator is the hand-written codec, and
// a schema library in the Worker or the SDK would add weight and a second source of truth.

import { MAX_HISTORY_LIMIT, MAX_PROFILE_BATCH } from "../protocol/limits.js";
import { SERVER_OPERATIONS } from "./openapi.server.js";
import {
  ClientFrameSchemas,
  DeleteRequestSchema,
  DevTokenRequestSchema,
  EditRequestSchema,
  EntrySchema,
  EntrySchemas,
  ErrorBodySchema,
  MemberSchema,
  PresenceEntrySchema,
  ProfileSchema,
  ProfileUpdateSchema,
  ReactRequestSchema,
  ReadRequestSchema,
  RoleRequestSchema,
  RoomIdSchema,
  RoomInitSchema,
  RoomSchema,
  RoomSummarySchema,
  RoomUpdateSchema,
  SendRequestSchema,
  AttachmentSchema,
  ServerFrameSchemas,
  UserIdSchema,
} from "../protocol/schemas.js";

type Json = null | boolean | number | string | readonly Json[] | { readonly [key: string]: Json | undefined };
type Schema = { readonly [key: string]: unknown };

interface Param {
  name: string;
  in: "path" | "query";
  schema: Schema;
  required?: boolean;
  description?: string;
}

/** One route of the app: what it takes, what it answers, and an example of each. */
export interface Operation {
  method: "get" | "post" | "put" | "patch" | "delete";
  /** OpenAPI path ({roomId}); the test maps it to Hono's (:roomId). */
  path: string;
  summary: string;
  /** false: no token (health, the spec, dev tokens). */
  auth: boolean;
  /** Authenticated with a tenant API key (the server API) instead of a user's JWT. */
  apiKey?: boolean;
  params?: Param[];
  /** `optional`: the body may be left out (DELETE of a message). */
  request?: { schema: Schema; example: Json; optional?: boolean };
  /** The success status, its body's schema and an example. */
  response: { status: number; description: string; schema?: Schema; example?: Json };
  /** Error codes this route documents besides 401/429 (every authenticated route has those). */
  errors?: number[];
}

const ROOM: Param = { name: "roomId", in: "path", required: true, schema: RoomIdSchema };
const USER: Param = { name: "userId", in: "path", required: true, schema: UserIdSchema };
const SEQ: Param = { name: "seq", in: "path", required: true, schema: { type: "integer", minimum: 1 }, description: "the seq of the message" };
const ATTACHMENT: Param = { name: "id", in: "path", required: true, schema: { type: "string", pattern: "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$" }, description: "the attachment's id" };
const attachment = {
  id: "0b7c9f1e-2d3a-4b5c-8d6e-7f8091a2b3c4",
  name: "plan.png",
  size: 48213,
  type: "image/png",
  sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
  width: 640,
  height: 480,
  createdAt: "2026-12-03T12:00:00.000Z",
  url: "https://chat.example.com/v1/attachments/default/launch/0b7c9f1e-2d3a-4b5c-8d6e-7f8091a2b3c4?exp=1796300000&scope=public&sig=abc",
  urlExpiresAt: "2026-12-03T13:00:00.000Z",
} as const;
const LIMIT: Param = { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: MAX_HISTORY_LIMIT }, description: `1–${MAX_HISTORY_LIMIT}` };
const obj = (properties: Record<string, Schema>, required = Object.keys(properties)): Schema => ({ type: "object", required, properties });
const seq = { type: "integer", minimum: 0 } as const;

const message = {
  roomId: "lobby",
  seq: 42,
  id: "0f8b1c2e-4d1a-4f7e-9a51-2b8e8d2f9c10",
  kind: "message",
  userId: "alice",
  text: "hello",
  clientMsgId: "c-1",
  createdAt: "2026-12-03T12:00:00.000Z",
} as const;
const edit = { ...message, seq: 43, id: "3c9e2a71-5b4d-4e8f-9a6b-1d2c3e4f5a6b", kind: "edit", text: "hello, edited", clientMsgId: "e-1", target: 42, version: 1 } as const;
const room = {
  roomId: "launch",
  name: "Launch plan",
  visibility: "private",
  metadata: { team: "core" },
  createdBy: "alice",
  createdAt: "2026-12-03T12:00:00.000Z",
  latestSeq: 0,
  role: "admin",
} as const;
const member = { userId: "bob", role: "member", joinedAt: "2026-12-03T12:00:00.000Z" } as const;
const profile = { userId: "alice", name: "Alice", avatarUrl: "https://example.com/alice.png", data: { pronouns: "she/her" }, updatedAt: "2026-12-03T12:00:00.000Z" } as const;

export const OPERATIONS: readonly Operation[] = [
  { method: "get", path: "/healthz", summary: "liveness", auth: false, response: { status: 200, description: "up", schema: obj({ ok: { const: true } }), example: { ok: true } } },
  { method: "get", path: "/openapi.json", summary: "this document", auth: false, response: { status: 200, description: "OpenAPI 3.1", schema: { type: "object" } } },
  {
    method: "post",
    path: "/v1/dev/token",
    summary: "mint a token for any user id (DEV_TOKENS=true only; tenants without keys of their own)",
    auth: false,
    request: { schema: DevTokenRequestSchema, example: { userId: "alice" } },
    response: { status: 200, description: "a token", schema: obj({ token: { type: "string" } }), example: { token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln" } },
    errors: [400, 404],
  },
  {
    method: "get",
    path: "/v1/rooms/{roomId}/messages",
    summary: "a page of history (entries of every kind, messages in their current form): with after, seq > after oldest first; without, the newest limit; with thread, that thread's replies",
    auth: true,
    params: [
      ROOM,
      { name: "after", in: "query", schema: seq },
      LIMIT,
      { name: "thread", in: "query", schema: { type: "integer", minimum: 1 }, description: "the seq of a thread's parent: its replies only (never from the mirror)" },
    ],
    response: {
      status: 200,
      description: "ascending by seq; header x-chat-source: redis | room",
      schema: obj({ messages: { type: "array", items: EntrySchema }, latestSeq: seq }),
      example: { messages: [message], latestSeq: 42 },
    },
    errors: [400, 403, 404, 503],
  },
  {
    method: "post",
    path: "/v1/rooms/{roomId}/messages",
    summary: "send a message (the same pipeline as a WebSocket send); a repeated clientMsgId answers 200 with the original",
    auth: true,
    params: [ROOM],
    request: { schema: SendRequestSchema, example: { clientMsgId: "c-1", text: "hello" } },
    response: { status: 201, description: "committed", schema: obj({ message: EntrySchema }), example: { message } },
    errors: [400, 403, 404, 413, 503],
  },
  {
    method: "patch",
    path: "/v1/rooms/{roomId}/messages/{seq}",
    summary: "edit your message: commits an edit entry (exactly once per clientMsgId; 200 for a resend)",
    auth: true,
    params: [ROOM, SEQ],
    request: { schema: EditRequestSchema, example: { clientMsgId: "e-1", text: "hello, edited" } },
    response: { status: 201, description: "the edit entry", schema: obj({ message: EntrySchemas.edit }), example: { message: edit } },
    errors: [400, 403, 404, 413, 503],
  },
  {
    method: "delete",
    path: "/v1/rooms/{roomId}/messages/{seq}",
    summary: "delete a message (yours, or any as an admin): commits a delete entry; the body is optional (clientMsgId defaults to delete:<seq>)",
    auth: true,
    params: [ROOM, SEQ],
    request: { schema: DeleteRequestSchema, example: { clientMsgId: "d-1" }, optional: true },
    response: {
      status: 201,
      description: "the delete entry",
      schema: obj({ message: EntrySchemas.delete }),
      example: { message: { ...message, seq: 44, id: "7d0f4c55-1c1e-4d7e-8a0b-3a4c9f1e2b77", kind: "delete", text: "", clientMsgId: "d-1", target: 42, redacts: [42, 43] } },
    },
    errors: [400, 403, 404, 503],
  },
  {
    method: "post",
    path: "/v1/rooms/{roomId}/messages/{seq}/reactions",
    summary: "react to a message with one emoji or a :shortcode: (remove: true takes it back)",
    auth: true,
    params: [ROOM, SEQ],
    request: { schema: ReactRequestSchema, example: { clientMsgId: "r-1", emoji: "👍" } },
    response: {
      status: 201,
      description: "the reaction entry, with the emoji's count after it",
      schema: obj({ message: EntrySchemas.reaction }),
      example: { message: { ...message, seq: 45, id: "5e2d1b9a-0c3f-4a6e-b1d2-8f7e6a5c4b3d", kind: "reaction", text: "👍", clientMsgId: "r-1", target: 42, emoji: "👍", count: 1 } },
    },
    errors: [400, 403, 404, 503],
  },
  {
    method: "post",
    path: "/v1/rooms/{roomId}/attachments",
    summary:
      "upload a file (the bytes as the body, Content-Type from the allowlist, Content-Length required, ?name= the file name); senders only; bind it with a send's attachment part",
    auth: true,
    params: [ROOM, { name: "name", in: "query", required: true, schema: { type: "string", minLength: 1, maxLength: 255 }, description: "the file name (sanitised)" }],
    response: { status: 201, description: "the upload's descriptor, with a signed URL", schema: obj({ attachment: AttachmentSchema }), example: { attachment } },
    errors: [400, 403, 404, 413, 503],
  },
  {
    method: "get",
    path: "/v1/rooms/{roomId}/attachments/{id}",
    summary: "download an attachment (readers of the room; Range supported; active content is never served inline)",
    auth: true,
    params: [ROOM, ATTACHMENT],
    response: { status: 200, description: "the bytes, with Content-Type, Content-Disposition, X-Content-Type-Options: nosniff, ETag" },
    errors: [400, 403, 404, 416],
  },
  {
    method: "get",
    path: "/v1/rooms/{roomId}/attachments/{id}/url",
    summary: "a fresh short-lived signed URL for an attachment (for <img>, which cannot send a token)",
    auth: true,
    params: [ROOM, ATTACHMENT],
    response: { status: 200, description: "the descriptor with its signed URL", schema: obj({ attachment: AttachmentSchema }), example: { attachment } },
    errors: [400, 403, 404],
  },
  {
    method: "get",
    path: "/v1/attachments/{tenant}/{roomId}/{id}",
    summary: "the bytes for whoever holds a valid signed URL (exp, scope, sig in the query; no token)",
    auth: false,
    params: [
      { name: "tenant", in: "path", required: true, schema: { type: "string" } },
      ROOM,
      ATTACHMENT,
      { name: "exp", in: "query", required: true, schema: { type: "integer" } },
      { name: "scope", in: "query", required: true, schema: { enum: ["public", "private"] } },
      { name: "sig", in: "query", required: true, schema: { type: "string" } },
    ],
    response: { status: 200, description: "the bytes (as the authenticated download)" },
    errors: [403, 404, 416],
  },
  {
    method: "get",
    path: "/v1/rooms/{roomId}/ws",
    summary: "WebSocket upgrade (token, since | last and v in the query; frames: x-frames in this document)",
    auth: true,
    params: [
      ROOM,
      { name: "token", in: "query", schema: { type: "string" }, description: "browsers cannot set headers on a WebSocket" },
      { name: "since", in: "query", schema: seq },
      { name: "last", in: "query", schema: { type: "integer", minimum: 1, maximum: MAX_HISTORY_LIMIT } },
      { name: "v", in: "query", schema: { type: "integer", minimum: 1 }, description: "the client's protocol version (absent: 1)" },
    ],
    response: { status: 101, description: "switching protocols; the first frame is ready" },
    errors: [400, 403, 404],
  },
  {
    method: "post",
    path: "/v1/rooms",
    summary: "create a room; the creator is its admin",
    auth: true,
    request: { schema: RoomInitSchema, example: { roomId: "launch", name: "Launch plan", visibility: "private", metadata: { team: "core" } } },
    response: { status: 201, description: "created", schema: obj({ room: RoomSchema }), example: { room } },
    errors: [400, 409, 413],
  },
  {
    method: "get",
    path: "/v1/rooms",
    summary: "the caller's rooms, each with its read cursor and exact unread count",
    auth: true,
    params: [LIMIT],
    response: {
      status: 200,
      description: "one query; its cost grows with the rooms, not the messages",
      schema: obj({ rooms: { type: "array", items: RoomSummarySchema } }),
      example: { rooms: [{ roomId: "launch", name: "Launch plan", visibility: "private", role: "admin", latestSeq: 42, readSeq: 40, unread: 2 }] },
    },
    errors: [400, 503],
  },
  { method: "get", path: "/v1/rooms/{roomId}", summary: "a room (readers)", auth: true, params: [ROOM], response: { status: 200, description: "the room", schema: obj({ room: RoomSchema }), example: { room } }, errors: [403, 404] },
  {
    method: "patch",
    path: "/v1/rooms/{roomId}",
    summary: "change name, visibility or metadata (admins); turning a room private closes non-members' sockets",
    auth: true,
    params: [ROOM],
    request: { schema: RoomUpdateSchema, example: { visibility: "public" } },
    response: { status: 200, description: "the room after the change", schema: obj({ room: RoomSchema }), example: { room: { ...room, visibility: "public" } } },
    errors: [400, 403, 404, 413],
  },
  {
    method: "delete",
    path: "/v1/rooms/{roomId}",
    summary: "delete a room (admins); purge=true also removes its history and frees the id",
    auth: true,
    params: [ROOM, { name: "purge", in: "query", schema: { enum: ["true", "false"] } }],
    response: { status: 200, description: "deleted; every socket is closed (4404)", schema: obj({ deleted: { const: true }, purged: { type: "boolean" } }), example: { deleted: true, purged: false } },
    errors: [400, 403, 404],
  },
  {
    method: "post",
    path: "/v1/rooms/{roomId}/join",
    summary: "become a member of a public room",
    auth: true,
    params: [ROOM],
    response: { status: 200, description: "your membership", schema: obj({ member: MemberSchema }), example: { member } },
    errors: [403, 404],
  },
  {
    method: "post",
    path: "/v1/rooms/{roomId}/leave",
    summary: "leave a room (the last admin cannot)",
    auth: true,
    params: [ROOM],
    response: { status: 200, description: "whether you were a member", schema: obj({ removed: { type: "boolean" } }), example: { removed: true } },
    errors: [404, 409],
  },
  {
    method: "get",
    path: "/v1/rooms/{roomId}/members",
    summary: "the room's members (readers)",
    auth: true,
    params: [ROOM, LIMIT],
    response: { status: 200, description: "members", schema: obj({ members: { type: "array", items: MemberSchema } }), example: { members: [member] } },
    errors: [400, 403, 404],
  },
  {
    method: "put",
    path: "/v1/rooms/{roomId}/members/{userId}",
    summary: "add a member or change a role (admins)",
    auth: true,
    params: [ROOM, USER],
    request: { schema: RoleRequestSchema, example: { role: "member" } },
    response: { status: 200, description: "the membership", schema: obj({ member: MemberSchema }), example: { member } },
    errors: [400, 403, 404, 409],
  },
  {
    method: "delete",
    path: "/v1/rooms/{roomId}/members/{userId}",
    summary: "remove a member (admins, or yourself); their sockets are closed (4403)",
    auth: true,
    params: [ROOM, USER],
    response: { status: 200, description: "whether they were a member", schema: obj({ removed: { type: "boolean" } }), example: { removed: true } },
    errors: [400, 403, 404, 409],
  },
  {
    method: "get",
    path: "/v1/rooms/{roomId}/status",
    summary: "where the room and its mirror are (readers)",
    auth: true,
    params: [ROOM],
    response: {
      status: 200,
      description: "status",
      schema: obj({
        latestSeq: seq,
        mirroredSeq: { type: ["integer", "null"] },
        mirrorLag: { type: ["integer", "null"] },
        sockets: seq,
        users: seq,
        // Regional replicas subscribed to the room (docs/protocol.md, "Regional replicas").
        replicas: {
          type: "array",
          items: obj(
            {
              name: { type: "string" },
              unreachable: { const: true },
              region: { type: "string" },
              shard: seq,
              deliveredSeq: { type: ["integer", "null"] },
              knownSeq: seq,
              lagSeqs: seq,
              lagMs: { type: ["number", "null"] },
              source: { type: ["string", "null"], enum: ["push", "redis", "primary", null] },
              sockets: seq,
              fills: seq,
              calls: obj({ sends: seq, joins: seq, syncs: seq, relays: seq }),
              pushes: seq,
              pushQueued: seq,
              lastError: { type: "string" },
            },
            ["name"],
          ),
        },
      }),
      example: {
        latestSeq: 42,
        mirroredSeq: 42,
        mirrorLag: 0,
        sockets: 3,
        users: 2,
        replicas: [
          {
            name: "default:lobby@weur#0",
            region: "weur",
            shard: 0,
            deliveredSeq: 42,
            knownSeq: 42,
            lagSeqs: 0,
            lagMs: 3,
            source: "push",
            sockets: 2,
            fills: 0,
            calls: { sends: 5, joins: 2, syncs: 1, relays: 0 },
            pushes: 40,
            pushQueued: 0,
          },
        ],
      },
    },
    errors: [403, 404],
  },
  {
    method: "put",
    path: "/v1/rooms/{roomId}/read",
    summary: "move your read cursor forward (durable before it answers; never moves back)",
    auth: true,
    params: [ROOM],
    request: { schema: ReadRequestSchema, example: { seq: 42 } },
    response: { status: 200, description: "your cursor and the exact unread count", schema: obj({ readSeq: seq, unread: seq }), example: { readSeq: 42, unread: 0 } },
    errors: [400, 403, 404],
  },
  {
    method: "get",
    path: "/v1/rooms/{roomId}/presence",
    summary: "who is online now (readers)",
    auth: true,
    params: [ROOM],
    response: {
      status: 200,
      description: "occupancy",
      schema: obj({ users: seq, sockets: seq, presence: { type: "array", items: PresenceEntrySchema } }),
      example: { users: 2, sockets: 3, presence: [{ userId: "alice" }, { userId: "bob", data: { status: "away" } }] },
    },
    errors: [403, 404],
  },
  {
    method: "put",
    path: "/v1/users/me",
    summary: "set your profile; a field left out keeps its value, null clears it",
    auth: true,
    request: { schema: ProfileUpdateSchema, example: { name: "Alice", avatarUrl: "https://example.com/alice.png" } },
    response: { status: 200, description: "the stored profile", schema: obj({ profile: ProfileSchema }), example: { profile } },
    errors: [400, 413, 503],
  },
  {
    method: "get",
    path: "/v1/users/{userId}",
    summary: "a profile of your tenant (an empty one for an unknown user)",
    auth: true,
    params: [USER],
    response: { status: 200, description: "the profile", schema: obj({ profile: ProfileSchema }), example: { profile } },
    errors: [400, 503],
  },
  {
    method: "get",
    path: "/v1/users",
    summary: "profiles in the order asked",
    auth: true,
    params: [{ name: "ids", in: "query", required: true, schema: { type: "string" }, description: `1–${MAX_PROFILE_BATCH} user ids, comma-separated` }],
    response: { status: 200, description: "profiles", schema: obj({ profiles: { type: "array", items: ProfileSchema } }), example: { profiles: [profile] } },
    errors: [400, 503],
  },
  // Moderation and the server API (openapi.server.ts).
  ...SERVER_OPERATIONS,
];

const STATUS_TEXT: Record<number, string> = {
  400: "bad_request",
  401: "unauthorized: no token, or an invalid or expired one",
  403: "forbidden",
  404: "not_found",
  409: "conflict",
  413: "too_large",
  422: "rejected: the tenant's before-commit hook refused the message (no seq was used)",
  429: "rate_limited (Retry-After header)",
  503: "unavailable: retry later (sends: with the same clientMsgId)",
};

const errorResponse = (status: number) => ({
  description: STATUS_TEXT[status] ?? String(status),
  content: { "application/json": { schema: { $ref: "#/components/schemas/ErrorBody" } } },
});

/** The document; `servers` is the origin it is served from. */
export const openApiDocument = (origin?: string) => {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) {
    const errors = [...new Set([...(op.errors ?? []), ...(op.auth ? [401, 429] : [])])].sort();
    paths[op.path] ??= {};
    (paths[op.path] as Record<string, unknown>)[op.method] = {
      operationId: `${op.method}${op.path.replace(/[{}]/g, "").replace(/[/.](\w)/g, (_, c: string) => c.toUpperCase())}`,
      summary: op.summary,
      ...(op.auth ? (op.apiKey ? { security: [{ apiKey: [] }] } : {}) : { security: [] }),
      ...(op.params ? { parameters: op.params } : {}),
      ...(op.request
        ? { requestBody: { required: !op.request.optional, content: { "application/json": { schema: op.request.schema, example: op.request.example } } } }
        : {}),
      responses: {
        [op.response.status]: {
          description: op.response.description,
          ...(op.response.schema ? { content: { "application/json": { schema: op.response.schema, ...(op.response.example === undefined ? {} : { example: op.response.example }) } } } : {}),
        },
        ...Object.fromEntries(errors.map((s) => [s, errorResponse(s)])),
      },
    };
  }
  return {
    openapi: "3.1.0",
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    info: {
      title: "edge-chat",
      version: "1",
      description:
        "A strongly consistent realtime chat backend. Bodies are at most 16 KiB (413 beyond). Keywords x-maxUtf16Length, x-maxJsonBytes, x-httpUrl and x-emoji are explained in src/protocol/schemas.ts. WebSocket frames: x-frames.",
    },
    ...(origin ? { servers: [{ url: origin }] } : {}),
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
        apiKey: { type: "http", scheme: "bearer", bearerFormat: "a tenant API key: ecsk_<id>_<secret> (docs/server-api.md)" },
      },
      schemas: {
        ErrorBody: ErrorBodySchema,
        Entry: EntrySchema,
        ...Object.fromEntries(Object.entries(EntrySchemas).map(([kind, schema]) => [`Entry_${kind}`, schema])),
        Room: RoomSchema,
        Member: MemberSchema,
        Profile: ProfileSchema,
      },
    },
    /** The WebSocket protocol of GET /v1/rooms/{roomId}/ws: a JSON Schema per frame (docs/protocol.md has the rules). */
    "x-frames": { client: ClientFrameSchemas, server: ServerFrameSchemas },
  };
};
