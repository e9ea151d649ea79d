// JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of every body and frame on the wire, for
// clients written in other languages. The codec (codec.ts) stays the validator the server runs:
// these are a description of it, and src/api/openapi.test.ts keeps the two in agreement (the same
// generated valid and invalid bodies are accepted and refused by both) and checks every example.
//
// What plain JSON Schema cannot say is written as a vendor keyword that other validators ignore,
// with its meaning in `description`; the test's validator implements each:
//   x-maxUtf16Length  at most N UTF-16 code units (JavaScript's string length; maxLength counts code points)
//   x-maxJsonBytes    the value's JSON (JSON.stringify) is at most N bytes of UTF-8 and holds no NUL (\u0000)
//   x-httpUrl         parses as a URL (WHATWG) with the scheme http or https
//   x-emoji           one emoji: a single grapheme cluster holding an Extended_Pictographic or
//                     Regional_Indicator code point (or U+20E3), well-formed UTF-16, at most
//                     MAX_EMOJI_BYTES of UTF-8 — or a :shortcode: matching SHORTCODE_PATTERN
// Limits are spelled from limits.ts, so a limit changes in one place.

import { METADATA_MAX_BYTES, ROOM_NAME_MAX_CHARS } from "./codec.js";
import {
  MAX_AVATAR_URL_CHARS,
  MAX_CLIENT_MSG_ID_CHARS,
  MAX_EMOJI_BYTES,
  MAX_PRESENCE_DATA_BYTES,
  MAX_PROFILE_DATA_BYTES,
  MAX_PROFILE_NAME_CHARS,
  MAX_TEXT_CHARS,
} from "./limits.js";

/** Vendor keywords used below (see the file comment); a validator that checks the schemas must know them. */
export const SCHEMA_VENDOR_KEYWORDS = ["x-maxUtf16Length", "x-maxJsonBytes", "x-httpUrl", "x-emoji"] as const;


/** No NUL and no unpaired surrogate (Postgres `text` could not store them as sent). With the `u` flag. */
const STORABLE = "^[^\\u0000\\uD800-\\uDFFF]*$";

const seq = { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: "a position in the room's sequence (0 = before the first entry)" } as const;
const timestamp = { type: "string", format: "date-time" } as const;
/** The seq of a message (a change's `target`, a reply's `replyTo`): a positive integer. */
const target = { type: "integer", minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: "the seq of a message" } as const;
const emoji = {
  type: "string",
  "x-emoji": true,
  description: `one emoji (a single grapheme, at most ${MAX_EMOJI_BYTES} bytes of UTF-8) or a :shortcode: of a-z 0-9 _ + - (1–32)`,
} as const;

export const RoomIdSchema = { type: "string", pattern: "^[A-Za-z0-9_-]{1,128}$", description: "1–128 of A-Z a-z 0-9 _ -" } as const;
export const UserIdSchema = { type: "string", pattern: "^[A-Za-z0-9_.@:-]{1,64}$", description: "the token's sub: 1–64 of A-Z a-z 0-9 _ . @ : -" } as const;
export const RoleSchema = { enum: ["admin", "member", "viewer"] } as const;
export const VisibilitySchema = { enum: ["public", "private"] } as const;

const smallObject = (maxBytes: number, what: string) =>
  ({
    type: "object",
    "x-maxJsonBytes": maxBytes,
    description: `${what}: a JSON object (not an array, not null) whose JSON is at most ${maxBytes} bytes and holds no NUL`,
  }) as const;

const clientMsgId = {
  type: "string",
  minLength: 1,
  "x-maxUtf16Length": MAX_CLIENT_MSG_ID_CHARS,
  pattern: STORABLE,
  description: `the sender's id for this send, 1–${MAX_CLIENT_MSG_ID_CHARS} UTF-16 code units, no NUL or unpaired surrogate; resending it is safe (stored once)`,
} as const;

const text = {
  type: "string",
  minLength: 1,
  maxLength: MAX_TEXT_CHARS,
  pattern: STORABLE,
  description: `1–${MAX_TEXT_CHARS} characters (code points: an emoji is one), no NUL or unpaired surrogate; over the limit → too_large`,
} as const;

// --- request bodies (one per codec decoder) ---------------------------------------------------

