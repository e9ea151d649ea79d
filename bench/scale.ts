// Scale measurements: a joining client's time to a consistent view (our one-frame handshake vs
// socket-then-REST), fanout to many sockets of one room, and many idle rooms (memory, idle CPU).
import { type Context, type CpuReport, type ServerKey, TEXT } from "./context.js";
import { rssKiB } from "./cpu.js";
import type { FanoutJob, FanoutResult, FillResult, JoinVariant, JoinViewResult, RoomsJob, RoomsResult } from "./ipc.js";
import { int, median, ms, type Summary, summarize } from "./stats.js";

const cpuText = (cpu: CpuReport): string =>
  `cpu: loadgen ${Math.round(cpu.loadgenPct)}% (max proc ${Math.round(cpu.loadgenMaxPct)}%), workerd ${Math.round(cpu.workerdPct)}% + wrangler ${Math.round(cpu.serverPct - cpu.workerdPct)}%, pg ${Math.round(cpu.postgresPct)}%, machine ${Math.round(cpu.machinePct)}%`;

// -----------------------------------------------------------------------------------------------
// Time to a consistent view

export interface JoinViewRecord {
  name: string;
  strategy: JoinVariant["strategy"];
  want: JoinVariant["want"];
  summary: Summary;
  duplicatesMedian: number;
  truncated: number;
  restCalls: number;
  failures: string[];
}

export interface JoinViewReport {
  server: ServerKey;
  rate: number;
  written: number;
  records: JoinViewRecord[];
  cpu: CpuReport;
}

export const JOIN_VARIANTS: JoinVariant[] = [
  { name: "one frame: last=50", strategy: "oneframe", want: "last50" },
  { name: "two-step: since=latest, then GET ?limit=50", strategy: "twostep", want: "last50" },
  { name: "one frame: since=cursor (1,000 missed)", strategy: "oneframe", want: "missed1000" },
  { name: "two-step: since=latest, then GET ?after=cursor&limit=1000", strategy: "twostep", want: "missed1000" },
];

export async function joinView(ctx: Context, server: ServerKey = "ours"): Promise<JoinViewReport> {
  const url = ctx.url(server);
  const room = ctx.room(`joinview-${server}`);
  const fill = await ctx.measure<FillResult>(server, [{ kind: "fill", url, room, count: ctx.plan.fill, text: TEXT }], 0);
  const latest = fill.parts[0]?.result.latestSeq ?? 0;
  if (latest < 1050) throw new Error(`joinview: the room holds ${latest} messages, need ≥ 1,050`);
  ctx.log(
    "joinview",
    `${server.padEnd(8)} room filled with ${latest} messages; ${ctx.plan.joinRounds} joins per variant while a writer sends ${ctx.plan.joinWriteRate} msg/s`,
  );
  const m = await ctx.measure<JoinViewResult>(
    server,
    [
      {
        kind: "joinview",
        url,
        room,
        rate: ctx.plan.joinWriteRate,
        rounds: ctx.plan.joinRounds,
        variants: JOIN_VARIANTS,
        text: TEXT,
      },
    ],
    0,
  );
  const result = m.parts[0]?.result;
  if (!result) throw new Error("joinview: no result");
  const records = result.variants.map((v, i): JoinViewRecord => {
    const variant = JOIN_VARIANTS[i] as JoinVariant;
    const record: JoinViewRecord = {
      name: v.name,
      strategy: variant.strategy,
      want: variant.want,
      summary: summarize(v.ms),
      duplicatesMedian: v.duplicates.length ? median(v.duplicates) : Number.NaN,
      truncated: v.truncated,
      restCalls: v.restCalls,
      failures: v.failures,
    };
    ctx.log(
      "joinview",
      `${server.padEnd(8)} ${v.name}: n=${record.summary.n} p50 ${ms(record.summary.p50)} ms, p99 ${ms(record.summary.p99)} ms; truncated ready ${v.truncated}, REST calls ${v.restCalls}, dup median ${record.duplicatesMedian}${v.failures.length ? ` FAILURES: ${v.failures.length} (${v.failures[0]})` : ""}`,
    );
    return record;
  });
  ctx.log("joinview", `${server.padEnd(8)} writer acked ${result.written} messages during the joins; ${cpuText(m.cpu)}`);
  return { server, rate: ctx.plan.joinWriteRate, written: result.written, records, cpu: m.cpu };
}

