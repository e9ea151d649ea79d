// The small interfaces the room depends on. The room never sees a driver; adapters wrap
// driver errors in StorageError (with the cause) so the room can map them to `unavailable`.

import type { Entry, EntryKind } from "../protocol/frames.js";
import type { Part } from "../protocol/parts.js";

/** A room is named by tenant + room id everywhere: object name, Postgres rows, Redis keys. */
export interface RoomKey {
  tenant: string;
  roomId: string;
}

export interface RoomState {
  lastSeq: number;
  writerEpoch: number;
}

/** Defined once, with the wire schemas that validate them. */
export type { MemberRole as Role, RoomVisibility as Visibility } from "../protocol/codec.js";
import type { MemberRole as Role, RoomVisibility as Visibility } from "../protocol/codec.js";

/** A room as Postgres holds it (everything but its messages). */
export interface RoomRecord extends RoomState {
  visibility: Visibility;
  name: string;
  metadata: Record<string, unknown>;
  createdBy: string | null;
  createdAt: string;
  /** Set when the room was deleted with its history kept; such a room is gone for every API. */
  deletedAt: string | null;
}

export interface NewRoom {
  visibility: Visibility;
  name: string;
  metadata: Record<string, unknown>;
  createdBy: string;
  /** The creator's role (admin for an explicit create); null: no member yet (an open room's first use). */
  creatorRole: Role | null;
}

export interface RoomPatch {
  visibility?: Visibility;
  name?: string;
  metadata?: Record<string, unknown>;
}

export interface Member {
  userId: string;
  role: Role;
  joinedAt: string;
}

/** An entry that has been validated and given an id, waiting for its seq. */
export interface NewEntry {
  id: string;
  kind: EntryKind;
  userId: string;
  clientMsgId: string;
  text: string;
  /** The message an edit, delete or reaction changes. */
  target?: number;
  /** A reply's thread parent. */
  replyTo?: number;
  /** The kind's own fields (src/protocol/frames.ts), stored as JSON in `data`. */
  data?: Record<string, unknown>;
  /** Multipart messages only; committing binds the attachment parts' uploads (migrations/007). */
  parts?: Part[];
}

/** What the writer needs to know about a message that entries of a batch name (changes.ts). */
export interface TargetState {
  seq: number;
  kind: EntryKind;
  userId: string;
  deleted: boolean;
  version: number;
  replyTo: number | null;
  /** Seqs of its edits (a delete removes their text too). */
  edits: number[];
  /** Reactions per emoji. */
  counts: Map<string, number>;
  /** `${emoji} ${userId}` for the reactions of the batch's users. */
  reacted: Set<string>;
}

/** What a batch of changes looked up before it is planned: its targets, and which sends are stored already. */
export interface BatchLookup {
  targets: Map<number, TargetState>;
  /** sendKey(userId, clientMsgId) of the batch's entries that are committed already. */
  existing: Set<string>;
}

/** A message's current form after a batch (absolute values, except the reply count's delta). */
export interface MessageUpdate {
  seq: number;
  /** New text (an edit); undefined: unchanged. */
  text?: string;
  editedAt?: string;
  version: number;
  deleted: boolean;
  replyDelta: number;
  lastReplySeq?: number;
  updatedSeq: number;
}

/** Everything a batch of changes does besides inserting its entries, applied in the same transaction. */
export interface BatchEffects {
  updates: MessageUpdate[];
  /** Messages deleted by this batch: their edits lose their text, their reactions go, counts drop. */
  deleted: number[];
  reactionsAdded: Array<{ target: number; emoji: string; userId: string }>;
  reactionsRemoved: Array<{ target: number; emoji: string; userId: string }>;
  /** How many entries of the batch the plan found stored already; the commit checks it. */
  expectedDuplicates: number;
}



export type CommitOutcome =
  /** Committed: fresh entries got seqs expectedLastSeq+1… in batch order; `duplicates` were already stored. */
  | { kind: "committed"; lastSeq: number; duplicates: Map<number, Entry> }
  /** Nothing written: the room's epoch or last_seq is not what this writer expected. */
  | { kind: "rejected" };

