// The one codec: turns untrusted input (a WebSocket frame, an HTTP body, a query string)
// into a typed value or a typed error. One schema per frame type; nothing else parses client input.

import { ErrorCode } from "./errors.js";
import { isRecord } from "./json.js";
import { decodeSendParts, summaryOf } from "./parts.js";
import {
  ClientFrameType,
  type ClientFrame,
  type DeleteRequest,
  type EditRequest,
  type ReactRequest,
  type SendRequest,
  type ServerFrame,
} from "./frames.js";
import {
  DEFAULT_HISTORY_LIMIT,
  MAX_CLIENT_MSG_ID_CHARS,
  MAX_EMOJI_BYTES,
  SHORTCODE_PATTERN,
  MAX_FRAME_BYTES,
  MAX_HISTORY_LIMIT,
  MAX_AVATAR_URL_CHARS,
  MAX_PRESENCE_DATA_BYTES,
  MAX_PROFILE_BATCH,
  MAX_PROFILE_DATA_BYTES,
  MAX_PROFILE_NAME_CHARS,
  MAX_MENTIONS,
  MAX_TEXT_CHARS,
  ROOM_ID_PATTERN,
  USER_ID_PATTERN,
} from "./limits.js";

export interface DecodeError {
  code: ErrorCode;
  message: string;
  clientMsgId?: string;
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: DecodeError };

const ok = <T>(value: T): Decoded<T> => ({ ok: true, value });
const fail = <T>(code: ErrorCode, message: string, clientMsgId?: string): Decoded<T> => ({
  ok: false,
  error: clientMsgId === undefined ? { code, message } : { code, message, clientMsgId },
});


const encoder = new TextEncoder();

/**
 * UTF-8 size of a string, counted without encoding it: the room calls this for every entry it
 * holds and every frame it measures, and TextEncoder allocated a copy each time (a CPU profile at
 * 16 writers showed it). A lone surrogate counts 3 bytes, as TextEncoder writes U+FFFD for it.
 */
export const utf8Length = (text: string): number => {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c <= 0xdbff && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a surrogate pair: 2 UTF-16 units, 4 bytes
      i++;
    } else bytes += 2;
  }
  return bytes;
};

/** Characters as people count them (code points), so an emoji is one, not two. */
const codePointLength = (text: string): number => {
  let count = 0;
  for (const _ of text) count++;
  return count;
};

/**
 * Postgres `text` cannot hold NUL, and a lone surrogate would be stored as U+FFFD, so the
 * committed text would differ from the acked one. Both are refused before anything is queued.
 */
const storableTextProblem = (text: string): string | undefined => {
  if (!text.isWellFormed()) return "contains an unpaired surrogate (invalid UTF-16)";
  if (text.includes("\u0000")) return "contains a NUL character";
  return undefined;
};

const validateClientMsgId = (value: unknown): Decoded<string> => {
  if (typeof value !== "string" || value.length === 0 || value.length > MAX_CLIENT_MSG_ID_CHARS) {
    return fail(ErrorCode.BadRequest, `clientMsgId must be a string of 1–${MAX_CLIENT_MSG_ID_CHARS} characters`);
  }
  const problem = storableTextProblem(value);
  if (problem) return fail(ErrorCode.BadRequest, `clientMsgId ${problem}`);
  return ok(value);
};

const validateText = (text: unknown, clientMsgId: string): Decoded<string> => {
  if (typeof text !== "string" || text.length === 0) {
    return fail(ErrorCode.BadRequest, "text must be a non-empty string", clientMsgId);
  }
  if (codePointLength(text) > MAX_TEXT_CHARS) {
    return fail(ErrorCode.TooLarge, `text is over ${MAX_TEXT_CHARS} characters`, clientMsgId);
  }
  const problem = storableTextProblem(text);
  if (problem) return fail(ErrorCode.BadRequest, `text ${problem}`, clientMsgId);
  return ok(text);
};

/** A message seq named by a change or a reply: a positive integer. */
const validateTarget = (name: string, value: unknown, clientMsgId?: string): Decoded<number> =>
  Number.isSafeInteger(value) && (value as number) > 0
    ? ok(value as number)
    : fail(ErrorCode.BadRequest, `${name} must be the seq of a message (a positive integer)`, clientMsgId);

