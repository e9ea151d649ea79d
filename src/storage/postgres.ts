// Postgres adapter: the durable record, through @neondatabase/serverless in WebSocket mode
// (the same driver in production and in tests). Owned by one room object at a time.

import { neonConfig, Pool, type PoolClient } from "@neondatabase/serverless";
import { type Entry, EntryKind, type Message, type ReactionSummary } from "../protocol/frames.js";
import type { Part } from "../protocol/parts.js";
import {
  type BatchEffects,
  type BatchLookup,
  type CommitOutcome,
  type HistoryQuery,
  type Member,
  type MessageStore,
  type NewEntry,
  type NewRoom,
  type Role,
  type RoomKey,
  type RoomPatch,
  type RoomRecord,
  type RoomState,
  StorageError,
  type TargetState,
  type Visibility,
} from "./types.js";
import type { Profile, ProfilePatch } from "./profiles.js";
import { COMMIT_STATEMENT, statementName } from "./statements.js";
import { withTimeout } from "./timeout.js";
import { sendKey } from "../room/pipeline.js";

export { COMMIT_STATEMENT };

let localProxyConfigured = false;

/**
 * Points the driver at a local Neon-protocol WebSocket proxy (`host:port/path`) instead of Neon.
 * `neonConfig` is global to the isolate, so this is set once and only when a local proxy is configured.
 */
