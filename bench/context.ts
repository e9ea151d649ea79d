// What every scenario shares: the stack, the servers under comparison, the load generators, the
// CPU bookkeeping and the progress log. One `measure()` runs one measurement and samples /proc
// and the wsproxy's connection count around it.
import { performance } from "node:perf_hooks";
import type { LocalStack } from "../tools/local/stack.js";
import type { WranglerServer } from "../tools/local/wrangler.js";
import { type CpuGroup, cpuBetween, type CpuSnapshot, snapshot } from "./cpu.js";
import type { CpuUse, Job, JobResult } from "./ipc.js";
import type { LoadGenPool, PartResult } from "./pool.js";

/**
 * Vars every server gets. The per-user send rate limit (SEND_RATE_PER_S / SEND_BURST, 10/s and 30
 * by default) would cap one sender far below the rates measured here; the bench measures the
 * commit path, so the limits are lifted (the limiter still runs on every send).
 */
export const BENCH_VARS: Record<string, string> = {
  SEND_RATE_PER_S: "1000000",
  SEND_BURST: "1000000",
  // 300 sequential handshakes of one user: a socket still closing must not count against the cap.
  MAX_SOCKETS_PER_USER: "1000",
};

/**
 * The servers a run can start. All run the same code against the same stack; only Worker vars
 * differ, and the baselines (`fixture`) run the benchmark fixture's Worker (bench/fixture/), which
 * is the product's with one seam overridden, so production code carries no baseline modes. All but `mirror` run without the Redis mirror: under `wrangler dev` every outbound
 * fetch (the mirror's Upstash calls) also costs wrangler's inspector proxy a debug-log round trip,
 * which would swamp the commit path on 2 cores. The mirror is measured on its own (`mirror`).
 */
export const SERVERS = {
  hook: {
    label: "ours, plus a tenant whose before-commit hook answers from a local receiver (bench/hook.ts)",
    short: "hook",
    vars: {},
    color: "#8250df",
  },
  ours: {
    label: "group commit + kept-open pool (ours)",
    short: "ours",
    vars: {},
    color: "#1f6feb",
  },
  batch1: {
    label: "one transaction per message (fixture BENCH_BASELINE=batch1)",
    short: "1 txn/msg",
    vars: { BENCH_BASELINE: "batch1" },
    fixture: true,
    color: "#d1242f",
  },
  perbatch: {
    label: "new Postgres connection per statement (fixture BENCH_BASELINE=perbatch)",
    short: "conn/batch",
    vars: { BENCH_BASELINE: "perbatch" },
    fixture: true,
    color: "#bf8700",
  },
  coldhist: {
    label: "ours with the in-memory history window off (HISTORY_WINDOW=1)",
    short: "window off",
    vars: { HISTORY_WINDOW: "1" },
    color: "#8250df",
  },
  fresh: {
    label: "ours on a server of its own, for the many-rooms memory measurement (nothing else runs on it), PG_IDLE_MS=500",
    short: "ours (own server)",
    // Each room object keeps its own Postgres pool open for PG_IDLE_MS (10 s by default): 1,000
    // rooms joined within 10 s would need ~1,000 connections, past a local max_connections of 100.
    vars: { PG_IDLE_MS: "500" },
    color: "#0969da",
  },
  slowmem: {
    label: "ours on a server of its own, for the slow-consumer memory measurement (nothing else runs on it)",
    short: "ours (own server, slow consumers)",
    vars: {},
    color: "#57606a",
  },
  hooks: {
    label: "ours with webhooks on: one endpoint, every event type, a local receiver (bench/webhooks.ts)",
    short: "webhooks on",
    vars: {},
    color: "#cf222e",
  },
  mirror: {
    label: "ours with the Redis mirror on (Upstash REST shim)",
    short: "mirror on",
    vars: {},
    color: "#1a7f37",
  },
  // The product path (tools/local/workerd.ts): the bundle `wrangler deploy` uploads, run by
  // Miniflare directly, without wrangler dev's inspector proxy on every outbound call.
  pp: {
    label: "ours on the product path (Miniflare, no wrangler dev)",
    short: "ours (product path)",
    vars: {},
    product: true,
    color: "#0550ae",
  },
  ppunnamed: {
    label: "ours on the product path with unnamed (re-parsed) statements (fixture BENCH_BASELINE=unnamed)",
    short: "unnamed statements (product path)",
    vars: { BENCH_BASELINE: "unnamed" },
    fixture: true,
    product: true,
    color: "#953800",
  },
  ppmirror: {
    label: "ours on the product path with the Redis mirror on",
    short: "mirror on (product path)",
    vars: {},
    product: true,
    color: "#116329",
  },
  ppmirror0: {
    label: "ours on the product path with the Redis mirror on and no linger (MIRROR_LINGER_MS=0: a request per commit)",
    short: "mirror on, no linger (product path)",
    vars: { MIRROR_LINGER_MS: "0" },
    product: true,
    color: "#2da44e",
  },
  ppmirror50: {
    label: "ours on the product path with the Redis mirror on and MIRROR_LINGER_MS=50",
    short: "mirror on, linger 50 ms (product path)",
    vars: { MIRROR_LINGER_MS: "50" },
    product: true,
    color: "#4ac26b",
  },
  ppbare: {
    label: "the runtime alone on the product path: a Durable Object per room that accepts hibernatable sockets and sends one frame, none of our code (bench/fixture/bare.ts)",
    short: "bare runtime (product path)",
    vars: {},
    product: true,
    bare: true,
    color: "#6e7781",
  },
  ppreplica: {
    label: "ours on the product path with regional replicas on (REPLICATION=on, REPLICA_SHARDS=8, the Redis mirror on); ?region= picks the route",
    short: "replicas (product path)",
    vars: { REPLICATION: "on", REPLICA_SHARDS: "8", REPLICA_REGION_OVERRIDE: "true" },
    product: true,
    color: "#8250df",
  },
  ppfresh: {
    label: "ours on the product path, a server of its own for the idle-memory measurement, PG_IDLE_MS=500",
    short: "ours (product path, own server)",
    vars: { PG_IDLE_MS: "500" },
    product: true,
    color: "#0a3069",
  },
} as const;

