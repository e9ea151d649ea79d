// Runs the bundled Worker under Miniflare directly: workerd with the Worker's bindings, Durable
// Objects and persistence, but without `wrangler dev` and its inspector proxy (which adds a
// debug-log round trip to every outbound fetch, so it taxes the Redis mirror and anything else
// that calls out). A child process of tools/local/workerd.ts; its options come in CHAT_MINIFLARE.
import { dirname, join } from "node:path";
import { Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

interface Options {
  config: string;
  bundlePath: string;
  host: string;
  port: number;
  vars: Record<string, string>;
  persistTo: string;
  /** Set to open workerd's V8 inspector on this port (bench/profile.ts takes CPU profiles through it). */
  inspectorPort?: number;
}

const options = JSON.parse(process.env.CHAT_MINIFLARE ?? "{}") as Options;
const { workerOptions } = unstable_getMiniflareWorkerOptions(options.config);
const mf = new Miniflare({
  ...workerOptions,
  name: "edge-chat",
  modules: [{ type: "ESModule", path: options.bundlePath }],
  modulesRoot: dirname(options.bundlePath),
  bindings: { ...(workerOptions.bindings ?? {}), ...options.vars },
  host: options.host,
  port: options.port,
  defaultPersistRoot: options.persistTo,
  durableObjectsPersist: join(options.persistTo, "do"),
  ...(options.inspectorPort ? { inspectorPort: options.inspectorPort } : {}),
});
await mf.ready;
console.log(`ready ${options.host}:${options.port}`);
let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  await mf.dispose().catch(() => {});
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