/** `POST /v1/rooms/{roomId}/messages` (and the `send` frame without its type). decodeSendRequest. */
/** A part of a multipart send (src/protocol/parts.ts): text, an http(s) link, or an uploaded attachment by id. */
export const SendPartSchema = {
  oneOf: [
    { type: "object", required: ["type", "text"], properties: { type: { const: "text" }, text } },
    { type: "object", required: ["type", "url"], properties: { type: { const: "link" }, url: { type: "string", maxLength: 2048, "x-httpUrl": true } } },
    { type: "object", required: ["type", "id"], properties: { type: { const: "attachment" }, id: { type: "string", pattern: "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$" } } },
  ],
} as const;

/**
 * `POST /v1/rooms/{roomId}/messages` and the `send` frame: `text`, or `parts` (1–10, at most 8 KiB
 * of JSON; then `text` is absent or "" and the server writes the summary). decodeSendRequest.
 */
export const SendRequestSchema = {
  type: "object",
  required: ["clientMsgId"],
  properties: {
    clientMsgId,
    parts: { type: "array", minItems: 1, maxItems: 10, items: SendPartSchema, description: "a multipart message (at most 8 KiB of JSON)" },
    replyTo: { ...target, description: "reply in the thread of this message (not itself a reply, not deleted)" },
    mentions: { type: "array", maxItems: 20, uniqueItems: true, items: UserIdSchema, description: "users this message mentions (besides @userId in the text); used for notification webhooks" },
  },
  if: { required: ["parts"] },
  // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then/else, not a thenable
  then: { properties: { text: { const: "", description: "with parts the server writes the summary" } } },
  else: { required: ["text"], properties: { text } },
} as const;

/** An upload's descriptor (`POST /v1/rooms/{roomId}/attachments`, `GET …/attachments/{id}/url`). */
export const AttachmentSchema = {
  type: "object",
  required: ["id", "name", "size", "type", "sha256", "createdAt", "url", "urlExpiresAt"],
  properties: {
    id: { type: "string", pattern: "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$" },
    name: { type: "string" },
    size: { type: "integer", minimum: 1 },
    type: { type: "string" },
    sha256: { type: "string", pattern: "^[0-9a-f]{64}$" },
    width: { type: "integer", minimum: 1 },
    height: { type: "integer", minimum: 1 },
    createdAt: { type: "string" },
    url: { type: "string", description: "a short-lived signed URL (for <img>), verified by the Worker" },
    urlExpiresAt: { type: "string" },
  },
} as const;

/** `PATCH /v1/rooms/{roomId}/messages/{seq}`: the new text of your message. decodeEditRequest. */
export const EditRequestSchema = { type: "object", required: ["clientMsgId", "text"], properties: { clientMsgId, text } } as const;

/** `DELETE /v1/rooms/{roomId}/messages/{seq}`: optional body; without one the clientMsgId is `delete:<seq>`. decodeDeleteRequest. */
export const DeleteRequestSchema = { type: "object", required: ["clientMsgId"], properties: { clientMsgId } } as const;

/** `POST /v1/rooms/{roomId}/messages/{seq}/reactions`. decodeReactRequest. */
export const ReactRequestSchema = {
  type: "object",
  required: ["clientMsgId", "emoji"],
  properties: { clientMsgId, emoji, remove: { const: true, description: "present: take the reaction back" } },
} as const;

const roomName = {
  type: "string",
  minLength: 1,
  "x-maxUtf16Length": ROOM_NAME_MAX_CHARS,
  pattern: STORABLE,
  description: `1–${ROOM_NAME_MAX_CHARS} UTF-16 code units, no NUL or unpaired surrogate`,
} as const;
const roomFields = {
  name: roomName,
  visibility: VisibilitySchema,
  metadata: smallObject(METADATA_MAX_BYTES, "the app's own fields; over the size → too_large"),
} as const;

/** `POST /v1/rooms`. decodeRoomInit. */
export const RoomInitSchema = {
  type: "object",
  properties: { roomId: { ...RoomIdSchema, description: "omitted: a random UUID" }, ...roomFields },
} as const;

/** `PATCH /v1/rooms/{roomId}`: at least one of name, visibility, metadata. decodeRoomUpdate. */
export const RoomUpdateSchema = {
  type: "object",
  properties: roomFields,
  anyOf: [{ required: ["name"] }, { required: ["visibility"] }, { required: ["metadata"] }],
} as const;

/** `PUT /v1/rooms/{roomId}/members/{userId}`. decodeRole. */
export const RoleRequestSchema = { type: "object", required: ["role"], properties: { role: RoleSchema } } as const;

/** `PUT /v1/rooms/{roomId}/read`. decodeReadRequest (strict: no other field). */
export const ReadRequestSchema = { type: "object", required: ["seq"], additionalProperties: false, properties: { seq } } as const;

