// What room calls return across RPC. Errors thrown over RPC lose their type, so the room
// returns failures as values with a code from the shared error table.

import type { ErrorCode, ErrorReason } from "../protocol/errors.js";
import type { Entry } from "../protocol/frames.js";

export interface Failure {
  ok: false;
  code: ErrorCode;
  /** Safe to show to clients: "unable to <operation>; <reason>". */
  message: string;
  retryAfterMs?: number;
  reason?: ErrorReason;
}

export const failure = (code: ErrorCode, message: string, reason?: ErrorReason): Failure =>
  reason === undefined ? { ok: false, code, message } : { ok: false, code, message, reason };

export type RoomResult<T> = { ok: true; value: T } | Failure;

/** The fate of one send: committed (maybe earlier, for a repeated clientMsgId) or failed. */
export type SendOutcome = { ok: true; message: Entry; duplicate: boolean } | Failure;
