// Attachments (issue #17): where the bytes live (R2, one object per upload), how they are named,
// the settings, and the Postgres record of each upload (migrations/007). The room object owns
// every write of a room's record; the Worker's cleanup sweep (src/api/attachments.ts) is the one
// writer outside it, and it only ever removes uploads that are too old to be bound (see
// UNBOUND_MARGIN_S).

import { Pool, type PoolClient } from "@neondatabase/serverless";
import type { AttachmentDescriptor, AttachmentPart } from "../protocol/parts.js";
import { withTimeout } from "./timeout.js";
import { type RoomKey, StorageError } from "./types.js";

export type { AttachmentDescriptor };

/** The record of one upload. */
export interface AttachmentRecord extends AttachmentDescriptor {
  userId: string;
  /** The seq of the message that uses it; null until a send binds it. */
  boundSeq: number | null;
}

export const DEFAULT_ATTACHMENT_TYPES = [
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "application/pdf",
  "text/plain",
  "application/octet-stream",
] as const;

/** Images served inline (everything else is `Content-Disposition: attachment`); never HTML or SVG. */
export const INLINE_TYPES: ReadonlySet<string> = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

export interface AttachmentConfig {
  /** Largest upload, in bytes (ATTACHMENT_MAX_BYTES, default 10 MiB). */
  maxBytes: number;
  /** Content types accepted (ATTACHMENT_TYPES, comma-separated; default DEFAULT_ATTACHMENT_TYPES). */
  types: ReadonlySet<string>;
  /** Uploads not bound to a message after this long are deleted (ATTACHMENT_UNBOUND_TTL_S, default 24 h). */
  unboundTtlS: number;
  /** Unbound uploads one user may hold in one room (ATTACHMENT_PENDING_MAX, default 20). */
  pendingMax: number;
  /** Lifetime of a signed download URL (ATTACHMENT_URL_TTL_S, default 300 s). */
  urlTtlS: number;
  /** Key of the signed URLs' HMAC: ATTACHMENT_URL_SECRET, else derived from AUTH_SECRET. */
  urlSecret: string | undefined;
}

export interface AttachmentEnv {
  ATTACHMENT_MAX_BYTES?: string;
  ATTACHMENT_TYPES?: string;
  ATTACHMENT_UNBOUND_TTL_S?: string;
  ATTACHMENT_PENDING_MAX?: string;
  ATTACHMENT_URL_TTL_S?: string;
  ATTACHMENT_URL_SECRET?: string;
  AUTH_SECRET?: string;
}

/**
 * A send refuses an upload this much younger than the cleanup's cutoff: the sweep deletes only
 * rows older than unboundTtlS, a send binds only rows younger than unboundTtlS − margin, so the
 * sweep and a commit can never both act on one row (both ages are measured by Postgres' clock).
 */
export const UNBOUND_MARGIN_S = 3600;

const positiveInt = (value: string | undefined, fallback: number): number => {
  const n = Number(value);
  return value !== undefined && value !== "" && Number.isSafeInteger(n) && n > 0 ? n : fallback;
};

const configs = new WeakMap<object, AttachmentConfig>();

/** The attachment settings, parsed once per env object (like readConfig). */
export const attachmentConfig = (env: AttachmentEnv): AttachmentConfig => {
  let config = configs.get(env);
  if (!config) {
    const types = (env.ATTACHMENT_TYPES ?? "")
      .split(",")
      .map((t) => t.trim().toLowerCase())
      .filter((t) => t !== "");
    const unboundTtlS = Math.max(positiveInt(env.ATTACHMENT_UNBOUND_TTL_S, 24 * 3600), 2 * UNBOUND_MARGIN_S);
    config = {
      maxBytes: positiveInt(env.ATTACHMENT_MAX_BYTES, 10 * 1024 * 1024),
      types: new Set(types.length > 0 ? types : DEFAULT_ATTACHMENT_TYPES),
      unboundTtlS,
      pendingMax: positiveInt(env.ATTACHMENT_PENDING_MAX, 20),
      urlTtlS: positiveInt(env.ATTACHMENT_URL_TTL_S, 300),
      urlSecret: env.ATTACHMENT_URL_SECRET || (env.AUTH_SECRET ? `attachment-url:${env.AUTH_SECRET}` : undefined),
    };
    configs.set(env, config);
  }
  return config;
};

/** The room's prefix in the bucket: tenant and room in the key, so a purge is one prefix. */
export const roomPrefix = (room: RoomKey): string => `t/${room.tenant}/r/${room.roomId}/`;
/** One upload's object. The name the user gave never appears in a key (no path tricks reach R2). */
export const objectKey = (room: RoomKey, id: string): string => `${roomPrefix(room)}${id}`;

