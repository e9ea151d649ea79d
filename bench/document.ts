// Turns one run's records into tables (console and docs/benchmarks.md) and SVG charts.
import type { PerfReport } from "./perf.js";
import { perfSection, perfTables } from "./perfdoc.js";
import { type CpuReport, type Plan, SERVERS, type ServerKey } from "./context.js";
import type { CursorRecord, RoomListRecord, SlowRecord } from "./costs.js";
import { COSTS_TITLE, costsSection, costsTables } from "./costsdoc.js";
import { machineLine, type MachineInfo } from "./machine.js";
import type { MirrorReport } from "./mirror.js";
import { type BarChart, barChartSvg, type Table, tableToMarkdown } from "./report.js";
import type { FanoutRecord, JoinViewReport, RoomsRecord } from "./scale.js";
import { type ConnectRecord, type RateRecord, SUSTAIN_P99_MS, type ThroughputRecord } from "./scenarios.js";
import { int, median, ms, ratio, type Summary } from "./stats.js";

export interface Results {
  machine: MachineInfo;
  date: string;
  command: string;
  quick: boolean;
  plan: Plan;
  stack: string;
  procs: number;
  throughput: ThroughputRecord[];
  rates: RateRecord[];
  connects: ConnectRecord[];
  ping: Summary | undefined;
  mirror: MirrorReport | undefined;
  /** Absent in records written before these scenarios existed. */
  joinView?: JoinViewReport | undefined;
  fanout?: FanoutRecord[];
  rooms?: RoomsRecord[];
  /** bench/costs.ts (absent in older records). */
  cursors?: CursorRecord[];
  roomList?: RoomListRecord[];
  slow?: SlowRecord[];
  /** bench/perf.ts (issue 16), product path. */
  perf?: PerfReport;
  durationS: number;
}

const short = (key: ServerKey): string => SERVERS[key].short;

/** True when parameterised queries through the local wsproxy wait on Nagle's algorithm (see machine.ts). */
export const nagled = (m: MachineInfo): boolean => m.proxyProbe.paramMs > 10 && m.proxyProbe.paramMs > 5 * m.proxyProbe.simpleMs;

const byServer = <T extends { server: ServerKey }>(records: readonly T[], server: ServerKey): T[] =>
  records.filter((r) => r.server === server);

const medianOf = <T>(records: readonly T[], f: (r: T) => number): number =>
  records.length ? median(records.map(f)) : Number.NaN;

const SERVER_ORDER = Object.keys(SERVERS);

/** Rate records by rate, then in server order (they were measured in rotating order). */
const inOrder = <T extends { server: ServerKey; rate: number }>(records: readonly T[]): T[] =>
  [...records].sort((a, b) => a.rate - b.rate || SERVER_ORDER.indexOf(a.server) - SERVER_ORDER.indexOf(b.server));

const pct = (value: number): string => (Number.isFinite(value) ? `${Math.round(value)}%` : "–");

// -----------------------------------------------------------------------------------------------

/** Median over rounds of the per-round ratio a/b (the two servers measured back to back). */
const pairedRatio = (records: readonly ThroughputRecord[], writers: number, a: ServerKey, b: ServerKey): number => {
  const ratios: number[] = [];
  for (const ra of records.filter((r) => r.server === a && r.writers === writers)) {
    const rb = records.find((r) => r.server === b && r.writers === writers && r.round === ra.round);
    if (rb && rb.msgPerS > 0) ratios.push(ra.msgPerS / rb.msgPerS);
  }
  return ratios.length ? median(ratios) : Number.NaN;
};

const throughputCells = (
  records: readonly ThroughputRecord[],
  server: ServerKey,
  writers: number,
): { msgs: number; ack: string; rounds: string } => {
  const rs = records.filter((r) => r.server === server && r.writers === writers);
  return {
    msgs: medianOf(rs, (r) => r.msgPerS),
    ack: rs.length ? `${ms(medianOf(rs, (r) => r.ack.p50))} / ${ms(medianOf(rs, (r) => r.ack.p99))}` : "–",
    rounds: rs.map((r) => int(r.msgPerS)).join(", "),
  };
};

export const groupCommitTable = (r: Results): Table => {
  const rows = r.plan.writers.map((w) => {
    const ours = throughputCells(r.throughput, "ours", w);
    const base = throughputCells(r.throughput, "batch1", w);
    return [
      String(w),
      int(ours.msgs),
      int(base.msgs),
      ratio(pairedRatio(r.throughput, w, "ours", "batch1")),
      ours.ack,
      base.ack,
      ours.rounds,
      base.rounds,
    ];
  });
  const checks = r.throughput.filter((t) => t.committed !== t.acked + t.warmup || t.errors > 0);
  return {
    title: "Group commit vs one transaction per message: committed msg/s, one room",
    headers: [
      "writers",
      "group commit msg/s",
      "1 txn/msg msg/s",
      "ratio",
      "group commit send→ack p50 / p99 ms",
      "1 txn/msg send→ack p50 / p99 ms",
      "group commit per round",
      "1 txn/msg per round",
    ],
    numeric: [true, true, true, true, true, true, false, false],
    rows,
    notes: [
      `Closed loop: each writer is one WebSocket with ${r.plan.window} sends in flight; msg/s = acks received in a ${r.plan.throughputMs / 1000} s window; median of ${r.plan.throughputRounds} round(s). The ratio is the median of per-round ratios (the two servers ran back to back in each round).`,
      checks.length === 0
        ? "Check: after every run the room's latestSeq (read over REST) equalled the acks plus the warm-up sends (one acked send per writer before the window), with no error frames."
        : `CHECK FAILED in ${checks.length} run(s): ${checks.map((c) => `${c.server} w=${c.writers} r${c.round}: latestSeq ${c.committed} vs ${c.acked} acked + ${c.warmup} warm-up, ${c.errors} errors`).join("; ")}`,
    ],
  };
};