export const useLocalWsProxy = (endpoint: string): void => {
  if (localProxyConfigured) return;
  localProxyConfigured = true;
  neonConfig.wsProxy = (host, port) => `${endpoint}?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineTLS = false;
  neonConfig.pipelineConnect = false;
  neonConfig.forceDisablePgSSL = true;
};

export interface PostgresOptions {
  connectionString: string;
  /** A statement that has not answered by then has an unknown outcome. */
  statementTimeoutMs: number;
  /**
   * Idle connections are closed after this long: an open outgoing WebSocket keeps a Durable
   * Object awake (and billed) and prevents hibernation.
   */
  idleTimeoutMs: number;
  maxConnections: number;
}

interface MessageRow {
  seq: string | number;
  id: string;
  kind: string;
  user_id: string;
  client_msg_id: string;
  text: string;
  created_at: Date | string;
  target: string | number | null;
  reply_to: string | number | null;
  data: Record<string, unknown> | null;
  edited_at: Date | string | null;
  version: number;
  deleted: boolean;
  reply_count: number;
  last_reply_seq: string | number | null;
  updated_seq: string | number | null;
  /** A multipart message's parts (migrations/007); null for plain text and once deleted. */
  parts?: Part[] | null;
  /** Only in reads that aggregate them (COLUMNS_WITH_REACTIONS). */
  reactions?: Array<{ emoji: string; count: number | string; me: boolean | null }> | null;
}

const toIso = (value: Date | string): string => (value instanceof Date ? value : new Date(value)).toISOString();

const optionalNumber = (value: string | number | null): number | undefined => (value === null ? undefined : Number(value));

/** A row in the shape its kind has on the wire (src/protocol/frames.ts). */
const toEntry = (roomId: string, row: MessageRow): Entry => {
  const envelope = {
    roomId,
    seq: Number(row.seq),
    id: row.id,
    userId: row.user_id,
    text: row.text,
    clientMsgId: row.client_msg_id,
    createdAt: toIso(row.created_at),
  };
  const data = row.data ?? {};
  const target = optionalNumber(row.target) ?? 0;
  switch (row.kind) {
    case EntryKind.Message: {
      const message: Message = { ...envelope, kind: EntryKind.Message };
      if (row.parts && !row.deleted) message.parts = row.parts;
      if (row.reply_to !== null) message.replyTo = Number(row.reply_to);
      if (Array.isArray(data.mentions) && !row.deleted) message.mentions = data.mentions.filter((m): m is string => typeof m === "string");
      if (row.deleted) message.deleted = true;
      else if (row.edited_at !== null) {
        message.editedAt = toIso(row.edited_at);
        message.version = row.version;
      }
      const reactions = row.deleted ? [] : (row.reactions ?? []);
      if (reactions.length > 0) message.reactions = reactions.map(toSummary);
      if (row.reply_count > 0) {
        message.replyCount = row.reply_count;
        const last = optionalNumber(row.last_reply_seq);
        if (last !== undefined) message.lastReplySeq = last;
      }
      const updated = optionalNumber(row.updated_seq);
      if (updated !== undefined) message.updatedSeq = updated;
      return message;
    }
    case EntryKind.Edit:
      return { ...envelope, kind: EntryKind.Edit, target, version: Number(data.version ?? 0) };
    case EntryKind.Delete:
      return { ...envelope, kind: EntryKind.Delete, target, redacts: Array.isArray(data.redacts) ? data.redacts.map(Number) : [target] };
    case EntryKind.Reaction:
      return {
        ...envelope,
        kind: EntryKind.Reaction,
        target,
        emoji: String(data.emoji ?? ""),
        count: Number(data.count ?? 0),
        ...(data.remove === true ? { remove: true as const } : {}),
      };
    default:
      // System entries keep their fields in `data` as they were built (admin.ts); a row of a kind
      // this build does not know would come from a newer deployment sharing the database, and is
      // served as it is.
      return { ...data, ...envelope, kind: row.kind } as Entry;
  }
};

const toSummary = (r: { emoji: string; count: number | string; me: boolean | null }): ReactionSummary =>
  r.me ? { emoji: r.emoji, count: Number(r.count), me: true } : { emoji: r.emoji, count: Number(r.count) };

/*
 * One statement, so one round trip and one implicit transaction:
 *  - `dup` finds sends whose (user, clientMsgId) is already stored: they are answered with the
 *    original row and take no seq (LATERAL, so each is one probe of the unique index rather
 *    than a scan of the room);
 *  - `fresh` numbers the others 1..k in batch order;
 *  - `claim` advances last_seq only if this writer still holds the room's epoch AND the room is
 *    exactly where the writer believes it is. It takes the row lock on `rooms`, so two writers
 *    of one room are serialised here; the loser re-evaluates the WHERE and matches nothing;
 *  - `ins` inserts only when `claim` matched, with seq = expected + n: consecutive, no gap;
 *  - `claim` also counts the room's messages and `cursors` moves each sender's read cursor to
 *    their last message of the batch, in the same transaction, so a user's own messages never
 *    count as unread (migrations/005 has the unread formula);
 *  - `wanted` lists the uploads the batch's attachment parts name; `claim` matches only if every
 *    one exists in this room, belongs to the message's sender and is not bound, and none is named
 *    twice; `bound` then binds each to its message's seq. So a message and its attachments'
 *    binding commit together or not at all (the room checks the same before it queues a send,
 *    src/room/attachments.ts: failing here is the last line, answered as `unavailable` + resync).
 * The primary key (tenant, room_id, seq) is the last line of defence against a reused seq.
 */
const COMMIT_SQL = `
WITH input AS (
  SELECT i.ord, i.id, i.user_id, i.client_msg_id, i.text, i.kind, i.target, i.reply_to, i.data, i.parts
  FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $10::text[], $11::bigint[], $12::bigint[], $13::jsonb[], $14::jsonb[])
    WITH ORDINALITY AS i(id, user_id, client_msg_id, text, kind, target, reply_to, data, parts, ord)
),
dup AS (
  SELECT i.ord, m.seq, m.id, m.kind, m.user_id, m.client_msg_id, m.text, m.created_at, m.target, m.reply_to, m.data,
         m.edited_at, m.version, m.deleted, m.reply_count, m.last_reply_seq, m.updated_seq, m.parts
  FROM input i
  CROSS JOIN LATERAL (
    SELECT * FROM messages
    WHERE tenant = $1 AND room_id = $2 AND user_id = i.user_id AND client_msg_id = i.client_msg_id
  ) m
),
fresh AS (
  SELECT i.*, row_number() OVER (ORDER BY i.ord) AS n
  FROM input i
  WHERE NOT EXISTS (SELECT 1 FROM dup d WHERE d.ord = i.ord)
),
wanted AS (
  SELECT f.n, p->>'id' AS att_id, EXISTS (
    SELECT 1 FROM attachments a
    WHERE a.tenant = $1 AND a.room_id = $2 AND a.id = p->>'id' AND a.user_id = f.user_id AND a.bound_seq IS NULL
  ) AS usable
  FROM fresh f CROSS JOIN LATERAL jsonb_array_elements(COALESCE(f.parts, '[]'::jsonb)) p
  WHERE p->>'type' = 'attachment'
),
claim AS (
  UPDATE rooms SET last_seq = $4 + (SELECT count(*) FROM fresh),
    message_count = message_count + (SELECT count(*) FROM fresh WHERE kind = 'message')
  WHERE tenant = $1 AND room_id = $2 AND writer_epoch = $3 AND last_seq = $4
    AND NOT EXISTS (SELECT 1 FROM wanted w WHERE NOT w.usable)
    AND (SELECT count(*) FROM wanted) = (SELECT count(DISTINCT att_id) FROM wanted)
  RETURNING last_seq, message_count
),
bound AS (
  UPDATE attachments a SET bound_seq = $4 + w.n
  FROM wanted w
  WHERE a.tenant = $1 AND a.room_id = $2 AND a.id = w.att_id AND EXISTS (SELECT 1 FROM claim)
),
senders AS (
  SELECT f.user_id, max(f.n) AS last_n FROM fresh f WHERE f.kind = 'message' GROUP BY f.user_id
),
cursors AS (
  INSERT INTO read_cursors (tenant, room_id, user_id, read_seq, read_count)
  SELECT $1, $2, s.user_id, $4 + s.last_n,
    (SELECT c.message_count FROM claim c) - (SELECT count(*) FROM fresh f WHERE f.kind = 'message' AND f.n > s.last_n)
  FROM senders s
  WHERE EXISTS (SELECT 1 FROM claim)
  ON CONFLICT (tenant, room_id, user_id) DO UPDATE
    SET read_seq = EXCLUDED.read_seq, read_count = EXCLUDED.read_count, updated_at = now()
    WHERE read_cursors.read_seq < EXCLUDED.read_seq
),
ins AS (
  INSERT INTO messages (tenant, room_id, seq, id, kind, user_id, client_msg_id, text, created_at, target, reply_to, data, parts)
  SELECT $1, $2, $4 + f.n, f.id, f.kind, f.user_id, f.client_msg_id, f.text, $9::timestamptz, f.target, f.reply_to, f.data, f.parts
  FROM fresh f
  WHERE EXISTS (SELECT 1 FROM claim)
  RETURNING seq
)
SELECT c.last_seq AS claimed, d.ord, d.seq, d.id, d.kind, d.user_id, d.client_msg_id, d.text, d.created_at,
       d.target, d.reply_to, d.data, d.edited_at, d.version, d.deleted, d.reply_count, d.last_reply_seq, d.updated_seq, d.parts,
       (SELECT count(*) FROM ins) AS inserted