export type ServerKey = keyof typeof SERVERS;

export interface Plan {
  throughputRounds: number;
  throughputMs: number;
  writers: number[];
  /** In-flight sends per writer in the throughput runs. */
  window: number;
  rates: Array<{ rate: number; durationMs: number }>;
  /** Rates for the mirror on/off comparison and the mirror lag. */
  mirrorRates: Array<{ rate: number; durationMs: number }>;
  connectRounds: number;
  pings: number;
  /** Messages put into a room before the handshake measurements (≥ 1,000 + 50). */
  fill: number;
  /** Joins per variant for the time-to-consistent-view measurement, and the writer's rate meanwhile. */
  joinRounds: number;
  joinWriteRate: number;
  /** Receiving sockets in one room for the fanout measurement (each step a fresh room); messages per step. */
  fanoutSockets: number[];
  fanoutMessages: number;
  fanoutIntervalMs: number;
  /** Rooms for the many-rooms measurement, sockets per room alternating between these, idle window. */
  manyRooms: number;
  socketsPerRoom: number[];
  idleMs: number;
  /** Cursor cost (bench/costs.ts): rounds, window, writers and reader sockets in the room. */
  cursorRounds?: number;
  cursorMs?: number;
  cursorWriters?: number;
  cursorReaders?: number;
  /** Rooms list: rooms the user belongs to, messages per room (one step each), timed requests per step. */
  listRooms?: number;
  listMessagesPerRoom?: number[];
  listRequests?: number;
  /** Slow consumers: sockets, messages the writer sends, how long the slow sockets stay paused after it. */
  slowSockets?: number;
  slowMessages?: number;
  slowHoldMs?: number;
  /** bench/perf.ts: rounds per row, the rates of the commit-floor and mirror rows, idle rooms. */
  perfRounds?: number;
  perfRates?: Array<{ rate: number; durationMs: number }>;
  perfMirrorRates?: Array<{ rate: number; durationMs: number }>;
  perfWriters?: number[];
  perfIdleRooms?: number;
}

