// `npm run dev`: the local stack (database, wsproxy, Redis shim) plus `wrangler dev` wired to it.
// wrangler runs in its own process group because killing only its pid leaves workerd running.
import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import { startLocalStack } from "./local/stack.js";

const PORT = Number(process.env.PORT ?? 8787);
const HOST = "127.0.0.1";
const ROOT = resolve(import.meta.dirname, "..");
const WRANGLER = resolve(ROOT, "node_modules/.bin/wrangler");
const DEV_SECRET = "dev-secret-not-for-production";

/** Polls /healthz until it answers 200; throws if wrangler exits first or it takes too long. */
async function waitHealthy(child: ChildProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer yet";
  while (Date.now() < deadline) {
    const exit = child.exitCode ?? child.signalCode;
    if (exit !== null) throw new Error(`wrangler exited (${exit}) before it was ready`);
    try {
      const res = await fetch(`http://${HOST}:${PORT}/healthz`, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = e instanceof Error ? e.message : String(e);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`GET /healthz did not answer 200 within ${timeoutMs} ms (last: ${last})`);
}

async function main(): Promise<void> {
  const stack = await startLocalStack({ purpose: "dev" });
  // --var values are split at the first ':' only (checked with wrangler 4.86), so URLs arrive intact.
  const vars: Record<string, string> = {
    DATABASE_URL: stack.databaseUrl,
    AUTH_SECRET: process.env.AUTH_SECRET || DEV_SECRET,
    DEV_TOKENS: "true",
  };
  if (stack.neonWsProxy) vars.NEON_WSPROXY = stack.neonWsProxy;
  if (stack.redis) {
    vars.UPSTASH_REDIS_REST_URL = stack.redis.restUrl;
    vars.UPSTASH_REDIS_REST_TOKEN = stack.redis.restToken;
  }
  const args = ["dev", "--ip", HOST, "--port", String(PORT), "--persist-to", ".data/wrangler", "--show-interactive-dev-session=false"];
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);

  console.log(`dev: starting wrangler dev on http://${HOST}:${PORT}\n  ${stack.describe().split("\n").join("\n  ")}`);
  const child = spawn(WRANGLER, args, {
    cwd: ROOT,
    detached: true, // own process group: `kill -- -pgid` reaches workerd too
    stdio: ["ignore", "inherit", "inherit"],
    env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" },
  });
  const pgid = child.pid;
  const killGroup = (signal: NodeJS.Signals): void => {
    try {
      if (pgid) process.kill(-pgid, signal);
    } catch {
      // already gone
    }
  };
  // Last resort if this process dies some other way: never leave workerd behind.
  process.on("exit", () => killGroup("SIGKILL"));

  // Ctrl-C signals npm, the shell and us at once, so stop() is called more than once: one shutdown.
  let stopping: Promise<never> | undefined;
  const stop = (code: number): Promise<never> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        killGroup("SIGTERM");
        const timer = setTimeout(() => killGroup("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
      killGroup("SIGKILL"); // workerd may outlive its parent; the group does not
      await stack.close();
      process.exit(code);
    })();
    return stopping;
  };
  process.on("SIGINT", () => void stop(130));
  process.on("SIGTERM", () => void stop(143));
  // `kill <npm pid>` ends npm and its `sh -c` without passing the signal on: notice being orphaned.
  const parent = process.ppid;
  setInterval(() => process.ppid !== parent && void stop(143), 1000).unref();
  child.on("exit", (code) => {
    if (!stopping) console.error(`dev: wrangler exited with ${code}; shutting down`);
    void stop(code ?? 1);
  });

  try {
    await waitHealthy(child);
  } catch (e) {
    console.error(`dev: ${e instanceof Error ? e.message : String(e)}`);
    return stop(1);
  }
  console.log(`\nedge-chat dev ready: http://${HOST}:${PORT}\n  ${stack.describe().split("\n").join("\n  ")}\n`);
}

main().catch((e: unknown) => {
  console.error(`dev: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1); // the exit hook kills wrangler's group; services die with this process
});
