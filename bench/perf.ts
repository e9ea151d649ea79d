// Issue 16's rows, measured on the product path (tools/local/workerd.ts: the bundle `wrangler
// deploy` uploads, run by Miniflare without wrangler dev), side by side in one run:
//  - the commit at its floor: prepared (named) statements vs the same build with unnamed ones
//    (fixture BENCH_BASELINE=unnamed), send→receive p50 and p99 at 20 and 200 msg/s;
//  - the mirror's cost on the ack path, on the product path and under wrangler dev, at 100 and
//    1,000 msg/s, with the mirror lag and workerd's CPU;
//  - throughput at 4 and 16 writers;
//  - what idle sockets and rooms cost in workerd's memory on the product path.
import { performance } from "node:perf_hooks";
import { neonPool } from "../tools/local/neon.js";
import type { Context, ServerKey } from "./context.js";
import { streamKeyOf } from "./mirror.js";
import { type RoomsRecord, manyRooms } from "./scale.js";
import { pings, type RateRecord, rateOnce, type ThroughputRecord, throughput } from "./scenarios.js";
import { type Summary, summarize } from "./stats.js";

export interface PerfReport {
  /** Prepared vs unnamed statements, product path. */
  commit: RateRecord[];
  /** Mirror on vs off: product path (pp, ppmirror) and wrangler dev (ours, mirror). */
  mirror: RateRecord[];
  /** Commit → entry visible in the stream, product path. */
  lag: Array<{ server: ServerKey; rate: number; acked: number; visible: number; afterAckP50: number; afterAckP99: number }>;
  writers: ThroughputRecord[];
  idle: RoomsRecord[];
  /** The same idle measurement on the bare runtime (bench/fixture/bare.ts). */
  idleBare: RoomsRecord[];
  /**
   * The floors under the tail: ping→pong through the product path (answered by the runtime, no
   * room code), and a one-row INSERT committed with fsync from Node through the same wsproxy, at
   * 20 per second (the local stack alone: no Worker, no room).
   */
  floors: { ping: Summary; pgCommit: Summary };
}

const rotate = <T>(items: readonly T[], by: number): T[] => items.map((_, i) => items[(i + by) % items.length] as T);

export async function perfScenarios(ctx: Context): Promise<PerfReport> {
  const plan = ctx.plan;
  const rounds = plan.perfRounds ?? 1;
  const report: PerfReport = {
    commit: [],
    mirror: [],
    lag: [],
    writers: [],
    idle: [],
    idleBare: [],
    floors: { ping: await pings(ctx, "pp"), pgCommit: await pgCommitFloor(ctx, plan.perfRounds === 1 ? 60 : 300) },
  };
  for (let round = 0; round < rounds; round++) {
    for (const { rate, durationMs } of plan.perfRates ?? []) {
      for (const server of rotate(["pp", "ppunnamed"] as const, round)) report.commit.push(await rateOnce(ctx, server, rate, durationMs));
    }
  }
  const redisUrl = ctx.stack.redis?.redisUrl;
  for (let round = 0; round < rounds; round++) {
    for (const { rate, durationMs } of plan.perfMirrorRates ?? []) {
      const servers: ServerKey[] = rotate(["pp", "ppmirror", "ppmirror0", "ppmirror50", "ours", "mirror"] as const, round);
      for (const server of servers) {
        const watch =
          redisUrl && (server === "ppmirror" || server === "ppmirror0" || server === "ppmirror50")
            ? (room: string) => ({ redisUrl, streamKey: streamKeyOf(room) })
            : undefined;
        const record = await rateOnce(ctx, server, rate, durationMs, watch);
        report.mirror.push(record);
        if (record.mirror) {
          const sorted = [...record.mirror.afterAckMs].sort((a, b) => a - b);
          const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
          report.lag.push({ server, rate, acked: record.acked, visible: record.mirror.visible, afterAckP50: at(0.5), afterAckP99: at(0.99) });
        }
      }
    }
  }
  try {
    ctx.plan = { ...plan, writers: plan.perfWriters ?? [4, 16], throughputRounds: rounds };
    report.writers = await throughput(ctx, ["pp"]);
    // Per room and per socket apart: the same rooms with 1 and with 4 sockets each, a fresh server
    // each time; the difference is what the extra sockets hold, the rest is the rooms'.
    for (const [server, into] of [["ppfresh", report.idle], ["ppbare", report.idleBare]] as const) {
      for (const perRoom of [1, 4]) {
        if (perRoom !== 1) await ctx.restart(server);
        ctx.plan = { ...plan, manyRooms: plan.perfIdleRooms ?? 100, socketsPerRoom: [perRoom] };
        into.push(...(await manyRooms(ctx, server)));
      }
    }
  } finally {
    ctx.plan = plan;
  }
  return report;
}

/** One-row INSERTs, each its own transaction (fsync), 50 ms apart, from Node through the stack's wsproxy. */
async function pgCommitFloor(ctx: Context, count: number): Promise<Summary> {
  const pool = neonPool(ctx.stack.databaseUrl, ctx.stack.neonWsProxy || undefined, 1);
  const table = `bench_floor_${ctx.runId.replace(/[^a-z0-9]/gi, "_")}`;
  const samples: number[] = [];
  try {
    await pool.query(`CREATE TABLE IF NOT EXISTS ${table} (id bigint PRIMARY KEY, text text NOT NULL)`);
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      await pool.query({ name: "bench_floor_insert", text: `INSERT INTO ${table} (id, text) VALUES ($1, $2)`, values: [i, "floor"] });
      samples.push(performance.now() - started);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await pool.query(`DROP TABLE IF EXISTS ${table}`).catch(() => {});
    await pool.end().catch(() => {});
  }
  const s = summarize(samples);
  ctx.log("perf", `Postgres floor (one-row INSERT + fsync via the wsproxy, 20/s): n=${s.n} p50 ${s.p50.toFixed(2)} ms p99 ${s.p99.toFixed(2)} ms`);
  return s;
}