/** `PUT /v1/users/me`: at least one field; null clears it. decodeProfileUpdate (strict). */
export const ProfileUpdateSchema = {
  type: "object",
  additionalProperties: false,
  minProperties: 1,
  properties: {
    name: {
      oneOf: [{ type: "null" }, { type: "string", minLength: 1, maxLength: MAX_PROFILE_NAME_CHARS, pattern: STORABLE }],
      description: `1–${MAX_PROFILE_NAME_CHARS} characters (code points), or null to clear`,
    },
    avatarUrl: {
      oneOf: [{ type: "null" }, { type: "string", "x-maxUtf16Length": MAX_AVATAR_URL_CHARS, "x-httpUrl": true }],
      description: `an http(s) URL of at most ${MAX_AVATAR_URL_CHARS} UTF-16 code units, or null to clear`,
    },
    data: smallObject(MAX_PROFILE_DATA_BYTES, "the app's own fields"),
  },
} as const;

/** `POST /v1/dev/token` (dev only). Checked in src/api/app.ts, not by the codec. */
export const DevTokenRequestSchema = {
  type: "object",
  required: ["userId"],
  properties: { userId: UserIdSchema, tenant: { type: "string", description: "default: the default tenant; only tenants without keys of their own" } },
} as const;

// --- response bodies ---------------------------------------------------------------------------

const envelope = {
  roomId: RoomIdSchema,
  seq: { ...seq, minimum: 1 },
  id: { type: "string" },
  kind: { type: "string", description: "message, edit, delete, reaction, system; kinds added later are more entries on the same stream" },
  userId: { type: "string", description: "who did it (a user id, or system)" },
  text: { type: "string", description: "the message, or a human-readable summary of another kind" },
  clientMsgId: { type: "string" },
  createdAt: timestamp,
} as const;
const ENVELOPE_FIELDS = ["roomId", "seq", "id", "kind", "userId", "text", "clientMsgId", "createdAt"] as const;

/**
 * An entry of the room's stream: the envelope every kind carries. Clients must keep an entry of
 * a kind they do not know by its envelope (its seq still counts), so this schema does not close
 * the list of kinds; EntrySchemas below has each known kind's own fields.
 */
export const EntrySchema = { type: "object", required: ENVELOPE_FIELDS, properties: envelope } as const;

const entryOf = <K extends string, P extends Record<string, unknown>, R extends readonly string[]>(kind: K, properties: P, required: R) =>
  ({ type: "object", required: [...ENVELOPE_FIELDS, ...required], properties: { ...envelope, kind: { const: kind }, ...properties } }) as const;

/** Each known kind of entry (frames.ts EntryKind), as history, `ready` and live frames carry it. */
export const EntrySchemas = {
  message: entryOf(
    "message",
    {
      replyTo: target,
      mentions: { type: "array", items: UserIdSchema, description: "the send's explicit mentions" },
      editedAt: timestamp,
      version: { type: "integer", minimum: 1 },
      deleted: { const: true, description: "a tombstone: text is empty" },
      reactions: {
        type: "array",
        items: {
          type: "object",
          required: ["emoji", "count"],
          properties: { emoji: { type: "string" }, count: { type: "integer", minimum: 0 }, me: { const: true } },
        },
      },
      replyCount: { type: "integer", minimum: 0 },
      lastReplySeq: target,
      updatedSeq: { ...target, description: "the seq of the last change already applied to this form" },
    },
    [],
  ),
  edit: entryOf("edit", { target, version: { type: "integer", minimum: 1 } }, ["target", "version"]),
  delete: entryOf("delete", { target, redacts: { type: "array", items: target } }, ["target", "redacts"]),
  reaction: entryOf("reaction", { target, emoji: { type: "string" }, remove: { const: true }, count: { type: "integer", minimum: 0 } }, [
    "target",
    "emoji",
    "count",
  ]),
  system: entryOf(
    "system",
    {
      event: {
        type: "string",
        description: "member_joined, member_left, member_added, member_removed, role_changed, room_updated, member_banned, member_unbanned, member_muted, member_unmuted, …",
      },
      subject: { type: "string" },
      role: { enum: ["admin", "member", "viewer"] },
      changes: { type: "object", properties: { name: { type: "string" }, visibility: { enum: ["public", "private"] }, metadata: { const: true } } },
      until: { type: "string", format: "date-time" },
    },
    ["event"],
  ),
} as const;