FROM (SELECT 1) AS one
LEFT JOIN claim c ON true
LEFT JOIN dup d ON true
`;

interface CommitRow extends Partial<MessageRow> {
  claimed: string | number | null;
  ord: string | number | null;
  inserted: string | number;
}

/**
 * Moves read cursors forward (never back: the WHERE keeps the higher one, whatever order updates
 * arrive in). read_count = the room's messages minus those after the cursor: a count of what is
 * unread, not of the room's history, so its cost does not grow with the room.
 */
const SAVE_CURSORS_SQL = `
INSERT INTO read_cursors (tenant, room_id, user_id, read_seq, read_count)
SELECT $1, $2, u.user_id, u.seq,
  r.message_count - (SELECT count(*) FROM messages m
                     WHERE m.tenant = $1 AND m.room_id = $2 AND m.seq > u.seq AND m.kind = 'message' AND NOT m.deleted)
FROM unnest($3::text[], $4::bigint[]) AS u(user_id, seq)
JOIN rooms r ON r.tenant = $1 AND r.room_id = $2
ON CONFLICT (tenant, room_id, user_id) DO UPDATE
  SET read_seq = EXCLUDED.read_seq, read_count = EXCLUDED.read_count, updated_at = now()
  WHERE read_cursors.read_seq < EXCLUDED.read_seq
`;

/*
 * What a batch of changes does to the messages it names, in the commit's transaction, after the
 * commit statement (so the entries it inserted are visible here):
 *  - `upd` writes each named message's current form (planned by changes.ts: absolute values, the
 *    reply count as a delta); a deleted message loses its text;
 *  - `redact` removes the text of every edit of a deleted message (the edit entries keep their
 *    place in the stream, with text '');
 *  - reactions are rows, one per (message, emoji, user): added, removed, and all of a deleted
 *    message's dropped;
 *  - a deleted message no longer counts: rooms.message_count drops by one, and so does the
 *    read_count of every cursor at or past it (unread = message_count - read_count stays exact).
 */
const EFFECTS_SQL = `
WITH upd AS (
  UPDATE messages m SET
    text = CASE WHEN u.deleted THEN '' ELSE COALESCE(u.text, m.text) END,
    parts = CASE WHEN u.deleted THEN NULL ELSE m.parts END,
    edited_at = CASE WHEN u.deleted THEN NULL ELSE COALESCE(u.edited_at, m.edited_at) END,
    version = u.version,
    deleted = u.deleted,
    reply_count = m.reply_count + u.reply_delta,
    last_reply_seq = COALESCE(u.last_reply_seq, m.last_reply_seq),
    updated_seq = u.updated_seq
  FROM unnest($3::bigint[], $4::text[], $5::timestamptz[], $6::int[], $7::boolean[], $8::int[], $9::bigint[], $10::bigint[])
    AS u(seq, text, edited_at, version, deleted, reply_delta, last_reply_seq, updated_seq)
  WHERE m.tenant = $1 AND m.room_id = $2 AND m.seq = u.seq
  RETURNING m.seq
),
redact AS (
  UPDATE messages m SET text = ''
  WHERE m.tenant = $1 AND m.room_id = $2 AND m.kind = 'edit' AND m.target = ANY($11::bigint[])
),
gone AS (
  DELETE FROM reactions r WHERE r.tenant = $1 AND r.room_id = $2 AND r.target_seq = ANY($11::bigint[])
),
added AS (
  INSERT INTO reactions (tenant, room_id, target_seq, emoji, user_id)
  SELECT $1, $2, a.target, a.emoji, a.user_id FROM unnest($12::bigint[], $13::text[], $14::text[]) AS a(target, emoji, user_id)
  ON CONFLICT DO NOTHING
),
removed AS (
  DELETE FROM reactions r USING unnest($15::bigint[], $16::text[], $17::text[]) AS x(target, emoji, user_id)
  WHERE r.tenant = $1 AND r.room_id = $2 AND r.target_seq = x.target AND r.emoji = x.emoji AND r.user_id = x.user_id
),
counted AS (
  UPDATE rooms SET message_count = message_count - cardinality($11::bigint[])
  WHERE tenant = $1 AND room_id = $2 AND cardinality($11::bigint[]) > 0
),
cursors AS (
  UPDATE read_cursors c SET read_count = c.read_count - (SELECT count(*) FROM unnest($11::bigint[]) AS d(seq) WHERE d.seq <= c.read_seq)
  WHERE c.tenant = $1 AND c.room_id = $2 AND cardinality($11::bigint[]) > 0
    AND c.read_seq >= (SELECT min(d.seq) FROM unnest($11::bigint[]) AS d(seq))
)
SELECT (SELECT count(*) FROM upd) AS updated
`;

/** A batch's targets with what planning needs, and which of its sends are stored already: one round trip. */
const LOOKUP_SQL = `
SELECT
  (SELECT coalesce(json_agg(json_build_object(
     'seq', m.seq, 'kind', m.kind, 'user_id', m.user_id, 'deleted', m.deleted, 'version', m.version, 'reply_to', m.reply_to,
     'edits', (SELECT coalesce(json_agg(e.seq ORDER BY e.seq), '[]'::json) FROM messages e
               WHERE e.tenant = $1 AND e.room_id = $2 AND e.target = m.seq AND e.kind = 'edit'),
     'counts', (SELECT coalesce(json_object_agg(x.emoji, x.n), '{}'::json) FROM
                (SELECT r.emoji, count(*) AS n FROM reactions r
                 WHERE r.tenant = $1 AND r.room_id = $2 AND r.target_seq = m.seq GROUP BY r.emoji) x),
     'reacted', (SELECT coalesce(json_agg(json_build_array(r.emoji, r.user_id)), '[]'::json) FROM reactions r
                 WHERE r.tenant = $1 AND r.room_id = $2 AND r.target_seq = m.seq AND r.user_id = ANY($4::text[]))
   )), '[]'::json)
   FROM messages m WHERE m.tenant = $1 AND m.room_id = $2 AND m.seq = ANY($3::bigint[])) AS targets,
  (SELECT coalesce(json_agg(json_build_array(m.user_id, m.client_msg_id)), '[]'::json)
   FROM unnest($5::text[], $6::text[]) AS s(user_id, client_msg_id)
   JOIN messages m ON m.tenant = $1 AND m.room_id = $2 AND m.user_id = s.user_id AND m.client_msg_id = s.client_msg_id) AS existing
