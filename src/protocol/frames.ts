// The wire protocol: every frame type in one `as const` table, unions derived from it.
// Imported by the server and by the browser SDK, so a wire change is one edit here.

import type { ErrorCode } from "./errors.js";

/** A committed chat message. `seq` is the room's only order: 1, 2, 3, … with no gaps. */
export interface Message {
  roomId: string;
  seq: number;
  id: string;
  userId: string;
  text: string;
  clientMsgId: string;
  /** ISO-8601 with milliseconds, set by the room when the message was sequenced. */
  createdAt: string;
}

export const ServerFrameType = {
  Ready: "ready",
  Message: "message",
  Ack: "ack",
  Error: "error",
  Pong: "pong",
} as const;

export const ClientFrameType = {
  Send: "send",
  Ping: "ping",
} as const;

/** Always the first frame on a socket, exactly once: the history the client is missing, up to `latestSeq`. */
export interface ReadyFrame {
  type: typeof ServerFrameType.Ready;
  roomId: string;
  messages: Message[];
  latestSeq: number;
  /** True when the history did not fit: `messages` are the newest that fit; fill the hole over REST. */
  truncated: boolean;
}

/** A message committed after the socket's `ready.latestSeq`, delivered in seq order exactly once. */
export interface MessageFrame {
  type: typeof ServerFrameType.Message;
  message: Message;
}

/** To the sender, after the commit; also for a repeated clientMsgId (with the original seq). */
export interface AckFrame {
  type: typeof ServerFrameType.Ack;
  clientMsgId: string;
  seq: number;
  id: string;
  createdAt: string;
}

export interface ErrorFrame {
  type: typeof ServerFrameType.Error;
  code: ErrorCode;
  message: string;
  /** Present when the error is about one send. */
  clientMsgId?: string;
  /** Present with `rate_limited`: when a retry may succeed. */
  retryAfterMs?: number;
}

export interface PongFrame {
  type: typeof ServerFrameType.Pong;
}

export type ServerFrame = ReadyFrame | MessageFrame | AckFrame | ErrorFrame | PongFrame;

export interface SendFrame {
  type: typeof ClientFrameType.Send;
  clientMsgId: string;
  text: string;
}

export interface PingFrame {
  type: typeof ClientFrameType.Ping;
}

export type ClientFrame = SendFrame | PingFrame;

/** The body of `POST /v1/rooms/{roomId}/messages`: a send frame without its type. */
export type SendRequest = Omit<SendFrame, "type">;
