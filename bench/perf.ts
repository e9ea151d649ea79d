// Issue 16's rows, measured on the product path (tools/local/workerd.ts: the bundle `wrangler
// deploy` uploads, run by Miniflare without wrangler dev), side by side in one run:
//  - the commit at its floor: prepared (named) statements vs the same build with unnamed ones
//    (fixture BENCH_BASELINE=unnamed), send→receive p50 and p99 at 20 and 200 msg/s;
//  - the mirror's cost on the ack path, on the product path and under wrangler dev, at 100 and
//    1,000 msg/s, with the mirror lag and workerd's CPU;
//  - throughput at 4 and 16 writers;
//  - what idle sockets and rooms cost in workerd's memory on the product path.
import type { Context, ServerKey } from "./context.js";
import { streamKeyOf } from "./mirror.js";
import { type RoomsRecord, manyRooms } from "./scale.js";
import { type RateRecord, rateOnce, type ThroughputRecord, throughput } from "./scenarios.js";

export interface PerfReport {
  /** Prepared vs unnamed statements, product path. */
  commit: RateRecord[];
  /** Mirror on vs off: product path (pp, ppmirror) and wrangler dev (ours, mirror). */
  mirror: RateRecord[];
  /** Commit → entry visible in the stream, product path. */
  lag: Array<{ rate: number; acked: number; visible: number; afterAckP50: number; afterAckP99: number }>;
  writers: ThroughputRecord[];
  idle: RoomsRecord[];
}

const rotate = <T>(items: readonly T[], by: number): T[] => items.map((_, i) => items[(i + by) % items.length] as T);

export async function perfScenarios(ctx: Context): Promise<PerfReport> {
  const plan = ctx.plan;
  const rounds = plan.perfRounds ?? 1;
  const report: PerfReport = { commit: [], mirror: [], lag: [], writers: [], idle: [] };
  for (let round = 0; round < rounds; round++) {
    for (const { rate, durationMs } of plan.perfRates ?? []) {
      for (const server of rotate(["pp", "ppunnamed"] as const, round)) report.commit.push(await rateOnce(ctx, server, rate, durationMs));
    }
  }
  const redisUrl = ctx.stack.redis?.redisUrl;
  for (let round = 0; round < rounds; round++) {
    for (const { rate, durationMs } of plan.perfMirrorRates ?? []) {
      const servers: ServerKey[] = rotate(["pp", "ppmirror", "ours", "mirror"] as const, round);
      for (const server of servers) {
        const watch =
          redisUrl && server === "ppmirror" ? (room: string) => ({ redisUrl, streamKey: streamKeyOf(room) }) : undefined;
        const record = await rateOnce(ctx, server, rate, durationMs, watch);
        report.mirror.push(record);
        if (record.mirror) {
          const sorted = [...record.mirror.afterAckMs].sort((a, b) => a - b);
          const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
          report.lag.push({ rate, acked: record.acked, visible: record.mirror.visible, afterAckP50: at(0.5), afterAckP99: at(0.99) });
        }
      }
    }
  }
  try {
    ctx.plan = { ...plan, writers: plan.perfWriters ?? [4, 16], throughputRounds: rounds };
    report.writers = await throughput(ctx, ["pp"]);
    ctx.plan = { ...plan, manyRooms: plan.perfIdleRooms ?? 100 };
    report.idle = await manyRooms(ctx, "ppfresh");
  } finally {
    ctx.plan = plan;
  }
  return report;
}