`;

interface LookupRow {
  targets: Array<{
    seq: number;
    kind: string;
    user_id: string;
    deleted: boolean;
    version: number;
    reply_to: number | null;
    edits: number[];
    counts: Record<string, number>;
    reacted: Array<[string, string]>;
  }>;
  existing: Array<[string, string]>;
}

const CLAIM_SQL = `
UPDATE rooms SET writer_epoch = $3
WHERE tenant = $1 AND room_id = $2 AND writer_epoch < $3 AND deleted_at IS NULL
RETURNING last_seq, writer_epoch
`;

const ROOM_COLUMNS = "last_seq, writer_epoch, visibility, name, metadata, created_by, created_at, deleted_at";

interface RoomRow {
  last_seq: string | number;
  writer_epoch: string | number;
  visibility: Visibility;
  name: string | null;
  metadata: Record<string, unknown> | null;
  created_by: string | null;
  created_at: Date | string;
  deleted_at: Date | string | null;
}

const toRoomRecord = (roomId: string, row: RoomRow): RoomRecord => ({
  lastSeq: Number(row.last_seq),
  writerEpoch: Number(row.writer_epoch),
  visibility: row.visibility,
  name: row.name ?? roomId,
  metadata: row.metadata ?? {},
  createdBy: row.created_by,
  createdAt: toIso(row.created_at),
  deletedAt: row.deleted_at === null ? null : toIso(row.deleted_at),
});

/** The room and (unless $7 is null) its creator with role $7, in one statement; nothing if the id is taken. */
const CREATE_ROOM_SQL = `
WITH created AS (
  INSERT INTO rooms (tenant, room_id, visibility, name, metadata, created_by)
  VALUES ($1, $2, $3, $4, $5::jsonb, $6)
  ON CONFLICT (tenant, room_id) DO NOTHING
  RETURNING ${ROOM_COLUMNS}
), creator AS (
  INSERT INTO room_members (tenant, room_id, user_id, role)
  SELECT $1, $2, $6, $7 FROM created WHERE $7::text IS NOT NULL
)
SELECT * FROM created
`;

/*
 * Memberships are rows with left_at IS NULL; a departed member's row keeps their last role.
 * The last-admin guard is part of each statement: a change that would leave the room without
 * an active admin matches no row. (The room object also serialises every membership change,
 * so two admins demoting each other cannot both pass the count.)
 */
const OTHER_ADMINS = `(SELECT count(*) FROM room_members
  WHERE tenant = $1 AND room_id = $2 AND role = 'admin' AND left_at IS NULL AND user_id <> $3)`;

const SET_MEMBER_SQL = `
INSERT INTO room_members (tenant, room_id, user_id, role)
SELECT $1, $2, $3, $4
WHERE $4 = 'admin'
   OR NOT EXISTS (SELECT 1 FROM room_members WHERE tenant = $1 AND room_id = $2 AND user_id = $3
                  AND role = 'admin' AND left_at IS NULL)
   OR ${OTHER_ADMINS} > 0
ON CONFLICT (tenant, room_id, user_id) DO UPDATE SET role = EXCLUDED.role, left_at = NULL,
  joined_at = CASE WHEN room_members.left_at IS NULL THEN room_members.joined_at ELSE now() END
RETURNING user_id, role, joined_at
`;

/** A (re-)join: a new member is a member; a departed one gets back at most member; an active one keeps their role. */
const JOIN_SQL = `
INSERT INTO room_members (tenant, room_id, user_id, role) VALUES ($1, $2, $3, 'member')
ON CONFLICT (tenant, room_id, user_id) DO UPDATE SET
  role = CASE WHEN room_members.left_at IS NULL OR room_members.role = 'viewer' THEN room_members.role ELSE 'member' END,
  joined_at = CASE WHEN room_members.left_at IS NULL THEN room_members.joined_at ELSE now() END,
  left_at = NULL
RETURNING user_id, role, joined_at
`;

const REMOVE_MEMBER_SQL = `
UPDATE room_members SET left_at = now()
WHERE tenant = $1 AND room_id = $2 AND user_id = $3 AND left_at IS NULL
  AND (role <> 'admin' OR ${OTHER_ADMINS} > 0)
