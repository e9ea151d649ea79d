// `npm run bench`: the room's write and join paths measured against baselines, side by side in one
// run, on the real local stack (Postgres via the Neon wsproxy, Redis via the Upstash shim, the
// Worker in `wrangler dev`). Writes docs/benchmarks.md (+ SVG charts) and a raw JSON record.
//
//   flock /tmp/edge-chat-cpu.lock npm run bench              full run, a few minutes, writes docs/
//   flock /tmp/edge-chat-cpu.lock npm run bench -- --quick   smoke run, under a minute, docs untouched
//
// Options: --quick, --only a,b (throughput, rates, connect, mirror, joinview, fanout, rooms, cursors, roomlist, slow, attachments, replicas, webhooks),
// --procs N (load generators, default 2), --out FILE (markdown path), --keep (leave this run's rooms in Postgres and
// Redis), --from FILE (re-render the report from a raw record in bench/results/, measuring nothing), --splice (write
// only the self-contained sections this run measured into the existing page, keeping the rest of it).
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { neonPool } from "../tools/local/neon.js";
import { type LocalStack, startLocalStack } from "../tools/local/stack.js";
import { stackVars, startWrangler, type WranglerServer } from "../tools/local/wrangler.js";
import { hookBench, hookTable, hookVars, startHookReceiver } from "./hook.js";
import { startWorkerd } from "../tools/local/workerd.js";
import { perfScenarios } from "./perf.js";
import { PERF_TITLE, perfSection } from "./perfdoc.js";
import { BENCH_VARS, Context, FULL_PLAN, QUICK_PLAN, SERVERS, type ServerKey } from "./context.js";
import { cursorCost, roomList, slowConsumers } from "./costs.js";
import { COSTS_TITLE, costsSection } from "./costsdoc.js";
import { allTables, charts, howToRun, markdown, nagled, type Results } from "./document.js";
import { machineInfo, machineLine } from "./machine.js";
import { mirrorScenarios } from "./mirror.js";
import { LoadGenPool } from "./pool.js";
import { tableToText } from "./report.js";
import { fanout, joinView, manyRooms } from "./scale.js";
import { type BenchReceiver, startBenchReceiver, WEBHOOKS_TITLE, webhookBench, type WebhookResults, webhookTables, webhooksSection, webhookVars } from "./webhooks.js";
import { connects, pings, rates, throughput } from "./scenarios.js";
import { type ReplicaReport, replicaBench, replicaPage } from "./replicas.js";
import { ATTACHMENTS_TITLE, type AttachmentResults, attachmentBench, attachmentTables, attachmentsSection } from "./attachments.js";

/** The record, with the attachments' measurements (bench/attachments.ts) beside the rest. */
type RunResults = Results & { attachments?: AttachmentResults; replicas?: ReplicaReport; webhooks?: WebhookResults };

const ROOT = resolve(import.meta.dirname, "..");
const SCENARIOS = [
  "throughput",
  "rates",
  "connect",
  "mirror",
  "joinview",
  "fanout",
  "rooms",
  "cursors",
  "roomlist",
  "slow",
  "perf",
  "attachments",
  "replicas",
  "webhooks",
  "hook",
] as const;
type Scenario = (typeof SCENARIOS)[number];

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    procs: { type: "string", default: "2" },
    out: { type: "string" },
    keep: { type: "boolean", default: false },
    from: { type: "string" },
    splice: { type: "boolean", default: false },
  },
  strict: true,
});

const freePort = (): Promise<number> =>
  new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });

/** The local webhook receiver of the `hooks` server (started before the servers when webhooks are measured). */
let hookReceiver: BenchReceiver | undefined;

/** The benchmark fixture's wrangler config (bench/fixture/): the product plus baseline seams. */
const FIXTURE_CONFIG = "bench/fixture/wrangler.toml";
/** The bare runtime baseline (bench/fixture/bare.ts): a Durable Object per room and nothing else. */
const BARE_CONFIG = "bench/fixture/bare-wrangler.toml";

