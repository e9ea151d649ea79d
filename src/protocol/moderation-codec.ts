// Bodies of the moderation and server API routes (docs/server-api.md), decoded like every other
// input: `unknown` in, a typed value or a typed `bad_request` out. Their JSON Schemas are in
// schemas.ts (held to these decoders by src/api/openapi.test.ts).

import { decodeSendRequest, type Decoded } from "./codec.js";
import { ErrorCode } from "./errors.js";
import type { SendRequest } from "./frames.js";
import { USER_ID_PATTERN } from "./limits.js";

const ok = <T>(value: T): Decoded<T> => ({ ok: true, value });
const bad = <T>(message: string): Decoded<T> => ({ ok: false, error: { code: ErrorCode.BadRequest, message } });
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const only = (v: Record<string, unknown>, allowed: readonly string[]): string | undefined => Object.keys(v).find((k) => !allowed.includes(k));

export const MAX_REASON_CHARS = 500;
/** The longest timed restriction: a year (longer ones are "until lifted"). */
export const MAX_RESTRICTION_S = 366 * 24 * 60 * 60;

/** A ban or a mute: `durationS` (timed) or nothing (until lifted), and an optional reason. */
export interface RestrictionRequest {
  /** ISO time the restriction ends, or null (until lifted). */
  until: string | null;
  reason: string | null;
}

const decodeReason = (value: unknown, required: boolean): Decoded<string | null> => {
  if (value === undefined && !required) return ok(null);
  if (typeof value !== "string" || value.trim() === "" || value.length > MAX_REASON_CHARS || value.includes("\u0000")) {
    return bad(`reason must be 1–${MAX_REASON_CHARS} characters, not blank, no NUL`);
  }
  return ok(value);
};

/**
 * Schema of `PUT …/bans/{userId}` and `PUT …/mutes/{userId}`: `{"durationS"?: n, "reason"?: s}`.
 * `requireDuration`: mutes are timed (a mute without an end is a ban from speaking; say so with a long one).
 */
export const decodeRestriction = (input: unknown, requireDuration: boolean, now = Date.now()): Decoded<RestrictionRequest> => {
  const body = input === undefined ? {} : input;
  if (!isRecord(body)) return bad("expected a JSON object");
  const extra = only(body, ["durationS", "reason"]);
  if (extra) return bad(`unknown field ${extra}`);
  const { durationS } = body;
  if (durationS === undefined && requireDuration) return bad("durationS is required: a mute is timed");
  if (durationS !== undefined && (typeof durationS !== "number" || !Number.isInteger(durationS) || durationS < 1 || durationS > MAX_RESTRICTION_S)) {
    return bad(`durationS must be an integer from 1 to ${MAX_RESTRICTION_S}`);
  }
  const reason = decodeReason(body.reason, false);
  if (!reason.ok) return reason;
  return ok({ until: durationS === undefined ? null : new Date(now + durationS * 1000).toISOString(), reason: reason.value });
};

export interface ReportRequest {
  seq?: number;
  userId?: string;
  reason: string;
}

/** Schema of `POST /v1/rooms/{roomId}/reports`: a message (`seq`) and/or a user, and a reason. */
export const decodeReport = (input: unknown): Decoded<ReportRequest> => {
  if (!isRecord(input)) return bad("expected a JSON object");
  const extra = only(input, ["seq", "userId", "reason"]);
  if (extra) return bad(`unknown field ${extra}`);
  const { seq, userId } = input;
  if (seq !== undefined && (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1)) return bad("seq must be the seq of a message");
  if (userId !== undefined && (typeof userId !== "string" || !USER_ID_PATTERN.test(userId))) return bad("userId is not a valid user id");
  if (seq === undefined && userId === undefined) return bad("give the seq of a message, a userId, or both");
  const reason = decodeReason(input.reason, true);
  if (!reason.ok) return reason;
  return ok({ ...(seq === undefined ? {} : { seq }), ...(userId === undefined ? {} : { userId }), reason: reason.value ?? "" });
};

/** Schema of `POST /v1/server/rooms/{roomId}/messages`: a send, with `userId` to send on behalf of a user (absent: as the system). */
export const decodeServerSend = (input: unknown): Decoded<{ userId?: string; request: SendRequest }> => {
  if (!isRecord(input)) return bad("expected a JSON object");
  const { userId, ...rest } = input;
  if (userId !== undefined && (typeof userId !== "string" || !USER_ID_PATTERN.test(userId))) return bad("userId is not a valid user id");
  const request = decodeSendRequest(rest);
  if (!request.ok) return request;
  return ok(userId === undefined ? { request: request.value } : { userId, request: request.value });
};

/** Schema of `POST /v1/server/keys`: `{"name": "…"}`. */
export const decodeKeyRequest = (input: unknown): Decoded<{ name: string }> => {
  if (!isRecord(input)) return bad("expected a JSON object");
  const extra = only(input, ["name"]);
  if (extra) return bad(`unknown field ${extra}`);
  const { name } = input;
  if (typeof name !== "string" || name.trim() === "" || name.length > 100) return bad("name must be 1–100 characters, not blank");
  return ok({ name });
};
