// `npm run dev`: the local stack (database, wsproxy, Redis shim) plus `wrangler dev` wired to it.
import { spawnSync } from "node:child_process";
import { startLocalStack } from "./local/stack.js";
import { stackVars, startWrangler } from "./local/wrangler.js";

const PORT = Number(process.env.PORT ?? 8787);

async function main(): Promise<void> {
  // The demo page loads the SDK from public/sdk/, which is generated (not committed): build it first.
  const build = spawnSync(process.execPath, ["--import", "tsx", "tools/build-client.ts"], { stdio: "inherit" });
  if (build.status !== 0) throw new Error(`the client build failed (exit ${build.status ?? build.signal}); see above`);
  const stack = await startLocalStack({ purpose: "dev" });
  console.log(`dev: starting wrangler dev on http://127.0.0.1:${PORT}\n  ${stack.describe().split("\n").join("\n  ")}`);
  let server: Awaited<ReturnType<typeof startWrangler>> | undefined;
  // Ctrl-C signals npm, the shell and us at once, so stop() is called more than once: one shutdown.
  let stopping: Promise<never> | undefined;
  const stop = (code: number): Promise<never> => {
    stopping ??= (async () => {
      await server?.stop();
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
  try {
    server = await startWrangler({ port: PORT, vars: stackVars(stack), persistTo: ".data/wrangler", output: "inherit" });
  } catch (e) {
    console.error(`dev: ${e instanceof Error ? e.message : String(e)}`);
    return stop(1);
  }
  server.child.on("exit", (code) => {
    if (!stopping) console.error(`dev: wrangler exited with ${code}; shutting down`);
    void stop(code ?? 1);
  });
  console.log(
    `\nedge-chat dev ready: ${server.url}\n  demo page: ${server.url}/\n  ${stack.describe().split("\n").join("\n  ")}\n`,
  );
}

main().catch((e: unknown) => {
  console.error(`dev: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
