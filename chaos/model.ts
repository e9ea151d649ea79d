// What the chaos run records while it drives the stack, and what the checker reads afterwards.
// Everything here is plain data: the checker (check.ts) is a pure function of it plus the truth
// read from Postgres and Redis, so a finding can be explained from the record alone.

import type { Entry } from "../src/protocol/frames.js";

export type Via = "ws" | "http";

/** One answer that said "committed as seq N": a WebSocket ack or an HTTP 200/201. */
export interface Ack {
  seq: number;
  via: Via;
  /** The message id the ack carried (WebSocket acks carry id and createdAt, not the text). */
  id?: string;
  createdAt?: string;
  /** HTTP status (201 new, 200 repeat); undefined for WebSocket. */
  status?: number;
  /** The message the HTTP answer carried (WebSocket acks carry no text). */
  message?: Entry;
  /** True when this was a deliberate re-send of an already used clientMsgId. */
  repeat: boolean;
  atMs: number;
  /** When the HTTP request left (ms into the scenario); undefined for WebSocket. */
  sentAtMs?: number;
}

/**
 * What a request asks the room to commit: a message (`send`, maybe a reply), or a change to the
 * message at `target` (`edit`, `delete`, `react`). Each is an entry of the one stream with its own
 * seq, exactly once per (user, clientMsgId), so all four are recorded and judged alike.
 */
export type Op = "send" | "edit" | "delete" | "react";

/** The entry kind a committed request of each op is stored as. */
export const kindOfOp: Record<Op, string> = { send: "message", edit: "edit", delete: "delete", react: "reaction" };

/**
 * One logical request: one (user, clientMsgId) for its whole life, however often it is sent. A
 * send, or a change to a message (an edit, a delete, a reaction); retried alike until answered.
 */
export interface SendRecord {
  room: string;
  userId: string;
  clientMsgId: string;
  /** Absent on records made before changes existed: a send. */
  op?: Op;
  /** A message's text, an edit's new text; "" for a delete and a reaction. */
  text: string;
  /** The message an edit, delete or reaction changes. */
  target?: number;
  /** A reply: the seq of its thread's parent. */
  replyTo?: number;
  /** A reaction's emoji, and whether it takes the reaction back. */
  emoji?: string;
  remove?: boolean;
  attempts: number;
  /**
   * Attempts whose fate the client could not know: `unavailable`, an ack timeout, or the socket or
   * HTTP connection lost before the answer. Only these may leave a committed message unacked.
   */
  uncertain: number;
  /**
   * Codes other than `unavailable` answered to an attempt. A valid send should never get one; a
   * reaction or a reply may get `conflict` when someone deleted its target meanwhile (the checker
   * judges that against Postgres).
   */
  definite: string[];
  acks: Ack[];
  /** The sender gave up after an unknown outcome and never retried (a user who closed the app). */
  abandoned?: boolean;
  /** The code that refused it for good (`conflict`, …): never retried, must not be committed. */
  refused?: string;
}

/** One message as a client was told about it, in arrival order. */
export interface Delivered {
  seq: number;
  message: Entry;
  /** Which of the client's connections delivered it (1, 2, …). */
  session: number;
  source: "ready" | "live" | "rest";
  /**
   * For `ready` and REST: the `latestSeq` the answer was read at. Every entry up to it was
   * committed before the read, so a message deleted at or below it must come as a tombstone.
   */
  asOf?: number;
}

export interface ClientRecord {
  room: string;
  userId: string;
  /** Everything the client was shown, across all its sessions, in order. */
  view: Delivered[];
  sessions: number;
  /** `ready` frames that came truncated, and the messages filled over REST for them. */
  truncated: { readies: number; filled: number };
  /** Protocol breaches the client saw itself (a frame before `ready`, a short `ready`, …). */
  protocol: string[];
  /** Still a member at the end: after the heal it must have caught up with Postgres. */
  joined: boolean;
  /** The last few things that happened to this client, for evidence. */
  log: string[];
  /**
   * Where its sockets go: `?region=` on the socket URL (the chaos server allows the override).
   * `primary` is the room object; a region name is that region's replica, shard by user.
   */
  region: string;
  /**
   * Per-socket send order (observed, not an invariant): pairs of requests written once each, in
   * order, on one socket and both acked on it; `inversions` the pairs whose seqs came in the
   * other order (a later frame committed first), as `clientMsgId@seq` evidence.
   */
  sendOrder?: { pairs: number; inversions: string[] };
}

/** Error answers, by kind: protocol codes (documented or not) and transport failures. */
export interface ErrorTally {
  /** Protocol error codes from error frames, HTTP error bodies and application close codes. */
  codes: Map<string, number>;
  /** Connection-level failures: refused, reset, closed before an answer, timeouts. */
  transport: Map<string, number>;
  /** Answers that carried a code a valid request should never get, with where they came from. */
  samples: string[];
  /**
   * Codes answered to a request the run recorded (SendRecord.definite), which the checker judges
   * per request against Postgres (a `conflict` is fine when the target was deleted meanwhile);
   * checkErrors leaves these out of its count.
   */
  judged: Map<string, number>;
}

export const newTally = (): ErrorTally => ({ codes: new Map(), transport: new Map(), samples: [], judged: new Map() });

export const bump = (map: Map<string, number>, key: string, by = 1): void => {
  map.set(key, (map.get(key) ?? 0) + by);
};

/**
 * A row of `messages` (Postgres is the truth): an entry of the stream, and for kind `message` its
 * current form (migrations/006). Optional fields are absent when the column is NULL.
 */
export interface StoredRow {
  seq: number;
  id: string;
  userId: string;
  clientMsgId: string;
  text: string;
  createdAt: string;
  /** Absent in hand-made rows of older tests: "message". */
  kind?: string;
  target?: number;
  replyTo?: number;
  data?: Record<string, unknown>;
  editedAt?: string;
  version?: number;
  deleted?: boolean;
  replyCount?: number;
  lastReplySeq?: number;
  updatedSeq?: number;
}

/** A row of `reactions`: `userId` reacted with `emoji` to the message at `target`. */
export interface ReactionRow {
  target: number;
  emoji: string;
  userId: string;
}

export interface RoomTruth {
  rows: StoredRow[];
  /** rooms.last_seq, or null when the room has no row. */
  lastSeq: number | null;
  /** The `reactions` table's rows of this room (absent: none). */
  reactions?: ReactionRow[];
}

/** The Redis mirror of one room: `chat:{default:<roomId>}:messages`. */
export interface StreamTruth {
  exists: boolean;
  entries: Array<{ id: string; fields: string[] }>;
}

/** Everything recorded about one room in one scenario. */
export interface RoomRecord {
  room: string;
  sends: SendRecord[];
  clients: ClientRecord[];
}

export const sendKey = (room: string, userId: string, clientMsgId: string): string =>
  `${room}\u0000${userId}\u0000${clientMsgId}`;