export const rateTable = (r: Results): Table => ({
  title: "Latency at fixed rates: one sender and one receiver in one room",
  headers: [
    "server",
    "target msg/s",
    "acked msg/s",
    "n",
    "send→ack p50",
    "p99",
    "max",
    "send→receive p50",
    "p99",
    "max",
    "sustained",
  ],
  numeric: [false, true, true, true, true, true, true, true, true, true, false],
  rows: inOrder(r.rates).map((x) => [
    short(x.server),
    int(x.rate),
    int(x.achievedPerS),
    int(x.acked),
    ms(x.ack.p50),
    ms(x.ack.p99),
    ms(x.ack.max),
    ms(x.recv.p50),
    ms(x.recv.p99),
    ms(x.recv.max),
    x.sustained ? "yes" : `NO: ${x.why}`,
  ]),
  notes: [
    "Milliseconds. Open loop: sends go out on schedule whatever the acks do. send→ack is measured on the sender's socket, send→receive on a second user's socket in the same process (one clock).",
    `"Sustained" means every send was acked and received, no error frames, p99 send→ack under ${SUSTAIN_P99_MS} ms (a growing backlog exceeds that), and the load generator kept its schedule within 50 ms.`,
  ],
});

export const connectTable = (r: Results): Table => {
  const rows = r.connects.map((c) => [
    short(c.server),
    c.variant,
    int(c.summary.n),
    ms(c.summary.p50),
    ms(c.summary.p99),
    ms(c.summary.max),
    `${(c.readyBytes / 1024).toFixed(1)} KiB`,
    c.failures.length ? `${c.failures.length}: ${c.failures[0] ?? ""}` : "0",
  ]);
  if (r.ping)
    rows.push([
      "ours",
      "ping→pong on an open socket (no connect)",
      int(r.ping.n),
      ms(r.ping.p50),
      ms(r.ping.p99),
      ms(r.ping.max),
      "–",
      "0",
    ]);
  return {
    title: "Connect → ready",
    headers: ["server", "handshake", "n", "p50 ms", "p99 ms", "max ms", "ready frame", "failures"],
    numeric: [false, false, true, true, true, true, true, false],
    rows,
    notes: [
      "From `new WebSocket(url)` to the `ready` frame received: TCP connect, HTTP upgrade through the Worker (JWT check), the room object's handshake, the history in `ready`. Tokens are minted beforehand. One handshake at a time, the variants interleaved.",
      "Baseline: the bare handshake is `since=latestSeq` (nothing missed), the cheapest full connect the stack offers. ping→pong (answered by the runtime's auto-response, the object is not involved) is the floor of any round trip through `wrangler dev`.",
      `"window off" runs with HISTORY_WINDOW=1, so the history in \`ready\` comes from Postgres instead of the room's memory (what a room sees after it was evicted or hibernated).`,
    ],
  };
};

export const poolTable = (r: Results): Table => {
  const rows: string[][] = [];
  for (const w of r.plan.writers) {
    const a = throughputCells(r.throughput, "ours", w);
    const b = throughputCells(r.throughput, "perbatch", w);
    rows.push([
      `committed msg/s, ${w} writer${w > 1 ? "s" : ""}`,
      int(a.msgs),
      int(b.msgs),
      ratio(pairedRatio(r.throughput, w, "ours", "perbatch")),
    ]);
  }
  for (const { rate } of r.plan.rates) {
    const a = r.rates.find((x) => x.server === "ours" && x.rate === rate);
    const b = r.rates.find((x) => x.server === "perbatch" && x.rate === rate);
    if (!a || !b) continue;
    rows.push([`send→ack p50 ms at ${int(rate)} msg/s`, ms(a.ack.p50), ms(b.ack.p50), ratio(b.ack.p50 / a.ack.p50)]);
    rows.push([`send→ack p99 ms at ${int(rate)} msg/s`, ms(a.ack.p99), ms(b.ack.p99), ratio(b.ack.p99 / a.ack.p99)]);
  }
  const perK = (server: ServerKey): number => {
    const rs = byServer(r.throughput, server);
    const conns = rs.reduce((s, x) => s + x.pgConnections, 0);
    const msgs = rs.reduce((s, x) => s + x.acked, 0);
    return msgs ? (conns / msgs) * 1000 : Number.NaN;
  };
  rows.push([
    "Postgres connections opened per 1,000 committed (throughput runs)",
    perK("ours").toFixed(1),
    perK("perbatch").toFixed(1),
    "–",
  ]);
  return {
    title: "Kept-open pool vs a new connection per statement",
    headers: ["measure", "kept-open pool (ours)", "connection per batch", "ratio (better side / worse side)"],
    numeric: [false, true, true, true],
    rows,
    notes: [
      "Both with group commit on. msg/s ratio = pool / per-batch (median of per-round ratios); latency ratio = per-batch / pool. Connections are counted by the local wsproxy (each is a WebSocket + a Postgres backend startup).",
    ],
  };
};

