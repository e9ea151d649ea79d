// Postgres for moderation and the server API (migrations/009): room bans and mutes, tenant bans,
// reports, API keys, and the cross-room reads behind erasing and exporting a user. One small pool
// per store, like AttachmentStore: the room object keeps one; the Worker opens one per request
// and closes it after (a module-level pool in the stateless Worker hangs: docs/architecture.md).

import { Pool, type PoolClient } from "@neondatabase/serverless";
import { withTimeout } from "./timeout.js";
import { type RoomKey, StorageError, type Visibility } from "./types.js";

export interface ModerationStoreOptions {
  connectionString: string;
  statementTimeoutMs: number;
  idleTimeoutMs: number;
  /**
   * A pool to share (the room object's own, src/storage/postgres.ts): every restriction check at a
   * join or a first send would otherwise hold one more connection per active room, and 20 busy
   * rooms plus their idle pools ran a local Postgres out of connections.
   */
  pool?: Pool;
}

export type RestrictionKind = "ban" | "mute";

/** One restriction as stored: until = null means until it is lifted. */
export interface Restriction {
  until: string | null;
  reason: string | null;
  createdBy: string;
  createdAt: string;
}

/** Everything that restricts one user in one room, read in one query. */
export interface ModerationState {
  ban: Restriction | null;
  mute: Restriction | null;
  tenantBan: Restriction | null;
}

export const NO_RESTRICTIONS: ModerationState = { ban: null, mute: null, tenantBan: null };

export interface Report {
  id: string;
  roomId: string;
  reporter: string;
  subject: string | null;
  seq: number | null;
  reason: string;
  createdAt: string;
}

export interface ApiKeyRecord {
  id: string;
  tenant: string;
  name: string;
  secretHash: string;
  createdAt: string;
  revokedAt: string | null;
}

export interface RoomListing {
  roomId: string;
  name: string;
  visibility: Visibility;
  metadata: Record<string, unknown>;
  createdBy: string | null;
  createdAt: string;
  latestSeq: number;
}

interface RestrictionRow {
  kind: string;
  until: Date | null;
  reason: string | null;
  created_by: string;
  created_at: Date;
}

const restrictionOf = (row: RestrictionRow): Restriction => ({
  until: row.until === null ? null : row.until.toISOString(),
  reason: row.reason,
  createdBy: row.created_by,
  createdAt: row.created_at.toISOString(),
});

export class ModerationStore {
  private readonly pool: Pool;
  private readonly ownsPool: boolean;

