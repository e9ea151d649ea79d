// The moderation routes and the server API in the OpenAPI document (openapi.ts spreads these
// into OPERATIONS). Server API routes authenticate with a tenant API key (`apiKey: true`).

import {
  ApiKeySchema,
  EntrySchema,
  KeyRequestSchema,
  MemberSchema,
  ProfileSchema,
  ReportRequestSchema,
  ReportSchema,
  RestrictionRequestSchema,
  RestrictionSchema,
  RoleRequestSchema,
  RoomIdSchema,
  RoomInitSchema,
  RoomUpdateSchema,
  ServerRoomSchema,
  ServerSendRequestSchema,
  UserIdSchema,
} from "../protocol/schemas.js";
import type { Operation } from "./openapi.js";

type Param = NonNullable<Operation["params"]>[number];
type Schema = Operation["response"]["schema"] & object;

const ROOM: Param = { name: "roomId", in: "path", required: true, schema: RoomIdSchema };
const USER: Param = { name: "userId", in: "path", required: true, schema: UserIdSchema };
const PAGE: Param[] = [
  { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 1000 }, description: "page size" },
  { name: "after", in: "query", schema: { type: "string" }, description: "the `next` of the previous page" },
];
const obj = (properties: Record<string, Schema>, required = Object.keys(properties)): Schema => ({ type: "object", required, properties });
const page = (key: string, items: Schema): Schema => obj({ [key]: { type: "array", items }, next: { type: ["string", "null"] } });

const at = "2026-12-03T12:00:00.000Z";
const restriction = { userId: "bob", kind: "ban", until: null, reason: "spam", createdBy: "alice", createdAt: at } as const;
const mute = { ...restriction, kind: "mute", until: "2026-12-03T13:00:00.000Z" } as const;
const report = { id: "5f0c2b9e-1a2b-4c3d-8e9f-0a1b2c3d4e5f", roomId: "launch", reporter: "carol", subject: "bob", seq: 42, reason: "spam", createdAt: at } as const;
const room = { roomId: "launch", name: "Launch plan", visibility: "private", metadata: { team: "core" }, createdBy: "~system", createdAt: at, latestSeq: 0 } as const;
const member = { userId: "bob", role: "member", joinedAt: at } as const;
const key = { id: "3f9a0c1b2d4e5f60", name: "backend", createdAt: at, revokedAt: null } as const;
const message = { roomId: "launch", seq: 7, id: "0f8b1c2e-4d1a-4f7e-9a51-2b8e8d2f9c10", kind: "message", userId: "~system", text: "Welcome!", clientMsgId: "welcome-1", createdAt: at } as const;

/** Ban and mute routes, for users' tokens (room admins) under /v1/rooms or API keys under /v1/server/rooms. */
const restrictionOps = (base: string, apiKey: boolean, who: string): Operation[] =>
  (["bans", "mutes"] as const).flatMap((kind): Operation[] => [
    {
      method: "put",
      path: `${base}/{roomId}/${kind}/{userId}`,
      summary: kind === "bans" ? `ban a user from the room (${who}); their sockets close at once (4451)` : `mute a user for durationS seconds (${who}): they read, they cannot send`,
      auth: true,
      apiKey,
      params: [ROOM, USER],
      request: { schema: RestrictionRequestSchema, example: kind === "bans" ? { reason: "spam" } : { durationS: 3600, reason: "calm down" }, optional: kind === "bans" },
      response: { status: 200, description: "the restriction", schema: obj({ restriction: RestrictionSchema }), example: { restriction: kind === "bans" ? restriction : mute } },
      errors: [400, 403, 404, 503],
    },
    {
      method: "delete",
      path: `${base}/{roomId}/${kind}/{userId}`,
      summary: `lift a ${kind === "bans" ? "ban" : "mute"} (${who})`,
      auth: true,
      apiKey,
      params: [ROOM, USER],
      response: { status: 200, description: "whether one was in force", schema: obj({ lifted: { type: "boolean" } }), example: { lifted: true } },
      errors: [403, 404, 503],
    },
  ]);

