// `npm run chaos`: starts the real stack (wrangler dev, Postgres and Redis behind the local
// proxies), drives it with real WebSocket and HTTP clients while injecting faults, then checks
// that no message was lost, duplicated or misordered and prints one row per scenario.
// See chaos/README.md. Exit code: 0 all invariants hold, 1 one failed, 2 the harness could not
// run, 3 the watchdog stopped a run that overran its time budget.

import { randomInt } from "node:crypto";
import { parseArgs } from "node:util";
import { ChaosEnv } from "./env.js";
import { details, table, verdict } from "./report.js";
import { deriveSeed } from "./rng.js";
import { runScenario, type RunSettings, type ScenarioResult } from "./run.js";
import { SCENARIOS, scenarioNames } from "./scenarios.js";
import { Truth } from "./truth.js";

const HELP = `npm run chaos -- [options]

  --seed N          the run's seed (default: random; printed, and a failing seed replays)
  --scenario a,b    only these scenarios (${scenarioNames().join(", ")})
  --iteration K     the first iteration number (to replay a scenario from a soak's iteration K)
  --minutes N       soak: repeat the scenarios with longer load phases for about N minutes
  --load-ms N       load phase per scenario (default 5000, soak 20000; "mixed" runs twice as long)
  --rooms N         rooms per scenario (default 3)
  --writers N       writers per room (default 4)
  --readers N       read-only clients per room (default 1)
  --send-every MS   mean time between two sends of one writer (default 120)
  --change-share P  the share of those that change a message: edit, delete, react, reply (default 0.3; 0: sends only)
  --pg-timeout-ms N the Worker's PG_STATEMENT_TIMEOUT_MS (default 2000; the product default is 5000)
  --mirror-maxlen N the Worker's MIRROR_MAXLEN, the Redis stream's trim length (default 1000)
  --window N        the Worker's HISTORY_WINDOW (default: the product's); small values make handshakes read Postgres
  --redis-heal-ms N how long the Redis mirror may take to equal Postgres after the heal (default 20000)
  --verbose         print every fault action as it runs and the details of passing scenarios
`;