// -----------------------------------------------------------------------------------------------
// Fanout

export interface FanoutRecord {
  server: ServerKey;
  sockets: number;
  messages: number;
  /** Deliveries seen / sockets × messages. */
  delivered: number;
  expected: number;
  first: Summary;
  last: Summary;
  openS: number;
  openRetries: number;
  errors: number;
  cpu: CpuReport | undefined;
  /** Why the step did not run or did not complete; "" when it did. */
  failure: string;
}

export async function fanout(ctx: Context, server: ServerKey = "ours"): Promise<FanoutRecord[]> {
  const url = ctx.url(server);
  const records: FanoutRecord[] = [];
  const { fanoutMessages: count, fanoutIntervalMs: intervalMs } = ctx.plan;
  for (const n of ctx.plan.fanoutSockets) {
    const room = ctx.room(`fanout-${n}`);
    const users = Array.from({ length: n }, (_, i) => `${room}-r${i}`);
    const procs = ctx.pool.size;
    const parts: FanoutJob[] = Array.from({ length: procs }, (_, p) => ({
      kind: "fanout",
      url,
      room,
      users: users.filter((_, i) => i % procs === p),
      count,
      intervalMs,
      text: TEXT,
      ...(p === 0 ? { publisher: `${room}-publisher` } : {}),
    }));
    ctx.log("fanout", `${server.padEnd(8)} opening ${int(n)} sockets (distinct users) in one room over ${procs} load generators`);
    let m: Awaited<ReturnType<typeof ctx.measure<FanoutResult>>>;
    try {
      m = await ctx.measure<FanoutResult>(server, parts, count * intervalMs, { prepareTimeoutMs: 240_000 });
    } catch (error) {
      const failure = error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
      ctx.log("fanout", `${server.padEnd(8)} ${int(n)} sockets FAILED: ${failure}`);
      records.push({
        server,
        sockets: n,
        messages: count,
        delivered: 0,
        expected: n * count,
        first: summarize([]),
        last: summarize([]),
        openS: Number.NaN,
        openRetries: 0,
        errors: 0,
        cpu: undefined,
        failure,
      });
      break; // a bigger room will not open either
    }
    const results = m.parts.map((p) => p.result);
    const sentAt = results.find((r) => r.sentAt.length)?.sentAt ?? [];
    const first: number[] = [];
    const last: number[] = [];
    let delivered = 0;
    for (let i = 0; i < count; i++) {
      const sent = sentAt[i];
      const got = results.reduce((s, r) => s + (r.got[i] ?? 0), 0);
      delivered += got;
      if (sent === undefined || got === 0) continue;
      first.push(Math.min(...results.map((r) => r.firstAt[i] ?? Number.NaN).filter(Number.isFinite)) - sent);
      // Only a message every socket got has a "last receive".
      if (got === n) last.push(Math.max(...results.map((r) => r.lastAt[i] ?? Number.NaN).filter(Number.isFinite)) - sent);
    }
    const record: FanoutRecord = {
      server,
      sockets: n,
      messages: count,
      delivered,
      expected: n * count,
      first: summarize(first),
      last: summarize(last),
      openS: Math.max(...results.map((r) => r.openMs)) / 1000,
      openRetries: results.reduce((s, r) => s + r.openRetries, 0),
      errors: results.reduce((s, r) => s + r.errors, 0),
      cpu: m.cpu,
      failure: delivered === n * count ? "" : `${int(n * count - delivered)} deliveries missing`,
    };
    records.push(record);
    ctx.log(
      "fanout",
      `${server.padEnd(8)} ${int(n)} sockets (opened in ${record.openS.toFixed(1)} s, ${record.openRetries} joins retried), ${count} messages: publish→first p50/p99 ${ms(record.first.p50)}/${ms(record.first.p99)} ms, publish→last p50/p99 ${ms(record.last.p50)}/${ms(record.last.p99)} ms; ${int(delivered)}/${int(n * count)} delivered${record.failure ? ` CHECK: ${record.failure}` : ""}, ${cpuText(m.cpu)}`,
    );
  }
  return records;
}

