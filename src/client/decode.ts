// Server → client decoding. src/protocol/codec.ts parses what clients send; this is its mirror for
// what the SDK receives (socket frames and REST bodies), so a malformed or newer frame becomes a
// reported `protocol` error instead of an exception deep inside the room's state machine.

import { ErrorCode, isErrorCode } from "../protocol/errors.js";
import { type Message, type ServerFrame, ServerFrameType } from "../protocol/frames.js";

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

const isSeq = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

/** A committed message, or undefined when any field is missing or of the wrong type. */
export const decodeMessage = (value: unknown): Message | undefined => {
  if (!isRecord(value)) return undefined;
  const { roomId, seq, id, userId, text, clientMsgId, createdAt } = value;
  if (
    typeof roomId !== "string" ||
    !isSeq(seq) ||
    seq === 0 ||
    typeof id !== "string" ||
    typeof userId !== "string" ||
    typeof text !== "string" ||
    typeof clientMsgId !== "string" ||
    typeof createdAt !== "string"
  ) {
    return undefined;
  }
  return { roomId, seq, id, userId, text, clientMsgId, createdAt };
};

const decodeMessages = (value: unknown): Message[] | undefined => {
  if (!Array.isArray(value)) return undefined;
  const out: Message[] = [];
  for (const item of value) {
    const message = decodeMessage(item);
    if (!message) return undefined;
    out.push(message);
  }
  return out;
};

/**
 * Decodes one WebSocket frame from the server; undefined when it is not a frame this SDK knows.
 *
 * @example
 * const frame = decodeServerFrame('{"type":"pong"}'); // { type: "pong" }
 */
export const decodeServerFrame = (raw: unknown): ServerFrame | undefined => {
  if (typeof raw !== "string") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (!isRecord(parsed)) return undefined;
  switch (parsed.type) {
    case ServerFrameType.Ready: {
      const messages = decodeMessages(parsed.messages);
      if (typeof parsed.roomId !== "string" || !messages || !isSeq(parsed.latestSeq)) return undefined;
      return {
        type: ServerFrameType.Ready,
        roomId: parsed.roomId,
        messages,
        latestSeq: parsed.latestSeq,
        truncated: parsed.truncated === true,
      };
    }
    case ServerFrameType.Message: {
      const message = decodeMessage(parsed.message);
      return message ? { type: ServerFrameType.Message, message } : undefined;
    }
    case ServerFrameType.Ack: {
      const { clientMsgId, seq, id, createdAt } = parsed;
      if (typeof clientMsgId !== "string" || !isSeq(seq) || typeof id !== "string" || typeof createdAt !== "string") {
        return undefined;
      }
      return { type: ServerFrameType.Ack, clientMsgId, seq, id, createdAt };
    }
    case ServerFrameType.Error: {
      if (typeof parsed.message !== "string") return undefined;
      // A code added to the server after this SDK shipped is handled like `internal`: retried a few
      // times for a send, reported otherwise. Better than dropping the frame and waiting forever.
      const code = isErrorCode(parsed.code) ? parsed.code : ErrorCode.Internal;
      return {
        type: ServerFrameType.Error,
        code,
        message: parsed.message,
        ...(typeof parsed.clientMsgId === "string" ? { clientMsgId: parsed.clientMsgId } : {}),
        ...(isSeq(parsed.retryAfterMs) ? { retryAfterMs: parsed.retryAfterMs } : {}),
      };
    }
    case ServerFrameType.Pong:
      return { type: ServerFrameType.Pong };
    default:
      return undefined;
  }
};

/** The body of `GET /v1/rooms/{roomId}/messages`. */
export interface MessagesPage {
  messages: Message[];
  latestSeq: number;
}

export const decodeMessagesPage = (body: unknown): MessagesPage | undefined => {
  if (!isRecord(body)) return undefined;
  const messages = decodeMessages(body.messages);
  if (!messages || !isSeq(body.latestSeq)) return undefined;
  return { messages, latestSeq: body.latestSeq };
};

/** The body of `{"error":{"code","message"}}` responses, or undefined for anything else. */
export const decodeErrorBody = (body: unknown): { code: ErrorCode; message: string } | undefined => {
  if (!isRecord(body) || !isRecord(body.error)) return undefined;
  const { code, message } = body.error;
  if (typeof message !== "string") return undefined;
  return { code: isErrorCode(code) ? code : ErrorCode.Internal, message };
};