const cpuRow = (scenario: string, server: ServerKey, cpus: CpuReport[]): string[] => {
  const m = (f: (c: CpuReport) => number): string => pct(medianOf(cpus, f));
  return [
    scenario,
    short(server),
    m((c) => c.loadgenPct),
    m((c) => c.loadgenMaxPct),
    m((c) => c.mainPct),
    m((c) => c.workerdPct),
    m((c) => c.serverPct - c.workerdPct),
    m((c) => c.postgresPct),
    m((c) => c.redisPct),
    m((c) => c.machinePct),
  ];
};

export const cpuTable = (r: Results): Table => {
  const rows: string[][] = [];
  const servers = [...new Set(r.throughput.map((t) => t.server))];
  for (const w of r.plan.writers) {
    for (const s of servers) {
      const cpus = r.throughput.filter((t) => t.server === s && t.writers === w).map((t) => t.cpu);
      if (cpus.length) rows.push(cpuRow(`throughput, ${w} writer${w > 1 ? "s" : ""}`, s, cpus));
    }
  }
  for (const x of inOrder(r.rates)) rows.push(cpuRow(`${int(x.rate)} msg/s`, x.server, [x.cpu]));
  for (const x of inOrder(r.mirror?.onOff ?? [])) rows.push(cpuRow(`mirror comparison, ${int(x.rate)} msg/s`, x.server, [x.cpu]));
  return {
    title: "Where the CPU went during each measurement (% of one core; median over rounds)",
    headers: [
      "measurement",
      "server",
      "load generators",
      "busiest load gen",
      "bench main (wsproxy + shim)",
      "workerd",
      "wrangler (node)",
      "postgres",
      "redis",
      "machine (all cores)",
    ],
    numeric: [false, false, true, true, true, true, true, true, true, true],
    rows,
    notes: [
      `Load generators: ${r.procs} child processes, each measuring itself with process.cpuUsage(); "busiest" at 100% would mean the load generator, not the server, set the pace. The other columns come from /proc (utime+stime, reaped children included). "machine" is % of all ${r.machine.cores} cores, including anything else that ran.`,
    ],
  };
};

export const mirrorTables = (r: Results): Table[] => {
  const m = r.mirror;
  if (!m) return [];
  const tables: Table[] = [];
  if (m.onOff.length) {
    tables.push({
      title: "Redis mirror on vs off: send→ack",
      headers: ["server", "target msg/s", "n", "send→ack p50", "p99", "max", "sustained"],
      numeric: [false, true, true, true, true, true, false],
      rows: inOrder(m.onOff).map((x) => [
        short(x.server),
        int(x.rate),
        int(x.acked),
        ms(x.ack.p50),
        ms(x.ack.p99),
        ms(x.ack.max),
        x.sustained ? "yes" : `NO: ${x.why}`,
      ]),
      notes: m.note ? [m.note] : [],
    });
  }
  if (m.lag.length) {
    tables.push({
      title: "Mirror lag: ack → entry visible in the room's Redis stream",
      headers: ["target msg/s", "acked", "seen in stream", "ack→visible p50", "p99", "max", "send→visible p50", "p99"],
      numeric: [true, true, true, true, true, true, true, true],
      rows: m.lag.map((l) => [
        int(l.rate),
        int(l.acked),
        int(l.visible),
        ms(l.afterAck.p50),
        ms(l.afterAck.p99),
        ms(l.afterAck.max),
        ms(l.afterSend.p50),
        ms(l.afterSend.p99),
      ]),
      notes: [
        "Read with XREAD BLOCK on `chat:{default:<room>}:messages` by the sender's process. The ack leaves the room right after the commit, so ack→visible approximates commit→visible (negative values: the entry was visible before the ack arrived).",
        ...(m.note ? [m.note] : []),
      ],
    });
  }
  if (!tables.length && m.note) tables.push({ title: "Redis mirror", headers: ["status"], rows: [[m.note]] });
  return tables;
};

const failText = (failures: readonly string[]): string => (failures.length ? `${failures.length}: ${failures[0] ?? ""}` : "0");

