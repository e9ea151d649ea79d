// One error model for the whole product: the same code table drives HTTP statuses,
// WebSocket `error` frames and close codes, so a client handles one list of failures.

export const ErrorCode = {
  /** The request or frame is malformed: bad JSON, unknown type, missing or wrong fields, bad cursor. */
  BadRequest: "bad_request",
  /** No token, or the token is invalid, expired or signed with the wrong key. */
  Unauthorized: "unauthorized",
  /** The caller is authenticated but may not do this here. */
  Forbidden: "forbidden",
  /** The route or the room does not exist. */
  NotFound: "not_found",
  /** The request conflicts with what exists (a room id that is taken). */
  Conflict: "conflict",
  /** The text or the frame is over its size limit. */
  TooLarge: "too_large",
  /** Too many requests or sends; retry after the hinted delay. */
  RateLimited: "rate_limited",
  /** Storage could not commit or read right now; nothing was lost, retry with the same clientMsgId. */
  Unavailable: "unavailable",
  /** A bug on our side; the details are in our logs, never in the response. */
  Internal: "internal",
  /** The user is banned from this room or from the tenant: no connecting, reading or sending (a socket closes at once). */
  Banned: "banned",
  /** The user is muted in this room: they may read but not send, until the mute ends. */
  Muted: "muted",
  /** The tenant's before-commit hook rejected the message; nothing was committed and no seq was used. */
  Rejected: "rejected",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Why a change was refused with `conflict`, where a client acts differently on each: a reaction
 * that is already as asked is done, a deleted message is gone. Sent beside the code (`reason` on
 * error frames and HTTP error bodies); a client that does not know a reason treats it as the code.
 */
export const ErrorReason = {
  /** The message the change names was deleted. */
  Deleted: "deleted",
  /** The user reacted with this emoji already (an add). */
  AlreadyReacted: "already_reacted",
  /** The user had not reacted with this emoji (a removal). */
  NotReacted: "not_reacted",
} as const;

export type ErrorReason = (typeof ErrorReason)[keyof typeof ErrorReason];

export const isErrorReason = (value: unknown): value is ErrorReason =>
  typeof value === "string" && Object.values(ErrorReason).includes(value as ErrorReason);

export const httpStatusOf: Record<ErrorCode, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
  banned: 403,
  muted: 403,
  rejected: 422,
};

/**
 * WebSocket close codes for errors that end a socket (4000–4999 is the application range).
 * Recoverable errors (a bad frame, a failed send) keep the socket open and only send an `error` frame.
 */
export const closeCodeOf: Record<ErrorCode, number> = {
  bad_request: 4400,
  unauthorized: 4401,
  forbidden: 4403,
  not_found: 4404,
  conflict: 4409,
  too_large: 4413,
  rate_limited: 4429,
  unavailable: 4503,
  internal: 4500,
  // Not 4403: a client must tell a ban (do not reconnect, tell the user) from a lost membership.
  banned: 4451,
  // A mute never closes a socket; the code exists because every error has one.
  muted: 4452,
  rejected: 4422,
};

export const isErrorCode = (value: unknown): value is ErrorCode =>
  typeof value === "string" && Object.values(ErrorCode).includes(value as ErrorCode);

/** The one error type of the server. `message` is safe to show to clients; `cause` never leaves the server. */
export class ChatError extends Error {
  override readonly name = "ChatError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; retryAfterMs?: number; reason?: ErrorReason },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.retryAfterMs = options?.retryAfterMs;
    this.reason = options?.reason;
  }
  readonly retryAfterMs: number | undefined;
  readonly reason: ErrorReason | undefined;

  get status(): number {
    return httpStatusOf[this.code];
  }
}

/** The HTTP error body: `{"error":{"code":"...","message":"..."}}`. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; reason?: ErrorReason };
}

export const errorBody = (code: ErrorCode, message: string, reason?: ErrorReason): ErrorBody => ({
  error: reason === undefined ? { code, message } : { code, message, reason },
});
