// How the room reports failures: to callers as a typed Failure from the shared error table, to
// the log without secrets or user content. One place, so no handler can leak a stack trace.

import { ChatError, ErrorCode } from "../protocol/errors.js";
import { StorageError } from "../storage/types.js";
import { type Failure, failure } from "./results.js";

/**
 * Maps any error to what the caller hears: a ChatError as it is, a StorageError as `unavailable`
 * (logged as a warning), anything else as `internal` (logged as an error, details never sent).
 */
export const failureOf = (where: string, error: unknown, operation: string): Failure => {
  if (error instanceof ChatError) {
    const f = failure(error.code, error.message);
    return error.retryAfterMs === undefined ? f : { ...f, retryAfterMs: error.retryAfterMs };
  }
  if (error instanceof StorageError) {
    console.warn(`room ${where}: ${operation}: ${error.message}`, describeCause(error));
    return failure(ErrorCode.Unavailable, `${operation}; storage is unavailable, retry later`);
  }
  console.error(`room ${where}: ${operation}`, error instanceof Error ? describeError(error) : typeof error);
  return failure(ErrorCode.Internal, `${operation}; internal error`);
};

export const describeError = (error: unknown): string =>
  error instanceof Error
    ? `${error.name}: ${loggable(error.message)}${error instanceof StorageError ? ` ${describeCause(error)}` : ""}`
    : "unknown";

/**
 * Driver errors can carry secrets or user content in their text (connection strings; Upstash
 * echoes the whole command, message texts included). Logs get the class, the code and the
 * first part of the message only.
 */
const describeCause = (error: Error): string => {
  const cause = error.cause;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return `cause: ${cause.name}${typeof code === "string" ? ` (${code})` : ""}: ${loggable(cause.message)}`;
  }
  return "";
};

const loggable = (text: string): string =>
  text
    .split(/, command was:/)[0]
    ?.replace(/(postgres(ql)?|redis|rediss|https?):\/\/\S+/g, "$1://…")
    .slice(0, 200) ?? "";
