// The page section of bench/perf.ts (issue 16's rows): a section of its own, so `--splice` can
// write it into docs/benchmarks.md without re-measuring the rest of the page.
import { SERVERS, type ServerKey } from "./context.js";
import type { Results } from "./document.js";
import { machineLine } from "./machine.js";
import type { RoomsRecord } from "./scale.js";
import { type Table, tableToMarkdown } from "./report.js";
import type { RateRecord } from "./scenarios.js";
import { int, median, ms, ratio } from "./stats.js";

export const PERF_TITLE = "The product path: commit floor, tail, mirror cost, writers, idle memory";

const pct = (value: number): string => (Number.isFinite(value) ? `${Math.round(value)}%` : "–");
const med = (values: readonly number[]): number => (values.length ? median(values) : Number.NaN);
const of = (records: readonly RateRecord[], server: ServerKey, rate: number): RateRecord[] =>
  records.filter((r) => r.server === server && r.rate === rate);

/** Median over rounds of a per-round ratio a/b (the two ran back to back in each round). */
const roundRatio = (a: readonly RateRecord[], b: readonly RateRecord[], f: (r: RateRecord) => number): number =>
  med(a.flatMap((x, i) => (b[i] && f(b[i] as RateRecord) > 0 ? [f(x) / f(b[i] as RateRecord)] : [])));

