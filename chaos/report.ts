// The table at the end of a run, and the findings under it with the command that replays each.

import { type RoomCounts, zeroCounts } from "./check.js";
import type { ScenarioResult } from "./run.js";

const pad = (rows: string[][]): string[] => {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows.map((r) =>
    r
      .map((cell, i) => (i === 0 || i === r.length - 1 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join("  ")
      .trimEnd(),
  );
};

const range = (values: number[]): string => (values.length ? `${Math.min(...values)}–${Math.max(...values)}` : "—");

const errorsCell = (result: ScenarioResult): string => {
  const codes = [...result.errors.codes].sort((a, b) => b[1] - a[1]);
  return codes.length ? codes.map(([code, n]) => `${code} ${n}`).join(", ") : "—";
};

/** The invariants a scenario broke, or PASS. */
export const verdict = (result: ScenarioResult): string => {
  const broken = [...new Set(result.findings.map((f) => f.invariant))];
  return broken.length ? `FAIL ${broken.join(",")}` : "PASS";
};

export function table(results: readonly ScenarioResult[]): string {
  const header = [
    "scenario",
    "time",
    "sent",
    "acked",
    "changes",
    "ambig.",
    "delivered/client",
    "lost",
    "dup",
    "misord",
    "disagree",
    "diverged",
    "phantom",
    "redis≠pg",
    "errors by code",
    "result",
  ];
  const rows = [header];
  const sum: RoomCounts = zeroCounts();
  let redisSum = 0;
  let redisChecked = false;
  for (const r of results) {
    const t = r.totals;
    const redis = r.redis.kind === "checked" ? String(r.redis.diffs) : "skip";
    if (r.redis.kind === "checked") {
      redisSum += r.redis.diffs;
      redisChecked = true;
    }
    rows.push([
      r.name,
      `${(r.elapsedMs / 1000).toFixed(1)}s`,
      String(t.sent),
      String(t.acked),
      String(t.changes),
      String(t.ambiguousResolved),
      range(t.delivered),
      String(t.lost),
      String(t.duplicated),
      String(t.misordered),
      String(t.disagreements),
      String(t.diverged),
      String(t.phantoms),
      redis,
      errorsCell(r),
      verdict(r),
    ]);
    for (const key of Object.keys(sum) as Array<keyof RoomCounts>) {
      if (key === "delivered") sum.delivered.push(...t.delivered);
      else sum[key] += t[key];
    }
  }
  const failed = results.filter((r) => verdict(r) !== "PASS").length;
  rows.push([
    "total",
    `${(results.reduce((n, r) => n + r.elapsedMs, 0) / 1000).toFixed(1)}s`,
    String(sum.sent),
    String(sum.acked),
    String(sum.changes),
    String(sum.ambiguousResolved),
    range(sum.delivered),
    String(sum.lost),
    String(sum.duplicated),
    String(sum.misordered),
    String(sum.disagreements),
    String(sum.diverged),
    String(sum.phantoms),
    redisChecked ? String(redisSum) : "skip",
    "",
    failed ? `${failed} of ${results.length} FAILED` : "all PASS",
  ]);
  const lines = pad(rows);
  const rule = "-".repeat(Math.max(...lines.map((l) => l.length)));
  return [lines[0], rule, ...lines.slice(1, -1), rule, lines.at(-1)].join("\n");
}

export function details(results: readonly ScenarioResult[], replay: (r: ScenarioResult) => string, verbose: boolean): string {
  const out: string[] = [];
  for (const r of results) {
    const failed = r.findings.length > 0;
    if (!failed && !verbose) continue;
    out.push("", `${r.name} (scenario seed ${r.seed}) — ${verdict(r)}`);
    if (failed) out.push(`  replay: ${replay(r)}`);
    for (const f of r.findings) out.push(`  [${f.invariant}] ${f.room === "*" ? "" : `${f.room}: `}${f.detail}`);
    if (r.redis.kind === "skipped") out.push(`  redis: skipped, ${r.redis.why}`);
    else if (verbose) out.push(`  redis: checked, ${r.redis.diffs} differences after ${(r.redis.waitedMs / 1000).toFixed(1)} s`);
    if (r.totals.ambiguousOpen) out.push(`  ambiguous, committed but never acked: ${r.totals.ambiguousOpen}`);
    if (r.totals.refused)
      out.push(`  changes refused with conflict because their target was deleted meanwhile: ${r.totals.refused}`);
    for (const n of r.notes) out.push(`  · ${n}`);
  }
  return out.join("\n");
}
