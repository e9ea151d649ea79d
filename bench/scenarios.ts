// The measurements the issue asks for. Each compares servers inside one run, alternating their
// order between rounds, because on a shared 2-core machine only same-run ratios mean anything.
import type { Context, CpuReport, ServerKey } from "./context.js";
import { TEXT } from "./context.js";
import type {
  ConnectResult,
  ConnectVariant,
  FillResult,
  PingResult,
  RateJob,
  RateResult,
  ThroughputJob,
  ThroughputResult,
} from "./ipc.js";
import { int, ms, type Summary, summarize } from "./stats.js";
import { devToken, latestSeq } from "./wsclient.js";

const pctText = (cpu: CpuReport): string =>
  `cpu: loadgen ${Math.round(cpu.loadgenPct)}% (max proc ${Math.round(cpu.loadgenMaxPct)}%), workerd ${Math.round(cpu.workerdPct)}% + wrangler ${Math.round(cpu.serverPct - cpu.workerdPct)}%, pg ${Math.round(cpu.postgresPct)}%, machine ${Math.round(cpu.machinePct)}%`;

/** Rotates a list by `by`: round r starts with a different server, so none always goes first. */
const rotate = <T>(items: readonly T[], by: number): T[] => items.map((_, i) => items[(i + by) % items.length] as T);

// -----------------------------------------------------------------------------------------------
// Throughput: committed msg/s for one room with 1, 4 and 16 writers.

export interface ThroughputRecord {
  server: ServerKey;
  writers: number;
  round: number;
  msgPerS: number;
  acked: number;
  sent: number;
  errors: number;
  /** Warm-up sends before the window (one per writer). */
  warmup: number;
  /** The room's latest seq read back over REST after the run: must equal `acked` + `warmup`. */
  committed: number;
  ack: Summary;
  cpu: CpuReport;
  pgConnections: number;
}

export async function throughput(ctx: Context, servers: ServerKey[]): Promise<ThroughputRecord[]> {
  const { plan } = ctx;
  const records: ThroughputRecord[] = [];
  for (let round = 1; round <= plan.throughputRounds; round++) {
    for (const writers of plan.writers) {
      for (const server of rotate(servers, round + writers)) {
        const url = ctx.url(server);
        const room = ctx.room(`tp-${server}-w${writers}`);
        const users = Array.from({ length: writers }, (_, i) => `${room}-w${i}`);
        const procs = Math.min(ctx.pool.size, writers);
        const parts: ThroughputJob[] = Array.from({ length: procs }, (_, p) => ({
          kind: "throughput",
          url,
          room,
          users: users.filter((_, i) => i % procs === p),
          window: plan.window,
          durationMs: plan.throughputMs,
          text: TEXT,
        }));
        const m = await ctx.measure<ThroughputResult>(server, parts, plan.throughputMs);
        const sum = (f: (r: ThroughputResult) => number): number => m.parts.reduce((s, p) => s + f(p.result), 0);
        const committed = await latestSeq(url, room, await devToken(url, `${room}-checker`));
        const record: ThroughputRecord = {
          server,
          writers,
          round,
          msgPerS: (sum((r) => r.ackedInWindow) / plan.throughputMs) * 1000,
          acked: sum((r) => r.acked),
          sent: sum((r) => r.sent),
          errors: sum((r) => r.errors),
          warmup: sum((r) => r.warmup),
          committed,
          ack: summarize(m.parts.flatMap((p) => p.result.ackMs)),
          cpu: m.cpu,
          pgConnections: m.pgConnections,
        };
        records.push(record);
        const check =
          committed === record.acked + record.warmup && record.errors === 0
            ? ""
            : ` CHECK: latestSeq ${committed} vs ${record.acked} acked + ${record.warmup} warm-up, ${record.errors} errors`;
        ctx.log(
          "throughput",
          `${server.padEnd(8)} writers=${String(writers).padEnd(2)} round ${round}/${plan.throughputRounds}: ${int(record.msgPerS)} msg/s (${int(record.acked)} acked, ack p50 ${ms(record.ack.p50)} ms), ${pctText(m.cpu)}${check}`,
        );
      }
    }
  }
  return records;
}

// -----------------------------------------------------------------------------------------------
// Fixed rates: send→ack and send→receive at 10, 100, 1,000 msg/s in one room.

export interface RateRecord {
  server: ServerKey;
  rate: number;
  durationMs: number;
  sent: number;
  acked: number;
  received: number;
  errors: number;
  achievedPerS: number;
  ack: Summary;
  recv: Summary;
  maxScheduleLagMs: number;
  sustained: boolean;
  /** Why a rate was not sustained, or "" when it was. */
  why: string;
  cpu: CpuReport;
  pgConnections: number;
  mirror?: RateResult["mirror"];
  /** The room the run sent to (bench/webhooks.ts counts its deliveries). */
  room?: string;
}

/** Above this p99 send→ack, a fixed rate counts as not sustained: the backlog was growing. */
export const SUSTAIN_P99_MS = 250;