/** Schema of a send (WebSocket `send` frame and HTTP POST body share it). */
export const decodeSendRequest = (input: unknown): Decoded<SendRequest> => {
  if (!isRecord(input)) return fail(ErrorCode.BadRequest, "expected a JSON object");
  const id = validateClientMsgId(input.clientMsgId);
  if (!id.ok) return id;
  const clientMsgId = id.value;
  let body: Pick<SendRequest, "text" | "parts">;
  if (input.parts !== undefined) {
    // A multipart send: the server writes `text` (the summary older clients read), so a client
    // cannot make the summary say something the parts do not.
    // `text: ""` is accepted for clients whose frame type requires the field.
    if (input.text !== undefined && input.text !== "") return fail(ErrorCode.BadRequest, "give text or parts, not both", clientMsgId);
    const parts = decodeSendParts(input.parts);
    if (!parts.ok) return fail(parts.error.code, parts.error.message, clientMsgId);
    body = { text: summaryOf(parts.value), parts: parts.value };
  } else {
    const text = validateText(input.text, clientMsgId);
    if (!text.ok) return text;
    body = { text: text.value };
  }
  const mentions = validateMentions(input.mentions, clientMsgId);
  if (!mentions.ok) return mentions;
  const withMentions = mentions.value === undefined ? body : { ...body, mentions: mentions.value };
  if (input.replyTo === undefined) return ok({ clientMsgId, ...withMentions });
  const replyTo = validateTarget("replyTo", input.replyTo, clientMsgId);
  return replyTo.ok ? ok({ clientMsgId, ...withMentions, replyTo: replyTo.value }) : replyTo;
};

/** A send's `mentions`: absent, or 1–MAX_MENTIONS distinct valid user ids (an empty list is left out). */
const validateMentions = (value: unknown, clientMsgId: string): Decoded<string[] | undefined> => {
  if (value === undefined) return ok(undefined);
  if (!Array.isArray(value)) return fail(ErrorCode.BadRequest, "mentions must be an array of user ids", clientMsgId);
  if (value.length > MAX_MENTIONS) return fail(ErrorCode.BadRequest, `mentions may name at most ${MAX_MENTIONS} users`, clientMsgId);
  const seen = new Set<string>();
  for (const id of value) {
    if (typeof id !== "string" || !USER_ID_PATTERN.test(id)) return fail(ErrorCode.BadRequest, "mentions must be user ids (1–64 of A-Z a-z 0-9 _ . @ : -)", clientMsgId);
    if (seen.has(id)) return fail(ErrorCode.BadRequest, `mentions names ${id} twice`, clientMsgId);
    seen.add(id);
  }
  return ok(seen.size === 0 ? undefined : [...seen]);
};

/** Schema of an edit (the `edit` frame without its target, and the PATCH body). */
export const decodeEditRequest = (input: unknown): Decoded<EditRequest> => {
  if (!isRecord(input)) return fail(ErrorCode.BadRequest, "expected a JSON object");
  const id = validateClientMsgId(input.clientMsgId);
  if (!id.ok) return id;
  const text = validateText(input.text, id.value);
  return text.ok ? ok({ clientMsgId: id.value, text: text.value }) : text;
};

/**
 * Schema of a delete. Over REST the body is optional: without a clientMsgId the server makes
 * one from the target, so a retried DELETE of the same message is still exactly-once.
 */
export const decodeDeleteRequest = (input: unknown): Decoded<DeleteRequest> => {
  if (!isRecord(input)) return fail(ErrorCode.BadRequest, "expected a JSON object");
  const id = validateClientMsgId(input.clientMsgId);
  return id.ok ? ok({ clientMsgId: id.value }) : id;
};

const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });
const PICTOGRAPHIC = /\p{Extended_Pictographic}|\p{Regional_Indicator}|\u20e3/u;

