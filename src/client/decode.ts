// Server → client decoding. src/protocol/codec.ts parses what clients send; this is its mirror for
// what the SDK receives (socket frames and REST bodies), so a malformed frame becomes a reported
// `protocol` error instead of an exception deep inside the room's state machine.
//
// It is also where the SDK stays compatible with servers newer and older than itself: an entry
// without `kind` (a version-1 server) is a message; an entry of a kind added after this SDK
// shipped is kept by its envelope alone, so its seq still counts; a frame type added later is
// recognised as such, so the room can skip it quietly instead of reporting the server as broken.

import { ErrorCode, isErrorCode, isErrorReason } from "../protocol/errors.js";
import { type AttachmentPart, type Part, PartType } from "../protocol/parts.js";
import {
  type AckFrame,
  type Entry,
  type EntryEnvelope,
  EntryKind,
  type ErrorFrame,
  type Message,
  type PongFrame,
  type PresenceEntry,
  type PresenceFrame,
  type ReactionSummary,
  type ReadyFrame,
  type ReceiptFrame,
  type SystemEvent,
  ServerFrameType,
  type TypingFrame,
} from "../protocol/frames.js";
import { isRecord } from "../protocol/json.js";

/**
 * An entry of a kind this SDK does not know (added to the server after it shipped). Only its
 * envelope is read: it takes its seq in the room's order like any other entry, so cursors and
 * gaps stay right, and the app can show `text` (a human-readable summary, maybe empty).
 */
export interface UnknownEntry extends Omit<EntryEnvelope, "kind"> {
  kind: string;
}

/** An entry as the SDK receives it: one of the kinds it knows (`Entry`), or one it does not. */
export type AnyEntry = Entry | UnknownEntry;

type Envelope = Omit<EntryEnvelope, "kind">;

/**
 * One decoder per known kind, given the checked envelope and the raw object (for fields of its
 * own). Typed over EntryKind, so a kind added to the protocol does not compile here until it has one.
 */
const KIND_DECODERS: {
  [K in EntryKind]: (envelope: Envelope, raw: Record<string, unknown>) => Extract<Entry, { kind: K }> | undefined;
} = {
  message: (envelope, raw) => decodeMessageFields({ ...envelope, kind: EntryKind.Message }, raw),
  edit: (envelope, raw) =>
    isTarget(raw.target) && isSeq(raw.version) ? { ...envelope, kind: EntryKind.Edit, target: raw.target, version: raw.version } : undefined,
  delete: (envelope, raw) =>
    isTarget(raw.target) && Array.isArray(raw.redacts) && raw.redacts.every(isTarget)
      ? { ...envelope, kind: EntryKind.Delete, target: raw.target, redacts: raw.redacts }
      : undefined,
  reaction: (envelope, raw) => {
    if (!isTarget(raw.target) || typeof raw.emoji !== "string" || !isSeq(raw.count) || (raw.remove !== undefined && raw.remove !== true)) {
      return undefined;
    }
    const entry = { ...envelope, kind: EntryKind.Reaction, target: raw.target, emoji: raw.emoji, count: raw.count };
    return raw.remove === true ? { ...entry, remove: true } : entry;
  },
  system: (envelope, raw) => {
    if (typeof raw.event !== "string") return undefined;
    const entry: Extract<Entry, { kind: "system" }> = { ...envelope, kind: EntryKind.System, event: raw.event as SystemEvent };
    if (typeof raw.subject === "string") entry.subject = raw.subject;
    if (raw.role === "admin" || raw.role === "member" || raw.role === "viewer") entry.role = raw.role;
    if (isRecord(raw.changes)) {
      const changes: NonNullable<typeof entry.changes> = {};
      if (typeof raw.changes.name === "string") changes.name = raw.changes.name;
      if (raw.changes.visibility === "public" || raw.changes.visibility === "private") changes.visibility = raw.changes.visibility;
      if (raw.changes.metadata === true) changes.metadata = true;
      entry.changes = changes;
    }
    return entry;
  },
};

const isTarget = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) > 0;