export const joinViewTable = (r: Results): Table | undefined => {
  const j = r.joinView;
  if (!j) return undefined;
  const rows = j.records.map((x) => {
    const base = j.records.find((y) => y.want === x.want && y.strategy === "oneframe");
    const vs = (f: (s: Summary) => number): string =>
      x.strategy === "oneframe" || !base ? "1 (baseline)" : ratio(f(x.summary) / f(base.summary));
    return [
      x.want === "last50" ? "newest 50" : "1,000 missed",
      x.name,
      int(x.summary.n),
      ms(x.summary.p50),
      ms(x.summary.p99),
      ms(x.summary.max),
      vs((s) => s.p50),
      vs((s) => s.p99),
      int(x.restCalls),
      Number.isFinite(x.duplicatesMedian) ? int(x.duplicatesMedian) : "–",
      int(x.truncated),
      failText(x.failures),
    ];
  });
  return {
    title: `Joining client: connect start → contiguous, deduplicated view, while a writer sends ${int(j.rate)} msg/s`,
    headers: [
      "wants",
      "strategy",
      "n",
      "p50 ms",
      "p99 ms",
      "max ms",
      "p50 vs one frame",
      "p99 vs one frame",
      "REST calls",
      "dups dropped (median)",
      "ready truncated",
      "failures",
    ],
    numeric: [false, false, true, true, true, true, true, true, true, true, true, false],
    rows,
    notes: [
      "Clock: from `new WebSocket(url)` until the client holds a set of distinct seqs that is contiguous, reaches at least the seq the writer had acked when the join started, and covers what the client wants (≥ 50 messages, or every seq after its cursor = that seq − 1,000). Joins one at a time, the four variants interleaved (rotated), all into one room filled beforehand, on the same server (ours).",
      "One frame: history in `ready` (`last=50` or `since=cursor`), live frames after it; if `ready` comes back truncated (more than 1,000 owed because the writer committed between the client's read of the latest seq and the join), the client fills the hole over REST, as the SDK does. Two-step: the socket opens with `since=<latest acked seq>` (nothing owed), buffers live frames, and after `ready` the client fetches `GET /v1/rooms/{room}/messages?limit=50` or `?after=cursor&limit=1000` and merges by seq, dropping duplicates (the overlap of the REST page and the socket). The REST request goes over Node's fetch (undici, connection kept alive between joins), which favours the two-step side slightly.",
      `The writer (another user, same process) acked ${int(j.written)} messages during the joins; the load-generator process (joiner + writer) used ${pct(j.cpu.loadgenMaxPct)} of a core.`,
    ],
  };
};

export const fanoutTable = (r: Results): Table | undefined => {
  const f = r.fanout ?? [];
  if (!f.length) return undefined;
  return {
    title: "Fanout: one publisher, N receiving sockets in one room",
    headers: [
      "sockets",
      "messages",
      "delivered",
      "publish→first receive p50",
      "p99",
      "publish→last receive p50",
      "p99",
      "max",
      "open all sockets (joins retried)",
      "workerd",
      "busiest load gen",
      "load gens total",
      "machine",
      "status",
    ],
    numeric: [true, true, true, true, true, true, true, true, true, true, true, true, true, false],
    rows: f.map((x) => [
      int(x.sockets),
      int(x.messages),
      `${int(x.delivered)} / ${int(x.expected)}`,
      ms(x.first.p50),
      ms(x.first.p99),
      ms(x.last.p50),
      ms(x.last.p99),
      ms(x.last.max),
      Number.isFinite(x.openS) ? `${x.openS.toFixed(1)} s (${int(x.openRetries ?? 0)})` : "–",
      x.cpu ? pct(x.cpu.workerdPct) : "–",
      x.cpu ? pct(x.cpu.loadgenMaxPct) : "–",
      x.cpu ? pct(x.cpu.loadgenPct) : "–",
      x.cpu ? pct(x.cpu.machinePct) : "–",
      x.failure ? `FAILED: ${x.failure}` : "ok",
    ]),
    notes: [
      `Milliseconds unless noted. Each row is a fresh room; every receiving socket is a distinct user (so the per-user socket cap does not apply), spread over ${r.procs} load-generator processes, opened 16 at a time before the clock starts. The publisher (one more socket, warmed up with one acked send) sends ${f[0]?.messages ?? "–"} messages ${r.plan.fanoutIntervalMs} ms apart, so one fan-out is over before the next starts. Send and receive times are wall-clock (performance.timeOrigin + performance.now()), comparable between the load-generator processes of one machine; "last receive" counts only messages every socket got.`,
      "CPU columns are % of one core over the publishing window (machine: % of all cores). A load generator near 100% would put its own queueing into publish→last receive.",
    ],
  };
};