function options() {
  const { values } = parseArgs({
    options: {
      seed: { type: "string" },
      scenario: { type: "string" },
      iteration: { type: "string" },
      minutes: { type: "string" },
      "load-ms": { type: "string" },
      rooms: { type: "string" },
      writers: { type: "string" },
      readers: { type: "string" },
      "send-every": { type: "string" },
      "change-share": { type: "string" },
      "pg-timeout-ms": { type: "string" },
      "redis-heal-ms": { type: "string" },
      "mirror-maxlen": { type: "string" },
      window: { type: "string" },
      verbose: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  const int = (name: keyof typeof values, fallback: number, min = 0): number => {
    const raw = values[name];
    if (raw === undefined || typeof raw === "boolean") return fallback;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < min)
      throw new Error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
    return n;
  };
  const minutes = values.minutes === undefined ? 0 : Number(values.minutes);
  if (!(minutes >= 0) || !Number.isFinite(minutes))
    throw new Error(`--minutes must be a number >= 0, got ${JSON.stringify(values.minutes)}`);
  const changeShare = values["change-share"] === undefined ? 0.3 : Number(values["change-share"]);
  if (!(changeShare >= 0 && changeShare <= 1))
    throw new Error(`--change-share must be a number from 0 to 1, got ${JSON.stringify(values["change-share"])}`);
  const wanted = values.scenario ? values.scenario.split(",").map((s) => s.trim()) : scenarioNames();
  const unknown = wanted.filter((n) => !scenarioNames().includes(n));
  if (unknown.length) throw new Error(`unknown scenario ${unknown.join(", ")} (known: ${scenarioNames().join(", ")})`);
  return {
    help: values.help,
    verbose: values.verbose,
    seed: int("seed", randomInt(1, 2 ** 31 - 1)),
    scenarios: SCENARIOS.filter((s) => wanted.includes(s.name)),
    iteration: int("iteration", 0),
    minutes,
    loadMs: int("load-ms", minutes > 0 ? 20_000 : 5000, 500),
    rooms: int("rooms", 3, 1),
    writers: int("writers", 4, 1),
    readers: int("readers", 1, 0),
    sendEveryMs: int("send-every", 120, 5),
    changeShare,
    statementTimeoutMs: int("pg-timeout-ms", 2000, 100),
    redisHealMs: int("redis-heal-ms", 20_000, 0),
    mirrorMaxLen: int("mirror-maxlen", 1000, 1),
    historyWindow: int("window", 0, 0),
  };
}

async function main(): Promise<number> {
  let opts: ReturnType<typeof options>;
  try {
    opts = options();
  } catch (e) {
    console.error(`chaos: ${e instanceof Error ? e.message : String(e)}\n\n${HELP}`);
    return 2;
  }
  if (opts.help) {
    console.log(HELP);
    return 0;
  }
  const runStarted = Date.now();
  const elapsed = (): string => `${((Date.now() - runStarted) / 1000).toFixed(1)}s`;
  // Every run stops by itself: a CI run within 3 minutes, a soak within its minutes plus 3.
  const budgetMs = (opts.minutes > 0 ? opts.minutes * 60_000 : 0) + 180_000;
  const replayArgs = (r: ScenarioResult, iteration: number): string =>
    [`npm run chaos -- --seed ${opts.seed} --scenario ${r.name}`, iteration ? `--iteration ${iteration}` : "", ...knobs]
      .filter(Boolean)
      .join(" ");
  const settingsNote =
    `rooms ${opts.rooms} × (${opts.writers} writers + ${opts.readers} readers + joiners), a send every ~${opts.sendEveryMs} ms per writer ` +
    `(${Math.round(opts.changeShare * 100)}% of them changes: edits, deletes, reactions, replies), ` +
    `load ${opts.loadMs} ms per scenario, PG_STATEMENT_TIMEOUT_MS ${opts.statementTimeoutMs}, MIRROR_MAXLEN ${opts.mirrorMaxLen}` +
    (opts.historyWindow ? `, HISTORY_WINDOW ${opts.historyWindow}` : "");
  // Anything that changes what runs must be in the replay command.
  const knobs = [
    opts.minutes > 0 || opts.loadMs !== 5000 ? `--load-ms ${opts.loadMs}` : "",
    opts.rooms !== 3 ? `--rooms ${opts.rooms}` : "",
    opts.writers !== 4 ? `--writers ${opts.writers}` : "",
    opts.readers !== 1 ? `--readers ${opts.readers}` : "",
    opts.sendEveryMs !== 120 ? `--send-every ${opts.sendEveryMs}` : "",
    opts.changeShare !== 0.3 ? `--change-share ${opts.changeShare}` : "",
    opts.statementTimeoutMs !== 2000 ? `--pg-timeout-ms ${opts.statementTimeoutMs}` : "",
    opts.mirrorMaxLen !== 1000 ? `--mirror-maxlen ${opts.mirrorMaxLen}` : "",
    opts.historyWindow ? `--window ${opts.historyWindow}` : "",
  ].filter(Boolean);
  const runReplay = [`npm run chaos -- --seed ${opts.seed}`, opts.minutes > 0 ? `--minutes ${opts.minutes}` : "", ...knobs];
  console.log(`chaos: seed ${opts.seed} (replay: ${runReplay.filter(Boolean).join(" ")})`);
  console.log(`chaos: ${settingsNote}`);

  let env: ChaosEnv | undefined;
  let truth: Truth | undefined;
  const results: ScenarioResult[] = [];
  const iterations = new Map<ScenarioResult, number>();
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      truth?.close();
      await env?.close().catch((e: unknown) => console.error(`chaos: cleanup: ${e instanceof Error ? e.message : String(e)}`));
    })());
  const finish = (): number => {
    if (results.length === 0) return 2;
    console.log(`\nchaos: ${results.length} scenario run(s) in ${elapsed()}, seed ${opts.seed}\n`);
    console.log(table(results));
    console.log(details(results, (r) => replayArgs(r, iterations.get(r) ?? 0), opts.verbose));
    const failed = results.filter((r) => verdict(r) !== "PASS");
    console.log(
      failed.length
        ? `\nchaos: FAILED — ${failed.map((r) => r.name).join(", ")}; seed ${opts.seed}`
        : `\nchaos: every invariant held (seed ${opts.seed})`,
    );
    return failed.length ? 1 : 0;
  };
  const watchdog = setTimeout(() => {
    console.error(`\nchaos: watchdog: the run passed its ${budgetMs / 1000} s budget; stopping`);
    finish();
    void cleanup().finally(() => process.exit(3));
  }, budgetMs);
  watchdog.unref();
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      console.error(`\nchaos: ${signal}; stopping`);
      finish();
      void cleanup().finally(() => process.exit(130));
    });
  }

  try {
    env = await ChaosEnv.start({
      statementTimeoutMs: opts.statementTimeoutMs,
      mirrorMaxLen: opts.mirrorMaxLen,
      ...(opts.historyWindow ? { historyWindow: opts.historyWindow } : {}),
    });
    truth = new Truth(env.stack);
    console.log(`chaos: stack up in ${elapsed()}, dev server ${env.baseUrl}\n  ${env.stack.describe().split("\n").join("\n  ")}`);
    const settings: RunSettings = {
      rooms: opts.rooms,
      writersPerRoom: opts.writers,
      readersPerRoom: opts.readers,
      sendEveryMs: opts.sendEveryMs,
      changeShare: opts.changeShare,
      loadMs: opts.loadMs,
      drainMs: 15_000,
      redisHealMs: opts.redisHealMs,
      mirrorMaxLen: opts.mirrorMaxLen,
      statementTimeoutMs: opts.statementTimeoutMs,
      runTag: `${Date.now().toString(36)}${randomInt(0, 1296).toString(36)}`,
      verbose: opts.verbose,
    };
    const soakUntil = runStarted + opts.minutes * 60_000;
    for (let iteration = opts.iteration; ; iteration++) {
      for (const scenario of opts.scenarios) {
        // A soak starts no scenario it cannot finish in its minutes (with a margin for the drain).
        const expected = settings.loadMs * (scenario.loadFactor ?? 1) + 20_000;
        if (opts.minutes > 0 && results.length > 0 && Date.now() + expected > soakUntil) continue;
        const seed = deriveSeed(opts.seed, `${scenario.name}#${iteration}`);
        console.log(
          `\n▶ ${scenario.name}${opts.minutes > 0 ? ` #${iteration}` : ""}: ${scenario.about} (scenario seed ${seed}, run ${elapsed()})`,
        );
        const result = await runScenario(scenario, iteration, seed, env, truth, settings, (line) => console.log(line));
        results.push(result);
        iterations.set(result, iteration);
        console.log(`  → ${verdict(result)} in ${(result.elapsedMs / 1000).toFixed(1)} s`);
      }
      if (opts.minutes <= 0 || Date.now() + 20_000 > soakUntil) break;
    }
  } catch (e) {
    console.error(`\nchaos: the harness failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    const code = finish();
    await cleanup();
    return code === 1 ? 1 : 2;
  }
  const code = finish();
  await cleanup();
  clearTimeout(watchdog);
  return code;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`chaos: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(2);
  },
);
