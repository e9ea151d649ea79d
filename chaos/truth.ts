// Reads the truth after a scenario: Postgres (through the same wsproxy the Worker uses, with every
// fault off by then) and the Redis mirror (straight from Redis, not through the REST shim).

import IORedis from "ioredis";
import { neonPool } from "../tools/local/neon.js";
import type { LocalStack } from "../tools/local/stack.js";
import type { RoomTruth, StoredRow, StreamTruth } from "./model.js";

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

  /** Every message and rooms.last_seq of each room, oldest first. Retries: the proxy may just have healed. */
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
          }>(
            "SELECT seq, id, user_id, client_msg_id, text, created_at FROM messages WHERE tenant = $1 AND room_id = $2 ORDER BY seq",
            [TENANT, roomId],
          );
          const state = await pool.query<{ last_seq: string }>("SELECT last_seq FROM rooms WHERE tenant = $1 AND room_id = $2", [
            TENANT,
            roomId,
          ]);
          const stored: StoredRow[] = rows.map((r) => ({
            seq: Number(r.seq),
            id: r.id,
            userId: r.user_id,
            clientMsgId: r.client_msg_id,
            text: r.text,
            createdAt: (r.created_at instanceof Date ? r.created_at : new Date(r.created_at)).toISOString(),
          }));
          const lastSeq = state.rows[0] ? Number(state.rows[0].last_seq) : null;
          out.set(roomId, { rows: stored, lastSeq });
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