/** Worker vars for one server: the stack's, plus that server's switch. */
/** The before-commit hook's receiver, started before the servers when `--only hook` (bench/hook.ts). */
let reviewReceiver: Awaited<ReturnType<typeof startHookReceiver>> | undefined;

const varsFor = (stack: LocalStack, key: ServerKey): Record<string, string> => {
  const vars = stackVars(stack, {
    ...BENCH_VARS,
    ...SERVERS[key].vars,
    ...(key === "hooks" && hookReceiver ? webhookVars(hookReceiver.url) : {}),
    ...(key === "hook" && reviewReceiver ? hookVars(reviewReceiver.url) : {}),
  });
  if (!["mirror", "ppmirror", "ppmirror0", "ppmirror50", "ppreplica"].includes(key)) {
    delete vars.UPSTASH_REDIS_REST_URL;
    delete vars.UPSTASH_REDIS_REST_TOKEN;
  }
  return vars;
};

// Piped into `head` or a closed terminal: losing the progress lines must not skip the cleanup.
process.stdout.on("error", () => {});

/** Writes the Markdown report and its two SVG charts next to it; returns what it wrote. */
async function writeReport(results: RunResults, out: string): Promise<string> {
  const stem = basename(out, ".md");
  const files = { latency: `${stem}-latency.svg`, connect: `${stem}-connect.svg` };
  const svg = charts(results);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(join(dirname(out), files.latency), svg.latency);
  await writeFile(join(dirname(out), files.connect), svg.connect);
  await writeFile(out, replaceSection(markdown(results, files), ATTACHMENTS_TITLE, sectionOfAttachments(results), "Method"));
  return `${relative(ROOT, out)}, ${files.latency}, ${files.connect}`;
}

/**
 * Replaces the `## title` section of a page (up to the next `## ` heading) with `section`, or
 * inserts it before `## before` when the page has none yet.
 */
const replaceSection = (page: string, title: string, section: string, before: string): string => {
  const start = page.indexOf(`\n## ${title}\n`);
  const text = section.endsWith("\n") ? section : `${section}\n`;
  if (start >= 0) {
    const next = page.indexOf("\n## ", start + 1);
    return `${page.slice(0, start + 1)}${text}${next >= 0 ? `\n${page.slice(next + 1)}` : ""}`;
  }
  const at = page.indexOf(`\n## ${before}\n`);
  if (at < 0) throw new Error(`--splice: the page has neither "## ${title}" nor "## ${before}"`);
  return `${page.slice(0, at + 1)}${text}\n${page.slice(at + 1)}`;
};

const sectionOfAttachments = (results: RunResults): string =>
  attachmentsSection(results.attachments, machineLine(results.machine), results.date, results.command);

/**
 * `--splice`: writes only the sections that stand on their own (bench/costsdoc.ts) and "How to
 * run" (no numbers) into the existing page; the other sections and the charts stay as they were.
 */
async function spliceReport(results: RunResults, out: string): Promise<string> {
  const base = await readFile(out, "utf8").catch(() => readFile(join(ROOT, "docs/benchmarks.md"), "utf8"));
  let page = replaceSection(base, "How to run", howToRun(), "Summary");
  if (results.cursors?.length || results.roomList?.length || results.slow?.length) page = replaceSection(page, COSTS_TITLE, costsSection(results), "Method");
  if (results.perf) page = replaceSection(page, PERF_TITLE, perfSection(results), "Method");
  if (results.attachments) page = replaceSection(page, ATTACHMENTS_TITLE, sectionOfAttachments(results), "Method");
  if (results.webhooks) page = replaceSection(page, WEBHOOKS_TITLE, webhooksSection(results.webhooks, machineLine(results.machine), results.date, results.command), "Method");
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, page);
  return `${relative(ROOT, out)} (spliced: "How to run"${results.cursors?.length ? `, "${COSTS_TITLE}"` : ""}${results.perf ? `, "${PERF_TITLE}"` : ""}${results.attachments ? `, "${ATTACHMENTS_TITLE}"` : ""}${results.webhooks ? `, "${WEBHOOKS_TITLE}"` : ""})`;
}

