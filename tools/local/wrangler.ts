// Starts `wrangler dev` (the real Worker + Durable Objects in workerd) as a child process that a
// harness controls: dev, benchmarks, the chaos checker and the SDK tests all use it. wrangler runs
// in its own process group because killing only its pid leaves workerd running.
import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import type { LocalStack } from "./stack.js";

const ROOT = resolve(import.meta.dirname, "../..");
const WRANGLER = resolve(ROOT, "node_modules/.bin/wrangler");
export const DEV_SECRET = "dev-secret-not-for-production";

export interface WranglerOptions {
  port: number;
  host?: string;
  /** Worker vars, passed as --var KEY:VALUE (wrangler splits at the first ':' only). */
  vars: Record<string, string>;
  /** Durable Object state directory; kept across restarts of the same harness. */
  persistTo: string;
  /** Another wrangler config than the product's (the benchmark fixture), relative to the repo. */
  config?: string;
  /** "inherit" shows wrangler's output (dev); "ignore" keeps a harness's output readable. */
  output?: "inherit" | "ignore";
}

export interface WranglerServer {
  url: string;
  child: ChildProcess;
  /** Stops wrangler and everything it started (SIGTERM, then SIGKILL after 5 s). Idempotent. */
  stop(): Promise<void>;
  /** Kills the server abruptly (every room object dies with it), as a crash would. */
  kill(): Promise<void>;
}

/** The vars a local stack gives the Worker. */
export const stackVars = (stack: LocalStack, extra: Record<string, string> = {}): Record<string, string> => {
  const vars: Record<string, string> = {
    DATABASE_URL: stack.databaseUrl,
    AUTH_SECRET: process.env.AUTH_SECRET || DEV_SECRET,
    DEV_TOKENS: "true",
    // The dev conveniences wrangler.toml keeps off for production: open rooms (the demo, e2e,
    // chaos and bench all join rooms by name), the demo page, and any origin for CORS.
    AUTO_CREATE_ROOMS: "true",
    DEMO_PAGE: "true",
    CORS_ORIGINS: "*",
    // The cross-room limits are sized for people, not for harnesses: the benchmark mints a
    // thousand dev tokens from one address and reconnects one user hundreds of times, chaos
    // reconnects every client at once. RATE_LIMITS=on (in the environment) turns them on locally.
    RATE_LIMITS: process.env.RATE_LIMITS === "on" ? "on" : "off",
  };
  if (stack.neonWsProxy) vars.NEON_WSPROXY = stack.neonWsProxy;
  if (stack.redis) {
    vars.UPSTASH_REDIS_REST_URL = stack.redis.restUrl;
    vars.UPSTASH_REDIS_REST_TOKEN = stack.redis.restToken;
  }
  return { ...vars, ...extra };
};

/** Polls /healthz until it answers 200; throws if the server's process exits first or it takes too long. */
async function waitHealthy(
  child: ChildProcess,
  url: string,
  timeoutMs: number,
  spawnError: () => Error | undefined,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer yet";
  while (Date.now() < deadline) {
    const failed = spawnError();
    if (failed) throw new Error(`unable to start ${what}: ${failed.message}`);
    const exit = child.exitCode ?? child.signalCode;
    if (exit !== null) throw new Error(`${what} exited (${exit}) before it was ready`);
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`GET /healthz did not answer 200 within ${timeoutMs} ms (last: ${last})`);
}

/**
 * Takes charge of a server spawned `detached` (its own process group, so killing the group reaches
 * workerd too): never leaves the group behind when this process exits, stops it (SIGTERM, SIGKILL
 * after 5 s; idempotent) or kills it, and resolves once /healthz answers. `wrangler dev` and the
 * product path (workerd.ts) share it.
 */
export async function superviseServer(child: ChildProcess, url: string, timeoutMs: number, what: string): Promise<WranglerServer> {
  // A failed spawn (no binary, EAGAIN) is an 'error' event: unhandled, it would kill the harness;
  // handled, waitHealthy reports it.
  let spawnError: Error | undefined;
  child.on("error", (e) => {
    spawnError = e;
  });
  const pgid = child.pid;
  const killGroup = (signal: NodeJS.Signals): void => {
    try {
      if (pgid) process.kill(-pgid, signal);
    } catch {
      // already gone
    }
  };
  const onExit = (): void => killGroup("SIGKILL");
  process.on("exit", onExit); // never leave workerd behind
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  let stopping: Promise<void> | undefined;
  const stop = (signal: NodeJS.Signals): Promise<void> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        killGroup(signal);
        const timer = setTimeout(() => killGroup("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
      killGroup("SIGKILL"); // workerd may outlive its parent; the group does not
      process.off("exit", onExit);
    })();
    return stopping;
  };
  const server: WranglerServer = { url, child, stop: () => stop("SIGTERM"), kill: () => stop("SIGKILL") };
  try {
    await waitHealthy(child, url, timeoutMs, () => spawnError, what);
  } catch (e) {
    await server.kill();
    throw e;
  }
  return server;
}

export async function startWrangler(options: WranglerOptions, timeoutMs = 60_000): Promise<WranglerServer> {
  const host = options.host ?? "127.0.0.1";
  const url = `http://${host}:${options.port}`;
  const args = ["dev", "--ip", host, "--port", String(options.port), "--persist-to", options.persistTo];
  args.push("--show-interactive-dev-session=false");
  if (options.config) args.push("--config", resolve(ROOT, options.config));
  for (const [k, v] of Object.entries(options.vars)) args.push("--var", `${k}:${v}`);
  const child = spawn(WRANGLER, args, {
    cwd: ROOT,
    detached: true, // own process group: `kill -- -pgid` reaches workerd too
    stdio: ["ignore", options.output ?? "ignore", options.output ?? "ignore"],
    // CLOUDFLARE_CF_FETCH_ENABLED and WRANGLER_SEND_METRICS: it would otherwise go to the internet.
    // WRANGLER_HIDE_BANNER: the banner is where wrangler runs its update check and prints
    // "update available" on every start; our versions are pinned on purpose (README, "Toolchain").
    env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true" },
  });
  return superviseServer(child, url, timeoutMs, "wrangler");
}