export const ErrorBodySchema = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: { enum: ["bad_request", "unauthorized", "forbidden", "not_found", "conflict", "too_large", "rate_limited", "unavailable", "internal", "banned", "muted", "rejected"] },
        message: { type: "string" },
        reason: { enum: ["deleted", "already_reacted", "not_reacted"], description: "with some conflicts: which one" },
      },
    },
  },
} as const;

export const RoomSchema = {
  type: "object",
  required: ["roomId", "name", "visibility", "metadata", "createdBy", "createdAt", "latestSeq", "role"],
  properties: {
    roomId: RoomIdSchema,
    name: { type: "string" },
    visibility: VisibilitySchema,
    metadata: { type: "object" },
    createdBy: { type: ["string", "null"] },
    createdAt: timestamp,
    latestSeq: seq,
    role: { oneOf: [RoleSchema, { type: "null" }], description: "the caller's role (null: not a member)" },
  },
} as const;

export const MemberSchema = {
  type: "object",
  required: ["userId", "role", "joinedAt"],
  properties: { userId: UserIdSchema, role: RoleSchema, joinedAt: timestamp },
} as const;

export const ProfileSchema = {
  type: "object",
  required: ["userId", "name", "avatarUrl", "data", "updatedAt"],
  properties: {
    userId: UserIdSchema,
    name: { type: ["string", "null"] },
    avatarUrl: { type: ["string", "null"] },
    data: { type: "object" },
    updatedAt: { oneOf: [timestamp, { type: "null" }] },
  },
} as const;

export const RoomSummarySchema = {
  type: "object",
  required: ["roomId", "name", "visibility", "role", "latestSeq", "readSeq", "unread"],
  properties: {
    roomId: RoomIdSchema,
    name: { type: "string" },
    visibility: VisibilitySchema,
    role: RoleSchema,
    latestSeq: seq,
    readSeq: seq,
    unread: { type: "integer", minimum: 0 },
  },
} as const;

export const PresenceEntrySchema = {
  type: "object",
  required: ["userId"],
  properties: { userId: UserIdSchema, data: { type: "object" } },
} as const;

// --- WebSocket frames --------------------------------------------------------------------------

const frame = <T extends string, P extends Record<string, unknown>, R extends readonly string[]>(type: T, properties: P, required: R, strict = false) =>
  ({
    type: "object",
    required: ["type", ...required],
    properties: { type: { const: type }, ...properties },
    ...(strict ? { additionalProperties: false } : {}),
  }) as const;

/**
 * Client → server frames (decodeClientFrame). Protocol-2 frames (read, typing, presence) refuse
 * fields they do not define; the first version's frames ignore extra fields. A text frame over
 * 16 KiB and any binary frame are refused unparsed (too_large, bad_request).
 */
export const ClientFrameSchemas = {
  send: frame("send", SendRequestSchema.properties, ["clientMsgId", "text"]),
  edit: frame("edit", { clientMsgId, target, text }, ["clientMsgId", "target", "text"], true),
  delete: frame("delete", { clientMsgId, target }, ["clientMsgId", "target"], true),
  react: frame("react", { clientMsgId, target, emoji, remove: ReactRequestSchema.properties.remove }, ["clientMsgId", "target", "emoji"], true),
  ping: frame("ping", {}, []),
  received: frame("received", { seq }, ["seq"]),
  read: frame("read", { seq }, ["seq"], true),
  typing: frame("typing", { stop: { const: true, description: "present: the user stopped typing" } }, [], true),
  presence: frame("presence", { data: smallObject(MAX_PRESENCE_DATA_BYTES, "this user's presence data") }, ["data"], true),
} as const;

export const ClientFrameSchema = { oneOf: Object.values(ClientFrameSchemas) } as const;