/** `--from FILE`: re-renders tables and the report from a raw record, without measuring anything. */
async function render(from: string): Promise<void> {
  const results = JSON.parse(await readFile(resolve(from), "utf8")) as RunResults;
  for (const table of allTables(results)) console.log(`${tableToText(table)}\n`);
  const out = args.out ? resolve(args.out) : results.quick ? undefined : join(ROOT, "docs/benchmarks.md");
  if (!out) console.log("quick record: pass --out FILE to write a report");
  else console.log(`wrote ${args.splice ? await spliceReport(results, out) : await writeReport(results, out)}`);
}

async function main(): Promise<void> {
  if (args.from) return render(args.from);
  const started = performance.now();
  const quick = args.quick ?? false;
  const plan = quick ? QUICK_PLAN : FULL_PLAN;
  const only = new Set<Scenario>(
    args.only
      ? args.only.split(",").map((s) => {
          if (!(SCENARIOS as readonly string[]).includes(s))
            throw new Error(`--only: unknown scenario ${s}; use ${SCENARIOS.join(", ")}`);
          return s as Scenario;
        })
      : SCENARIOS,
  );
  const procs = Number(args.procs);
  if (!Number.isInteger(procs) || procs < 1 || procs > 8) throw new Error("--procs must be 1–8");

  const wanted = new Set<ServerKey>();
  if (only.has("throughput") || only.has("rates")) for (const k of ["ours", "batch1", "perbatch"] as const) wanted.add(k);
  if (only.has("connect")) for (const k of ["ours", "coldhist"] as const) wanted.add(k);
  if (only.has("mirror")) for (const k of ["ours", "mirror"] as const) wanted.add(k);
  if (only.has("joinview") || only.has("fanout")) wanted.add("ours");
  // The many-rooms memory measurement gets a server of its own: its RSS then holds nothing else.
  if (only.has("rooms")) wanted.add("fresh");
  if (only.has("cursors") || only.has("roomlist")) wanted.add("ours");
  // The slow-consumer memory measurement, likewise: its RSS growth is then only its own.
  if (only.has("slow")) wanted.add("slowmem");
  if (only.has("perf")) for (const k of ["pp", "ppunnamed", "ppmirror", "ppmirror0", "ppmirror50", "ours", "mirror", "ppfresh", "ppbare"] as const) wanted.add(k);
  if (only.has("attachments")) wanted.add("ours");
  if (only.has("replicas")) wanted.add("ppreplica");
  if (only.has("webhooks")) for (const k of ["ours", "hooks"] as const) wanted.add(k);
  if (only.has("hook")) wanted.add("hook");
  if (args.splice && [...only].some((s) => !["cursors", "roomlist", "slow", "perf", "attachments", "webhooks"].includes(s)))
    throw new Error("--splice writes only the cursors, roomlist, slow, perf, attachments and webhooks sections: use it with --only of those");

  const say = (text: string): void => console.log(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)}s] ${text}`);
  say(`bench: ${quick ? "quick" : "full"} run; scenarios ${[...only].join(", ")}; servers ${[...wanted].join(", ")}`);

  const servers = new Map<ServerKey, WranglerServer>();
  const persistDirs: string[] = [];
  let stack: LocalStack | undefined;
  let pool: LoadGenPool | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      pool?.close();
      await Promise.all([...servers.values()].map((s) => s.stop()));
      await stack?.close();
      await hookReceiver?.close();
      await reviewReceiver?.close();
      await Promise.all(persistDirs.map((d) => rm(d, { recursive: true, force: true })));
    })());
  const onSignal = (code: number) => () => {
    console.error("bench: interrupted; stopping servers");
    void cleanup().finally(() => process.exit(code));
  };
  process.on("SIGINT", onSignal(130));
  process.on("SIGTERM", onSignal(143));

  try {
    stack = await startLocalStack({ purpose: "bench" });
    say(`stack:\n    ${stack.describe().split("\n").join("\n    ")}`);
    if (stack.databaseKind === "embedded") {
      console.warn("bench: WARNING: no real PostgreSQL; embedded PGlite serialises connections, numbers will not mean much");
    }
    const machine = await machineInfo(stack);
    say(`machine: ${machineLine(machine)}; load ${machine.loadAvg}; code ${machine.code}`);
    say(
      `wsproxy probe from Node: SELECT 1 p50 ${machine.proxyProbe.simpleMs.toFixed(2)} ms, SELECT $1 p50 ${machine.proxyProbe.paramMs.toFixed(2)} ms${nagled(machine) ? "  <- WARNING: parameterised queries wait ~40 ms (Nagle on the proxy's TCP socket?)" : ""}`,
    );
    // wrangler dev appends every inspector message to a debug log (~/.config/.wrangler/logs by
    // default), megabytes per run: keep this run's in the temp dir and delete it with the servers.
    const logDir = await mkdtemp(join(tmpdir(), "edge-chat-bench-logs-"));
    persistDirs.push(logDir);
    process.env.WRANGLER_LOG_PATH = join(logDir, "wrangler.log");
    // Sequentially: wrangler picks its inspector port when it starts, and two at once could pick the same.
    const startServer = async (key: ServerKey, local: LocalStack): Promise<void> => {
      const dir = await mkdtemp(join(tmpdir(), `edge-chat-bench-${key}-`));
      persistDirs.push(dir);
      const port = await freePort();
      const server = SERVERS[key];
      const config = "bare" in server && server.bare ? BARE_CONFIG : "fixture" in server && server.fixture ? FIXTURE_CONFIG : undefined;
      const start = "product" in server && server.product ? startWorkerd : startWrangler;
      servers.set(key, await start({ port, vars: varsFor(local, key), persistTo: dir, output: "ignore", config }));
      say(`server ${key.padEnd(8)} ${SERVERS[key].label} on :${port}`);
    };
    if (wanted.has("hooks")) hookReceiver = await startBenchReceiver();
    if (wanted.has("hook")) reviewReceiver = await startHookReceiver();
    for (const key of wanted) await startServer(key, stack);
    pool = LoadGenPool.start(procs);
    const ctx = new Context(stack, pool, servers, plan, started);
    const local = stack;
    // A measurement that needs a server with nothing in its memory (bench/costs.ts) restarts it.
    ctx.restart = async (key) => {
      await servers.get(key)?.stop();
      servers.delete(key);
      await startServer(key, local);
    };

    const results: RunResults = {
      machine,
      date: new Date().toISOString(),
      command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
      quick,
      plan,
      stack: stack.describe(),
      procs,
      throughput: [],
      rates: [],
      connects: [],
      ping: undefined,
      mirror: undefined,
      joinView: undefined,
      fanout: [],
      rooms: [],
      durationS: 0,
    };
    if (only.has("cursors") || only.has("roomlist") || only.has("slow")) {
      results.cursors = [];
      results.roomList = [];
      results.slow = [];
    }
    // Quiet measurements first (handshakes), the heaviest (throughput) last.
    if (only.has("connect")) {
      results.ping = await pings(ctx, "ours");
      results.connects = await connects(ctx, ["ours", "coldhist"]);
    }
    if (only.has("joinview")) results.joinView = await joinView(ctx);
    if (only.has("fanout")) results.fanout = await fanout(ctx);
    if (only.has("rooms")) results.rooms = await manyRooms(ctx);
    if (only.has("slow")) results.slow = await slowConsumers(ctx);
    if (only.has("roomlist")) results.roomList = await roomList(ctx);
    if (only.has("cursors")) results.cursors = await cursorCost(ctx);
    if (only.has("rates")) results.rates = await rates(ctx, ["ours", "batch1", "perbatch"]);
    if (only.has("throughput")) results.throughput = await throughput(ctx, ["ours", "batch1", "perbatch"]);
    if (only.has("mirror")) results.mirror = await mirrorScenarios(ctx);
    if (only.has("perf")) results.perf = await perfScenarios(ctx);
    if (only.has("attachments")) results.attachments = await attachmentBench(ctx, quick);
    if (only.has("replicas")) {
      results.replicas = await replicaBench(ctx, quick);
      const page = replicaPage(results.replicas, machineLine(machine), results.command, results.date);
      console.log(page);
      // Its own page (docs/benchmarks-replicas.md), on full runs; quick runs print it only.
      if (!quick) {
        await writeFile(join(ROOT, "docs/benchmarks-replicas.md"), page);
        say("wrote docs/benchmarks-replicas.md");
      }
    }
    if (only.has("webhooks") && hookReceiver) results.webhooks = await webhookBench(ctx, hookReceiver);
    if (only.has("hook") && reviewReceiver) {
      const receiver = reviewReceiver;
      const records = await hookBench(ctx, quick, () => receiver.calls());
      // Printed for docs/benchmarks.md ("Before-commit hook"), which quotes it with the command.
      console.log(`\n${hookTable(records)}\n`);
    }
    results.durationS = (performance.now() - started) / 1000;

    console.log("");
    for (const table of allTables(results)) console.log(`${tableToText(table)}\n`);
    for (const table of results.attachments ? attachmentTables(results.attachments) : []) console.log(`${tableToText(table)}\n`);
    for (const table of results.webhooks ? webhookTables(results.webhooks) : []) console.log(`${tableToText(table)}\n`);
    console.log(`machine: ${machineLine(machine)}`);

    // Raw record (gitignored), then the document: full runs update docs/, quick runs only with --out.
    const resultsDir = join(ROOT, "bench/results");
    await mkdir(resultsDir, { recursive: true });
    const rawPath = join(resultsDir, `${quick ? "quick" : "full"}-${results.date.replace(/[:.]/g, "-")}.json`);
    await writeFile(rawPath, `${JSON.stringify(results, null, 1)}\n`);
    say(`raw results: ${relative(ROOT, rawPath)}`);
    // Runs of the replica rows (their own page, above) or the hook row (printed, quoted in
    // docs/benchmarks.md by hand) alone do not rewrite docs/benchmarks.md: every other section
    // would be blank.
    const ownPage = [...only].every((s) => s === "replicas" || s === "hook");
    const out = args.out ? resolve(args.out) : quick || ownPage ? undefined : join(ROOT, "docs/benchmarks.md");
    if (out) say(`wrote ${args.splice ? await spliceReport(results, out) : await writeReport(results, out)}`);
    else say("quick run: docs/benchmarks.md left as it was (pass --out FILE to write a report)");

    if (!args.keep) {
      // This run's rooms only (their names start with the run id); messages go with them (ON DELETE CASCADE).
      const db = neonPool(stack.databaseUrl, stack.neonWsProxy || undefined, 1);
      try {
        const res = await db.query("DELETE FROM rooms WHERE tenant = 'default' AND room_id LIKE $1", [`${ctx.runId}-%`]);
        say(`removed ${res.rowCount ?? 0} benchmark rooms from Postgres`);
      } catch (error) {
        console.warn(`bench: could not remove benchmark rooms: ${error instanceof Error ? error.message : String(error)}`);
      } finally {
        await db.end().catch(() => {});
      }
      if (stack.redis) {
        // The mirror (when the build has one) wrote a stream per room: remove this run's.
        const redis = new Redis(stack.redis.redisUrl, { maxRetriesPerRequest: 1 });
        redis.on("error", () => {});
        try {
          let cursor = "0";
          let removed = 0;
          for (let i = 0; i < 1000; i++) {
            const [next, keys] = await redis.scan(cursor, "MATCH", `chat:{default:${ctx.runId}-*`, "COUNT", 1000);
            if (keys.length) removed += await redis.del(...keys);
            cursor = next;
            if (cursor === "0") break;
          }
          if (removed) say(`removed ${removed} benchmark keys from Redis`);
        } catch (error) {
          console.warn(`bench: could not remove benchmark Redis keys: ${error instanceof Error ? error.message : String(error)}`);
        } finally {
          redis.disconnect();
        }
      }
    }
  } finally {
    await cleanup();
  }
  say("done");
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
