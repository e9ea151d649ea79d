// The wire protocol: every frame type in one `as const` table, unions derived from it.
// Imported by the server and by the browser SDK, so a wire change is one edit here.

import type { ErrorCode, ErrorReason } from "./errors.js";
import type { Part, SendPart } from "./parts.js";

/**
 * The room's one stream. Everything that takes a seq is an entry of it, and every entry has a
 * `kind`. A new kind is one line in this table, one interface below (joined to the `Entry`
 * union) and one schema in the codec. The rules that keep older clients working
 * (docs/protocol.md, "Entry kinds and versions"): every seq is delivered to every client,
 * whatever its kind, so cursors never see a gap; every entry carries the common envelope below,
 * including a string `text` (the only shape a version-1 client can decode).
 *
 * Changes to a message (edit, delete, reaction) are entries of their own, with their own seq, and
 * name the message they change by its seq (`target`): a client that replays the stream from any
 * cursor applies them in order and converges (src/protocol/lifecycle.ts).
 */
export const EntryKind = {
  Message: "message",
  Edit: "edit",
  Delete: "delete",
  Reaction: "reaction",
  System: "system",
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

/** Per emoji on a message: how many users reacted, and (in history and `ready`) whether you did. */
export interface ReactionSummary {
  emoji: string;
  count: number;
  /** Present (true) when the caller reacted with this emoji; only in per-user reads (history, `ready`). */
  me?: true;
}

/**
 * A chat message, in its current form wherever it is read (history, `ready`): edits, deletion,
 * reactions and replies already applied. A live `message` frame carries it as it was committed;
 * the change entries after it say what changed.
 */
export interface Message extends EntryEnvelope {
  kind: typeof EntryKind.Message;
  /** A multipart message's parts (src/protocol/parts.ts); `text` is then their summary. Absent for plain text (and once deleted). */
  parts?: Part[];
  /** The thread this message replies to (the seq of a message that is not itself a reply). */
  replyTo?: number;
  /** The user ids the sender named in the send's `mentions` (absent: none; `@userId` in the text is not copied here). */
  mentions?: string[];
  /** Set once edited: when, and how many times (`version`: 1 after the first edit). */
  editedAt?: string;
  version?: number;
  /** A tombstone: the message was deleted; `text` is "" and nothing of it is served any more. */
  deleted?: true;
  reactions?: ReactionSummary[];
  /** For a thread's parent: how many replies, and the newest one's seq. */
  replyCount?: number;
  lastReplySeq?: number;
  /**
   * The seq of the last change applied to this form (absent: none since it was committed). A
   * change entry with a seq at or below it is already included and is skipped (lifecycle.ts).
   */
  updatedSeq?: number;
}

/** The author changed the text of message `target`; `text` is the new text, `version` the target's version after it. */
export interface EditEntry extends EntryEnvelope {
  kind: typeof EntryKind.Edit;
  target: number;
  version: number;
}

/**
 * Message `target` was deleted (by its author or a room admin). Its text, and the text of every
 * edit of it (`redacts`: their seqs, the target's included), are gone from every read path.
 */
export interface DeleteEntry extends EntryEnvelope {
  kind: typeof EntryKind.Delete;
  target: number;
  redacts: number[];
}

/** `userId` added (or, with `remove`, took back) `emoji` on message `target`; `count` is the emoji's count after it. */
export interface ReactionEntry extends EntryEnvelope {
  kind: typeof EntryKind.Reaction;
  target: number;
  emoji: string;
  remove?: true;
  count: number;
}

export const SystemEvent = {
  MemberJoined: "member_joined",
  MemberLeft: "member_left",
  MemberAdded: "member_added",
  MemberRemoved: "member_removed",
  RoleChanged: "role_changed",
  RoomUpdated: "room_updated",
  /** A user was banned from the room (`until` when the ban is timed); a member is also removed first (member_removed). */
  MemberBanned: "member_banned",
  MemberUnbanned: "member_unbanned",
  /** A user was muted (`until` when timed): they may read, not send. */
  MemberMuted: "member_muted",
  MemberUnmuted: "member_unmuted",
} as const;

export type SystemEvent = (typeof SystemEvent)[keyof typeof SystemEvent];

/**
 * Something happened to the room or its members: `userId` (the actor) did `event` to `subject`
 * (a user, for membership events). `text` is a readable summary ("alice added bob as member").
 */
export interface SystemEntry extends EntryEnvelope {
  kind: typeof EntryKind.System;
  event: SystemEvent;
  subject?: string;
  role?: "admin" | "member" | "viewer";
  /** For room_updated: which fields changed, with the new name and visibility. */
  changes?: { name?: string; visibility?: "public" | "private"; metadata?: true };
  /** For member_banned and member_muted: when the restriction ends (absent: until lifted). */
  until?: string;
}

/** Entries that change a message named by `target`. */
export type ChangeEntry = EditEntry | DeleteEntry | ReactionEntry;

/** Any entry of the stream (a union that grows with EntryKind). */
export type Entry = Message | EditEntry | DeleteEntry | ReactionEntry | SystemEntry;

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
  Edit: "edit",
  Delete: "delete",
  React: "react",
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
  /** Present with some `conflict`s: which one (src/protocol/errors.ts ErrorReason). */
  reason?: ErrorReason;
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
  /** The message's text. With `parts`, leave it out or send "": the server writes the summary (parts.ts). */
  text: string;
  /** A multipart message: text, link and attachment parts (docs/protocol.md, "Multipart messages"). */
  parts?: SendPart[];
  /** Reply in the thread of this message (an existing, not deleted message that is not itself a reply). */
  replyTo?: number;
  /**
   * Users this message mentions, besides any `@userId` in its text (up to MAX_MENTIONS user ids,
   * no repeats). Carried on the message and used for `notification` webhooks (docs/webhooks.md).
   */
  mentions?: string[];
}

/** Change the text of my message `target` (exactly once per clientMsgId, like a send). */
export interface EditFrame {
  type: typeof ClientFrameType.Edit;
  clientMsgId: string;
  target: number;
  text: string;
}

/** Delete message `target` (mine, or any as a room admin). */
export interface DeleteFrame {
  type: typeof ClientFrameType.Delete;
  clientMsgId: string;
  target: number;
}

/** React to message `target` with `emoji` (one emoji, or a :shortcode:), or take it back with `remove`. */
export interface ReactFrame {
  type: typeof ClientFrameType.React;
  clientMsgId: string;
  target: number;
  emoji: string;
  remove?: true;
}

/** The frames that commit an entry and are answered with an `ack` (or an `error` with their clientMsgId). */
export type EntryFrame = SendFrame | EditFrame | DeleteFrame | ReactFrame;

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

export type ClientFrame = EntryFrame | PingFrame | ReceivedFrame | ReadFrame | TypingStartFrame | PresenceSetFrame;

/** The body of `POST /v1/rooms/{roomId}/messages`: a send frame without its type. */
export type SendRequest = Omit<SendFrame, "type">;
/** The body of `PATCH /v1/rooms/{roomId}/messages/{seq}` (the target is in the path). */
export type EditRequest = Omit<EditFrame, "type" | "target">;
/** The body of `DELETE /v1/rooms/{roomId}/messages/{seq}` (optional: a clientMsgId makes a retry exactly-once). */
export type DeleteRequest = Omit<DeleteFrame, "type" | "target">;
/** The body of `POST /v1/rooms/{roomId}/messages/{seq}/reactions`. */
export type ReactRequest = Omit<ReactFrame, "type" | "target">;