  constructor(private readonly options: ModerationStoreOptions) {
    this.ownsPool = options.pool === undefined;
    if (options.pool) {
      this.pool = options.pool;
      return;
    }
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

  async close(): Promise<void> {
    if (this.ownsPool) await this.pool.end().catch(() => {});
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

  // ---------------------------------------------------------------------------------------
  // Bans and mutes

  /** The user's restrictions in the room and the tenant that have not expired (one round trip). */
  async stateOf(room: RoomKey, userId: string): Promise<ModerationState> {
    const rows = await this.query<RestrictionRow>(
      "reading a user's restrictions",
      `SELECT kind, until, reason, created_by, created_at FROM room_restrictions
        WHERE tenant = $1 AND room_id = $2 AND user_id = $3 AND (until IS NULL OR until > now())
       UNION ALL
       SELECT 'tenant_ban', until, reason, created_by, created_at FROM tenant_bans
        WHERE tenant = $1 AND user_id = $3 AND (until IS NULL OR until > now())`,
      [room.tenant, room.roomId, userId],
    );
    const state: ModerationState = { ...NO_RESTRICTIONS };
    for (const row of rows) {
      if (row.kind === "ban") state.ban = restrictionOf(row);
      else if (row.kind === "mute") state.mute = restrictionOf(row);
      else state.tenantBan = restrictionOf(row);
    }
    return state;
  }

  /**
   * Bans or mutes the user in the room (replacing an earlier one). A ban also ends their
   * membership (left_at, like a removal: their role is kept on record) in the same statement.
   * Returns the restriction and whether a membership was ended.
   */
  async restrict(
    room: RoomKey,
    userId: string,
    kind: RestrictionKind,
    until: string | null,
    reason: string | null,
    actor: string,
  ): Promise<{ restriction: Restriction; wasMember: boolean }> {
    const rows = await this.query<RestrictionRow & { was_member: boolean }>(
      "restricting a user",
      `WITH r AS (
         INSERT INTO room_restrictions (tenant, room_id, user_id, kind, until, reason, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant, room_id, user_id, kind)
         DO UPDATE SET until = EXCLUDED.until, reason = EXCLUDED.reason, created_by = EXCLUDED.created_by, created_at = now()
         RETURNING kind, until, reason, created_by, created_at),
       m AS (
         UPDATE room_members SET left_at = now()
          WHERE $4 = 'ban' AND tenant = $1 AND room_id = $2 AND user_id = $3 AND left_at IS NULL
         RETURNING 1)
       SELECT r.*, EXISTS (SELECT 1 FROM m) AS was_member FROM r`,
      [room.tenant, room.roomId, userId, kind, until, reason, actor],
    );
    const row = rows[0];
    if (!row) throw new StorageError("restricting a user returned no row", "failed");
    return { restriction: restrictionOf(row), wasMember: row.was_member };
  }

  /** Lifts a ban or a mute; false when there was none in force. */
  async lift(room: RoomKey, userId: string, kind: RestrictionKind): Promise<boolean> {
    const rows = await this.query<{ until: Date | null }>(
      "lifting a restriction",
      "DELETE FROM room_restrictions WHERE tenant = $1 AND room_id = $2 AND user_id = $3 AND kind = $4 RETURNING until",
      [room.tenant, room.roomId, userId, kind],
    );
    return rows.some((r) => r.until === null || r.until.getTime() > Date.now());
  }

  async banInTenant(tenant: string, userId: string, until: string | null, reason: string | null, actor: string): Promise<Restriction> {
    const rows = await this.query<RestrictionRow>(
      "banning a user from the tenant",
      `INSERT INTO tenant_bans (tenant, user_id, until, reason, created_by) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (tenant, user_id)
       DO UPDATE SET until = EXCLUDED.until, reason = EXCLUDED.reason, created_by = EXCLUDED.created_by, created_at = now()
       RETURNING 'tenant_ban' AS kind, until, reason, created_by, created_at`,
      [tenant, userId, until, reason, actor],
    );
    const row = rows[0];
    if (!row) throw new StorageError("banning a user returned no row", "failed");
    return restrictionOf(row);
  }

  async unbanInTenant(tenant: string, userId: string): Promise<boolean> {
    const rows = await this.query<{ user_id: string }>(
      "lifting a tenant ban",
      "DELETE FROM tenant_bans WHERE tenant = $1 AND user_id = $2 RETURNING user_id",
      [tenant, userId],
    );
    return rows.length > 0;
  }

  // ---------------------------------------------------------------------------------------
  // Reports

  async insertReport(tenant: string, report: Omit<Report, "createdAt">): Promise<Report> {
    const rows = await this.query<{ created_at: Date }>(
      "recording a report",
      "INSERT INTO reports (id, tenant, room_id, reporter, subject, seq, reason) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at",
      [report.id, tenant, report.roomId, report.reporter, report.subject, report.seq, report.reason],
    );
    return { ...report, createdAt: (rows[0]?.created_at ?? new Date()).toISOString() };
  }

  /** Reports of the tenant, oldest first, after the cursor (the last id of the previous page). */
  async listReports(tenant: string, after: string | undefined, limit: number): Promise<Report[]> {
    const rows = await this.query<{
      id: string;
      room_id: string;
      reporter: string;
      subject: string | null;
      seq: string | null;
      reason: string;
      created_at: Date;
    }>(
      "listing reports",
      `SELECT id, room_id, reporter, subject, seq, reason, created_at FROM reports
        WHERE tenant = $1 AND ($2::text IS NULL OR (created_at, id) > (SELECT created_at, id FROM reports WHERE tenant = $1 AND id = $2))
        ORDER BY created_at, id LIMIT $3`,
      [tenant, after ?? null, limit],
    );
    return rows.map((r) => ({
      id: r.id,
      roomId: r.room_id,
      reporter: r.reporter,
      subject: r.subject,
      seq: r.seq === null ? null : Number(r.seq),
      reason: r.reason,
      createdAt: r.created_at.toISOString(),
    }));
  }

  // ---------------------------------------------------------------------------------------
  // API keys

  async insertKey(key: Omit<ApiKeyRecord, "createdAt" | "revokedAt">): Promise<ApiKeyRecord> {
    const rows = await this.query<{ created_at: Date }>(
      "creating an API key",
      "INSERT INTO api_keys (id, tenant, name, secret_hash) VALUES ($1, $2, $3, $4) RETURNING created_at",
      [key.id, key.tenant, key.name, key.secretHash],
    );
    return { ...key, createdAt: (rows[0]?.created_at ?? new Date()).toISOString(), revokedAt: null };
  }

  async findKey(id: string): Promise<ApiKeyRecord | undefined> {
    const rows = await this.query<{ id: string; tenant: string; name: string; secret_hash: string; created_at: Date; revoked_at: Date | null }>(
      "reading an API key",
      "SELECT id, tenant, name, secret_hash, created_at, revoked_at FROM api_keys WHERE id = $1",
      [id],
    );
    const r = rows[0];
    return r
      ? { id: r.id, tenant: r.tenant, name: r.name, secretHash: r.secret_hash, createdAt: r.created_at.toISOString(), revokedAt: r.revoked_at?.toISOString() ?? null }
      : undefined;
  }

  async listKeys(tenant: string): Promise<Array<Omit<ApiKeyRecord, "secretHash">>> {
    const rows = await this.query<{ id: string; tenant: string; name: string; created_at: Date; revoked_at: Date | null }>(
      "listing API keys",
      "SELECT id, tenant, name, created_at, revoked_at FROM api_keys WHERE tenant = $1 ORDER BY created_at, id LIMIT 1000",
      [tenant],
    );
    return rows.map((r) => ({ id: r.id, tenant: r.tenant, name: r.name, createdAt: r.created_at.toISOString(), revokedAt: r.revoked_at?.toISOString() ?? null }));
  }

  /** Revokes a key of this tenant (another tenant's key id is "not found", like an unknown one). */
  async revokeKey(tenant: string, id: string): Promise<boolean> {
    const rows = await this.query<{ id: string }>(
      "revoking an API key",
      "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE tenant = $1 AND id = $2 RETURNING id",
      [tenant, id],
    );
    return rows.length > 0;
  }

  // ---------------------------------------------------------------------------------------
  // Rooms of a tenant, and users across rooms

  /** The tenant's rooms (not deleted) by id, after the cursor (the last roomId of the previous page). */
  async listRooms(tenant: string, after: string | undefined, limit: number): Promise<RoomListing[]> {
    const rows = await this.query<{
      room_id: string;
      name: string | null;
      visibility: Visibility;
      metadata: Record<string, unknown>;
      created_by: string | null;
      created_at: Date;
      last_seq: string;
    }>(
      "listing rooms",
      `SELECT room_id, name, visibility, metadata, created_by, created_at, last_seq FROM rooms
        WHERE tenant = $1 AND deleted_at IS NULL AND ($2::text IS NULL OR room_id > $2)
        ORDER BY room_id LIMIT $3`,
      [tenant, after ?? null, limit],
    );
    return rows.map((r) => ({
      roomId: r.room_id,
      name: r.name ?? r.room_id,
      visibility: r.visibility,
      metadata: r.metadata,
      createdBy: r.created_by,
      createdAt: r.created_at.toISOString(),
      latestSeq: Number(r.last_seq),
    }));
  }

  /**
   * Every room (not deleted) in which the user left a trace: messages, a membership (also a
   * past one), or a read cursor. Erasing a user visits each.
   */
  async roomsOfUser(tenant: string, userId: string): Promise<string[]> {
    const rows = await this.query<{ room_id: string }>(
      "finding a user's rooms",
      `SELECT room_id FROM (
         SELECT DISTINCT room_id FROM messages WHERE tenant = $1 AND user_id = $2
         UNION SELECT room_id FROM room_members WHERE tenant = $1 AND user_id = $2
         UNION SELECT room_id FROM read_cursors WHERE tenant = $1 AND user_id = $2) u
       WHERE EXISTS (SELECT 1 FROM rooms r WHERE r.tenant = $1 AND r.room_id = u.room_id AND r.deleted_at IS NULL)
       ORDER BY room_id`,
      [tenant, userId],
    );
    return rows.map((r) => r.room_id);
  }

  /** Seqs of the user's messages (kind message) in the room that are not deleted yet, ascending. */
  async liveMessageSeqs(room: RoomKey, userId: string, afterSeq: number, limit: number): Promise<number[]> {
    const rows = await this.query<{ seq: string }>(
      "finding a user's messages",
      `SELECT seq FROM messages WHERE tenant = $1 AND user_id = $2 AND room_id = $3 AND seq > $4 AND kind = 'message' AND NOT deleted
        ORDER BY seq LIMIT $5`,
      [room.tenant, userId, room.roomId, afterSeq, limit],
    );
    return rows.map((r) => Number(r.seq));
  }

  /** The user's membership, read cursor and reactions in the room go (the erase's last step per room). */
  async forgetUserInRoom(room: RoomKey, userId: string): Promise<void> {
    await this.query(
      "forgetting a user in a room",
      `WITH m AS (DELETE FROM room_members WHERE tenant = $1 AND room_id = $2 AND user_id = $3 RETURNING 1),
            c AS (DELETE FROM read_cursors WHERE tenant = $1 AND room_id = $2 AND user_id = $3 RETURNING 1)
       SELECT (SELECT count(*) FROM m) + (SELECT count(*) FROM c) AS n`,
      [room.tenant, room.roomId, userId],
    );
  }

  async deleteProfile(tenant: string, userId: string): Promise<void> {
    await this.query("deleting a profile", "DELETE FROM profiles WHERE tenant = $1 AND user_id = $2", [tenant, userId]);
  }

  /** What the tenant holds about a user, for an export: memberships with cursors, and a page of their messages. */
  async exportUser(
    tenant: string,
    userId: string,
    after: { roomId: string; seq: number } | undefined,
    limit: number,
  ): Promise<{
    memberships: Array<{ roomId: string; role: string; joinedAt: string; leftAt: string | null; readSeq: number | null }>;
    messages: Array<{ roomId: string; seq: number; kind: string; text: string; createdAt: string; deleted: boolean; editedAt: string | null }>;
  }> {
    const memberships = after
      ? []
      : (
          await this.query<{ room_id: string; role: string; joined_at: Date; left_at: Date | null; read_seq: string | null }>(
            "exporting memberships",
            `SELECT m.room_id, m.role, m.joined_at, m.left_at, c.read_seq FROM room_members m
               LEFT JOIN read_cursors c ON c.tenant = m.tenant AND c.room_id = m.room_id AND c.user_id = m.user_id
              WHERE m.tenant = $1 AND m.user_id = $2 ORDER BY m.room_id`,
            [tenant, userId],
          )
        ).map((r) => ({
          roomId: r.room_id,
          role: r.role,
          joinedAt: r.joined_at.toISOString(),
          leftAt: r.left_at?.toISOString() ?? null,
          readSeq: r.read_seq === null ? null : Number(r.read_seq),
        }));
    const messages = (
      await this.query<{ room_id: string; seq: string; kind: string; text: string; created_at: Date; deleted: boolean; edited_at: Date | null }>(
        "exporting messages",
        `SELECT room_id, seq, kind, text, created_at, deleted, edited_at FROM messages
          WHERE tenant = $1 AND user_id = $2 AND kind IN ('message', 'edit', 'reaction')
            AND ($3::text IS NULL OR (room_id, seq) > ($3, $4::bigint))
          ORDER BY room_id, seq LIMIT $5`,
        [tenant, userId, after?.roomId ?? null, after?.seq ?? 0, limit],
      )
    ).map((r) => ({
      roomId: r.room_id,
      seq: Number(r.seq),
      kind: r.kind,
      text: r.text,
      createdAt: r.created_at.toISOString(),
      deleted: r.deleted,
      editedAt: r.edited_at?.toISOString() ?? null,
    }));
    return { memberships, messages };
  }
}

/** A store for one request in the Worker, closed after `run`. */
export const withModerationStore = async <T>(
  options: Pick<ModerationStoreOptions, "connectionString" | "statementTimeoutMs">,
  run: (store: ModerationStore) => Promise<T>,
): Promise<T> => {
  const store = new ModerationStore({ ...options, idleTimeoutMs: 1000 });
  try {
    return await run(store);
  } finally {
    await store.close();
  }
};