export const SERVER_OPERATIONS: readonly Operation[] = [
  ...restrictionOps("/v1/rooms", false, "room admins"),
  {
    method: "post",
    path: "/v1/rooms/{roomId}/reports",
    summary: "report a message and/or a user to the tenant's moderators (readers)",
    auth: true,
    params: [ROOM],
    request: { schema: ReportRequestSchema, example: { seq: 42, userId: "bob", reason: "spam" } },
    response: { status: 201, description: "the report", schema: obj({ report: ReportSchema }), example: { report } },
    errors: [400, 403, 404, 503],
  },
  {
    method: "post",
    path: "/v1/server/keys",
    summary: "create an API key of this tenant (the secret is in this answer only)",
    auth: true,
    apiKey: true,
    request: { schema: KeyRequestSchema, example: { name: "backend" } },
    response: {
      status: 201,
      description: "the key and its secret",
      schema: obj({ key: ApiKeySchema, secret: { type: "string", pattern: "^ecsk_" } }),
      example: { key, secret: "ecsk_3f9a0c1b2d4e5f60_q3V1oVb5mJ0v8kz0m2C4Yp9wTgq1x7f8Lr2s6dNc0aE" },
    },
    errors: [400, 503],
  },
  {
    method: "get",
    path: "/v1/server/keys",
    summary: "the tenant's API keys (never their secrets)",
    auth: true,
    apiKey: true,
    response: { status: 200, description: "keys", schema: obj({ keys: { type: "array", items: ApiKeySchema } }), example: { keys: [key] } },
    errors: [503],
  },
  {
    method: "delete",
    path: "/v1/server/keys/{keyId}",
    summary: "revoke an API key (at once, for every later request)",
    auth: true,
    apiKey: true,
    params: [{ name: "keyId", in: "path", required: true, schema: { type: "string", pattern: "^[0-9a-f]{16}$" } }],
    response: { status: 200, description: "revoked", schema: obj({ revoked: { const: true } }), example: { revoked: true } },
    errors: [400, 404, 503],
  },
  {
    method: "get",
    path: "/v1/server/rooms",
    summary: "the tenant's rooms in id order, a page at a time",
    auth: true,
    apiKey: true,
    params: PAGE,
    response: { status: 200, description: "a page of rooms", schema: page("rooms", ServerRoomSchema), example: { rooms: [room], next: "launch" } },
    errors: [400, 503],
  },
  {
    method: "post",
    path: "/v1/server/rooms",
    summary: "create a room (the server is no member of it)",
    auth: true,
    apiKey: true,
    request: { schema: RoomInitSchema, example: { roomId: "launch", name: "Launch plan", visibility: "private", metadata: { team: "core" } } },
    response: { status: 201, description: "the room", schema: obj({ room: ServerRoomSchema }), example: { room: { ...room, role: null } } },
    errors: [400, 409, 503],
  },
  {
    method: "get",
    path: "/v1/server/rooms/{roomId}",
    summary: "a room",
    auth: true,
    apiKey: true,
    params: [ROOM],
    response: { status: 200, description: "the room", schema: obj({ room: ServerRoomSchema }), example: { room: { ...room, role: "admin" } } },
    errors: [404, 503],
  },
  {
    method: "patch",
    path: "/v1/server/rooms/{roomId}",
    summary: "update a room",
    auth: true,
    apiKey: true,
    params: [ROOM],
    request: { schema: RoomUpdateSchema, example: { name: "Launched" } },
    response: { status: 200, description: "the room", schema: obj({ room: ServerRoomSchema }), example: { room: { ...room, name: "Launched", role: "admin" } } },
    errors: [400, 404, 503],
  },
  {
    method: "delete",
    path: "/v1/server/rooms/{roomId}",
    summary: "delete a room (purge=true also removes its history)",
    auth: true,
    apiKey: true,
    params: [ROOM, { name: "purge", in: "query", schema: { enum: ["true", "false"] } }],
    response: { status: 200, description: "deleted", schema: obj({ deleted: { const: true }, purged: { type: "boolean" } }), example: { deleted: true, purged: false } },
    errors: [400, 404, 503],
  },
  {
    method: "get",
    path: "/v1/server/rooms/{roomId}/members",
    summary: "the room's members",
    auth: true,
    apiKey: true,
    params: [ROOM, PAGE[0] as Param],
    response: { status: 200, description: "members", schema: obj({ members: { type: "array", items: MemberSchema } }), example: { members: [member] } },
    errors: [400, 404, 503],
  },
  {
    method: "put",
    path: "/v1/server/rooms/{roomId}/members/{userId}",
    summary: "add a member or change a role",
    auth: true,
    apiKey: true,
    params: [ROOM, USER],
    request: { schema: RoleRequestSchema, example: { role: "admin" } },
    response: { status: 200, description: "the membership", schema: obj({ member: MemberSchema }), example: { member } },
    errors: [400, 404, 409, 503],
  },
  {
    method: "delete",
    path: "/v1/server/rooms/{roomId}/members/{userId}",
    summary: "remove a member (their sockets close if they can no longer read)",
    auth: true,
    apiKey: true,
    params: [ROOM, USER],
    response: { status: 200, description: "whether they were a member", schema: obj({ removed: { type: "boolean" } }), example: { removed: true } },
    errors: [404, 409, 503],
  },
  {
    method: "post",
    path: "/v1/server/rooms/{roomId}/messages",
    summary: "send as the system, or on behalf of a user (userId): no membership needed, their bans and mutes hold",
    auth: true,
    apiKey: true,
    params: [ROOM],
    request: { schema: ServerSendRequestSchema, example: { clientMsgId: "welcome-1", text: "Welcome!" } },
    response: { status: 201, description: "the committed message (200 for a repeated clientMsgId)", schema: obj({ message: EntrySchema }), example: { message } },
    errors: [400, 403, 404, 413, 422, 503],
  },
  ...restrictionOps("/v1/server/rooms", true, "server API"),
  {
    method: "put",
    path: "/v1/server/bans/{userId}",
    summary: "ban a user from every room of the tenant; answers once every room has closed their sockets",
    auth: true,
    apiKey: true,
    params: [USER],
    request: { schema: RestrictionRequestSchema, example: { reason: "abuse" }, optional: true },
    response: {
      status: 200,
      description: "the ban and how many rooms were told",
      schema: obj({ ban: { type: "object" }, rooms: { type: "integer", minimum: 0 } }),
      example: { ban: { userId: "mallory", until: null, reason: "abuse", createdBy: "~system", createdAt: at }, rooms: 12 },
    },
    errors: [400, 503],
  },
  {
    method: "delete",
    path: "/v1/server/bans/{userId}",
    summary: "lift a tenant ban",
    auth: true,
    apiKey: true,
    params: [USER],
    response: { status: 200, description: "whether one was in force", schema: obj({ lifted: { type: "boolean" } }), example: { lifted: true } },
    errors: [400, 503],
  },
  {
    method: "get",
    path: "/v1/server/reports",
    summary: "the tenant's reports, oldest first, a page at a time",
    auth: true,
    apiKey: true,
    params: PAGE,
    response: { status: 200, description: "a page of reports", schema: page("reports", ReportSchema), example: { reports: [report], next: null } },
    errors: [400, 503],
  },
  {
    method: "get",
    path: "/v1/server/users/{userId}/export",
    summary: "what the tenant holds about a user: profile and memberships (first page), their messages, edits and reactions in pages",
    auth: true,
    apiKey: true,
    params: [USER, ...PAGE],
    response: {
      status: 200,
      description: "a page of the export",
      schema: obj(
        { userId: UserIdSchema, profile: ProfileSchema, memberships: { type: "array" }, messages: { type: "array" }, next: { type: ["string", "null"] } },
        ["userId", "messages", "next"],
      ),
      example: {
        userId: "dave",
        profile: { userId: "dave", name: "Dave", avatarUrl: null, data: {}, updatedAt: at },
        memberships: [{ roomId: "launch", role: "member", joinedAt: at, leftAt: null, readSeq: 7 }],
        messages: [{ roomId: "launch", seq: 5, kind: "message", text: "hi", createdAt: at, deleted: false, editedAt: null }],
        next: null,
      },
    },
    errors: [400, 503],
  },
  {
    method: "delete",
    path: "/v1/server/users/{userId}",
    summary: "erase a user: their messages become tombstones in every room (live clients get the deletes); profile, cursors and memberships go",
    auth: true,
    apiKey: true,
    params: [USER],
    response: {
      status: 200,
      description: "done (safe to retry)",
      schema: obj({ erased: { const: true }, rooms: { type: "integer", minimum: 0 }, deleted: { type: "integer", minimum: 0 } }),
      example: { erased: true, rooms: 2, deleted: 6 },
    },
    errors: [400, 503],
  },
];
