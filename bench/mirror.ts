// The Redis mirror's cost and lag: send→ack on a server with the mirror on vs ours without it, and
// commit → entry visible in the room's stream. If the build does not mirror, the lag measurement
// says so (no stream entries appeared) instead of reporting zeros.
import type { Context } from "./context.js";
import { type RateRecord, rateOnce } from "./scenarios.js";
import { type Summary, summarize } from "./stats.js";

/** The room's stream (src/storage/redis.ts): tenant `default` for dev tokens, entry ids `<seq>-0`. */
export const streamKeyOf = (roomId: string, tenant = "default"): string => `chat:{${tenant}:${roomId}}:messages`;

export interface MirrorLagRecord {
  rate: number;
  acked: number;
  /** Acked messages whose stream entry was seen. */
  visible: number;
  /** ack received → entry visible via XREAD BLOCK (the ack follows the commit, so this ≈ commit → visible). */
  afterAck: Summary;
  afterSend: Summary;
}

export interface MirrorReport {
  /** Why nothing (or only part) was measured; "" when all ran. */
  note: string;
  onOff: RateRecord[];
  lag: MirrorLagRecord[];
}

/** send→ack with the mirror off ("ours") and on ("mirror"), alternating which goes first. */
export async function mirrorOnOff(ctx: Context): Promise<RateRecord[]> {
  const records: RateRecord[] = [];
  for (const [i, { rate, durationMs }] of ctx.plan.mirrorRates.entries()) {
    const order = i % 2 === 0 ? (["mirror", "ours"] as const) : (["ours", "mirror"] as const);
    for (const server of order) records.push(await rateOnce(ctx, server, rate, durationMs));
  }
  return records;
}

/** Commit → entry visible in the room's Redis stream, read with XREAD BLOCK by the sender's process. */
export async function mirrorLag(ctx: Context, redisUrl: string): Promise<MirrorLagRecord[]> {
  const records: MirrorLagRecord[] = [];
  for (const { rate, durationMs } of ctx.plan.mirrorRates) {
    const r = await rateOnce(ctx, "mirror", rate, durationMs, (room) => ({ redisUrl, streamKey: streamKeyOf(room) }));
    const mirror = r.mirror ?? { visible: 0, afterAckMs: [], afterSendMs: [] };
    const record: MirrorLagRecord = {
      rate,
      acked: r.acked,
      visible: mirror.visible,
      afterAck: summarize(mirror.afterAckMs),
      afterSend: summarize(mirror.afterSendMs),
    };
    records.push(record);
    ctx.log(
      "mirror-lag",
      `${rate} msg/s: ${record.visible}/${record.acked} acked messages seen in the stream; ack→visible p50 ${record.afterAck.p50.toFixed(2)} ms p99 ${record.afterAck.p99.toFixed(2)} ms`,
    );
  }
  return records;
}

export async function mirrorScenarios(ctx: Context): Promise<MirrorReport> {
  const redis = ctx.stack.redis;
  if (!redis) return { note: "not measured: the local stack found no Redis", onOff: [], lag: [] };
  if (!ctx.has("mirror") || !ctx.has("ours")) return { note: "not measured: the servers were not started", onOff: [], lag: [] };
  const onOff = await mirrorOnOff(ctx);
  const lag = await mirrorLag(ctx, redis.redisUrl);
  const unseen = lag.every((l) => l.visible === 0);
  const note = unseen
    ? "no stream entries appeared: this build does not mirror to Redis yet (or every mirror write failed), so on/off compares two servers that do the same work"
    : "";
  return { note, onOff, lag };
}
