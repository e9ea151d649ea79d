// Runs in Node before the end-to-end tests: builds the SDK bundle (the demo page loads it from
// /sdk/chat-client.js), starts the local stack and a real `wrangler dev` on a free port, and a
// loopback control endpoint through which a test can crash and restart that server. The server
// has to live here, not in a test file: only this process may kill it and start it again on the
// same port with the same Durable Object state, as a redeploy or a crash of the runtime would.

import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { TestProject } from "vitest/node";
import { listen, probe, sendJson } from "../tools/local/net.js";
import { startLocalStack } from "../tools/local/stack.js";
import { DEV_SECRET, stackVars, startWrangler, type WranglerServer } from "../tools/local/wrangler.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** The Worker under test, e.g. http://127.0.0.1:41234. */
    e2eUrl: string;
    /** POST {e2eControl}/restart (?downMs=) kills wrangler and starts it again; /kill and /start do one half. */
    e2eControl: string;
    /** The wsproxy in front of Postgres: POST a fault here (tools/local/faults.ts). */
    faultsUrl: string;
    /** The HS256 secret the Worker verifies tokens with, for tests that mint their own. */
    authSecret: string;
    /** The database the Worker commits to, and the wsproxy in front of it, to check what was committed. */
    databaseUrl: string;
    neonWsProxy: string;
  }
}

const ROOT = resolve(import.meta.dirname, "..");

const freePort = async (): Promise<number> => {
  const probe = createServer();
  const port = await listen(probe, 0);
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
};

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  // The page must load the SDK as it is in this tree, not a stale bundle (public/sdk is generated).
  const build = spawnSync(process.execPath, ["--import", "tsx", "tools/build-client.ts", "--js-only"], { cwd: ROOT, stdio: "inherit" });
  if (build.status !== 0) throw new Error(`npm run build:client failed (exit ${build.status ?? build.signal})`);

  const stack = await startLocalStack({ purpose: "test" });
  if (!stack.faultsUrl)
    throw new Error("e2e tests need a local wsproxy (fault injection); DATABASE_URL must be a local Postgres");
  const persistTo = await mkdtemp(join(tmpdir(), "edge-chat-e2e-"));
  const port = await freePort();
  // E2E_SERVER_LOG=1 shows wrangler's output (the Worker's logs) among the test output.
  const output = process.env.E2E_SERVER_LOG === "1" ? "inherit" : "ignore";
  const options = { port, persistTo, output, vars: stackVars(stack, {
      AUTH_SECRET: DEV_SECRET,
      // A tenant for the server API's contract calls (e2e/schemas.test.ts): a tenant ban visits
      // every room of its tenant, and the default tenant's rooms pile up in a reused database.
      TENANTS: JSON.stringify({ e2esrv: { devOnly: true, autoCreateRooms: false } }),
    }) } as const;
  let server: WranglerServer | undefined = await startWrangler(options);
  console.log(`\n[e2e] ${server.url} (wrangler dev, state in ${persistTo})\n${stack.describe()}\n`);

  // One control operation at a time: a restart must not interleave with another start.
  let queue: Promise<unknown> = Promise.resolve();
  const serialized = <T>(op: () => Promise<T>): Promise<T> => {
    const run = queue.then(op);
    queue = run.catch(() => undefined);
    return run;
  };
  const kill = async (): Promise<void> => {
    await server?.kill();
    server = undefined;
    // A restart must really be one: if anything still answered on the port, the "restarted"
    // server would be the old one and a test could pass without ever losing a connection.
    for (let i = 0; await probe("127.0.0.1", port, 200); i++) {
      if (i >= 50) throw new Error(`something still listens on port ${port} after killing wrangler`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const start = async (): Promise<void> => {
    server ??= await startWrangler(options);
  };

  const control: Server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://control");
    const downMs = Math.min(30_000, Number(url.searchParams.get("downMs") ?? 0) || 0);
    const ops: Record<string, () => Promise<void>> = {
      "/kill": kill,
      "/start": start,
      "/restart": async () => {
        await kill();
        await new Promise((r) => setTimeout(r, downMs));
        await start();
      },
    };
    const op = req.method === "POST" ? ops[url.pathname] : undefined;
    if (!op) return sendJson(res, 404, { error: "POST /kill, /start or /restart?downMs=" });
    const t0 = Date.now();
    serialized(op).then(
      () => sendJson(res, 200, { ok: true, ms: Date.now() - t0 }),
      (e: unknown) => sendJson(res, 500, { error: e instanceof Error ? e.message : String(e) }),
    );
  });
  const controlPort = await listen(control, 0);

  project.provide("e2eUrl", `http://127.0.0.1:${port}`);
  project.provide("e2eControl", `http://127.0.0.1:${controlPort}`);
  project.provide("faultsUrl", stack.faultsUrl);
  project.provide("authSecret", DEV_SECRET);
  project.provide("databaseUrl", stack.databaseUrl);
  project.provide("neonWsProxy", stack.neonWsProxy);
  console.log(`[e2e] ready in ${Date.now() - started} ms`);

  return async () => {
    await serialized(kill);
    control.closeAllConnections();
    await new Promise<void>((r) => control.close(() => r()));
    await stack.close();
    await rm(persistTo, { recursive: true, force: true });
  };
}