export interface HistoryQuery {
  /** Messages with seq > afterSeq … */
  afterSeq: number;
  /** … and seq <= uptoSeq (inclusive) … */
  uptoSeq: number;
  /** … at most `limit` of them, … */
  limit: number;
  /** … the oldest of the range (paging forward) or the newest (a tail). Always returned ascending. */
  from: "oldest" | "newest";
  /** Whose `me` flags the reactions carry (none: the shared form). */
  viewer?: string;
  /** Only the replies of this thread (the parent's seq). */
  thread?: number;
}

export interface MessageStore {
  readRoomState(room: RoomKey): Promise<RoomRecord | null>;
  /** Creates the room (with its creator as `creatorRole`); null if the id is taken (also by a deleted room). */
  createRoom(room: RoomKey, init: NewRoom): Promise<RoomRecord | null>;
  /**
   * Makes `epoch` the writer epoch of an existing, not deleted room if it is higher than the
   * stored one; null means fenced (or the room is gone).
   */
  claimWriter(room: RoomKey, epoch: number): Promise<RoomState | null>;
  updateRoom(room: RoomKey, patch: RoomPatch): Promise<RoomRecord | null>;
  /** Deletes the room: `purge` removes it and its messages; otherwise it is marked deleted. */
  deleteRoom(room: RoomKey, purge: boolean): Promise<void>;
  /** The user's active role (null: not a member, or departed). */
  roleOf(room: RoomKey, userId: string): Promise<Role | null>;
  /** Adds the member or changes their role; "last_admin" (nothing changed) if it would leave no admin. */
  setMember(room: RoomKey, userId: string, role: Role): Promise<Member | "last_admin">;
  /** A user joins (or re-joins): new → member; departed → their old role, at most member; active → unchanged. */
  joinMember(room: RoomKey, userId: string): Promise<Member>;
  /** Marks the member departed (their role is kept for a re-join); "last_admin" (nothing changed) for the last admin. */
  removeMember(room: RoomKey, userId: string): Promise<"removed" | "absent" | "last_admin">;
  listMembers(room: RoomKey, limit: number): Promise<Member[]>;
  /**
   * One transaction: check epoch and last_seq, dedup by (user, clientMsgId), insert, advance
   * last_seq, and apply `effects` (changes to the messages the batch names). With effects, the
   * batch must have been planned from `lookupBatch` in the same writer turn.
   */
  commitBatch(
    room: RoomKey,
    writerEpoch: number,
    expectedLastSeq: number,
    createdAt: string,
    batch: readonly NewEntry[],
    effects?: BatchEffects,
  ): Promise<CommitOutcome>;
  /** The messages `targets` name (and the reactions of `users` on them), and which of `sends` are stored. */
  lookupBatch(
    room: RoomKey,
    targets: readonly number[],
    users: readonly string[],
    sends: ReadonlyArray<{ userId: string; clientMsgId: string }>,
  ): Promise<BatchLookup>;
  /** Current reactions on messages with afterSeq < seq <= uptoSeq (the window's `me` flags). */
  readReactors(room: RoomKey, afterSeq: number, uptoSeq: number): Promise<Array<{ target: number; emoji: string; userId: string }>>;
  readMessages(room: RoomKey, query: HistoryQuery): Promise<Entry[]>;
  /** Moves read cursors forward (never back), in one statement. */
  saveCursors(room: RoomKey, cursors: ReadonlyArray<{ userId: string; seq: number }>): Promise<void>;
  /** The user's read cursor (0 when they never read). */
  readCursor(room: RoomKey, userId: string): Promise<number>;
  /** Entries of kind `message` with afterSeq < seq <= uptoSeq. */
  countMessagesAfter(room: RoomKey, afterSeq: number, uptoSeq: number): Promise<number>;
  close(): Promise<void>;
}

export class StorageError extends Error {
  override readonly name = "StorageError";
  constructor(
    message: string,
    /** `timeout`: the outcome is unknown (the statement may have committed). */
    readonly kind: "timeout" | "failed",
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