/** One emoji (a single grapheme that is pictographic) or a `:shortcode:`, size-capped. */
export const validateEmoji = (value: unknown, clientMsgId?: string): Decoded<string> => {
  const bad = fail<string>(
    ErrorCode.BadRequest,
    `emoji must be one emoji or a :shortcode: (a-z, 0-9, _ + -), at most ${MAX_EMOJI_BYTES} bytes`,
    clientMsgId,
  );
  if (typeof value !== "string" || value.length === 0 || encoder.encode(value).length > MAX_EMOJI_BYTES) return bad;
  if (SHORTCODE_PATTERN.test(value)) return ok(value);
  let count = 0;
  for (const _ of graphemes.segment(value)) if (++count > 1) return bad;
  return PICTOGRAPHIC.test(value) && value.isWellFormed() ? ok(value) : bad;
};

/** Schema of a reaction (the `react` frame without its target, and the POST body). */
export const decodeReactRequest = (input: unknown): Decoded<ReactRequest> => {
  if (!isRecord(input)) return fail(ErrorCode.BadRequest, "expected a JSON object");
  const id = validateClientMsgId(input.clientMsgId);
  if (!id.ok) return id;
  const emoji = validateEmoji(input.emoji, id.value);
  if (!emoji.ok) return emoji;
  if (input.remove !== undefined && input.remove !== true) return fail(ErrorCode.BadRequest, "remove must be true or absent", id.value);
  return ok(input.remove === true ? { clientMsgId: id.value, emoji: emoji.value, remove: true } : { clientMsgId: id.value, emoji: emoji.value });
};

/**
 * Frames added in protocol 2 are strict: a field they do not define is refused (a typo such as
 * `{"type":"read","sq":5}` must not silently do nothing). The first version's frames stay lenient.
 */
const onlyFields = (value: Record<string, unknown>, allowed: readonly string[]): boolean =>
  Object.keys(value).every((key) => allowed.includes(key));

const unknownFields = <T>(frame: string, allowed: readonly string[], clientMsgId?: unknown): Decoded<T> =>
  fail(
    ErrorCode.BadRequest,
    `${frame} takes only ${allowed.join(", ")}`,
    // An entry frame's refusal names its clientMsgId when it has a usable one, so the client can match it.
    typeof clientMsgId === "string" && validateClientMsgId(clientMsgId).ok ? clientMsgId : undefined,
  );

/** A small JSON object (presence data, profile data): an object, storable, at most `maxBytes` of JSON. */
export const decodeSmallObject = (name: string, value: unknown, maxBytes: number): Decoded<Record<string, unknown>> => {
  if (!isRecord(value)) return fail(ErrorCode.BadRequest, `${name} must be a JSON object`);
  const json = JSON.stringify(value);
  if (encoder.encode(json).length > maxBytes) return fail(ErrorCode.TooLarge, `${name} is over ${maxBytes} bytes of JSON`);
  if (json.includes("\\u0000")) return fail(ErrorCode.BadRequest, `${name} contains a NUL character`);
  return ok(value);
};