export const roomsTable = (r: Results): Table | undefined => {
  const rs = r.rooms ?? [];
  if (!rs.length) return undefined;
  const base = rs.find((x) => x.rooms === 0);
  const mib = (kib: number): string => (Number.isFinite(kib) ? `${(kib / 1024).toFixed(1)}` : "–");
  const rows = rs.map((x) => {
    const dKiB = base ? x.workerdKiB - base.workerdKiB : Number.NaN;
    const dCpu = base ? x.cpu.workerdPct - base.cpu.workerdPct : Number.NaN;
    const per = (v: number, n: number, digits: number): string => (n > 0 && Number.isFinite(v) ? (v / n).toFixed(digits) : "–");
    return [
      int(x.rooms),
      `${int(x.opened)} / ${int(x.sockets)}`,
      x.rooms ? `${x.openS.toFixed(1)} s (${int(x.openRetries ?? 0)})` : "–",
      mib(x.workerdKiB),
      mib(x.wranglerKiB),
      per(dKiB, x.sockets, 1),
      per(dKiB, x.rooms, 1),
      pct(x.cpu.workerdPct),
      pct(x.cpu.serverPct - x.cpu.workerdPct),
      per(dCpu * 10, x.sockets / 1000, 2),
      per(dCpu * 10, x.rooms / 1000, 2),
      pct(x.cpu.loadgenPct),
      pct(x.cpu.machinePct),
      x.failures.length || x.droppedWhileIdle ? `${x.failures.length} failed, ${x.droppedWhileIdle} closed while idle` : "0",
    ];
  });
  return {
    title: "Many rooms: memory and idle CPU per connection and per room",
    headers: [
      "rooms",
      "sockets open",
      "time to open (joins retried)",
      "workerd RSS MiB",
      "wrangler (node) RSS MiB",
      "workerd KiB per socket (vs 0 rooms)",
      "workerd KiB per room",
      "workerd idle CPU",
      "wrangler idle CPU",
      "workerd ‰ of a core per 1,000 sockets",
      "‰ per 1,000 rooms",
      "load gens",
      "machine",
      "problems",
    ],
    numeric: [true, true, true, true, true, true, true, true, true, true, true, true, true, false],
    rows,
    notes: [
      `One \`wrangler dev\` of its own (ours, nothing else ran on it), so its RSS holds only this. Rooms get ${r.plan.socketsPerRoom.join(" and ")} sockets alternately (users from a pool of 64, distinct within a room; each socket joins with \`last=1\` into a fresh room, which also creates the room's Postgres row), opened 16 at a time over ${r.procs} load-generator processes, a join refused with "storage is unavailable" retried up to 5 times (250 ms × attempt apart). The server runs with \`PG_IDLE_MS=500\`: with the default 10 s every room object keeps its Postgres connection for 10 s after its last statement, and ~100 rooms joined within 10 s exhaust a local Postgres' max_connections (100), refusing joins. Then nothing is sent for ${rs[0]?.idleS ?? "–"} s: CPU is sampled from /proc over that idle window (% of one core; the per-1,000 columns are the difference to the 0-room row in ‰ of one core), RSS (VmRSS, summed over the workerd processes of that server's process group) at its end, with every socket still open.`,
      "The 0-room row is the same server after one token request (the Worker's isolate is loaded) and nothing else: the baseline for the per-socket and per-room figures. Per-socket and per-room columns divide the same memory difference, so they are two views of one number, not additive.",
    ],
  };
};

export const scaleTables = (r: Results): Table[] =>
  [joinViewTable(r), fanoutTable(r), roomsTable(r)].filter((t): t is Table => t !== undefined);

export const allTables = (r: Results): Table[] => [
  groupCommitTable(r),
  rateTable(r),
  connectTable(r),
  poolTable(r),
  cpuTable(r),
  ...mirrorTables(r),
  ...scaleTables(r),
  ...costsTables(r),
  ...perfTables(r),
];

// -----------------------------------------------------------------------------------------------
// Charts

export const latencyChart = (r: Results): BarChart => {
  const servers = (["ours", "batch1", "perbatch"] as const).filter((s) => r.rates.some((x) => x.server === s));
  const groups = r.plan.rates.flatMap(({ rate }) =>
    (["ack", "recv"] as const).map((metric) => ({
      label: `${metric === "ack" ? "send→ack" : "send→receive"}\nat ${int(rate)} msg/s`,
      values: servers.map((s) => {
        const x = r.rates.find((y) => y.server === s && y.rate === rate);
        return x ? { p50: x[metric].p50, p99: x[metric].p99 } : undefined;
      }),
    })),
  );
  return {
    title: "Message latency at fixed rates: ours vs baselines",
    subtitle: `one room, one sender, one receiver · ${r.date.slice(0, 10)} · ${r.machine.cores} cores ${r.machine.cpuModel}`,
    unit: "ms",
    series: servers.map((s) => ({ name: SERVERS[s].label, color: SERVERS[s].color })),
    groups,
  };
};

export const connectChart = (r: Results): BarChart => {
  const servers = [...new Set(r.connects.map((c) => c.server))];
  const variants = [...new Set(r.connects.map((c) => c.variant))];
  const groups = variants.map((v) => ({
    label: v.replace(/ \((.*)\)$/, "\n($1)"),
    values: servers.map((s) => {
      const c = r.connects.find((x) => x.server === s && x.variant === v);
      return c ? { p50: c.summary.p50, p99: c.summary.p99 } : undefined;
    }),
  }));
  if (r.ping)
    groups.push({
      label: "ping→pong\n(floor, open socket)",
      values: servers.map((s) => (s === "ours" && r.ping ? { p50: r.ping.p50, p99: r.ping.p99 } : undefined)),
    });
  return {
    title: "Connect → ready vs the bare handshake",
    subtitle: `${r.date.slice(0, 10)} · ${r.machine.cores} cores ${r.machine.cpuModel}`,
    unit: "ms",
    series: servers.map((s) => ({ name: SERVERS[s].label, color: SERVERS[s].color })),
    groups,
  };
};

// -----------------------------------------------------------------------------------------------
// The document