export const FULL_PLAN: Plan = {
  throughputRounds: 3,
  throughputMs: 3000,
  writers: [1, 4, 16],
  window: 16,
  rates: [
    { rate: 10, durationMs: 10_000 },
    { rate: 100, durationMs: 6000 },
    { rate: 1000, durationMs: 5000 },
  ],
  mirrorRates: [
    { rate: 100, durationMs: 5000 },
    { rate: 1000, durationMs: 4000 },
  ],
  connectRounds: 100,
  pings: 500,
  fill: 1100,
  joinRounds: 100,
  joinWriteRate: 100,
  fanoutSockets: [1000, 2000],
  fanoutMessages: 50,
  fanoutIntervalMs: 100,
  manyRooms: 1000,
  socketsPerRoom: [3, 2],
  idleMs: 10_000,
  cursorRounds: 3,
  cursorMs: 3000,
  cursorWriters: 4,
  cursorReaders: 10,
  listRooms: 1000,
  listMessagesPerRoom: [10, 200],
  listRequests: 30,
  slowSockets: 8,
  slowMessages: 2500,
  slowHoldMs: 1500,
  perfRounds: 3,
  perfRates: [
    { rate: 20, durationMs: 10_000 },
    { rate: 200, durationMs: 6000 },
  ],
  perfMirrorRates: [
    { rate: 100, durationMs: 5000 },
    { rate: 1000, durationMs: 4000 },
  ],
  perfWriters: [4, 16],
  perfIdleRooms: 500,
};

export const QUICK_PLAN: Plan = {
  throughputRounds: 1,
  throughputMs: 1000,
  writers: [1, 4, 16],
  window: 16,
  rates: [
    { rate: 10, durationMs: 1000 },
    { rate: 100, durationMs: 1000 },
    { rate: 1000, durationMs: 1000 },
  ],
  mirrorRates: [
    { rate: 100, durationMs: 1000 },
    { rate: 1000, durationMs: 1000 },
  ],
  connectRounds: 10,
  pings: 50,
  fill: 1100,
  joinRounds: 10,
  joinWriteRate: 100,
  fanoutSockets: [200],
  fanoutMessages: 10,
  fanoutIntervalMs: 100,
  manyRooms: 100,
  socketsPerRoom: [3, 2],
  idleMs: 3000,
  cursorRounds: 1,
  cursorMs: 1000,
  cursorWriters: 4,
  cursorReaders: 10,
  listRooms: 1000,
  listMessagesPerRoom: [10, 200],
  listRequests: 10,
  slowSockets: 8,
  slowMessages: 1300,
  slowHoldMs: 1000,
  perfRounds: 1,
  perfRates: [
    { rate: 20, durationMs: 2000 },
    { rate: 200, durationMs: 1000 },
  ],
  perfMirrorRates: [
    { rate: 100, durationMs: 1000 },
    { rate: 1000, durationMs: 1000 },
  ],
  perfWriters: [4, 16],
  perfIdleRooms: 50,
};

/** A chat message of typical size (64 characters). */
export const TEXT = "benchmark message: the quick brown fox jumps over the lazy dog 42";

export interface CpuReport {
  /** Sum over the load generators of their own process.cpuUsage(), % of one core. */
  loadgenPct: number;
  /** The busiest single load generator, % of one core (100 = saturated). */
  loadgenMaxPct: number;
  /** This process: the local stack's wsproxy (every Postgres byte) and Upstash shim. */
  mainPct: number;
  /** The wrangler process group of the server under test: workerd plus wrangler's own Node process. */
  serverPct: number;
  /** workerd alone (the Worker and the room objects run here). */
  workerdPct: number;
  postgresPct: number;
  redisPct: number;
  /** All cores of the machine, % busy (includes anything else running). */
  machinePct: number;
}

export interface Measured<R extends JobResult> {
  parts: Array<PartResult<R>>;
  cpu: CpuReport;
  /** Connections the wsproxy opened to Postgres during the measurement (drain included). */
  pgConnections: number;
}

export class Context {
  readonly runId = `bench-${Date.now().toString(36)}`;
  private roomCount = 0;
  /** Stops a server and starts it anew (same vars, empty state); set by bench/run.ts. */
  restart: (key: ServerKey) => Promise<void> = () => Promise.reject(new Error("restart is not available"));