export async function rateOnce(
  ctx: Context,
  server: ServerKey,
  rate: number,
  durationMs: number,
  /** Set to also time the room's Redis stream: given the room, where to watch. */
  watch?: (room: string) => NonNullable<RateJob["mirror"]>,
): Promise<RateRecord> {
  const url = ctx.url(server);
  const room = ctx.room(`rate-${server}-${rate}`);
  const job: RateJob = { kind: "rate", url, room, rate, durationMs, text: TEXT };
  if (watch) job.mirror = watch(room);
  const m = await ctx.measure<RateResult>(server, [job], durationMs);
  const part = m.parts[0];
  if (!part) throw new Error("rate: no result");
  const r = part.result;
  const ack = summarize(r.ackMs);
  const recv = summarize(r.recvMs);
  const achievedPerS = (r.ackedInWindow / durationMs) * 1000;
  const problems: string[] = [];
  if (r.errors) problems.push(`${r.errors} error frames`);
  if (r.acked + r.errors < r.sent) problems.push(`${r.sent - r.acked - r.errors} sends never acked`);
  if (r.received < r.acked) problems.push(`${r.acked - r.received} acked messages never received`);
  if (ack.p99 > SUSTAIN_P99_MS) problems.push(`acks ${int(achievedPerS)}/s in the window, p99 ${ms(ack.p99)} ms: backlog grew`);
  if (r.maxScheduleLagMs > 50) problems.push(`the load generator fell ${ms(r.maxScheduleLagMs)} ms behind its schedule`);
  const record: RateRecord = {
    server,
    room,
    rate,
    durationMs,
    sent: r.sent,
    acked: r.acked,
    received: r.received,
    errors: r.errors,
    achievedPerS,
    ack,
    recv,
    maxScheduleLagMs: r.maxScheduleLagMs,
    sustained: problems.length === 0,
    why: problems.join("; "),
    cpu: m.cpu,
    pgConnections: m.pgConnections,
  };
  if (r.mirror) record.mirror = r.mirror;
  ctx.log(
    "rate",
    `${server.padEnd(8)} ${String(rate).padStart(4)} msg/s for ${durationMs / 1000}s: ${r.sent} sent, ${r.acked} acked, ${r.received} received; ack p50/p99/max ${ms(ack.p50)}/${ms(ack.p99)}/${ms(ack.max)} ms, recv p50/p99 ${ms(recv.p50)}/${ms(recv.p99)} ms${record.sustained ? "" : ` NOT SUSTAINED: ${record.why}`}, ${pctText(m.cpu)}`,
  );
  return record;
}

export async function rates(ctx: Context, servers: ServerKey[]): Promise<RateRecord[]> {
  const records: RateRecord[] = [];
  for (const [i, { rate, durationMs }] of ctx.plan.rates.entries()) {
    for (const server of rotate(servers, i)) records.push(await rateOnce(ctx, server, rate, durationMs));
  }
  return records;
}

// -----------------------------------------------------------------------------------------------
// Connect → ready: `last=50`, `since` with 1,000 missed, and the bare handshake (`since=latest`,
// nothing missed) on the same stack; plus ping→pong on an open socket as the floor.

export interface ConnectRecord {
  server: ServerKey;
  variant: string;
  summary: Summary;
  readyBytes: number;
  failures: string[];
}

export async function connects(ctx: Context, servers: ServerKey[]): Promise<ConnectRecord[]> {
  const records: ConnectRecord[] = [];
  for (const server of servers) {
    const url = ctx.url(server);
    const room = ctx.room(`connect-${server}`);
    const fill = await ctx.measure<FillResult>(server, [{ kind: "fill", url, room, count: ctx.plan.fill, text: TEXT }], 0);
    const latest = fill.parts[0]?.result.latestSeq ?? 0;
    if (latest < 1050) throw new Error(`connect: the room holds ${latest} messages, need ≥ 1,050`);
    ctx.log("connect", `${server.padEnd(8)} room filled with ${latest} messages`);
    const variants: ConnectVariant[] = [
      { name: "bare: since=latestSeq (nothing missed)", query: `since=${latest}`, expectMessages: 0 },
      { name: "last=50", query: "last=50", expectMessages: 50 },
      { name: "since=latestSeq-1000 (1,000 missed)", query: `since=${latest - 1000}`, expectMessages: 1000 },
    ];
    const m = await ctx.measure<ConnectResult>(
      server,
      [{ kind: "connect", url, room, variants, rounds: ctx.plan.connectRounds }],
      0,
    );
    for (const v of m.parts[0]?.result.variants ?? []) {
      const record: ConnectRecord = {
        server,
        variant: v.name,
        summary: summarize(v.ms),
        readyBytes: v.readyBytes,
        failures: v.failures,
      };
      records.push(record);
      ctx.log(
        "connect",
        `${server.padEnd(8)} ${v.name}: n=${record.summary.n} p50 ${ms(record.summary.p50)} ms, p99 ${ms(record.summary.p99)} ms, ready ${int(v.readyBytes)} B${v.failures.length ? ` FAILURES: ${v.failures.length} (${v.failures[0]})` : ""}`,
      );
    }
  }
  return records;
}

export async function pings(ctx: Context, server: ServerKey): Promise<Summary> {
  const url = ctx.url(server);
  const room = ctx.room(`ping-${server}`);
  const m = await ctx.measure<PingResult>(server, [{ kind: "ping", url, room, count: ctx.plan.pings }], 0);
  const summary = summarize(m.parts[0]?.result.ms ?? []);
  ctx.log("ping", `${server.padEnd(8)} ping→pong n=${summary.n}: p50 ${ms(summary.p50)} ms, p99 ${ms(summary.p99)} ms`);
  return summary;
}
