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
}

/** One logical message: one (user, clientMsgId) for its whole life, however often it is sent. */
export interface SendRecord {
  room: string;
  userId: string;
  clientMsgId: string;
  text: string;
  attempts: number;
  /**
   * Attempts whose fate the client could not know: `unavailable`, an ack timeout, or the socket or
   * HTTP connection lost before the answer. Only these may leave a committed message unacked.
   */
  uncertain: number;
  /** Codes other than `unavailable` answered to an attempt (a valid send should never get one). */
  definite: string[];
  acks: Ack[];
  /** The sender gave up after an unknown outcome and never retried (a user who closed the app). */
  abandoned?: boolean;
}

/** One message as a client was told about it, in arrival order. */
export interface Delivered {
  seq: number;
  message: Entry;
  /** Which of the client's connections delivered it (1, 2, …). */
  session: number;
  source: "ready" | "live" | "rest";
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
}

/** Error answers, by kind: protocol codes (documented or not) and transport failures. */
export interface ErrorTally {
  /** Protocol error codes from error frames, HTTP error bodies and application close codes. */
  codes: Map<string, number>;
  /** Connection-level failures: refused, reset, closed before an answer, timeouts. */
  transport: Map<string, number>;
  /** Answers that carried a code a valid request should never get, with where they came from. */
  samples: string[];
}

export const newTally = (): ErrorTally => ({ codes: new Map(), transport: new Map(), samples: [] });

export const bump = (map: Map<string, number>, key: string, by = 1): void => {
  map.set(key, (map.get(key) ?? 0) + by);
};

/** A row of `messages` (Postgres is the truth). */
export interface StoredRow {
  seq: number;
  id: string;
  userId: string;
  clientMsgId: string;
  text: string;
  createdAt: string;
}

export interface RoomTruth {
  rows: StoredRow[];
  /** rooms.last_seq, or null when the room has no row. */
  lastSeq: number | null;
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
