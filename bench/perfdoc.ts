// The page section of bench/perf.ts (issue 16's rows): a section of its own, so `--splice` can
// write it into docs/benchmarks.md without re-measuring the rest of the page.
import { SERVERS, type ServerKey } from "./context.js";
import type { Results } from "./document.js";
import { machineLine } from "./machine.js";
import type { PerfReport } from "./perf.js";
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
    notes: ["Open loop, one sender and one receiver in one room; medians over rounds, servers alternating. Goal (issue 16): p99 ≤ 2× p50."],
  });
  const mrates = [...new Set(p.mirror.map((c) => c.rate))];
  tables.push({
    title: "The mirror on the ack path: product path vs wrangler dev",
    headers: ["msg/s", "path", "send→ack p50 off / on ms", "on ÷ off (p50)", "p99 off / on ms", "workerd CPU off / on", "sustained"],
    numeric: [true, false, true, true, true, true, false],
    rows: mrates.flatMap((rate) =>
      ([["pp", "ppmirror", "product path"], ["ours", "mirror", "wrangler dev"]] as const).map(([off, on, path]) => {
        const a = of(p.mirror, off, rate);
        const b = of(p.mirror, on, rate);
        return [
          String(rate),
          path,
          `${ms(med(a.map((x) => x.ack.p50)))} / ${ms(med(b.map((x) => x.ack.p50)))}`,
          ratio(roundRatio(b, a, (x) => x.ack.p50)),
          `${ms(med(a.map((x) => x.ack.p99)))} / ${ms(med(b.map((x) => x.ack.p99)))}`,
          `${pct(med(a.map((x) => x.cpu.workerdPct)))} / ${pct(med(b.map((x) => x.cpu.workerdPct)))}`,
          [...a, ...b].every((x) => x.sustained) ? "yes" : [...a, ...b].filter((x) => !x.sustained).map((x) => x.why).join("; "),
        ];
      }),
    ),
    notes: [
      "Goal (issue 16): on the product path, ack p50 with the mirror ≤ 1.1× without. Under wrangler dev every outbound fetch also passes its inspector proxy.",
      ...(p.lag.length
        ? [`Mirror lag on the product path (ack → entry visible in the stream, XREAD BLOCK): ${p.lag.map((l) => `${int(l.rate)} msg/s p50 ${ms(l.afterAckP50)} / p99 ${ms(l.afterAckP99)} ms (${int(l.visible)}/${int(l.acked)} seen)`).join("; ")}.`]
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
  const base = p.idle.find((x) => x.rooms === 0);
  const loaded = p.idle.find((x) => x.rooms > 0);
  if (base && loaded) {
    const kib = loaded.workerdKiB - base.workerdKiB;
    tables.push({
      title: "Idle rooms and sockets in workerd's memory, product path",
      headers: ["rooms", "sockets open", "workerd RSS MiB", "per socket KiB", "per room KiB", "idle workerd CPU"],
      numeric: [true, true, true, true, true, true],
      rows: [base, loaded].map((x) => [
        int(x.rooms),
        `${int(x.opened)}/${int(x.sockets)}`,
        (x.workerdKiB / 1024).toFixed(1),
        x === loaded ? int(kib / Math.max(1, x.opened)) : "",
        x === loaded ? int(kib / Math.max(1, x.rooms)) : "",
        pct(x.cpu.workerdPct),
      ]),
      notes: [`RSS of the workerd process after ${loaded.idleS} s idle, a fresh server each, PG_IDLE_MS=500 (so no room keeps a Postgres connection). Goal (issue 16): ≤ 50 KiB per idle socket.`],
    });
  }
  return tables;
};

export const perfSection = (r: Results): string => {
  const tables = perfTables(r);
  const head = `## ${PERF_TITLE}\n\n`;
  if (!tables.length) return `${head}Not measured in this run (\`--only perf\` measures it).\n`;
  const servers = ["pp", "ppunnamed", "ppmirror", "ppfresh", "ours", "mirror"] as const;
  return `${head}Measured by \`${r.command}\`${r.quick ? " (quick: smoke-test durations, numbers are rough)" : ""} on ${machineLine(r.machine)}, ${r.date}, code ${r.machine.code}, load average at start ${r.machine.loadAvg}, ${r.machine.postgres}. The **product path** runs the bundle \`wrangler deploy\` uploads (\`wrangler deploy --dry-run\`) under Miniflare directly (tools/local/workerd.ts): the same workerd, bindings and Durable Objects, without \`wrangler dev\` and its inspector proxy. Servers: ${servers.map((k) => `**${SERVERS[k].short}** = ${SERVERS[k].label}`).join("; ")}.

${tables.map((t) => tableToMarkdown(t)).join("\n\n")}
`;
};