const connectSummary = (r: Results): string => {
  const ours = r.connects.filter((c) => c.server === "ours");
  if (!ours.length) return "not measured";
  const cold = r.connects.find((c) => c.server === "coldhist" && c.variant.includes("1,000 missed"));
  const coldText = cold
    ? `; with the history read from Postgres (window off), 1,000 missed takes ${ms(cold.summary.p50)} ms`
    : "";
  return `${ours.map((c) => `${c.variant} ${ms(c.summary.p50)} ms`).join(", ")}${coldText}`;
};

/** Names the resource that ran out when ours peaked, from the CPU samples. */
const bottleneckSummary = (r: Results): string | undefined => {
  const w = Math.max(...r.plan.writers);
  const runs = r.throughput.filter((t) => t.server === "ours" && t.writers === w);
  if (!runs.length) return undefined;
  const workerd = medianOf(runs, (t) => t.cpu.workerdPct);
  const pg = medianOf(runs, (t) => t.cpu.postgresPct);
  const loadgen = medianOf(runs, (t) => t.cpu.loadgenMaxPct);
  const facts = `with ${w} writers workerd ran at ${pct(workerd)} of a core, Postgres at ${pct(pg)}, the busiest load generator at ${pct(loadgen)}`;
  return workerd >= 85
    ? `${facts}: the room object's single thread (sequencing, and sending every message to every socket) is the ceiling, not Postgres.`
    : `${facts}.`;
};

const mirrorSummary = (r: Results): string => {
  const m = r.mirror;
  if (!m) return "not measured.";
  const parts: string[] = [];
  for (const { rate } of r.plan.mirrorRates) {
    const on = m.onOff.find((x) => x.server === "mirror" && x.rate === rate);
    const off = m.onOff.find((x) => x.server === "ours" && x.rate === rate);
    if (on && off)
      parts.push(`send→ack p50 at ${int(rate)} msg/s ${ms(on.ack.p50)} ms with the mirror vs ${ms(off.ack.p50)} ms without`);
  }
  for (const l of m.lag) {
    if (l.visible)
      parts.push(`ack→visible in the stream p50 ${ms(l.afterAck.p50)} ms / p99 ${ms(l.afterAck.p99)} ms at ${int(l.rate)} msg/s`);
  }
  if (m.note) parts.push(m.note);
  return `${parts.join("; ")}.`;
};

const joinSummary = (r: Results): string => {
  const j = r.joinView;
  if (!j) return "not measured in this run.";
  const parts = (["last50", "missed1000"] as const).flatMap((want) => {
    const one = j.records.find((x) => x.want === want && x.strategy === "oneframe");
    const two = j.records.find((x) => x.want === want && x.strategy === "twostep");
    if (!one || !two) return [];
    return [
      `${want === "last50" ? "newest 50" : "1,000 missed"}: one frame p50 ${ms(one.summary.p50)} / p99 ${ms(one.summary.p99)} ms vs socket-then-REST ${ms(two.summary.p50)} / ${ms(two.summary.p99)} ms (${ratio(two.summary.p50 / one.summary.p50)} at p50, ${ratio(two.summary.p99 / one.summary.p99)} at p99)`,
    ];
  });
  return `${parts.join("; ")}, with a writer at ${int(j.rate)} msg/s.`;
};

const fanoutSummary = (r: Results): string => {
  const f = r.fanout ?? [];
  if (!f.length) return "not measured in this run.";
  return `${f
    .map((x) =>
      x.cpu
        ? `${int(x.sockets)} sockets in one room: publish→last receive p50 ${ms(x.last.p50)} ms / p99 ${ms(x.last.p99)} ms (first receive p50 ${ms(x.first.p50)} ms), workerd ${pct(x.cpu.workerdPct)} of a core${x.failure ? ` (${x.failure})` : ""}`
        : `${int(x.sockets)} sockets: FAILED (${x.failure})`,
    )
    .join("; ")}.`;
};

const roomsSummary = (r: Results): string => {
  const rs = r.rooms ?? [];
  const base = rs.find((x) => x.rooms === 0);
  const top = rs.find((x) => x.rooms > 0);
  if (!base || !top) return "not measured in this run.";
  const d = top.workerdKiB - base.workerdKiB;
  return `${int(top.rooms)} idle rooms with ${int(top.opened)} sockets add ${(d / 1024).toFixed(0)} MiB to workerd's RSS (${(d / top.sockets).toFixed(0)} KiB per socket, ${(d / top.rooms).toFixed(0)} KiB per room); idle workerd CPU ${pct(top.cpu.workerdPct)} of a core vs ${pct(base.cpu.workerdPct)} with none.`;
};

/** The "How to run" section (no numbers in it): `--splice` rewrites it together with its own section. */
export const howToRun = (): string => `## How to run

\`\`\`sh
flock /tmp/edge-chat-cpu.lock npm run bench             # full run (~7 min), rewrites this page and its charts
flock /tmp/edge-chat-cpu.lock npm run bench -- --quick  # smoke run (~2 min), prints the tables, leaves this page alone
\`\`\`

Needs PostgreSQL on 127.0.0.1:5432 (database \`test\`) and Redis on 127.0.0.1:6379 (or \`DATABASE_URL\` / \`REDIS_URL\`).
\`--only throughput,rates,connect,mirror,joinview,fanout,rooms,cursors,roomlist,slow\` runs a subset; \`--from bench/results/<file>.json\` re-renders this page from
a raw record without measuring. \`--splice\` writes only the sections of this run's scenarios that stand on their own
(today: "${COSTS_TITLE}", from \`--only cursors,roomlist,slow\`) into the existing page and leaves the rest of it as it was.
The \`flock\` keeps benchmark runs from overlapping with each other and with test runs.
`;