  constructor(
    readonly stack: LocalStack,
    readonly pool: LoadGenPool,
    readonly servers: Map<ServerKey, WranglerServer>,
    /** Scenarios may narrow it for one measurement (bench/perf.ts) and put it back. */
    public plan: Plan,
    /** performance.now() when the run started: progress lines show time since then. */
    readonly t0: number,
  ) {}

  /** A fresh room per measurement, with a readable name: `bench-<run>-<n>-<what>`. */
  room(what: string): string {
    this.roomCount++;
    return `${this.runId}-${this.roomCount}-${what}`.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 128);
  }

  url(key: ServerKey): string {
    const server = this.servers.get(key);
    if (!server) throw new Error(`server ${key} was not started`);
    return server.url;
  }

  has(key: ServerKey): boolean {
    return this.servers.has(key);
  }

  log(scenario: string, text: string): void {
    const elapsed = ((performance.now() - this.t0) / 1000).toFixed(1).padStart(6);
    console.log(`[${elapsed}s] ${scenario.padEnd(11)} ${text}`);
  }

  cpuGroups(server: ServerKey): CpuGroup[] {
    const loadgens = new Set(this.pool.pids);
    const group = this.servers.get(server)?.child.pid ?? -1;
    return [
      { name: "main", match: (p) => p.pid === process.pid },
      { name: "loadgen", match: (p) => loadgens.has(p.pid) },
      { name: "server", match: (p) => p.pgrp === group },
      { name: "workerd", match: (p) => p.pgrp === group && p.comm === "workerd" },
      { name: "wrangler", match: (p) => p.pgrp === group && p.comm !== "workerd" },
      { name: "postgres", match: (p) => p.comm === "postgres" },
      { name: "redis", match: (p) => p.comm.startsWith("redis-server") },
    ];
  }

  private async proxyConnections(): Promise<number> {
    if (!this.stack.faultsUrl) return Number.NaN;
    try {
      const res = await fetch(this.stack.faultsUrl, { signal: AbortSignal.timeout(5000) });
      const body: unknown = await res.json();
      const stats = typeof body === "object" && body !== null && "stats" in body ? body.stats : undefined;
      const total = typeof stats === "object" && stats !== null && "total" in stats ? stats.total : undefined;
      return typeof total === "number" ? total : Number.NaN;
    } catch {
      return Number.NaN;
    }
  }

  /** Runs one measurement against `server`: parts start together, CPU sampled over the window. */
  async measure<R extends JobResult>(
    server: ServerKey,
    parts: Job[],
    durationMs: number,
    /** `atEnd` runs right after the end-of-window CPU sample (e.g. to read RSS while sockets are open). */
    options: { prepareTimeoutMs?: number; atStart?: () => void; atEnd?: () => void } = {},
  ): Promise<Measured<R>> {
    const groups = this.cpuGroups(server);
    const connectionsBefore = await this.proxyConnections();
    let start: CpuSnapshot | undefined;
    let end: CpuSnapshot | undefined;
    const results = await this.pool.run<R>(
      parts,
      durationMs + 15_000,
      {
        durationMs,
        onStart: () => {
          start = snapshot(groups);
          options.atStart?.();
        },
        onEnd: () => {
          end = snapshot(groups);
          options.atEnd?.();
        },
      },
      options.prepareTimeoutMs,
    );
    const connectionsAfter = await this.proxyConnections();
    const pct = (use: CpuUse): number => ((use.userUs + use.systemUs) / 1000 / use.wallMs) * 100;
    const procs = start && end ? cpuBetween(start, end) : { groups: {}, machinePct: Number.NaN };
    const g = (name: string): number => procs.groups[name] ?? Number.NaN;
    return {
      parts: results,
      cpu: {
        loadgenPct: results.reduce((sum, r) => sum + pct(r.cpu), 0),
        loadgenMaxPct: Math.max(...results.map((r) => pct(r.cpu))),
        mainPct: g("main"),
        serverPct: g("server"),
        workerdPct: g("workerd"),
        postgresPct: g("postgres"),
        redisPct: g("redis"),
        machinePct: procs.machinePct,
      },
      pgConnections: connectionsAfter - connectionsBefore,
    };
  }
}
