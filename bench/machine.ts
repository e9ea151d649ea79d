// What the numbers were measured on: the machine, the code, the database settings that decide
// what a commit costs (fsync, synchronous_commit).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { neonPool } from "../tools/local/neon.js";
import type { LocalStack } from "../tools/local/stack.js";
import { summarize } from "./stats.js";

export interface MachineInfo {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  os: string;
  loadAvg: string;
  /** `097d998`, plus a note when src/ has uncommitted changes (they are what was measured). */
  code: string;
  postgres: string;
  /**
   * p50 ms of 20 `SELECT 1` (simple protocol, one message) and 20 `SELECT $1` (extended protocol:
   * Parse/Bind/Execute/Sync) from Node through the stack's wsproxy. A parameterised round trip
   * far slower than a simple one means small writes wait on Nagle's algorithm in the proxy.
   */
  proxyProbe: { simpleMs: number; paramMs: number };
}

const cpuModel = (): string => {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("model name"));
    return line?.split(":")[1]?.trim() ?? os.cpus()[0]?.model ?? "unknown";
  } catch {
    return os.cpus()[0]?.model ?? "unknown";
  }
};

const osName = (): string => {
  try {
    const pretty = readFileSync("/etc/os-release", "utf8").match(/^PRETTY_NAME="?([^"\n]*)"?/m)?.[1];
    return `${pretty ?? os.type()} (kernel ${os.release()})`;
  } catch {
    return `${os.type()} ${os.release()}`;
  }
};

const git = (args: string[]): string => {
  try {
    return execFileSync("git", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "";
  }
};

const codeState = (): string => {
  const head = git(["rev-parse", "--short", "HEAD"]) || "unknown";
  // What the Worker is built from: an uncommitted change there is part of what was measured.
  const dirty = git(["status", "--porcelain", "--", "src", "wrangler.toml", "migrations"])
    .split("\n")
    // `git()` trims the whole output, which eats the first line's leading status column (" M src/…").
    .map((l) => l.replace(/^\s*\S+\s+/, "").trim())
    .filter((l) => l !== "");
  if (!dirty.length) return head;
  const shown = dirty.slice(0, 4).join(", ");
  return `${head} + uncommitted changes (measured as they were): ${shown}${dirty.length > 4 ? `, … (${dirty.length} files)` : ""}`;
};

const postgresSettings = async (stack: LocalStack): Promise<Pick<MachineInfo, "postgres" | "proxyProbe">> => {
  const pool = neonPool(stack.databaseUrl, stack.neonWsProxy || undefined, 1);
  const timeP50 = async (run: () => Promise<unknown>): Promise<number> => {
    const samples: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      await run();
      samples.push(performance.now() - started);
    }
    return summarize(samples).p50;
  };
  try {
    const { rows } = await pool.query<{ v: string; fsync: string; sc: string }>(
      "SELECT current_setting('server_version') AS v, current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc",
    );
    const row = rows[0];
    const proxyProbe = {
      simpleMs: await timeP50(() => pool.query("SELECT 1")),
      paramMs: await timeP50(() => pool.query("SELECT $1::int AS n", [1])),
    };
    return {
      postgres: row
        ? `PostgreSQL ${row.v.split(" ")[0]} (${stack.databaseKind}), fsync=${row.fsync}, synchronous_commit=${row.sc}`
        : stack.databaseKind,
      proxyProbe,
    };
  } catch (error) {
    return {
      postgres: `${stack.databaseKind} (settings unreadable: ${error instanceof Error ? error.message : String(error)})`,
      proxyProbe: { simpleMs: Number.NaN, paramMs: Number.NaN },
    };
  } finally {
    await pool.end().catch(() => {});
  }
};

export const machineInfo = async (stack: LocalStack): Promise<MachineInfo> => ({
  cores: os.availableParallelism(),
  cpuModel: cpuModel(),
  memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
  node: process.version,
  os: osName(),
  loadAvg: os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(" "),
  code: codeState(),
  ...(await postgresSettings(stack)),
});

export const machineLine = (m: MachineInfo): string =>
  `${m.cores} cores (nproc), ${m.cpuModel}, ${m.memoryGiB} GiB RAM, Node ${m.node}, ${m.os}`;