export const markdown = (r: Results, charts: { latency: string; connect: string }): string => {
  const m = r.machine;
  const gc = r.plan.writers
    .map((w) => `${ratio(pairedRatio(r.throughput, w, "ours", "batch1"))} with ${w} writer${w > 1 ? "s" : ""}`)
    .join(", ");
  const pool = r.plan.writers.map((w) => `${ratio(pairedRatio(r.throughput, w, "ours", "perbatch"))} with ${w}`).join(", ");
  const unsustained = r.rates.filter((x) => !x.sustained).map((x) => `${short(x.server)} at ${int(x.rate)} msg/s (${x.why})`);
  const tables = allTables(r);
  const [gcT, rateT, connT, poolT, cpuT] = tables;
  const mirrorT = mirrorTables(r);
  const section = (t: Table | undefined): string => (t ? tableToMarkdown(t) : "");
  return `# Benchmarks

Generated by \`npm run bench\` (bench/); rerun it rather than editing numbers by hand. Every comparison below
was measured in the same run, against the same local stack, with the servers alternating, because this
machine is shared and noisy: compare ratios within this page, not with other machines or other runs.

${howToRun()}
## Summary

- **Group commit** commits ${gc} as many messages per second as one transaction per message.
- **Kept-open pool** vs a new connection per statement: ${pool} (msg/s ratio).
- **Fixed rates:** ${unsustained.length ? `not sustained: ${unsustained.join("; ")}.` : "every rate was sustained by every server."}
- **Connect → ready** p50: ${connectSummary(r)}.
- **Joining client, time to a consistent view:** ${joinSummary(r)}
- **Fanout:** ${fanoutSummary(r)}
- **Many rooms:** ${roomsSummary(r)}
- **Redis mirror:** ${mirrorSummary(r)}${bottleneckSummary(r) ? `\n- **Bottleneck:** ${bottleneckSummary(r)}` : ""}

## Setup

| | |
|---|---|
| Machine | ${machineLine(m)} |
| Load average at start | ${m.loadAvg} |
| Date | ${r.date} |
| Command | \`${r.command}\`${r.quick ? " (quick: smoke-test durations, numbers are rough)" : ""} |
| Code | ${m.code} |
| Database | ${m.postgres} |
| Stack | ${r.stack.split("\n").join("<br>")} |
| Servers | each a separate \`wrangler dev\` (workerd, local mode) with its own Durable Object state, same stack: ${(
    ["ours", "batch1", "perbatch", "coldhist", "mirror", "fresh", "slowmem"] as const
  )
    .filter(
      (k) =>
        r.throughput.some((t) => t.server === k) ||
        r.rates.some((t) => t.server === k) ||
        r.connects.some((t) => t.server === k) ||
        r.mirror?.onOff.some((t) => t.server === k) ||
        r.joinView?.server === k ||
        r.fanout?.some((t) => t.server === k) ||
        r.rooms?.some((t) => t.server === k) ||
        r.cursors?.some((t) => t.server === k) ||
        r.roomList?.some((t) => t.server === k) ||
        r.slow?.some((t) => t.server === k),
    )
    .map((k) => `**${short(k)}** = ${SERVERS[k].label}`)
    .join("; ")} |
| wsproxy probe | from Node through the stack's wsproxy: \`SELECT 1\` p50 ${ms(m.proxyProbe.simpleMs)} ms, \`SELECT $1\` p50 ${ms(m.proxyProbe.paramMs)} ms${nagled(m) ? " (**Nagle**: see the artifacts below)" : ""} |
| Load generator | ${r.procs} Node child processes (\`ws\`), loopback only; run took ${Math.round(r.durationS)} s |

## Results

${section(gcT)}

${section(rateT)}

![Latency percentiles at fixed rates, ours vs baselines](${charts.latency})

${section(connT)}

![Connect to ready, ours vs the bare handshake](${charts.connect})

${section(poolT)}

${section(cpuT)}

### Redis mirror

${
  r.mirror
    ? mirrorT.map((t) => tableToMarkdown(t, "####")).join("\n\n")
    : "Not measured in this run (`--only` left it out). It compares send→ack on a server with the mirror on against ours without it, and times the mirror lag (ack → entry visible in `chat:{default:<room>}:messages`, via XREAD BLOCK)."
}

### Joining, fanout and many rooms

${
  scaleTables(r).length
    ? scaleTables(r)
        .map((t) => tableToMarkdown(t, "####"))
        .join("\n\n")
    : "Not measured in this run (`--only` left them out)."
}

${costsSection(r)}
${perfSection(r)}
## Method

- **Stack:** \`startLocalStack({ purpose: "bench" })\` (real PostgreSQL through the Neon wsproxy, Redis through the Upstash REST shim, both proxies in the benchmark's main process), and one \`wrangler dev\` per server configuration (\`startWrangler\`, \`stackVars\` + the switch). Every measurement uses a fresh room, so no measurement reads another's history, and rooms of this run are deleted from Postgres at the end.
- **Throughput:** closed loop; ${r.plan.writers.join(", ")} writers (distinct users, one WebSocket each, spread over the load-generator processes), ${r.plan.window} sends in flight per writer; a new send goes out as each ack arrives. Every socket also receives every committed message (the room broadcasts to all its sockets), so the fan-out is part of the load.
- **Fixed rates:** open loop at ${r.plan.rates.map((x) => `${int(x.rate)} msg/s for ${x.durationMs / 1000} s`).join(", ")}; latency is measured from the moment the frame was handed to the socket. Before the clock starts, every sender sends one acked warm-up message (its first send in an open room also makes it a member, a Postgres write).
- **Connect → ready:** ${r.plan.connectRounds} rounds of the three handshakes (rotated order) into a room holding ${int(r.plan.fill)} messages; ${r.plan.pings} ping→pong round trips.
- **Joining client:** ${r.plan.joinRounds} joins per variant (rotated order) into a room filled with ${int(r.plan.fill)} messages while a writer sends ${int(r.plan.joinWriteRate)} msg/s; the client's "current" seq is the writer's latest ack when the join starts, its cursor for "1,000 missed" is that seq − 1,000.
- **Fanout:** ${(r.plan.fanoutSockets ?? []).map(int).join(", ")} receiving sockets (one step each, a fresh room each, stopping at the first that cannot be opened), ${r.plan.fanoutMessages} messages ${r.plan.fanoutIntervalMs} ms apart.
- **Many rooms:** 0 and ${int(r.plan.manyRooms)} rooms on a server of its own, ${r.plan.idleMs / 1000} s idle window each.
- **Percentiles** are nearest-rank over all samples; with fewer than 100 samples p99 is the maximum.
- **Switches:** the baselines run the benchmark fixture (\`bench/fixture/\`, its own wrangler config: the product Worker with one seam overridden, so production code has no baseline modes): \`BENCH_BASELINE=batch1\` (one transaction per message), \`BENCH_BASELINE=perbatch\` (a new Postgres connection for every statement); \`HISTORY_WINDOW=1\` (handshake history from Postgres) is a product setting. Only the "mirror on" server gets \`UPSTASH_REDIS_REST_URL\`/\`_TOKEN\`; the others run without the mirror (see the artifacts below). All servers get \`SEND_RATE_PER_S\`/\`SEND_BURST\` = 1,000,000 so that the per-user send limit (10/s by default) does not cap the load (the limiter still runs on every send), and \`MAX_SOCKETS_PER_USER\` = 1,000 for the back-to-back handshakes of one user.
- **Limits:** everything shares ${m.cores} cores: workerd, PostgreSQL, the wsproxy and the load generators compete for CPU, so absolute numbers are far below what Cloudflare's edge and Neon would show, and the CPU table says who was busy. \`wrangler dev\` is not production workerd (no real network, single process).

## Artifacts of the local stack (not the product)

${artifacts(r).join("\n")}
`;
};

