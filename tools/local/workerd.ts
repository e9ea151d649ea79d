// The "product path" for benchmarks: the same Worker as `wrangler dev`, bundled by wrangler
// (`deploy --dry-run`, exactly what `wrangler deploy` uploads), run by Miniflare directly in a child
// process (serve-miniflare.ts), so no wrangler dev inspector proxy sits on its outbound calls.
// `wrangler dev` stays the newcomer path; docs/benchmarks.md reports both where they differ.
import { spawn } from "node:child_process";
import { mkdtemp, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { execFile } from "node:child_process";
import { superviseServer, type WranglerOptions, type WranglerServer } from "./wrangler.js";

const ROOT = resolve(import.meta.dirname, "../..");
const WRANGLER = resolve(ROOT, "node_modules/.bin/wrangler");
const TSX = resolve(ROOT, "node_modules/.bin/tsx");
const run = promisify(execFile);

const bundles = new Map<string, Promise<string>>();

/** Bundles the Worker of `config` once per process, as `wrangler deploy` would; returns the bundle's path. */
const bundle = (config: string): Promise<string> => {
  let dir = bundles.get(config);
  if (!dir) {
    dir = (async () => {
      const out = await mkdtemp(join(tmpdir(), "edge-chat-bundle-"));
      await run(WRANGLER, ["deploy", "--dry-run", "--outdir", out, "--config", config], {
        cwd: ROOT,
        env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false" },
      });
      // Named after the entry module (index.js, worker.js).
      const file = (await readdir(out)).find((f) => f.endsWith(".js"));
      if (!file) throw new Error(`wrangler deploy --dry-run wrote no .js bundle into ${out}`);
      return join(out, file);
    })();
    bundles.set(config, dir);
  }
  return dir;
};

export async function startWorkerd(options: WranglerOptions & { inspectorPort?: number }, timeoutMs = 60_000): Promise<WranglerServer> {
  const host = options.host ?? "127.0.0.1";
  const url = `http://${host}:${options.port}`;
  const config = resolve(ROOT, options.config ?? "wrangler.toml");
  const bundlePath = await bundle(config);
  const child = spawn(TSX, [resolve(ROOT, "tools/local/serve-miniflare.ts")], {
    cwd: ROOT,
    detached: true, // own process group: workerd goes with it
    stdio: ["ignore", options.output ?? "ignore", options.output ?? "ignore"],
    env: {
      ...process.env,
      CHAT_MINIFLARE: JSON.stringify({
        config,
        bundlePath,
        host,
        port: options.port,
        vars: options.vars,
        persistTo: options.persistTo,
        inspectorPort: options.inspectorPort,
      }),
    },
  });
  return superviseServer(child, url, timeoutMs, "Miniflare");
}