RETURNING role
`;

interface MemberRow {
  user_id: string;
  role: Role;
  joined_at: Date | string;
}

const toMember = (row: MemberRow): Member => ({ userId: row.user_id, role: row.role, joinedAt: toIso(row.joined_at) });

const COLUMNS =
  "m.seq, m.id, m.kind, m.user_id, m.client_msg_id, m.text, m.created_at, m.target, m.reply_to, m.data, " +
  "m.edited_at, m.version, m.deleted, m.reply_count, m.last_reply_seq, m.updated_seq, m.parts";
/**
 * The same with each message's reaction summary ($6: the viewer, whose `me` flags it carries; null
 * for the shared form). Sorted by emoji in code point order, as lifecycle.ts sorts live changes.
 */
const COLUMNS_WITH_REACTIONS = `${COLUMNS},
  (SELECT json_agg(json_build_object('emoji', x.emoji, 'count', x.n, 'me', x.me) ORDER BY x.emoji COLLATE "C")
   FROM (SELECT r.emoji, count(*) AS n, bool_or(r.user_id = $6::text) AS me FROM reactions r
         WHERE r.tenant = m.tenant AND r.room_id = m.room_id AND r.target_seq = m.seq GROUP BY r.emoji) x) AS reactions`;

export class PostgresStore implements MessageStore {
  private readonly pool: Pool;

  /** The pool, for a store of the same object to share (src/storage/moderation.ts). */
  get sharedPool(): Pool {
    return this.pool;
  }
  /**
   * The room's hot statements are named (prepared): Postgres parses and plans each once per
   * connection and afterwards only binds and executes it (the commit statement's parse and plan
   * took ~1.3 ms of a 3.4 ms send→receive p50). The driver keeps the per-connection cache, so a new
   * connection (after an idle close, a failure or a reconnect) prepares again on first use. Each
   * name stands for exactly one SQL text (a name reused with another text is an error). The
   * benchmark fixture turns this off to measure it (bench/fixture/, BENCH_BASELINE=unnamed).
   */
  protected readonly prepared: boolean = true;

  constructor(private readonly options: PostgresOptions) {
    this.pool = new Pool({
      connectionString: options.connectionString,
      max: options.maxConnections,
      idleTimeoutMillis: options.idleTimeoutMs,
      connectionTimeoutMillis: options.statementTimeoutMs,
    });
    // workerd fires `error` on an outbound WebSocket after the server closes it, even cleanly;
    // without listeners that surfaces as an unhandled error. The failed query already rejects.
    this.pool.on("error", () => {});
    this.pool.on("connect", (client: PoolClient) => client.on("error", () => {}));
  }

  /** A hot statement: named (prepared once per connection) unless the fixture measures without. */
  private statement(prefix: string, text: string, values: unknown[]): { name?: string; text: string; values: unknown[] } {
    return this.prepared ? { name: statementName(prefix, text), text, values } : { text, values };
  }

  private async withClient<T>(what: string, run: (client: PoolClient) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (cause) {
      throw new StorageError(`unable to connect to Postgres for ${what}`, "failed", { cause });
    }
    try {
      const result = await withTimeout(
        run(client),
        this.options.statementTimeoutMs,
        () => new StorageError(`${what} did not answer within ${this.options.statementTimeoutMs} ms`, "timeout"),
      );
      client.release();
      return result;
    } catch (cause) {
      // A connection that failed or timed out mid-statement is never reused: its protocol state is unknown.
      client.release(true);
      if (cause instanceof StorageError) throw cause;
      throw new StorageError(`${what} failed`, "failed", { cause });
    }
  }

  async readRoomState(room: RoomKey): Promise<RoomRecord | null> {
    const { rows } = await this.withClient("reading the room state", (c) =>
      c.query<RoomRow>(`SELECT ${ROOM_COLUMNS} FROM rooms WHERE tenant = $1 AND room_id = $2`, [room.tenant, room.roomId]),
    );
    const row = rows[0];
    return row ? toRoomRecord(room.roomId, row) : null;
  }

  async createRoom(room: RoomKey, init: NewRoom): Promise<RoomRecord | null> {
    const { rows } = await this.withClient("creating the room", (c) =>
      c.query<RoomRow>(CREATE_ROOM_SQL, [
        room.tenant,
        room.roomId,
        init.visibility,
        init.name,
        JSON.stringify(init.metadata),
        init.createdBy,
        init.creatorRole,
      ]),
    );
    const row = rows[0];
    return row ? toRoomRecord(room.roomId, row) : null;
  }

  async updateRoom(room: RoomKey, patch: RoomPatch): Promise<RoomRecord | null> {
    const { rows } = await this.withClient("updating the room", (c) =>
      c.query<RoomRow>(
        `UPDATE rooms SET
           visibility = COALESCE($3, visibility),
           name = COALESCE($4, name),
           metadata = COALESCE($5::jsonb, metadata)
         WHERE tenant = $1 AND room_id = $2 AND deleted_at IS NULL
         RETURNING ${ROOM_COLUMNS}`,
        [
          room.tenant,
          room.roomId,
          patch.visibility ?? null,
          patch.name ?? null,
          patch.metadata === undefined ? null : JSON.stringify(patch.metadata),
        ],
      ),
    );
    const row = rows[0];
    return row ? toRoomRecord(room.roomId, row) : null;
  }

  async deleteRoom(room: RoomKey, purge: boolean): Promise<void> {
    await this.withClient("deleting the room", (c) =>
      purge
        ? c.query("DELETE FROM rooms WHERE tenant = $1 AND room_id = $2", [room.tenant, room.roomId])
        : c.query(
            `WITH gone AS (DELETE FROM room_members WHERE tenant = $1 AND room_id = $2)
             UPDATE rooms SET deleted_at = now() WHERE tenant = $1 AND room_id = $2 AND deleted_at IS NULL`,
            [room.tenant, room.roomId],
          ),
    );
  }

  async roleOf(room: RoomKey, userId: string): Promise<Role | null> {
    const { rows } = await this.withClient("reading a membership", (c) =>
      c.query<{ role: Role }>("SELECT role FROM room_members WHERE tenant = $1 AND room_id = $2 AND user_id = $3 AND left_at IS NULL", [
        room.tenant,
        room.roomId,
        userId,
      ]),
    );
    return rows[0]?.role ?? null;
  }

  async setMember(room: RoomKey, userId: string, role: Role): Promise<Member | "last_admin"> {
    const { rows } = await this.withClient("changing a membership", (c) =>
      c.query<MemberRow>(SET_MEMBER_SQL, [room.tenant, room.roomId, userId, role]),
    );
    const row = rows[0];
    return row ? toMember(row) : "last_admin";
  }

  async joinMember(room: RoomKey, userId: string): Promise<Member> {
    const { rows } = await this.withClient("joining the room", (c) =>
      c.query<MemberRow>(JOIN_SQL, [room.tenant, room.roomId, userId]),
    );
    const row = rows[0];
    if (!row) throw new StorageError("joining returned no row", "failed");
    return toMember(row);
  }

  async removeMember(room: RoomKey, userId: string): Promise<"removed" | "absent" | "last_admin"> {
    const { rows } = await this.withClient("removing a member", (c) =>
      c.query<{ role: Role }>(REMOVE_MEMBER_SQL, [room.tenant, room.roomId, userId]),
    );
    if (rows.length > 0) return "removed";
    return (await this.roleOf(room, userId)) === "admin" ? "last_admin" : "absent";
  }

  async listMembers(room: RoomKey, limit: number): Promise<Member[]> {
    const { rows } = await this.withClient("listing members", (c) =>
      c.query<MemberRow>(
        "SELECT user_id, role, joined_at FROM room_members WHERE tenant = $1 AND room_id = $2 AND left_at IS NULL ORDER BY joined_at, user_id LIMIT $3",
        [room.tenant, room.roomId, limit],
      ),
    );
    return rows.map(toMember);
  }

  async claimWriter(room: RoomKey, epoch: number): Promise<RoomState | null> {
    const { rows } = await this.withClient("claiming the room writer", (c) =>
      c.query<{ last_seq: string; writer_epoch: string }>(CLAIM_SQL, [room.tenant, room.roomId, epoch]),
    );
    const row = rows[0];
    return row ? { lastSeq: Number(row.last_seq), writerEpoch: Number(row.writer_epoch) } : null;
  }

  async commitBatch(
    room: RoomKey,
    writerEpoch: number,
    expectedLastSeq: number,
    createdAt: string,
    batch: readonly NewEntry[],
    effects?: BatchEffects,
  ): Promise<CommitOutcome> {
    const params = [
      room.tenant,
      room.roomId,
      writerEpoch,
      expectedLastSeq,
      batch.map((m) => m.id),
      batch.map((m) => m.userId),
      batch.map((m) => m.clientMsgId),
      batch.map((m) => m.text),
      createdAt,
      batch.map((m) => m.kind),
      batch.map((m) => m.target ?? null),
      batch.map((m) => m.replyTo ?? null),
      batch.map((m) => (m.data === undefined ? null : JSON.stringify(m.data))),
      batch.map((m) => (m.parts ? JSON.stringify(m.parts) : null)),
    ];
    // A batch of plain messages is one statement (one round trip, its own implicit transaction);
    // a batch of changes also writes the messages it names, so both go in one transaction. If the
    // connection fails or times out anywhere in it, the connection is destroyed (withClient), which
    // rolls the transaction back unless COMMIT had already been sent: the outcome is then unknown,
    // as for a plain batch, and the writer resyncs.
    const withEffects = effects !== undefined;
    const rows = await this.withClient("committing a batch", async (c) => {
      const commit = this.statement(COMMIT_STATEMENT, COMMIT_SQL, params);
      if (!withEffects) return (await c.query<CommitRow>(commit)).rows;
      await c.query("BEGIN");
      const { rows } = await c.query<CommitRow>(commit);
      const first = rows[0];
      const duplicates = rows.filter((r) => r.ord !== null).length;
      if (!first || first.claimed === null || Number(first.inserted) !== batch.length - duplicates) {
        await c.query("ROLLBACK");
        return rows;
      }
      if (duplicates !== effects.expectedDuplicates) {
        // The plan was made for another set of resends: refuse to apply it (cannot happen while
        // this writer is the only one; see changes.ts).
        await c.query("ROLLBACK");
        throw new StorageError(`the batch was planned for ${effects.expectedDuplicates} resends, found ${duplicates}`, "failed");
      }
      await c.query(this.statement("chat_effects_", EFFECTS_SQL, effectParams(room, effects)));
      await c.query("COMMIT");
      return rows;
    });
    const first = rows[0];
    if (!first || first.claimed === null) return { kind: "rejected" };
    const duplicates = new Map<number, Entry>();
    for (const row of rows) {
      if (row.ord === null || row.seq === undefined) continue;
      duplicates.set(Number(row.ord) - 1, toEntry(room.roomId, row as MessageRow));
    }
    const lastSeq = Number(first.claimed);
    if (lastSeq !== expectedLastSeq + batch.length - duplicates.size) {
      // Cannot happen unless the SQL above is wrong; refuse to guess seqs.
      throw new StorageError(`commit advanced last_seq to ${lastSeq}, expected ${expectedLastSeq} + fresh`, "failed");
    }
    return { kind: "committed", lastSeq, duplicates };
  }

  async lookupBatch(
    room: RoomKey,
    targets: readonly number[],
    users: readonly string[],
    sends: ReadonlyArray<{ userId: string; clientMsgId: string }>,
  ): Promise<BatchLookup> {
    const { rows } = await this.withClient("looking up the messages a batch changes", (c) =>
      c.query<LookupRow>(
        this.statement("chat_lookup_", LOOKUP_SQL, [
          room.tenant,
          room.roomId,
          [...targets],
          [...users],
          sends.map((s) => s.userId),
          sends.map((s) => s.clientMsgId),
        ]),
      ),
    );
    const row = rows[0];
    const found = new Map<number, TargetState>();
    for (const t of row?.targets ?? []) {
      found.set(Number(t.seq), {
        seq: Number(t.seq),
        kind: t.kind as EntryKind,
        userId: t.user_id,
        deleted: t.deleted,
        version: t.version,
        replyTo: t.reply_to === null ? null : Number(t.reply_to),
        edits: t.edits.map(Number),
        counts: new Map(Object.entries(t.counts).map(([emoji, n]) => [emoji, Number(n)])),
        reacted: new Set(t.reacted.map(([emoji, user]) => `${emoji} ${user}`)),
      });
    }
    return { targets: found, existing: new Set((row?.existing ?? []).map(([user, id]) => sendKey(user, id))) };
  }

  async readReactors(room: RoomKey, afterSeq: number, uptoSeq: number): Promise<Array<{ target: number; emoji: string; userId: string }>> {
    if (uptoSeq <= afterSeq) return [];
    const { rows } = await this.withClient("reading reactions", (c) =>
      c.query<{ target_seq: string; emoji: string; user_id: string }>(
        "SELECT target_seq, emoji, user_id FROM reactions WHERE tenant = $1 AND room_id = $2 AND target_seq > $3 AND target_seq <= $4",
        [room.tenant, room.roomId, afterSeq, uptoSeq],
      ),
    );
    return rows.map((r) => ({ target: Number(r.target_seq), emoji: r.emoji, userId: r.user_id }));
  }

  async saveCursors(room: RoomKey, cursors: ReadonlyArray<{ userId: string; seq: number }>): Promise<void> {
    if (cursors.length === 0) return;
    await this.withClient("saving read cursors", (c) =>
      c.query(this.statement("chat_save_cursors_", SAVE_CURSORS_SQL, [room.tenant, room.roomId, cursors.map((x) => x.userId), cursors.map((x) => x.seq)])),
    );
  }

  async readCursor(room: RoomKey, userId: string): Promise<number> {
    const { rows } = await this.withClient("reading a read cursor", (c) =>
      c.query<{ read_seq: string }>("SELECT read_seq FROM read_cursors WHERE tenant = $1 AND room_id = $2 AND user_id = $3", [
        room.tenant,
        room.roomId,
        userId,
      ]),
    );
    return rows[0] ? Number(rows[0].read_seq) : 0;
  }

  async countMessagesAfter(room: RoomKey, afterSeq: number, uptoSeq: number): Promise<number> {
    const { rows } = await this.withClient("counting unread messages", (c) =>
      c.query<{ n: string }>(
        "SELECT count(*) AS n FROM messages WHERE tenant = $1 AND room_id = $2 AND seq > $3 AND seq <= $4 AND kind = 'message' AND NOT deleted",
        [room.tenant, room.roomId, afterSeq, uptoSeq],
      ),
    );
    return Number(rows[0]?.n ?? 0);
  }

  async readMessages(room: RoomKey, q: HistoryQuery): Promise<Entry[]> {
    if (q.limit <= 0 || q.uptoSeq <= q.afterSeq) return [];
    const order = q.from === "oldest" ? "ASC" : "DESC";
    // A thread's page: its replies only (the messages_by_thread index); $7 is the parent.
    const thread = q.thread === undefined ? "" : "AND m.reply_to = $7";
    const params: unknown[] = [room.tenant, room.roomId, q.afterSeq, q.uptoSeq, q.limit, q.viewer ?? null];
    if (q.thread !== undefined) params.push(q.thread);
    const text = `SELECT ${COLUMNS_WITH_REACTIONS} FROM messages m
         WHERE m.tenant = $1 AND m.room_id = $2 AND m.seq > $3 AND m.seq <= $4 ${thread}
         ORDER BY m.seq ${order} LIMIT $5`;
    const { rows } = await this.withClient("reading history", (c) => c.query<MessageRow>(this.statement("chat_history_", text, params)));
    const messages = rows.map((row) => toEntry(room.roomId, row));
    return q.from === "oldest" ? messages : messages.reverse();
  }

  async listRoomsOf(tenant: string, userId: string, limit: number): Promise<RoomSummary[]> {
    const { rows } = await this.withClient("listing rooms", (c) =>
      c.query<{
        room_id: string;
        name: string | null;
        visibility: Visibility;
        role: Role;
        last_seq: string;
        read_seq: string | null;
        unread: string;
      }>(
        // One row per room of the user, each from three primary-key lookups: the cost grows with
        // the user's rooms, never with their messages (migrations/005).
        `SELECT r.room_id, r.name, r.visibility, m.role, r.last_seq, c.read_seq,
                GREATEST(0, r.message_count - COALESCE(c.read_count, 0)) AS unread
         FROM room_members m
         JOIN rooms r ON r.tenant = m.tenant AND r.room_id = m.room_id
         LEFT JOIN read_cursors c ON c.tenant = m.tenant AND c.room_id = m.room_id AND c.user_id = m.user_id
         WHERE m.tenant = $1 AND m.user_id = $2 AND m.left_at IS NULL AND r.deleted_at IS NULL
         ORDER BY r.room_id LIMIT $3`,
        [tenant, userId, limit],
      ),
    );
    return rows.map((r) => ({
      roomId: r.room_id,
      name: r.name ?? r.room_id,
      visibility: r.visibility,
      role: r.role,
      latestSeq: Number(r.last_seq),
      readSeq: r.read_seq === null ? 0 : Number(r.read_seq),
      unread: Number(r.unread),
    }));
  }

  async readProfiles(tenant: string, userIds: readonly string[]): Promise<Profile[]> {
    const { rows } = await this.withClient("reading profiles", (c) =>
      c.query<ProfileRow>(
        "SELECT user_id, name, avatar_url, data, updated_at FROM profiles WHERE tenant = $1 AND user_id = ANY($2::text[])",
        [tenant, [...userIds]],
      ),
    );
    return rows.map(toProfile);
  }

  async writeProfile(tenant: string, userId: string, patch: ProfilePatch): Promise<Profile> {
    // A field left out keeps its value; null clears it.
    const { rows } = await this.withClient("writing a profile", (c) =>
      c.query<ProfileRow>(
        `INSERT INTO profiles (tenant, user_id, name, avatar_url, data)
         VALUES ($1, $2, $3, $5, COALESCE($7::jsonb, '{}'::jsonb))
         ON CONFLICT (tenant, user_id) DO UPDATE SET
           name = CASE WHEN $4 THEN EXCLUDED.name ELSE profiles.name END,
           avatar_url = CASE WHEN $6 THEN EXCLUDED.avatar_url ELSE profiles.avatar_url END,
           data = COALESCE($7::jsonb, profiles.data),
           updated_at = now()
         RETURNING user_id, name, avatar_url, data, updated_at`,
        [
          tenant,
          userId,
          patch.name ?? null,
          patch.name !== undefined,
          patch.avatarUrl ?? null,
          patch.avatarUrl !== undefined,
          patch.data === undefined ? null : JSON.stringify(patch.data),
        ],
      ),
    );
    const row = rows[0];
    if (!row) throw new StorageError("writing a profile returned no row", "failed");
    return toProfile(row);
  }

  async rememberName(tenant: string, userId: string, name: string): Promise<void> {
    await this.withClient("remembering a name", (c) =>
      c.query("INSERT INTO profiles (tenant, user_id, name) VALUES ($1, $2, $3) ON CONFLICT (tenant, user_id) DO NOTHING", [
        tenant,
        userId,
        name,
      ]),
    );
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => {});
  }
}

const effectParams = (room: RoomKey, e: BatchEffects): unknown[] => [
  room.tenant,
  room.roomId,
  e.updates.map((u) => u.seq),
  e.updates.map((u) => u.text ?? null),
  e.updates.map((u) => u.editedAt ?? null),
  e.updates.map((u) => u.version),
  e.updates.map((u) => u.deleted),
  e.updates.map((u) => u.replyDelta),
  e.updates.map((u) => u.lastReplySeq ?? null),
  e.updates.map((u) => u.updatedSeq),
  e.deleted,
  e.reactionsAdded.map((r) => r.target),
  e.reactionsAdded.map((r) => r.emoji),
  e.reactionsAdded.map((r) => r.userId),
  e.reactionsRemoved.map((r) => r.target),
  e.reactionsRemoved.map((r) => r.emoji),
  e.reactionsRemoved.map((r) => r.userId),
];

interface ProfileRow {
  user_id: string;
  name: string | null;
  avatar_url: string | null;
  data: Record<string, unknown> | null;
  updated_at: Date | string;
}

const toProfile = (row: ProfileRow): Profile => ({
  userId: row.user_id,
  name: row.name,
  avatarUrl: row.avatar_url,
  data: row.data ?? {},
  updatedAt: toIso(row.updated_at),
});

export interface RoomSummary {
  roomId: string;
  name: string;
  visibility: Visibility;
  role: Role;
  latestSeq: number;
  /** The user's read cursor (0: never read). */
  readSeq: number;
  /** Messages of others after the cursor, not deleted. */
  unread: number;
}

/**
 * The rooms a user belongs to, with their latest seq. A cross-room read, so it runs in the
 * Worker on a connection opened for this request and closed after it (a pool kept across
 * requests in a stateless Worker hangs: ../shared/STACK.md, "What works").
 */
export const listRoomsOf = async (
  options: Pick<PostgresOptions, "connectionString" | "statementTimeoutMs">,
  tenant: string,
  userId: string,
  limit: number,
): Promise<RoomSummary[]> => {
  const store = new PostgresStore({ ...options, idleTimeoutMs: 1000, maxConnections: 1 });
  try {
    return await store.listRoomsOf(tenant, userId, limit);
  } finally {
    await store.close();
  }
};
