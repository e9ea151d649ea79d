// The wire protocol: every frame type in one `as const` table, unions derived from it.
// Imported by the server and by the browser SDK, so a wire change is one edit here.

import type { ErrorCode } from "./errors.js";

/**
 * The room's one stream. Everything that takes a seq is an entry of it, and every entry has a
 * `kind`; today the only kind is `message`. A new kind is one line in this table, one interface
 * below (joined to the `Entry` union) and one schema in the codec. The rules that keep older
 * clients working (docs/protocol.md, "Entry kinds and versions"): every seq is delivered to every
 * client, whatever its kind, so cursors never see a gap; every entry carries the common envelope
 * below, including a string `text` (the only shape a version-1 client can decode).
 */
export const EntryKind = {
  Message: "message",
} as const;

export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

/** Fields every entry has, whatever its kind. `seq` is the room's only order: 1, 2, 3, … with no gaps. */
export interface EntryEnvelope {
  roomId: string;
  seq: number;
  id: string;
  kind: EntryKind;
  /** Who caused the entry. */
  userId: string;
  /** For kind `message` the message's text; other kinds carry a human-readable summary (maybe ""). */
  text: string;
  /** The sender's idempotency key: (userId, clientMsgId) is committed at most once per room. */
  clientMsgId: string;
  /** ISO-8601 with milliseconds, set by the room when the entry was sequenced. */
  createdAt: string;
}

/** A committed chat message. */
export interface Message extends EntryEnvelope {
  kind: typeof EntryKind.Message;
}

/** Any entry of the stream (a union that grows with EntryKind). */
export type Entry = Message;

/**
 * Wire protocol version. 1: the first contract (no `kind`, no `protocol` in `ready`).
 * 2: entries carry `kind`; `ready` carries `protocol`. A client says which version it speaks with
 * `v=<n>` on the socket URL; the server answers with the version it speaks in `ready.protocol`.
 */
export const PROTOCOL_VERSION = 2;

export const ServerFrameType = {
  Ready: "ready",
  Message: "message",
  Ack: "ack",
  Error: "error",
  Pong: "pong",
  Receipt: "receipt",
  Typing: "typing",
  Presence: "presence",
} as const;

export const ClientFrameType = {
  Send: "send",
  Ping: "ping",
  Received: "received",
  Read: "read",
  Typing: "typing",
  Presence: "presence",
} as const;

/** Always the first frame on a socket, exactly once: the history the client is missing, up to `latestSeq`. */
export interface ReadyFrame {
  type: typeof ServerFrameType.Ready;
  roomId: string;
  messages: Entry[];
  latestSeq: number;
  /** True when the history did not fit: `messages` are the newest that fit; fill the hole over REST. */
  truncated: boolean;
  /** The protocol version the server speaks (PROTOCOL_VERSION). */
  protocol: number;
  /** The joining user's read cursor in this room (0: never read). */
  readSeq: number;
  /** Messages of others after `readSeq` (kind `message` only), as of `latestSeq`. */
  unread: number;
  /**
   * Who is online now, consistent with the `presence` frames after it: every change after this
   * snapshot arrives as a frame, none before it does.
   */
  presence: PresenceEntry[];
}

export interface PresenceEntry {
  userId: string;
  /** What the user set with a `presence` frame (a small JSON object), if anything. */
  data?: Record<string, unknown>;
}

/** A user's read cursor moved (to every socket of the room, the user's other devices included). */
export interface ReceiptFrame {
  type: typeof ServerFrameType.Receipt;
  userId: string;
  seq: number;
}

/** Who is typing now (not you), sent when the set changes. */
export interface TypingFrame {
  type: typeof ServerFrameType.Typing;
  userIds: string[];
}

/** A user came online, went offline, or changed their presence data. */
export interface PresenceFrame {
  type: typeof ServerFrameType.Presence;
  userId: string;
  online: boolean;
  data?: Record<string, unknown>;
}

/**
 * An entry committed after the socket's `ready.latestSeq`, delivered in seq order exactly once.
 * The frame keeps its version-1 name (`message`) for every kind: see EntryKind.
 */
export interface MessageFrame {
  type: typeof ServerFrameType.Message;
  message: Entry;
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

export type ServerFrame =
  | ReadyFrame
  | MessageFrame
  | AckFrame
  | ErrorFrame
  | PongFrame
  | ReceiptFrame
  | TypingFrame
  | PresenceFrame;

export interface SendFrame {
  type: typeof ClientFrameType.Send;
  clientMsgId: string;
  text: string;
}

export interface PingFrame {
  type: typeof ClientFrameType.Ping;
}

/**
 * Flow control: the client has processed every entry up to `seq`. The room counts what it sent
 * to a socket since the last report and closes a socket that falls too far behind (it resumes
 * with `since`, losing nothing), so a client that stops reading cannot pin the room's memory.
 */
export interface ReceivedFrame {
  type: typeof ClientFrameType.Received;
  seq: number;
}

/** I have read everything up to `seq` (moves my read cursor forward; never back). */
export interface ReadFrame {
  type: typeof ClientFrameType.Read;
  seq: number;
}

/** I am typing (send about every 2 s while typing), or I stopped (`stop: true`). */
export interface TypingStartFrame {
  type: typeof ClientFrameType.Typing;
  stop?: true;
}

/** My presence data in this room (a JSON object of at most 1 KiB), shown to everyone with my presence. */
export interface PresenceSetFrame {
  type: typeof ClientFrameType.Presence;
  data: Record<string, unknown>;
}

export type ClientFrame = SendFrame | PingFrame | ReceivedFrame | ReadFrame | TypingStartFrame | PresenceSetFrame;

/** The body of `POST /v1/rooms/{roomId}/messages`: a send frame without its type. */
export type SendRequest = Omit<SendFrame, "type">;