/** The part a committed message carries for an upload. */
export const partOf = (a: AttachmentDescriptor): AttachmentPart => ({
  type: "attachment",
  id: a.id,
  name: a.name,
  size: a.size,
  contentType: a.type,
  ...(a.width !== undefined ? { width: a.width } : {}),
  ...(a.height !== undefined ? { height: a.height } : {}),
});

/** Deletes objects in chunks of R2's 1,000-key limit. */
export const deleteObjects = async (bucket: R2Bucket, keys: readonly string[]): Promise<void> => {
  for (let i = 0; i < keys.length; i += 1000) await bucket.delete(keys.slice(i, i + 1000));
};

/** Deletes every object under a prefix (listing pages of 1,000). */
export const deletePrefix = async (bucket: R2Bucket, prefix: string): Promise<number> => {
  let deleted = 0;
  let cursor: string | undefined;
  for (;;) {
    const page = await bucket.list({ prefix, limit: 1000, ...(cursor ? { cursor } : {}) });
    const keys = page.objects.map((o) => o.key);
    if (keys.length > 0) await bucket.delete(keys);
    deleted += keys.length;
    if (!page.truncated) return deleted;
    cursor = page.cursor;
  }
};

interface AttachmentRow {
  id: string;
  user_id: string;
  name: string;
  type: string;
  size: string | number;
  sha256: string;
  width: number | null;
  height: number | null;
  created_at: Date | string;
  bound_seq: string | number | null;
  /** Only from `find`: the row is young enough to be bound (see UNBOUND_MARGIN_S). */
  bindable?: boolean;
  /** Only from `find`: the clientMsgId of the message that bound it (to recognise a resend). */
  bound_client_msg_id?: string | null;
}

export type FoundAttachment = AttachmentRecord & { bindable: boolean; boundClientMsgId: string | null };

const toRecord = (row: AttachmentRow): FoundAttachment => ({
  id: row.id,
  userId: row.user_id,
  name: row.name,
  size: Number(row.size),
  type: row.type,
  sha256: row.sha256,
  ...(row.width !== null ? { width: row.width } : {}),
  ...(row.height !== null ? { height: row.height } : {}),
  createdAt: (row.created_at instanceof Date ? row.created_at : new Date(row.created_at)).toISOString(),
  boundSeq: row.bound_seq === null ? null : Number(row.bound_seq),
  bindable: row.bindable ?? false,
  boundClientMsgId: row.bound_client_msg_id ?? null,
});

const ROW = "id, user_id, name, type, size, sha256, width, height, created_at, bound_seq";

export interface AttachmentStoreOptions {
  connectionString: string;
  statementTimeoutMs: number;
  idleTimeoutMs: number;
}

/**
 * The attachments table, through the same driver as the rest (src/storage/postgres.ts). The room
 * object keeps one (a pool of one connection, closed when idle); the Worker's sweep opens one per
 * run and closes it (a pool kept in a stateless Worker hangs: ../shared/STACK.md).
 */
export class AttachmentStore {
  private readonly pool: Pool;

  constructor(private readonly options: AttachmentStoreOptions) {
    this.pool = new Pool({
      connectionString: options.connectionString,
      max: 1,
      idleTimeoutMillis: options.idleTimeoutMs,
      connectionTimeoutMillis: options.statementTimeoutMs,
    });
    // workerd reports an `error` after a server-side close even when clean (postgres.ts).
    this.pool.on("error", () => {});
    this.pool.on("connect", (client: PoolClient) => client.on("error", () => {}));
  }

  private async query<T extends object>(what: string, text: string, params: unknown[]): Promise<T[]> {
    try {
      const { rows } = await withTimeout(
        this.pool.query<T>(text, params),
        this.options.statementTimeoutMs,
        () => new StorageError(`${what} did not answer within ${this.options.statementTimeoutMs} ms`, "timeout"),
      );
      return rows;
    } catch (cause) {
      if (cause instanceof StorageError) throw cause;
      throw new StorageError(`${what} failed`, "failed", { cause });
    }
  }

  /** Unbound uploads of `userId` in the room (the pending quota). */
  async pendingOf(room: RoomKey, userId: string): Promise<number> {
    const rows = await this.query<{ n: string }>(
      "counting pending uploads",
      "SELECT count(*) AS n FROM attachments WHERE tenant = $1 AND room_id = $2 AND user_id = $3 AND bound_seq IS NULL",
      [room.tenant, room.roomId, userId],
    );
    return Number(rows[0]?.n ?? 0);
  }

  async insert(room: RoomKey, userId: string, a: Omit<AttachmentDescriptor, "createdAt">): Promise<AttachmentDescriptor> {
    const rows = await this.query<AttachmentRow>(
      "recording an upload",
      `INSERT INTO attachments (tenant, room_id, id, user_id, name, type, size, sha256, width, height)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING ${ROW}`,
      [room.tenant, room.roomId, a.id, userId, a.name, a.type, a.size, a.sha256, a.width ?? null, a.height ?? null],
    );
    const row = rows[0];
    if (!row) throw new StorageError("recording an upload returned no row", "failed");
    const { userId: _u, boundSeq: _b, bindable: _x, boundClientMsgId: _c, ...descriptor } = toRecord(row);
    return descriptor;
  }