/** A message's optional fields (its current form): each checked, a malformed one refuses the message. */
const decodeMessageFields = (message: Message, raw: Record<string, unknown>): Message | undefined => {
  if (raw.replyTo !== undefined) {
    if (!isTarget(raw.replyTo)) return undefined;
    message.replyTo = raw.replyTo;
  }
  if (raw.mentions !== undefined) {
    if (!Array.isArray(raw.mentions) || !raw.mentions.every((m) => typeof m === "string")) return undefined;
    message.mentions = raw.mentions as string[];
  }
  if (raw.editedAt !== undefined) {
    if (typeof raw.editedAt !== "string" || !isSeq(raw.version)) return undefined;
    message.editedAt = raw.editedAt;
    message.version = raw.version;
  }
  if (raw.deleted !== undefined) {
    if (raw.deleted !== true) return undefined;
    message.deleted = true;
  }
  if (raw.reactions !== undefined) {
    if (!Array.isArray(raw.reactions)) return undefined;
    const reactions: ReactionSummary[] = [];
    for (const r of raw.reactions) {
      if (!isRecord(r) || typeof r.emoji !== "string" || !isSeq(r.count) || (r.me !== undefined && r.me !== true)) return undefined;
      reactions.push(r.me === true ? { emoji: r.emoji, count: r.count, me: true } : { emoji: r.emoji, count: r.count });
    }
    message.reactions = reactions;
  }
  if (raw.replyCount !== undefined) {
    if (!isSeq(raw.replyCount)) return undefined;
    message.replyCount = raw.replyCount;
    if (isTarget(raw.lastReplySeq)) message.lastReplySeq = raw.lastReplySeq;
  }
  if (raw.updatedSeq !== undefined) {
    if (!isTarget(raw.updatedSeq)) return undefined;
    message.updatedSeq = raw.updatedSeq;
  }
  if (raw.parts !== undefined) {
    const parts = decodeParts(raw.parts);
    if (!parts) return undefined;
    message.parts = parts;
  }
  return message;
};

const isSize = (value: unknown): value is number => typeof value === "number" && Number.isSafeInteger(value) && value >= 0;

/**
 * A committed message's parts (src/protocol/parts.ts). A part of a type this SDK does not know
 * (a newer server) is skipped, not fatal: `text` still summarises the whole message.
 */
export const decodeParts = (value: unknown): Part[] | undefined => {
  if (!Array.isArray(value)) return undefined;
  const out: Part[] = [];
  for (const p of value) {
    if (!isRecord(p) || typeof p.type !== "string") return undefined;
    switch (p.type) {
      case PartType.Text:
        if (typeof p.text !== "string") return undefined;
        out.push({ type: PartType.Text, text: p.text });
        break;
      case PartType.Link:
        if (typeof p.url !== "string") return undefined;
        out.push({ type: PartType.Link, url: p.url });
        break;
      case PartType.Attachment: {
        if (typeof p.id !== "string" || typeof p.name !== "string" || !isSize(p.size) || typeof p.contentType !== "string") return undefined;
        const part: AttachmentPart = { type: PartType.Attachment, id: p.id, name: p.name, size: p.size, contentType: p.contentType };
        if (isSize(p.width) && isSize(p.height)) {
          part.width = p.width;
          part.height = p.height;
        }
        out.push(part);
        break;
      }
      default:
        break;
    }
  }
  return out;
};

const isKnownKind = (kind: string): kind is EntryKind => Object.hasOwn(KIND_DECODERS, kind);

/** Whether an entry is a chat message (the only kind that goes into `room.messages`). */
export const isMessage = (entry: AnyEntry): entry is Message => entry.kind === EntryKind.Message;

/**
 * A `ready` frame as decoded: the fields this SDK reads (a field added to the protocol later is
 * not required of the server by it), and entries that may be of kinds it does not know. The read
 * cursor and the presence snapshot are optional: a server from before them sends neither (the
 * room then counts unread from zero and knows presence from the deltas only).
 */
export interface InboundReadyFrame extends Pick<ReadyFrame, "type" | "roomId" | "latestSeq" | "truncated" | "protocol"> {
  messages: AnyEntry[];
  readSeq?: number;
  unread?: number;
  presence?: PresenceEntry[];
}

/** A `message` frame as decoded (the frame keeps its version-1 name for entries of every kind). */
export interface InboundEntryFrame {
  type: typeof ServerFrameType.Message;
  message: AnyEntry;
}

