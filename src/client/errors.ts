// The SDK's one error type. Server failures keep the server's code (src/protocol/errors.ts), so an
// app handles one list; the few failures only a client can have get codes of their own.

import type { ErrorCode } from "../protocol/errors.js";

/** Failures the SDK reports on top of the server's error codes. */
export const ClientErrorCode = {
  /** The network failed: `fetch` threw, or the socket could not be opened. Retried where it is safe. */
  Network: "network",
  /** The server sent something this SDK does not understand (an older SDK, or a server bug). */
  Protocol: "protocol",
  /** The room was left (or the client closed) before the operation finished. */
  Left: "left",
  /** The caller aborted the operation through its `AbortSignal`. */
  Aborted: "aborted",
} as const;

export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

/** Every code a {@link ChatClientError} can carry: the server's codes and the SDK's own. */
export type ChatClientErrorCode = ErrorCode | ClientErrorCode;

/**
 * The one error the SDK throws, rejects with and emits. `message` reads "unable to <operation>; <reason>".
 *
 * @example
 * try {
 *   await room.send(text);
 * } catch (e) {
 *   if (e instanceof ChatClientError && e.code === "too_large") showHint("Shorten the message");
 * }
 */
export class ChatClientError extends Error {
  override readonly name = "ChatClientError";
  /** The HTTP status, when the error came from a REST call. */
  readonly status: number | undefined;
  /** With `rate_limited`: how long to wait before trying again. */
  readonly retryAfterMs: number | undefined;
  /** When the error is about one send. */
  readonly clientMsgId: string | undefined;

  constructor(
    readonly code: ChatClientErrorCode,
    message: string,
    options: { cause?: unknown; status?: number; retryAfterMs?: number; clientMsgId?: string } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = options.status;
    this.retryAfterMs = options.retryAfterMs;
    this.clientMsgId = options.clientMsgId;
  }
}