export const perfTables = (r: Results): Table[] => {
  const p = r.perf;
  if (!p) return [];
  const tables: Table[] = [];
  const rates = [...new Set(p.commit.map((c) => c.rate))];
  tables.push({
    title: "The commit at its floor: prepared (named) statements vs unnamed ones, product path",
    headers: ["msg/s", "statements", "send→receive p50 ms", "p99 ms", "p99 / p50", "send→ack p50 ms", "p50 ratio (prepared ÷ unnamed)", "workerd CPU", "Postgres CPU", "per round p50 / p99"],
    numeric: [true, false, true, true, true, true, true, true, true, false],
    rows: rates.flatMap((rate) =>
      (["pp", "ppunnamed"] as const).map((server) => {
        const rs = of(p.commit, server, rate);
        const p50 = med(rs.map((x) => x.recv.p50));
        const p99 = med(rs.map((x) => x.recv.p99));
        return [
          String(rate),
          server === "pp" ? "prepared (ours)" : "unnamed (fixture)",
          ms(p50),
          ms(p99),
          ratio(p99 / p50),
          ms(med(rs.map((x) => x.ack.p50))),
          server === "pp" ? ratio(roundRatio(rs, of(p.commit, "ppunnamed", rate), (x) => x.recv.p50)) : "1 (baseline)",
          pct(med(rs.map((x) => x.cpu.workerdPct))),
          pct(med(rs.map((x) => x.cpu.postgresPct))),
          rs.map((x) => `${ms(x.recv.p50)}/${ms(x.recv.p99)}`).join(", "),
        ];
      }),
    ),
    notes: [
      "Open loop, one sender and one receiver in one room; medians over rounds, servers alternating. Goal (issue 16): p99 ≤ 2× p50.",
      `Floors measured in the same run: ping→pong through the product path (answered by the runtime, no room code) p50 ${ms(p.floors.ping.p50)} / p99 ${ms(p.floors.ping.p99)} ms (p99/p50 ${ratio(p.floors.ping.p99 / p.floors.ping.p50)}); a one-row INSERT with fsync from Node through the same wsproxy at 20/s (no Worker) p50 ${ms(p.floors.pgCommit.p50)} / p99 ${ms(p.floors.pgCommit.p99)} ms (p99/p50 ${ratio(p.floors.pgCommit.p99 / p.floors.pgCommit.p50)}).`,
    ],
  });
  const mrates = [...new Set(p.mirror.map((c) => c.rate))];
  tables.push({
    title: "The mirror on the ack path: product path vs wrangler dev",
    headers: ["msg/s", "path", "send→ack p50 off / on ms", "on ÷ off (p50)", "p99 off / on ms", "workerd CPU off / on", "Upstash shim + wsproxy CPU off / on", "Redis CPU on", "machine off / on", "sustained"],
    numeric: [true, false, true, true, true, true, true, true, true, false],
    rows: mrates.flatMap((rate) =>
      (
        [
          ["pp", "ppmirror", "product path, linger 10 ms (default)"],
          ["pp", "ppmirror0", "product path, no linger"],
          ["pp", "ppmirror50", "product path, linger 50 ms"],
          ["ours", "mirror", "wrangler dev (default linger)"],
        ] as const
      ).map(([off, on, path]) => {
        const a = of(p.mirror, off, rate);
        const b = of(p.mirror, on, rate);
        return [
          String(rate),
          path,
          `${ms(med(a.map((x) => x.ack.p50)))} / ${ms(med(b.map((x) => x.ack.p50)))}`,
          ratio(roundRatio(b, a, (x) => x.ack.p50)),
          `${ms(med(a.map((x) => x.ack.p99)))} / ${ms(med(b.map((x) => x.ack.p99)))}`,
          `${pct(med(a.map((x) => x.cpu.workerdPct)))} / ${pct(med(b.map((x) => x.cpu.workerdPct)))}`,
          `${pct(med(a.map((x) => x.cpu.mainPct)))} / ${pct(med(b.map((x) => x.cpu.mainPct)))}`,
          pct(med(b.map((x) => x.cpu.redisPct))),
          `${pct(med(a.map((x) => x.cpu.machinePct)))} / ${pct(med(b.map((x) => x.cpu.machinePct)))}`,
          [...a, ...b].every((x) => x.sustained) ? "yes" : [...a, ...b].filter((x) => !x.sustained).map((x) => x.why).join("; "),
        ];
      }),
    ),
    notes: [
      "Goal (issue 16): on the product path, ack p50 with the mirror ≤ 1.1× without. Under wrangler dev every outbound fetch also passes its inspector proxy.",
      ...(p.lag.length
        ? [`Mirror lag on the product path (ack → entry visible in the stream, XREAD BLOCK, median over rounds): ${(["ppmirror", "ppmirror0", "ppmirror50"] as const)
            .flatMap((server) =>
              [...new Set(p.lag.map((l) => l.rate))].map((rate) => {
                const ls = p.lag.filter((l) => l.server === server && l.rate === rate);
                return `${SERVERS[server].short} at ${int(rate)} msg/s p50 ${ms(med(ls.map((l) => l.afterAckP50)))} / p99 ${ms(med(ls.map((l) => l.afterAckP99)))} ms (${int(ls.reduce((a, l) => a + l.visible, 0))}/${int(ls.reduce((a, l) => a + l.acked, 0))} seen)`;
              }),
            )
            .join("; ")}.`]
        : []),
    ],
  });
  const writers = [...new Set(p.writers.map((w) => w.writers))];
  tables.push({
    title: "Throughput with more writers, product path (one room, each writer also receives every message)",
    headers: ["writers", "committed msg/s", "per round", "send→ack p50 / p99 ms", "workerd CPU", "Postgres CPU"],
    numeric: [true, true, false, true, true, true],
    rows: writers.map((w) => {
      const rs = p.writers.filter((x) => x.writers === w);
      return [
        String(w),
        int(med(rs.map((x) => x.msgPerS))),
        rs.map((x) => int(x.msgPerS)).join(", "),
        `${ms(med(rs.map((x) => x.ack.p50)))} / ${ms(med(rs.map((x) => x.ack.p99)))}`,
        pct(med(rs.map((x) => x.cpu.workerdPct))),
        pct(med(rs.map((x) => x.cpu.postgresPct))),
      ];
    }),
  });
  const split = (records: readonly RoomsRecord[]) => {
    const loaded = records.filter((x) => x.rooms > 0);
    const bases = records.filter((x) => x.rooms === 0);
    const [one, many] = loaded;
    if (!one || !many || bases.length < 2) return undefined;
    const growth = (x: RoomsRecord, i: number) => x.workerdKiB - (bases[i]?.workerdKiB ?? Number.NaN);
    const perSocket = (growth(many, 1) - growth(one, 0)) / Math.max(1, many.opened - one.opened);
    const perRoom = (growth(one, 0) - perSocket * one.opened) / Math.max(1, one.rooms);
    return { loaded, bases, growth, perSocket, perRoom, idleS: one.idleS };
  };
  const ours = split(p.idle);
  const bare = split(p.idleBare ?? []);
  if (ours) {
    const rows = (label: string, s: NonNullable<typeof ours>) =>
      s.loaded.map((x, i) => [
        label,
        int(x.rooms),
        `${int(x.opened)}/${int(x.sockets)}`,
        `${((s.bases[i]?.workerdKiB ?? Number.NaN) / 1024).toFixed(1)} → ${(x.workerdKiB / 1024).toFixed(1)}`,
        (s.growth(x, i) / 1024).toFixed(1),
        i === 0 ? int(s.perSocket) : "",
        i === 0 ? int(s.perRoom) : "",
      ]);
    tables.push({
      title: "Idle rooms and sockets in workerd's memory, product path: per room and per socket apart, ours vs the bare runtime",
      headers: ["server", "rooms", "sockets open", "workerd RSS MiB (fresh → loaded)", "growth MiB", "KiB per idle socket", "KiB per idle room"],
      numeric: [false, true, true, true, true, true, true],
      rows: [...rows("ours", ours), ...(bare ? rows("bare runtime (fixture)", bare) : [])],
      notes: [
        `Per socket = the slope between the two rows of a server (the same rooms with 1 and with 4 sockets each); per room = the rest. RSS of the workerd process after ${ours.idleS} s idle, a fresh server for each row; ours with PG_IDLE_MS=500 (no room keeps a Postgres connection). The bare runtime is a Durable Object per room that accepts hibernatable sockets and sends one frame (bench/fixture/bare.ts): what workerd itself holds. Goal (issue 16): ≤ 50 KiB per idle socket.`,
      ],
    });
  }
  return tables;
};

export const perfSection = (r: Results): string => {
  const tables = perfTables(r);
  const head = `## ${PERF_TITLE}\n\n`;
  if (!tables.length) return `${head}Not measured in this run (\`--only perf\` measures it).\n`;
  const servers = ["pp", "ppunnamed", "ppmirror", "ppmirror0", "ppmirror50", "ppfresh", "ppbare", "ours", "mirror"] as const;
  return `${head}Measured by \`${r.command}\`${r.quick ? " (quick: smoke-test durations, numbers are rough)" : ""} on ${machineLine(r.machine)}, ${r.date}, code ${r.machine.code}, load average at start ${r.machine.loadAvg}, ${r.machine.postgres}. The **product path** runs the bundle \`wrangler deploy\` uploads (\`wrangler deploy --dry-run\`) under Miniflare directly (tools/local/workerd.ts): the same workerd, bindings and Durable Objects, without \`wrangler dev\` and its inspector proxy. Servers: ${servers.map((k) => `**${SERVERS[k].short}** = ${SERVERS[k].label}`).join("; ")}.

${tables.map((t) => tableToMarkdown(t)).join("\n\n")}
`;
};