/** A server frame as the SDK reads it. */
export type InboundFrame =
  | InboundReadyFrame
  | InboundEntryFrame
  | AckFrame
  | ErrorFrame
  | PongFrame
  | ReceiptFrame
  | TypingFrame
  | PresenceFrame;

/**
 * What reading one socket frame gave: a frame; a frame of a type this SDK does not know (a newer
 * server: ignore it); or something that is not a valid frame (a server bug: report it).
 */
export type FrameReading =
  | { result: "frame"; frame: InboundFrame }
  | { result: "unknown-type"; type: string }
  | { result: "malformed" };

/** The protocol version of a `ready` without `protocol`: the first contract had none. */
const FIRST_PROTOCOL = 1;

const isSeq = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

/** Presence data, a user's profile data: a JSON object (not an array, not null). */
const isData = isRecord;

/** A presence snapshot (`ready.presence`): each entry a user id with optional data, or undefined if any entry is malformed. */
const decodePresenceList = (value: unknown): PresenceEntry[] | undefined => {
  if (!Array.isArray(value)) return undefined;
  const out: PresenceEntry[] = [];
  for (const item of value) {
    if (!isRecord(item) || typeof item.userId !== "string" || (item.data !== undefined && !isData(item.data))) return undefined;
    out.push(item.data === undefined ? { userId: item.userId } : { userId: item.userId, data: item.data });
  }
  return out;
};

/**
 * An entry of any kind, or undefined when its envelope is incomplete or of the wrong types.
 *
 * @example
 * decodeEntry({ roomId: "r1", seq: 7, id: "…", userId: "bob", text: "hi", clientMsgId: "c", createdAt: "…" })?.kind; // "message"
 */
export const decodeEntry = (value: unknown): AnyEntry | undefined => {
  if (!isRecord(value)) return undefined;
  const { roomId, seq, id, kind = EntryKind.Message, userId, text, clientMsgId, createdAt } = value;
  if (
    typeof roomId !== "string" ||
    !isSeq(seq) ||
    seq === 0 ||
    typeof id !== "string" ||
    typeof kind !== "string" ||
    kind === "" ||
    typeof userId !== "string" ||
    typeof text !== "string" ||
    typeof clientMsgId !== "string" ||
    typeof createdAt !== "string"
  ) {
    return undefined;
  }
  const envelope: Envelope = { roomId, seq, id, userId, text, clientMsgId, createdAt };
  // A known kind must also pass its own schema; an unknown one is kept by its envelope alone.
  return isKnownKind(kind) ? KIND_DECODERS[kind](envelope, value) : { ...envelope, kind };
};

/** A committed message, or undefined when any field is missing or of the wrong type, or it is another kind of entry. */
export const decodeMessage = (value: unknown): Message | undefined => {
  const entry = decodeEntry(value);
  return entry && isMessage(entry) ? entry : undefined;
};

const decodeEntries = (value: unknown): AnyEntry[] | undefined => {
  if (!Array.isArray(value)) return undefined;
  const out: AnyEntry[] = [];
  for (const item of value) {
    const entry = decodeEntry(item);
    if (!entry) return undefined;
    out.push(entry);
  }
  return out;
};

/**
 * Reads one WebSocket frame from the server.
 *
 * @example
 * readServerFrame('{"type":"pong"}');     // { result: "frame", frame: { type: "pong" } }
 * readServerFrame('{"type":"later"}');    // { result: "unknown-type", type: "later" }
 * readServerFrame("{");                   // { result: "malformed" }
 */
