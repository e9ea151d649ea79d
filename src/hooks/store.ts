// The dead-letter record of webhook events given up on (migrations/008). Written by the room
// object only (it decides when an event is given up on); read by operators and tests.

import { Pool, type PoolClient } from "@neondatabase/serverless";
import { withTimeout } from "../storage/timeout.js";
import { type RoomKey, StorageError } from "../storage/types.js";
import type { WebhookEvent } from "./events.js";

export interface DeadLetterStore {
  record(room: RoomKey, endpointId: string, events: readonly WebhookEvent[], attempts: number, error: string): Promise<void>;
}

export class PostgresDeadLetters implements DeadLetterStore {
  private readonly pool: Pool;

  constructor(private readonly options: { connectionString: string; statementTimeoutMs: number; idleTimeoutMs: number }) {
    // One connection, closed when idle (an open socket keeps the object awake): dead letters are rare.
    this.pool = new Pool({ connectionString: options.connectionString, max: 1, idleTimeoutMillis: options.idleTimeoutMs, connectionTimeoutMillis: options.statementTimeoutMs });
    // workerd reports an `error` after a server-side close even when clean (src/storage/postgres.ts).
    this.pool.on("error", () => {});
    this.pool.on("connect", (client: PoolClient) => client.on("error", () => {}));
  }

  async record(room: RoomKey, endpointId: string, events: readonly WebhookEvent[], attempts: number, error: string): Promise<void> {
    if (events.length === 0) return;
    try {
      await withTimeout(
        this.pool.query(
          `INSERT INTO webhook_dead_letters (tenant, room_id, endpoint_id, event_id, event_type, seq, event, attempts, last_error)
           SELECT $1, $2, $3, x.id, x.type, (x.event->>'seq')::bigint, x.event, $7, $8
           FROM unnest($4::text[], $5::text[], $6::jsonb[]) AS x(id, type, event)
           ON CONFLICT (tenant, endpoint_id, event_id) DO UPDATE SET attempts = EXCLUDED.attempts, last_error = EXCLUDED.last_error`,
          [room.tenant, room.roomId, endpointId, events.map((e) => e.id), events.map((e) => e.type), events.map((e) => JSON.stringify(e)), attempts, error.slice(0, 500)],
        ),
        this.options.statementTimeoutMs,
        () => new StorageError("recording a webhook dead letter did not answer in time", "timeout"),
      );
    } catch (cause) {
      if (cause instanceof StorageError) throw cause;
      throw new StorageError("unable to record a webhook dead letter", "failed", { cause });
    }
  }
}
