// Where the CPU went during a measurement, from /proc: the load generators, this process (which
// hosts the local stack's wsproxy and Redis shim), each wrangler/workerd process group, Postgres,
// Redis, and the machine as a whole. On 2 shared cores this is what tells a reader whether the
// number measures the product or the machine.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

const CLK_TCK = ((): number => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface Proc {
  pid: number;
  comm: string;
  pgrp: number;
  /** utime + stime + cutime + cstime: reaped children count too (per-batch Postgres backends are short-lived). */
  ticks: number;
}

const readProc = (pid: number): Proc | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const open = stat.indexOf("(");
    const close = stat.lastIndexOf(")");
    const fields = stat.slice(close + 2).split(" ");
    const n = (i: number): number => Number(fields[i] ?? 0);
    return { pid, comm: stat.slice(open + 1, close), pgrp: n(2), ticks: n(11) + n(12) + n(13) + n(14) };
  } catch {
    return undefined; // exited between readdir and read
  }
};

const machineTicks = (): { busy: number; total: number } => {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const total = values.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  return { busy: total - idle, total };
};

export interface CpuGroup {
  name: string;
  match: (p: { pid: number; comm: string; pgrp: number }) => boolean;
}

export interface CpuSnapshot {
  at: number;
  groups: Map<string, number>;
  machine: { busy: number; total: number };
}

export const snapshot = (groups: readonly CpuGroup[]): CpuSnapshot => {
  const sums = new Map<string, number>(groups.map((g) => [g.name, 0]));
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const proc = readProc(pid);
    if (!proc) continue;
    for (const g of groups) if (g.match(proc)) sums.set(g.name, (sums.get(g.name) ?? 0) + proc.ticks);
  }
  return { at: performance.now(), groups: sums, machine: machineTicks() };
};

/** CPU use between two snapshots: per group in % of one core, the machine in % of all cores. */
export const cpuBetween = (a: CpuSnapshot, b: CpuSnapshot): { groups: Record<string, number>; machinePct: number } => {
  const seconds = (b.at - a.at) / 1000;
  const groups: Record<string, number> = {};
  for (const [name, ticks] of b.groups) {
    const before = a.groups.get(name) ?? 0;
    // A group whose processes exited shrinks; report 0 rather than a negative share.
    groups[name] = Math.max(0, ((ticks - before) / CLK_TCK / seconds) * 100);
  }
  const total = b.machine.total - a.machine.total;
  return { groups, machinePct: total > 0 ? ((b.machine.busy - a.machine.busy) / total) * 100 : 0 };
};

/** Resident memory (VmRSS) summed per group, in KiB, from /proc/<pid>/status. */
export const rssKiB = (groups: readonly CpuGroup[]): Record<string, number> => {
  const sums: Record<string, number> = Object.fromEntries(groups.map((g) => [g.name, 0]));
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const proc = readProc(pid);
    if (!proc) continue;
    const matching = groups.filter((g) => g.match(proc));
    if (!matching.length) continue;
    let kib = 0;
    try {
      kib = Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+)/m)?.[1] ?? 0);
    } catch {
      continue;
    }
    for (const g of matching) sums[g.name] = (sums[g.name] ?? 0) + kib;
  }
  return sums;
};