export const readServerFrame = (raw: unknown): FrameReading => {
  const frame = (value: InboundFrame): FrameReading => ({ result: "frame", frame: value });
  const malformed: FrameReading = { result: "malformed" };
  if (typeof raw !== "string") return malformed;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return malformed;
  }
  if (!isRecord(parsed)) return malformed;
  switch (parsed.type) {
    case ServerFrameType.Ready: {
      const messages = decodeEntries(parsed.messages);
      const protocol = parsed.protocol ?? FIRST_PROTOCOL;
      if (typeof parsed.roomId !== "string" || !messages || !isSeq(parsed.latestSeq) || !isSeq(protocol) || protocol === 0) {
        return malformed;
      }
      // Absent from a server that predates them; present, they must be right (the unread badge and
      // the online list are built on them).
      const { readSeq, unread, presence: rawPresence } = parsed;
      const presence = rawPresence === undefined ? undefined : decodePresenceList(rawPresence);
      if (
        (readSeq !== undefined && !isSeq(readSeq)) ||
        (unread !== undefined && !isSeq(unread)) ||
        (rawPresence !== undefined && !presence)
      ) {
        return malformed;
      }
      return frame({
        type: ServerFrameType.Ready,
        roomId: parsed.roomId,
        messages,
        latestSeq: parsed.latestSeq,
        truncated: parsed.truncated === true,
        protocol,
        ...(readSeq === undefined ? {} : { readSeq }),
        ...(unread === undefined ? {} : { unread }),
        ...(presence === undefined ? {} : { presence }),
      });
    }
    case ServerFrameType.Message: {
      const message = decodeEntry(parsed.message);
      return message ? frame({ type: ServerFrameType.Message, message }) : malformed;
    }
    case ServerFrameType.Ack: {
      const { clientMsgId, seq, id, createdAt } = parsed;
      if (typeof clientMsgId !== "string" || !isSeq(seq) || typeof id !== "string" || typeof createdAt !== "string") {
        return malformed;
      }
      return frame({ type: ServerFrameType.Ack, clientMsgId, seq, id, createdAt });
    }
    case ServerFrameType.Error: {
      if (typeof parsed.message !== "string") return malformed;
      // A code added to the server after this SDK shipped is handled like `internal`: retried a few
      // times for a send, reported otherwise. Better than dropping the frame and waiting forever.
      const code = isErrorCode(parsed.code) ? parsed.code : ErrorCode.Internal;
      return frame({
        type: ServerFrameType.Error,
        code,
        message: parsed.message,
        ...(typeof parsed.clientMsgId === "string" ? { clientMsgId: parsed.clientMsgId } : {}),
        ...(isSeq(parsed.retryAfterMs) ? { retryAfterMs: parsed.retryAfterMs } : {}),
        // A reason this SDK does not know is dropped: the code alone decides then.
        ...(isErrorReason(parsed.reason) ? { reason: parsed.reason } : {}),
      });
    }
    case ServerFrameType.Pong:
      return frame({ type: ServerFrameType.Pong });
    case ServerFrameType.Receipt: {
      const { userId, seq } = parsed;
      return typeof userId === "string" && isSeq(seq) ? frame({ type: ServerFrameType.Receipt, userId, seq }) : malformed;
    }
    case ServerFrameType.Typing: {
      const { userIds } = parsed;
      if (!Array.isArray(userIds) || !userIds.every((id): id is string => typeof id === "string")) return malformed;
      return frame({ type: ServerFrameType.Typing, userIds });
    }
    case ServerFrameType.Presence: {
      const { userId, online, data } = parsed;
      if (typeof userId !== "string" || typeof online !== "boolean" || (data !== undefined && !isData(data))) return malformed;
      return frame({ type: ServerFrameType.Presence, userId, online, ...(data === undefined ? {} : { data }) });
    }
    default:
      // The protocol only adds frame types (docs/protocol.md): one this SDK has never heard of is
      // a newer server talking about something it does not use, not a broken one.
      return typeof parsed.type === "string" && parsed.type !== "" ? { result: "unknown-type", type: parsed.type } : malformed;
  }
};

/**
 * Decodes one WebSocket frame from the server; undefined when it is not a frame this SDK knows
 * (malformed, or of a type it does not know: {@link readServerFrame} tells the two apart).
 *
 * @example
 * const frame = decodeServerFrame('{"type":"pong"}'); // { type: "pong" }
 */
export const decodeServerFrame = (raw: unknown): InboundFrame | undefined => {
  const reading = readServerFrame(raw);
  return reading.result === "frame" ? reading.frame : undefined;
};

/** The body of `GET /v1/rooms/{roomId}/messages`. */
export interface MessagesPage {
  messages: Message[];
  latestSeq: number;
}

/** The same body with entries of every kind, as the room's list needs it (every seq counts). */
export interface EntriesPage {
  entries: AnyEntry[];
  latestSeq: number;
}