/** Server → client frames. A client must skip frame types it does not know (the protocol only adds them). */
export const ServerFrameSchemas = {
  ready: frame(
    "ready",
    {
      roomId: RoomIdSchema,
      messages: { type: "array", items: EntrySchema, description: "the history asked for (since / last), ascending" },
      latestSeq: seq,
      truncated: { type: "boolean", description: "true: more history than fits; fetch the rest over REST" },
      protocol: { type: "integer", minimum: 1 },
      readSeq: seq,
      unread: { type: "integer", minimum: 0 },
      presence: { type: "array", items: PresenceEntrySchema },
    },
    ["roomId", "messages", "latestSeq", "truncated", "protocol", "readSeq", "unread", "presence"],
  ),
  message: frame("message", { message: EntrySchema }, ["message"]),
  ack: frame("ack", { clientMsgId: { type: "string" }, seq: { ...seq, minimum: 1 }, id: { type: "string" }, createdAt: timestamp }, [
    "clientMsgId",
    "seq",
    "id",
    "createdAt",
  ]),
  error: frame(
    "error",
    {
      code: ErrorBodySchema.properties.error.properties.code,
      message: { type: "string" },
      clientMsgId: { type: "string", description: "when the error is about a send" },
      retryAfterMs: { type: "integer", minimum: 0, description: "with rate_limited" },
      reason: ErrorBodySchema.properties.error.properties.reason,
    },
    ["code", "message"],
  ),
  pong: frame("pong", {}, []),
  receipt: frame("receipt", { userId: UserIdSchema, seq }, ["userId", "seq"]),
  typing: frame("typing", { userIds: { type: "array", items: UserIdSchema } }, ["userIds"]),
  presence: frame("presence", { userId: UserIdSchema, online: { type: "boolean" }, data: { type: "object" } }, ["userId", "online"]),
} as const;

export const ServerFrameSchema = { oneOf: Object.values(ServerFrameSchemas) } as const;

// --- moderation and the server API (src/protocol/moderation-codec.ts, docs/server-api.md) ---------

const reason = { type: "string", pattern: "^(?![\\s\\S]*\\u0000)[\\s\\S]*\\S", "x-maxUtf16Length": 500, description: "1–500 UTF-16 characters, not blank, no NUL" } as const;

/** `PUT …/bans/{userId}` (durationS optional: absent = until lifted) and `PUT …/mutes/{userId}` (durationS required). decodeRestriction. */
export const RestrictionRequestSchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    durationS: { type: "integer", minimum: 1, maximum: 366 * 24 * 60 * 60, description: "seconds until it ends (mutes: required)" },
    reason,
  },
} as const;

export const RestrictionSchema = {
  type: "object",
  required: ["userId", "kind", "until", "reason", "createdBy", "createdAt"],
  properties: {
    userId: UserIdSchema,
    kind: { enum: ["ban", "mute"] },
    until: { oneOf: [timestamp, { type: "null" }], description: "null: until lifted" },
    reason: { type: ["string", "null"] },
    createdBy: { type: "string" },
    createdAt: timestamp,
  },
} as const;

/** `POST /v1/rooms/{roomId}/reports`: a message and/or a user, and why. decodeReport. */
export const ReportRequestSchema = {
  type: "object",
  required: ["reason"],
  additionalProperties: false,
  anyOf: [{ required: ["seq"] }, { required: ["userId"] }],
  properties: { seq: target, userId: UserIdSchema, reason },
} as const;

export const ReportSchema = {
  type: "object",
  required: ["id", "roomId", "reporter", "subject", "seq", "reason", "createdAt"],
  properties: {
    id: { type: "string" },
    roomId: RoomIdSchema,
    reporter: UserIdSchema,
    subject: { type: ["string", "null"] },
    seq: { type: ["integer", "null"] },
    reason: { type: "string" },
    createdAt: timestamp,
  },
} as const;

/** `POST /v1/server/rooms/{roomId}/messages`: a send, with `userId` to send on behalf of a user (absent: as the system). decodeServerSend. */
export const ServerSendRequestSchema = {
  ...SendRequestSchema,
  properties: { ...SendRequestSchema.properties, userId: { ...UserIdSchema, description: "send on behalf of this user (absent: as the system, userId ~system)" } },
} as const;

/** `POST /v1/server/keys`. decodeKeyRequest. */
export const KeyRequestSchema = {
  type: "object",
  required: ["name"],
  additionalProperties: false,
  properties: { name: { type: "string", pattern: "\\S", "x-maxUtf16Length": 100, description: "1–100 UTF-16 characters, not blank" } },
} as const;

export const ApiKeySchema = {
  type: "object",
  required: ["id", "name", "createdAt", "revokedAt"],
  properties: { id: { type: "string", pattern: "^[0-9a-f]{16}$" }, name: { type: "string" }, createdAt: timestamp, revokedAt: { oneOf: [timestamp, { type: "null" }] } },
} as const;

/** A room as the server API lists it (no caller role: the server is no member). */
export const ServerRoomSchema = {
  type: "object",
  required: ["roomId", "name", "visibility", "metadata", "createdBy", "createdAt", "latestSeq"],
  properties: { ...RoomSchema.properties },
} as const;