  /** The records of `ids` in this room (any user), each with whether it is still young enough to bind. */
  async find(room: RoomKey, ids: readonly string[], unboundTtlS: number): Promise<FoundAttachment[]> {
    if (ids.length === 0) return [];
    const rows = await this.query<AttachmentRow>(
      "reading uploads",
      `SELECT ${ROW}, created_at > now() - make_interval(secs => $4) AS bindable,
         (SELECT m.client_msg_id FROM messages m
          WHERE m.tenant = a.tenant AND m.room_id = a.room_id AND m.seq = a.bound_seq AND m.user_id = a.user_id) AS bound_client_msg_id
       FROM attachments a WHERE tenant = $1 AND room_id = $2 AND id = ANY($3::text[])`,
      [room.tenant, room.roomId, [...ids], unboundTtlS - UNBOUND_MARGIN_S],
    );
    return rows.map(toRecord);
  }

  /** The ids bound to these seqs (a deleted message's attachments). */
  async boundTo(room: RoomKey, seqs: readonly number[]): Promise<string[]> {
    if (seqs.length === 0) return [];
    const rows = await this.query<{ id: string }>(
      "reading a message's uploads",
      "SELECT id FROM attachments WHERE tenant = $1 AND room_id = $2 AND bound_seq = ANY($3::bigint[])",
      [room.tenant, room.roomId, [...seqs]],
    );
    return rows.map((r) => r.id);
  }

  /** Forgets uploads whose objects are gone (a deleted message's). */
  async remove(room: RoomKey, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.query("forgetting uploads", "DELETE FROM attachments WHERE tenant = $1 AND room_id = $2 AND id = ANY($3::text[])", [
      room.tenant,
      room.roomId,
      [...ids],
    ]);
  }

  /**
   * What the sweep removes, across tenants, oldest first: uploads never bound and older than
   * `ttlS`, and uploads of deleted messages that the room did not get to delete (it does so
   * right after the delete commits; this is the backstop).
   */
  async expired(ttlS: number, limit: number): Promise<Array<RoomKey & { id: string }>> {
    const rows = await this.query<{ tenant: string; room_id: string; id: string }>(
      "listing expired uploads",
      `(SELECT tenant, room_id, id, created_at FROM attachments
        WHERE bound_seq IS NULL AND created_at < now() - make_interval(secs => $1)
        ORDER BY created_at LIMIT $2)
       UNION ALL
       (SELECT a.tenant, a.room_id, a.id, a.created_at FROM attachments a
        JOIN messages m ON m.tenant = a.tenant AND m.room_id = a.room_id AND m.seq = a.bound_seq
        WHERE a.bound_seq IS NOT NULL AND m.deleted
        LIMIT $2)`,
      [ttlS, limit],
    );
    return rows.map((r) => ({ tenant: r.tenant, roomId: r.room_id, id: r.id }));
  }

  /** Removes the rows `expired` listed, re-checking (in the statement) that each still qualifies. */
  async removeExpired(items: ReadonlyArray<RoomKey & { id: string }>, ttlS: number): Promise<number> {
    if (items.length === 0) return 0;
    const rows = await this.query<{ id: string }>(
      "removing expired uploads",
      `DELETE FROM attachments a USING unnest($1::text[], $2::text[], $3::text[]) AS x(tenant, room_id, id)
       WHERE a.tenant = x.tenant AND a.room_id = x.room_id AND a.id = x.id
         AND ((a.bound_seq IS NULL AND a.created_at < now() - make_interval(secs => $4))
              OR EXISTS (SELECT 1 FROM messages m WHERE m.tenant = a.tenant AND m.room_id = a.room_id
                         AND m.seq = a.bound_seq AND m.deleted))
       RETURNING a.id`,
      [items.map((i) => i.tenant), items.map((i) => i.roomId), items.map((i) => i.id), ttlS],
    );
    return rows.length;
  }

  /** One upload's record, or undefined. */
  async get(room: RoomKey, id: string): Promise<AttachmentRecord | undefined> {
    const rows = await this.query<AttachmentRow>(
      "reading an upload",
      // A deleted message's attachments are gone for every reader, even before their objects are.
      `SELECT ${ROW} FROM attachments a WHERE tenant = $1 AND room_id = $2 AND id = $3
         AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.tenant = a.tenant AND m.room_id = a.room_id
                         AND m.seq = a.bound_seq AND m.deleted)`,
      [room.tenant, room.roomId, id],
    );
    const row = rows[0];
    if (!row) return undefined;
    const { bindable: _x, boundClientMsgId: _c, ...record } = toRecord(row);
    return record;
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => {});
  }
}