// -----------------------------------------------------------------------------------------------
// Many idle rooms

export interface RoomsRecord {
  server: ServerKey;
  rooms: number;
  sockets: number;
  opened: number;
  openS: number;
  openRetries: number;
  droppedWhileIdle: number;
  failures: string[];
  idleS: number;
  /** RSS at the end of the idle window, KiB: workerd processes, and wrangler's Node process. */
  workerdKiB: number;
  wranglerKiB: number;
  cpu: CpuReport;
}

export async function manyRooms(ctx: Context, server: ServerKey = "fresh"): Promise<RoomsRecord[]> {
  const url = ctx.url(server);
  const records: RoomsRecord[] = [];
  const procs = ctx.pool.size;
  const { idleMs, socketsPerRoom } = ctx.plan;
  // A small set of users reused across rooms (the per-user cap is per room); tokens are cheap then.
  const userPool = 64;
  for (const roomCount of [0, ctx.plan.manyRooms]) {
    const rooms = Array.from({ length: roomCount }, (_, i) => {
      const room = ctx.room(`idle-${i}`);
      const k = socketsPerRoom[i % socketsPerRoom.length] ?? 2;
      return { room, users: Array.from({ length: k }, (_, j) => `${ctx.runId}-idle-u${(i * 3 + j) % userPool}`) };
    });
    const sockets = rooms.reduce((s, r) => s + r.users.length, 0);
    // Zero rooms still sends one job per process so the load generators' idle CPU is measured too.
    const parts: RoomsJob[] = Array.from({ length: procs }, (_, p) => ({
      kind: "rooms",
      url,
      rooms: rooms.filter((_, i) => i % procs === p),
      holdMs: idleMs,
    }));
    ctx.log(
      "rooms",
      `${server.padEnd(8)} opening ${int(roomCount)} rooms with ${int(sockets)} sockets, then ${idleMs / 1000} s idle`,
    );
    let rss: Record<string, number> = {};
    const groups = ctx.cpuGroups(server);
    const m = await ctx.measure<RoomsResult>(server, parts, idleMs, {
      prepareTimeoutMs: 600_000,
      atEnd: () => {
        rss = rssKiB(groups);
      },
    });
    const results = m.parts.map((p) => p.result);
    const record: RoomsRecord = {
      server,
      rooms: roomCount,
      sockets,
      opened: results.reduce((s, r) => s + r.opened, 0),
      openS: Math.max(...results.map((r) => r.openMs)) / 1000,
      openRetries: results.reduce((s, r) => s + r.openRetries, 0),
      droppedWhileIdle: results.reduce((s, r) => s + r.droppedWhileIdle, 0),
      failures: results.flatMap((r) => r.failures),
      idleS: idleMs / 1000,
      workerdKiB: rss.workerd ?? Number.NaN,
      wranglerKiB: rss.wrangler ?? Number.NaN,
      cpu: m.cpu,
    };
    records.push(record);
    ctx.log(
      "rooms",
      `${server.padEnd(8)} ${int(roomCount)} rooms: ${int(record.opened)}/${int(sockets)} sockets open (in ${record.openS.toFixed(1)} s, ${record.openRetries} joins retried)${record.failures.length ? ` FAILURES: ${record.failures.length} (${record.failures[0]})` : ""}${record.droppedWhileIdle ? `, ${record.droppedWhileIdle} closed while idle` : ""}; RSS workerd ${(record.workerdKiB / 1024).toFixed(1)} MiB, wrangler ${(record.wranglerKiB / 1024).toFixed(1)} MiB; idle ${cpuText(m.cpu)}`,
    );
  }
  return records;
}
