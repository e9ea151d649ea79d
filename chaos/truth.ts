// Reads the truth after a scenario: Postgres (through the same wsproxy the Worker uses, with every
// fault off by then) and the Redis mirror (straight from Redis, not through the REST shim).

import IORedis from "ioredis";
import { neonPool } from "../tools/local/neon.js";
import type { LocalStack } from "../tools/local/stack.js";
import type { ReactionRow, RoomTruth, StoredRow, StreamTruth } from "./model.js";

const { Redis } = IORedis;

export const TENANT = "default";

/** The mirror's stream key for a room (hash tag = tenant:room, so one room stays on one slot). */
export const streamKey = (roomId: string): string => `chat:{${TENANT}:${roomId}}:messages`;

export class Truth {
  private readonly redis: InstanceType<typeof Redis> | undefined;

  constructor(private readonly stack: LocalStack) {
    if (stack.redis) {
      this.redis = new Redis(stack.redis.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
      this.redis.on("error", () => {});
    }
  }

  /** Every entry (with its current form), rooms.last_seq and the reactions of each room, oldest first. Retries: the proxy may just have healed. */
  async rooms(roomIds: readonly string[]): Promise<Map<string, RoomTruth>> {
    for (let attempt = 1; ; attempt++) {
      const pool = neonPool(this.stack.databaseUrl, this.stack.neonWsProxy || undefined, 1);
      try {
        const out = new Map<string, RoomTruth>();
        for (const roomId of roomIds) {
          const { rows } = await pool.query<{
            seq: string;
            id: string;
            user_id: string;
            client_msg_id: string;
            text: string;
            created_at: Date | string;
            kind: string;
            target: string | null;
            reply_to: string | null;
            data: Record<string, unknown> | null;
            edited_at: Date | string | null;
            version: number;
            deleted: boolean;
            reply_count: number;
            last_reply_seq: string | null;
            updated_seq: string | null;
          }>(
            `SELECT seq, id, user_id, client_msg_id, text, created_at, kind, target, reply_to, data, edited_at, version, deleted,
                    reply_count, last_reply_seq, updated_seq
             FROM messages WHERE tenant = $1 AND room_id = $2 ORDER BY seq`,
            [TENANT, roomId],
          );
          const state = await pool.query<{ last_seq: string }>("SELECT last_seq FROM rooms WHERE tenant = $1 AND room_id = $2", [
            TENANT,
            roomId,
          ]);
          const reacted = await pool.query<{ target_seq: string; emoji: string; user_id: string }>(
            "SELECT target_seq, emoji, user_id FROM reactions WHERE tenant = $1 AND room_id = $2 ORDER BY target_seq, emoji, user_id",
            [TENANT, roomId],
          );
          const iso = (v: Date | string): string => (v instanceof Date ? v : new Date(v)).toISOString();
          const stored: StoredRow[] = rows.map((r) => {
            const row: StoredRow = {
              seq: Number(r.seq),
              id: r.id,
              userId: r.user_id,
              clientMsgId: r.client_msg_id,
              text: r.text,
              createdAt: iso(r.created_at),
              kind: r.kind,
              version: Number(r.version),
              deleted: r.deleted,
              replyCount: Number(r.reply_count),
            };
            if (r.target !== null) row.target = Number(r.target);
            if (r.reply_to !== null) row.replyTo = Number(r.reply_to);
            if (r.data !== null) row.data = r.data;
            if (r.edited_at !== null) row.editedAt = iso(r.edited_at);
            if (r.last_reply_seq !== null) row.lastReplySeq = Number(r.last_reply_seq);
            if (r.updated_seq !== null) row.updatedSeq = Number(r.updated_seq);
            return row;
          });
          const lastSeq = state.rows[0] ? Number(state.rows[0].last_seq) : null;
          const reactions: ReactionRow[] = reacted.rows.map((r) => ({
            target: Number(r.target_seq),
            emoji: r.emoji,
            userId: r.user_id,
          }));
          out.set(roomId, { rows: stored, lastSeq, reactions });
        }
        return out;
      } catch (e) {
        if (attempt >= 5) throw e;
        await new Promise((r) => setTimeout(r, 300 * attempt));
      } finally {
        await Promise.race([pool.end().catch(() => {}), new Promise((r) => setTimeout(r, 1000))]);
      }
    }
  }

  /** rooms.last_seq per room (cheap; polled while clients catch up). */
  async lastSeqs(roomIds: readonly string[]): Promise<Map<string, number>> {
    const pool = neonPool(this.stack.databaseUrl, this.stack.neonWsProxy || undefined, 1);
    try {
      const { rows } = await pool.query<{ room_id: string; last_seq: string }>(
        "SELECT room_id, last_seq FROM rooms WHERE tenant = $1 AND room_id = ANY($2::text[])",
        [TENANT, roomIds],
      );
      return new Map(rows.map((r) => [r.room_id, Number(r.last_seq)]));
    } finally {
      await Promise.race([pool.end().catch(() => {}), new Promise((r) => setTimeout(r, 1000))]);
    }
  }

  get hasRedis(): boolean {
    return this.redis !== undefined;
  }

  async stream(roomId: string): Promise<StreamTruth> {
    if (!this.redis) return { exists: false, entries: [] };
    if (this.redis.status === "wait") await this.redis.connect();
    const key = streamKey(roomId);
    if ((await this.redis.exists(key)) === 0) return { exists: false, entries: [] };
    const raw = (await this.redis.xrange(key, "-", "+")) as Array<[string, string[]]>;
    return { exists: true, entries: raw.map(([id, fields]) => ({ id, fields })) };
  }

  close(): void {
    this.redis?.disconnect();
  }
}