/** What in this setup distorts the numbers, and by how much, so readers do not blame the product. */
const artifacts = (r: Results): string[] => {
  const out: string[] = [];
  const p = r.machine.proxyProbe;
  if (nagled(r.machine)) {
    out.push(
      `- **Nagle in the local wsproxy.** From Node, a parameterised query through the wsproxy took ${ms(p.paramMs)} ms at p50 against ${ms(p.simpleMs)} ms for \`SELECT 1\`: the proxy's TCP socket to Postgres (tools/local/wsproxy.ts) does not set \`setNoDelay(true)\`, so a statement that reaches the proxy in several WebSocket frames (the Neon driver in Node sends Parse/Bind/Execute/Sync separately) waits for Postgres' delayed ACK (~40 ms). The Worker's statements arrive in one frame each: an A/B run with a patched copy of the proxy showed no measurable difference in the Worker numbers, so the tables above are not distorted by it, but Node-side harnesses that query through the proxy are slow. When this line disappears from a rerun, the proxy was fixed.`,
    );
  } else {
    out.push(
      `- The wsproxy probe found no Nagle delay (parameterised query p50 ${ms(p.paramMs)} ms vs ${ms(p.simpleMs)} ms for \`SELECT 1\`).`,
    );
  }
  out.push(
    `- **wrangler dev taxes outbound fetch.** wrangler 4.86's inspector proxy enables the DevTools Network domain on the runtime and forwards every runtime inspector message to wrangler's Node process as a debug log, which appends it to a log file. Every outbound fetch or WebSocket connect (the mirror's Upstash calls; in the conn/batch baseline, every new Postgres connection) therefore costs workerd and wrangler's Node process extra CPU that production does not have (the CPU table shows it in the "wrangler (node)" column). This is why only the "mirror on" server mirrors, and why its send→ack cost is an upper bound. The bench points \`WRANGLER_LOG_PATH\` at a temp file it deletes.`,
    "- PostgreSQL, workerd, the proxies and the load generators share the same cores; see the CPU table before reading an absolute number.",
  );
  return out;
};

export const charts = (r: Results): { latency: string; connect: string } => ({
  latency: barChartSvg(latencyChart(r)),
  connect: barChartSvg(connectChart(r)),
});
