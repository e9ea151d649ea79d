// `npm run dev`: the local stack (database, wsproxy, Redis shim) plus `wrangler dev` wired to it.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { listenProblem } from "./local/net.js";
import { startLocalStack } from "./local/stack.js";
import { stackVars, startWrangler } from "./local/wrangler.js";

const HOST = "127.0.0.1";
const PORT = Number(process.env.PORT ?? 8787);

/** The message for a port dev cannot use, naming the PORT= switch (wrangler's own error is a workerd stack trace advising --port). */
const portAdvice = (problem: string): string => {
  const next = PORT >= 65535 ? 8788 : PORT + 1;
  const why = problem === "EADDRINUSE" ? `is already in use on ${HOST} (another \`npm run dev\`?)` : `cannot be used on ${HOST} (${problem})`;
  return `dev: port ${PORT} ${why}. Stop what uses it, or pick another port: PORT=${next} npm run dev`;
};

async function main(): Promise<void> {
  if (!Number.isInteger(PORT) || PORT < 1 || PORT > 65535) throw new Error(`PORT=${process.env.PORT} is not a port (1–65535), e.g. PORT=8788 npm run dev`);
  // Checked first, before the build and the database start, so the answer is immediate.
  const problem = await listenProblem(HOST, PORT);
  if (problem) {
    console.error(portAdvice(problem));
    process.exit(1);
  }
  // The demo page loads the SDK from public/sdk/, which is generated (not committed): build it first.
  const build = spawnSync(process.execPath, ["--import", "tsx", "tools/build-client.ts", "--js-only"], { stdio: "inherit" });
  if (build.status !== 0) throw new Error(`the client build failed (exit ${build.status ?? build.signal}); see above`);
  const stack = await startLocalStack({ purpose: "dev" });
  // wrangler's banner (and its "update available" nag) is hidden (tools/local/wrangler.ts); the
  // version is pinned on purpose (README, "Toolchain"), so it is said here.
  const wrangler = (JSON.parse(readFileSync("node_modules/wrangler/package.json", "utf8")) as { version: string }).version;
  console.log(`dev: starting wrangler dev ${wrangler} on http://${HOST}:${PORT}\n  ${stack.describe().split("\n").join("\n  ")}`);
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