/** Decodes one WebSocket frame from a client. Binary frames and oversized frames are refused unparsed. */
export const decodeClientFrame = (raw: string | ArrayBuffer): Decoded<ClientFrame> => {
  if (typeof raw !== "string") return fail(ErrorCode.BadRequest, "binary frames are not supported; send JSON text");
  if (utf8Length(raw) > MAX_FRAME_BYTES) return fail(ErrorCode.TooLarge, `frame is over ${MAX_FRAME_BYTES} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return fail(ErrorCode.BadRequest, "frame is not valid JSON");
  }
  if (!isRecord(parsed)) return fail(ErrorCode.BadRequest, "frame must be a JSON object");
  switch (parsed.type) {
    case ClientFrameType.Ping:
      return ok({ type: ClientFrameType.Ping });
    case ClientFrameType.Read:
      if (!onlyFields(parsed, ["type", "seq"])) return unknownFields("read", ["seq"]);
      return Number.isSafeInteger(parsed.seq) && (parsed.seq as number) >= 0
        ? ok({ type: ClientFrameType.Read, seq: parsed.seq as number })
        : fail(ErrorCode.BadRequest, "read.seq must be a non-negative integer seq");
    case ClientFrameType.Typing:
      if (!onlyFields(parsed, ["type", "stop"])) return unknownFields("typing", ["stop"]);
      if (parsed.stop !== undefined && parsed.stop !== true) return fail(ErrorCode.BadRequest, "typing.stop must be true or absent");
      return ok(parsed.stop === true ? { type: ClientFrameType.Typing, stop: true } : { type: ClientFrameType.Typing });
    case ClientFrameType.Presence: {
      if (!onlyFields(parsed, ["type", "data"])) return unknownFields("presence", ["data"]);
      const data = decodeSmallObject("presence.data", parsed.data, MAX_PRESENCE_DATA_BYTES);
      return data.ok ? ok({ type: ClientFrameType.Presence, data: data.value }) : data;
    }
    case ClientFrameType.Received:
      return Number.isSafeInteger(parsed.seq) && (parsed.seq as number) >= 0
        ? ok({ type: ClientFrameType.Received, seq: parsed.seq as number })
        : fail(ErrorCode.BadRequest, "received.seq must be a non-negative integer seq");
    case ClientFrameType.Send: {
      const send = decodeSendRequest(parsed);
      return send.ok ? ok({ type: ClientFrameType.Send, ...send.value }) : send;
    }
    // Change frames are strict like every protocol-2 frame, and name their clientMsgId in every
    // error after it is known, so the client can match the refusal to what it sent.
    case ClientFrameType.Edit: {
      if (!onlyFields(parsed, ["type", "clientMsgId", "target", "text"])) return unknownFields("edit", ["clientMsgId", "target", "text"], parsed.clientMsgId);
      const edit = decodeEditRequest(parsed);
      if (!edit.ok) return edit;
      const target = validateTarget("target", parsed.target, edit.value.clientMsgId);
      return target.ok ? ok({ type: ClientFrameType.Edit, ...edit.value, target: target.value }) : target;
    }
    case ClientFrameType.Delete: {
      if (!onlyFields(parsed, ["type", "clientMsgId", "target"])) return unknownFields("delete", ["clientMsgId", "target"], parsed.clientMsgId);
      const del = decodeDeleteRequest(parsed);
      if (!del.ok) return del;
      const target = validateTarget("target", parsed.target, del.value.clientMsgId);
      return target.ok ? ok({ type: ClientFrameType.Delete, ...del.value, target: target.value }) : target;
    }
    case ClientFrameType.React: {
      if (!onlyFields(parsed, ["type", "clientMsgId", "target", "emoji", "remove"])) {
        return unknownFields("react", ["clientMsgId", "target", "emoji", "remove"], parsed.clientMsgId);
      }
      const react = decodeReactRequest(parsed);
      if (!react.ok) return react;
      const target = validateTarget("target", parsed.target, react.value.clientMsgId);
      return target.ok ? ok({ type: ClientFrameType.React, ...react.value, target: target.value }) : target;
    }
    default:
      return fail(ErrorCode.BadRequest, `unknown frame type ${JSON.stringify(String(parsed.type)).slice(0, 80)}`);
  }
};

export const encodeFrame = (frame: ServerFrame | ClientFrame): string => JSON.stringify(frame);

export const decodeRoomId = (value: string | undefined): Decoded<string> =>
  value !== undefined && ROOM_ID_PATTERN.test(value)
    ? ok(value)
    : fail(ErrorCode.BadRequest, "roomId must be 1–128 characters of A-Z, a-z, 0-9, _ and -");

/** A non-negative integer cursor (`since`, `after`): decimal digits only, within the safe range. */
export const decodeSeqCursor = (name: string, value: string | undefined): Decoded<number | undefined> => {
  if (value === undefined) return ok(undefined);
  if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) {
    return fail(ErrorCode.BadRequest, `${name} must be a non-negative integer seq`);
  }
  return ok(Number(value));
};

/** A page size (`limit`, `last`): 1–1000, default 50. */
export const decodeLimit = (name: string, value: string | undefined): Decoded<number | undefined> => {
  if (value === undefined) return ok(undefined);
  if (!/^\d{1,4}$/.test(value) || Number(value) < 1 || Number(value) > MAX_HISTORY_LIMIT) {
    return fail(ErrorCode.BadRequest, `${name} must be an integer from 1 to ${MAX_HISTORY_LIMIT}`);
  }
  return ok(Number(value));
};

/**
 * The protocol version a client speaks (`v` on the socket URL): absent means 1, the first
 * contract. A version above the server's is accepted: the server answers with its own in
 * `ready.protocol`, and the client, which knows both, adapts (docs/protocol.md, "Versions").
 */
export const decodeProtocolVersion = (value: string | undefined): Decoded<number> => {
  if (value === undefined) return ok(1);
  if (!/^\d{1,4}$/.test(value) || Number(value) < 1) return fail(ErrorCode.BadRequest, "v must be a protocol version (a positive integer)");
  return ok(Number(value));
};

/** What a connecting socket asked for: everything after `since`, or the newest `last`. */
export type HistoryRequest = { kind: "since"; since: number } | { kind: "last"; last: number };

export const decodeHistoryRequest = (since: string | undefined, last: string | undefined): Decoded<HistoryRequest> => {
  if (since !== undefined && last !== undefined) return fail(ErrorCode.BadRequest, "use either since or last, not both");
  const s = decodeSeqCursor("since", since);
  if (!s.ok) return s;
  if (s.value !== undefined) return ok({ kind: "since", since: s.value });
  const l = decodeLimit("last", last);
  if (!l.ok) return l;
  return ok({ kind: "last", last: l.value ?? DEFAULT_HISTORY_LIMIT });
};

export type RoomVisibility = "public" | "private";
export type MemberRole = "admin" | "member" | "viewer";
export const ROOM_NAME_MAX_CHARS = 200;
export const METADATA_MAX_BYTES = 4096;

export interface RoomInit {
  roomId: string | undefined;
  name: string | undefined;
  visibility: RoomVisibility;
  metadata: Record<string, unknown>;
}

export interface RoomUpdate {
  name?: string;
  visibility?: RoomVisibility;
  metadata?: Record<string, unknown>;
}

const decodeRoomFields = (input: Record<string, unknown>): Decoded<RoomUpdate> => {
  const out: RoomUpdate = {};
  if (input.name !== undefined) {
    if (typeof input.name !== "string" || input.name.length === 0 || input.name.length > ROOM_NAME_MAX_CHARS) {
      return fail(ErrorCode.BadRequest, `name must be a string of 1–${ROOM_NAME_MAX_CHARS} characters`);
    }
    const problem = storableTextProblem(input.name);
    if (problem) return fail(ErrorCode.BadRequest, `name ${problem}`);
    out.name = input.name;
  }
  if (input.visibility !== undefined) {
    if (input.visibility !== "public" && input.visibility !== "private") {
      return fail(ErrorCode.BadRequest, 'visibility must be "public" or "private"');
    }
    out.visibility = input.visibility;
  }
  if (input.metadata !== undefined) {
    if (!isRecord(input.metadata)) return fail(ErrorCode.BadRequest, "metadata must be a JSON object");
    const json = JSON.stringify(input.metadata);
    if (encoder.encode(json).length > METADATA_MAX_BYTES) {
      return fail(ErrorCode.TooLarge, `metadata is over ${METADATA_MAX_BYTES} bytes of JSON`);
    }
    if (json.includes("\\u0000")) return fail(ErrorCode.BadRequest, "metadata contains a NUL character");
    out.metadata = input.metadata;
  }
  return ok(out);
};

/** Schema of `POST /v1/rooms`. */
export const decodeRoomInit = (input: unknown): Decoded<RoomInit> => {
  if (!isRecord(input)) return fail(ErrorCode.BadRequest, "expected a JSON object");
  let roomId: string | undefined;
  if (input.roomId !== undefined) {
    const id = decodeRoomId(typeof input.roomId === "string" ? input.roomId : undefined);
    if (!id.ok) return id;
    roomId = id.value;
  }
  const fields = decodeRoomFields(input);
  if (!fields.ok) return fields;
  return ok({
    roomId,
    name: fields.value.name,
    visibility: fields.value.visibility ?? "public",
    metadata: fields.value.metadata ?? {},
  });
};

/** Schema of `PATCH /v1/rooms/{roomId}`. */
export const decodeRoomUpdate = (input: unknown): Decoded<RoomUpdate> => {
  if (!isRecord(input)) return fail(ErrorCode.BadRequest, "expected a JSON object");
  const fields = decodeRoomFields(input);
  if (fields.ok && Object.keys(fields.value).length === 0) {
    return fail(ErrorCode.BadRequest, "give at least one of name, visibility, metadata");
  }
  return fields;
};

/** Schema of `PUT /v1/rooms/{roomId}/members/{userId}`. */
export const decodeRole = (input: unknown): Decoded<MemberRole> => {
  const role = isRecord(input) ? input.role : undefined;
  return role === "admin" || role === "member" || role === "viewer"
    ? ok(role)
    : fail(ErrorCode.BadRequest, 'role must be "admin", "member" or "viewer"');
};

/** Schema of `PUT /v1/rooms/{roomId}/read`: `{"seq": N}`. */
export const decodeReadRequest = (input: unknown): Decoded<{ seq: number }> => {
  if (!isRecord(input)) return fail(ErrorCode.BadRequest, "expected a JSON object");
  if (!onlyFields(input, ["seq"])) return unknownFields("the read body", ["seq"]);
  return Number.isSafeInteger(input.seq) && (input.seq as number) >= 0
    ? ok({ seq: input.seq as number })
    : fail(ErrorCode.BadRequest, "seq must be a non-negative integer seq");
};

export interface ProfileUpdate {
  name?: string | null;
  avatarUrl?: string | null;
  data?: Record<string, unknown>;
}

/** Schema of `PUT /v1/users/me`: any of name (1–100 characters or null), avatarUrl (http/https or null), data (≤ 4 KiB). */
export const decodeProfileUpdate = (input: unknown): Decoded<ProfileUpdate> => {
  if (!isRecord(input)) return fail(ErrorCode.BadRequest, "expected a JSON object");
  if (!onlyFields(input, ["name", "avatarUrl", "data"])) return unknownFields("a profile", ["name", "avatarUrl", "data"]);
  const out: ProfileUpdate = {};
  if (input.name !== undefined) {
    if (input.name !== null) {
      if (typeof input.name !== "string" || input.name.length === 0 || codePointLength(input.name) > MAX_PROFILE_NAME_CHARS) {
        return fail(ErrorCode.BadRequest, `name must be a string of 1–${MAX_PROFILE_NAME_CHARS} characters, or null`);
      }
      const problem = storableTextProblem(input.name);
      if (problem) return fail(ErrorCode.BadRequest, `name ${problem}`);
    }
    out.name = input.name;
  }
  if (input.avatarUrl !== undefined) {
    if (input.avatarUrl !== null) {
      const url = typeof input.avatarUrl === "string" && input.avatarUrl.length <= MAX_AVATAR_URL_CHARS ? parseHttpUrl(input.avatarUrl) : undefined;
      if (!url) return fail(ErrorCode.BadRequest, `avatarUrl must be an http(s) URL of at most ${MAX_AVATAR_URL_CHARS} characters, or null`);
    }
    out.avatarUrl = input.avatarUrl as string | null;
  }
  if (input.data !== undefined) {
    const data = decodeSmallObject("data", input.data, MAX_PROFILE_DATA_BYTES);
    if (!data.ok) return data;
    out.data = data.value;
  }
  if (Object.keys(out).length === 0) return fail(ErrorCode.BadRequest, "give at least one of name, avatarUrl, data");
  return ok(out);
};

const parseHttpUrl = (value: string): URL | undefined => {
  try {
    const url = new URL(value);
    return url.protocol === "https:" || url.protocol === "http:" ? url : undefined;
  } catch {
    return undefined;
  }
};

/** `?ids=a,b,c`: 1–100 distinct user ids. */
export const decodeUserIds = (value: string | undefined, pattern: RegExp): Decoded<string[]> => {
  const ids = [...new Set((value ?? "").split(",").filter((id) => id !== ""))];
  if (ids.length === 0 || ids.length > MAX_PROFILE_BATCH) return fail(ErrorCode.BadRequest, `ids must list 1–${MAX_PROFILE_BATCH} user ids, comma-separated`);
  const bad = ids.find((id) => !pattern.test(id));
  if (bad !== undefined) return fail(ErrorCode.BadRequest, `ids: ${JSON.stringify(bad.slice(0, 80))} is not a user id`);
  return ok(ids);
};