export const decodeEntriesPage = (body: unknown): EntriesPage | undefined => {
  if (!isRecord(body)) return undefined;
  const entries = decodeEntries(body.messages);
  if (!entries || !isSeq(body.latestSeq)) return undefined;
  return { entries, latestSeq: body.latestSeq };
};

/** A page of messages only: entries of other kinds are left out (their seqs are simply absent). */
export const decodeMessagesPage = (body: unknown): MessagesPage | undefined => {
  const page = decodeEntriesPage(body);
  return page && { messages: page.entries.filter(isMessage), latestSeq: page.latestSeq };
};

/** The body of `{"error":{"code","message"}}` responses, or undefined for anything else. */
export const decodeErrorBody = (body: unknown): { code: ErrorCode; message: string } | undefined => {
  if (!isRecord(body) || !isRecord(body.error)) return undefined;
  const { code, message } = body.error;
  if (typeof message !== "string") return undefined;
  return { code: isErrorCode(code) ? code : ErrorCode.Internal, message };
};

/** A user's profile (`GET /v1/users…`, `PUT /v1/users/me`). Every user has one: an unknown user's is empty. */
export interface Profile {
  userId: string;
  /** The display name: what the user set, else their token's `name` claim; null when neither. */
  name: string | null;
  avatarUrl: string | null;
  /** The app's own fields (a JSON object of at most 4 KiB). */
  data: Record<string, unknown>;
  /** When the profile was last written; null for a profile never written. */
  updatedAt: string | null;
}

/** A room the user belongs to, as `GET /v1/rooms` lists it. */
export interface RoomSummary {
  roomId: string;
  name: string;
  visibility: "public" | "private";
  role: "admin" | "member" | "viewer";
  latestSeq: number;
  /** The user's read cursor (0: never read). */
  readSeq: number;
  /** Messages of others after `readSeq` (exact, from the server's counters). */
  unread: number;
}

const isNullableString = (value: unknown): value is string | null => value === null || typeof value === "string";

export const decodeProfile = (value: unknown): Profile | undefined => {
  if (!isRecord(value)) return undefined;
  const { userId, name, avatarUrl, data, updatedAt } = value;
  if (typeof userId !== "string" || !isNullableString(name) || !isNullableString(avatarUrl) || !isNullableString(updatedAt)) {
    return undefined;
  }
  if (data !== undefined && data !== null && !isData(data)) return undefined;
  return { userId, name, avatarUrl, data: isData(data) ? data : {}, updatedAt };
};

/** The body of `GET /v1/users?ids=…`: `{ profiles: [...] }`. */
export const decodeProfiles = (body: unknown): Profile[] | undefined => {
  if (!isRecord(body) || !Array.isArray(body.profiles)) return undefined;
  const out: Profile[] = [];
  for (const item of body.profiles) {
    const profile = decodeProfile(item);
    if (!profile) return undefined;
    out.push(profile);
  }
  return out;
};

const VISIBILITIES: ReadonlySet<unknown> = new Set(["public", "private"]);
const ROLES: ReadonlySet<unknown> = new Set(["admin", "member", "viewer"]);

/**
 * The body of `GET /v1/rooms`: `{ rooms: [...] }`. A role or visibility added to the server later is
 * read as the least it could mean (`viewer`, `private`), so an app never shows more than it may do.
 */
export const decodeRoomSummaries = (body: unknown): RoomSummary[] | undefined => {
  if (!isRecord(body) || !Array.isArray(body.rooms)) return undefined;
  const out: RoomSummary[] = [];
  for (const item of body.rooms) {
    if (!isRecord(item)) return undefined;
    const { roomId, name, visibility, role, latestSeq, readSeq, unread } = item;
    if (
      typeof roomId !== "string" ||
      typeof name !== "string" ||
      typeof visibility !== "string" ||
      typeof role !== "string" ||
      !isSeq(latestSeq) ||
      !isSeq(readSeq) ||
      !isSeq(unread)
    ) {
      return undefined;
    }
    out.push({
      roomId,
      name,
      visibility: (VISIBILITIES.has(visibility) ? visibility : "private") as RoomSummary["visibility"],
      role: (ROLES.has(role) ? role : "viewer") as RoomSummary["role"],
      latestSeq,
      readSeq,
      unread,
    });
  }
  return out;
};
