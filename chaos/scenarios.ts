// The fault scenarios: one per fault, a control with none, and one that mixes them all. A scenario
// is a plan, a list of timed actions drawn from the scenario's seed before anything runs, so the
// same seed gives the same schedule, and the schedule can be printed with the result.

import { COMMIT_STATEMENT } from "../src/storage/statements.js";
import type { ChaosClient } from "./client.js";
import type { ChaosEnv } from "./env.js";
import type { Rng } from "./rng.js";

/** What a fault action may touch. */
export interface FaultContext {
  env: ChaosEnv;
  /** Every client of the scenario (all rooms). */
  clients: () => ChaosClient[];
  /** Every writer sends `n` new messages right now (a burst to cut into). */
  burst: (n: number) => void;
  rng: Rng;
  /** The scenario's room ids, in order. */
  rooms: string[];
  /** Adds a line to the scenario's notes (shown with its result). */
  note: (line: string) => void;
  /** The Worker's statement timeout: a held Postgres longer than this makes commits time out. */
  statementTimeoutMs: number;
  /** `region#shard` of a client's replica, or undefined at the primary. */
  replicaOf: (c: ChaosClient) => string | undefined;
}

export interface FaultAction {
  atMs: number;
  label: string;
  run: (ctx: FaultContext) => Promise<void>;
}

export interface Scenario {
  name: string;
  about: string;
  /** The fault schedule for a load phase of `loadMs`. */
  plan: (rng: Rng, loadMs: number, ctx: { statementTimeoutMs: number }) => FaultAction[];
  /** How much longer than the others its load phase is (the mixed one is longer). */
  loadFactor?: number;
  /** Messages put into the first room before the load, so joins from seq 0 are truncated and filled over REST. */
  backlog?: number;
  /** After this fraction of the load phase nobody starts a new message, leaves or joins: the rooms go quiet. */
  quietAfter?: number;
  /**
   * Clients spread over regional replicas and the primary (run.ts, REPLICA_ROUTES): w1 at the
   * primary, w2 and w3 at the two shards of weur, w4 at apac, r1 at enam, joiners at random.
   */
  replicas?: boolean;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `count` moments spread over [from, to) of the load phase, each jittered within its slot. */
const moments = (rng: Rng, count: number, from: number, to: number): number[] => {
  const slot = (to - from) / count;
  return Array.from({ length: count }, (_, i) => Math.round(from + slot * i + rng.between(0.1, 0.9) * slot));
};

// --- Building blocks (each returns the actions of one fault) --------------------------------

const restart = (at: number, burst: number): FaultAction => ({
  atMs: at,
  label: `restart dev server after a burst of ${burst}/writer`,
  run: async (ctx) => {
    ctx.burst(burst);
    await sleep(ctx.rng.int(0, 40)); // mid-burst: some sends queued, some in a commit, some acked
    await ctx.env.restartServer();
  },
});

const pgDrop = (at: number): FaultAction => ({
  atMs: at,
  label: "Postgres proxy: drop every connection",
  run: (ctx) => ctx.env.pg({ mode: "drop" }),
});

const pgRefuse = (at: number, forMs: number): FaultAction[] => [
  { atMs: at, label: `Postgres proxy: refuse for ${forMs} ms`, run: (ctx) => ctx.env.pg({ mode: "refuse" }) },
  { atMs: at + forMs, label: "Postgres proxy: back", run: (ctx) => ctx.env.pg({ mode: "none" }) },
];

const pgSlow = (at: number, delayMs: number, forMs: number): FaultAction[] => [
  {
    atMs: at,
    label: `Postgres proxy: every frame +${delayMs} ms for ${forMs} ms`,
    run: (ctx) => ctx.env.pg({ mode: "pause", delayMs }),
  },
  { atMs: at + forMs, label: "Postgres proxy: back", run: (ctx) => ctx.env.pg({ mode: "none" }) },
];

/** Held longer than the statement timeout: commits time out, then their statements arrive late. */
const pgHold = (at: number, forMs: number): FaultAction[] => [
  { atMs: at, label: `Postgres proxy: hold all traffic for ${forMs} ms`, run: (ctx) => ctx.env.pg({ mode: "pause" }) },
  { atMs: at + forMs, label: "Postgres proxy: release", run: (ctx) => ctx.env.pg({ mode: "none" }) },
];

const commitCut = (at: number): FaultAction => ({
  atMs: at,
  label: "Postgres proxy: cut right after the next commit statement",
  run: (ctx) => ctx.env.pg({ mode: "cut-after", pattern: COMMIT_STATEMENT, once: true }),
});

const redisOutage = (at: number, forMs: number): FaultAction[] => [
  { atMs: at, label: `Redis down for ${forMs} ms`, run: (ctx) => ctx.env.redisDown(true) },
  { atMs: at + forMs, label: "Redis back", run: (ctx) => ctx.env.redisDown(false) },
];

const killClient = (at: number, midFrame: boolean, pick: number): FaultAction => ({
  atMs: at,
  label: midFrame ? "kill a client connection mid-frame" : "kill a client connection",
  run: async (ctx) => {
    const live = ctx.clients().filter((c) => c.connected);
    const victim = live[Math.floor(pick * live.length)];
    victim?.kill(midFrame);
  },
});

const storm = (at: number): FaultAction => ({
  atMs: at,
  label: "reconnect storm: every client connection killed at once, all reconnect at once",
  run: async (ctx) => {
    const all = ctx.clients();
    for (const c of all) c.stormMode = true;
    for (const c of all) c.kill(ctx.rng.chance(0.3));
    await sleep(1500);
    for (const c of all) c.stormMode = false;
  },
});

// --- Replica faults ---------------------------------------------------------------------------

/**
 * Redis lagging: the REST endpoint flaps (down 150–400 ms, up 100–300 ms) for `forMs`, so the
 * mirror falls behind the primary and catches up in bursts; a replica's fill from Redis finds
 * part of a range, or none, and the primary fills the rest.
 */
const redisLag = (at: number, forMs: number): FaultAction => ({
  atMs: at,
  label: `Redis lagging: flapping down/up for ${forMs} ms`,
  run: async (ctx) => {
    const until = Date.now() + forMs;
    while (Date.now() < until) {
      await ctx.env.redisDown(true);
      await sleep(ctx.rng.int(150, 400));
      await ctx.env.redisDown(false);
      await sleep(ctx.rng.int(100, 300));
    }
  },
});

/**
 * Every socket of a region (one shard of it, or all shards) killed at once, and all reconnect at
 * once: the replica loses all its sockets mid-stream (its next push answers "no sockets", the
 * primary forgets it and its feed is reset, as an evicted replica's would be), then cold joins
 * race to the same replica (and, with every shard, to two replicas of one region).
 */
const regionStorm = (at: number, region: string, shard: number | undefined): FaultAction => ({
  atMs: at,
  label: `every socket at ${region}${shard === undefined ? " (all shards)" : `#${shard}`} killed at once; cold joins race back`,
  run: async (ctx) => {
    const hit = ctx
      .clients()
      .filter((c) => c.record.region === region && (shard === undefined || ctx.replicaOf(c) === `${region}#${shard}`));
    for (const c of hit) c.stormMode = true;
    for (const c of hit) c.kill(ctx.rng.chance(0.3));
    await sleep(1000);
    for (const c of hit) c.stormMode = false;
  },
});

/** A replica client's connection killed (mid-send half of the time). */
const killReplicaClient = (at: number, midFrame: boolean, pick: number): FaultAction => ({
  atMs: at,
  label: midFrame ? "kill a replica client's connection mid-frame" : "kill a replica client's connection",
  run: async (ctx) => {
    const live = ctx.clients().filter((c) => c.connected && c.record.region !== "primary");
    live[Math.floor(pick * live.length)]?.kill(midFrame);
  },
});

// --- The scenarios ----------------------------------------------------------------------------

export const SCENARIOS: readonly Scenario[] = [
  {
    name: "steady",
    about: "no fault: the control",
    plan: () => [],
  },
  {
    name: "restart",
    about: "the whole dev server killed mid-burst (every room object dies) and started again",
    plan: (rng, loadMs) =>
      moments(rng, Math.max(1, Math.floor(loadMs / 8000)), 0.25 * loadMs, 0.7 * loadMs).map((at) => restart(at, rng.int(3, 8))),
  },
  {
    name: "pg-drop",
    about: "Postgres connections dropped, then refused for a while",
    plan: (rng, loadMs) => {
      const [a, b, c] = moments(rng, 3, 0.1 * loadMs, 0.85 * loadMs) as [number, number, number];
      return [pgDrop(a), ...pgRefuse(b, rng.int(600, 1400)), pgDrop(c)];
    },
  },
  {
    name: "pg-slow",
    about: "Postgres slow (every frame delayed), then held past the statement timeout",
    plan: (rng, loadMs, { statementTimeoutMs }) => {
      const slowAt = Math.round(rng.between(0.05, 0.15) * loadMs);
      const slowFor = rng.int(500, 1200);
      // The hold must outlast the statement timeout and still end inside the load phase.
      const holdAt = slowAt + slowFor + rng.int(100, 400);
      const room = Math.max(300, Math.min(1200, 0.95 * loadMs - holdAt - statementTimeoutMs));
      return [...pgSlow(slowAt, rng.int(80, 400), slowFor), ...pgHold(holdAt, statementTimeoutMs + rng.int(200, room))];
    },
  },
  {
    name: "commit-cut",
    about: "connection cut right after the commit statement is sent (ambiguous outcome), repeatedly",
    plan: (rng, loadMs) => moments(rng, Math.max(3, Math.floor(loadMs / 900)), 0.05 * loadMs, 0.9 * loadMs).map(commitCut),
  },
  {
    name: "redis-down",
    about: "Redis (the REST endpoint) down, then back",
    plan: (rng, loadMs) => redisOutage(Math.round(rng.between(0.15, 0.3) * loadMs), rng.int(1500, Math.max(1600, 0.5 * loadMs))),
  },
  {
    name: "client-kill",
    about: "client TCP connections killed, half of them in the middle of a send frame",
    plan: (rng, loadMs) =>
      moments(rng, Math.floor(loadMs / 250), 0.05 * loadMs, 0.95 * loadMs).map((at) =>
        killClient(at, rng.chance(0.5), rng.next()),
      ),
  },
  {
    name: "reconnect-storm",
    about: "every client connection killed at once and all reconnecting at once (no backoff)",
    plan: (rng, loadMs) => moments(rng, Math.max(2, Math.floor(loadMs / 2500)), 0.1 * loadMs, 0.8 * loadMs).map(storm),
  },
  {
    name: "quiet-cut",
    about: "a commit cut ambiguously in a quiet room, and its sender gives up: members must still get it",
    quietAfter: 0.4,
    plan: (_rng, loadMs) => [
      {
        atMs: Math.round(0.7 * loadMs),
        label: "cut after the next commit statement; one send over HTTP, never retried",
        run: async (ctx) => {
          await ctx.env.pg({ mode: "cut-after", pattern: COMMIT_STATEMENT, once: true });
          const room = ctx.rooms[0];
          const sender = ctx.clients().find((c) => c.record.room === room && c.desired !== "gone" && c.userId.startsWith("w"));
          const outcome = (await sender?.sendOnce()) ?? "no sender";
          ctx.note(`the abandoned send in ${room} got: ${outcome}`);
        },
      },
      {
        // Long enough for the idle room object to be evicted (hibernated) while its sockets stay
        // open. Measured under wrangler dev 4.86: never within 12 s of quiet, sometimes within 16 s,
        // every time within 25 s.
        atMs: Math.round(0.7 * loadMs) + 25_000,
        label: "after 25 s of quiet, one more send in the same room",
        run: async (ctx) => {
          const room = ctx.rooms[0];
          const sender = ctx.clients().find((c) => c.record.room === room && c.desired !== "gone" && c.userId.startsWith("w"));
          sender?.write();
        },
      },
    ],
  },
  {
    name: "replica-feed",
    about:
      "clients over replicas (weur ×2 shards, apac, enam) and the primary: Redis down, Redis lagging, replicas emptied mid-stream and cold joins racing back",
    replicas: true,
    plan: (rng, loadMs) => {
      const [a, b, c, d] = moments(rng, 4, 0.08 * loadMs, 0.8 * loadMs) as [number, number, number, number];
      const actions: FaultAction[] = [
        ...redisOutage(a, rng.int(800, 1400)),
        regionStorm(b, "weur", undefined),
        redisLag(c, rng.int(1000, 1600)),
        regionStorm(d, rng.pick(["apac", "enam"]), undefined),
      ];
      for (const at of moments(rng, Math.floor(loadMs / 800), 0.05 * loadMs, 0.9 * loadMs))
        actions.push(killReplicaClient(at, rng.chance(0.5), rng.next()));
      return actions.sort((x, y) => x.atMs - y.atMs);
    },
  },
  {
    name: "replica-evict",
    about:
      "clients over replicas and the primary: the primary and every replica evicted (server killed) mid-burst, Redis down across the restart, one shard emptied",
    replicas: true,
    plan: (rng, loadMs) => {
      const at = Math.round(rng.between(0.3, 0.45) * loadMs);
      return [
        regionStorm(Math.round(0.15 * loadMs), "weur", rng.int(0, 1)),
        // Redis down from just before the restart until after it: the restarted replicas' first
        // fills, and the primary's mirror, must do without it.
        ...redisOutage(at - 200, rng.int(1500, 2500)),
        restart(at, rng.int(3, 8)),
      ].sort((x, y) => x.atMs - y.atMs);
    },
  },
  {
    name: "mixed",
    about: "all of the above, drawn at random, overlapping, in a room with a long history",
    loadFactor: 2,
    backlog: 1100,
    plan: (rng, loadMs, { statementTimeoutMs }) => {
      const actions: FaultAction[] = [];
      const n = Math.max(6, Math.floor(loadMs / 1200));
      for (const at of moments(rng, n, 0.05 * loadMs, 0.85 * loadMs)) {
        const kind = rng.pick(["restart", "drop", "refuse", "slow", "hold", "cut", "redis", "kill", "storm"] as const);
        switch (kind) {
          case "restart":
            actions.push(restart(at, rng.int(2, 6)));
            break;
          case "drop":
            actions.push(pgDrop(at));
            break;
          case "refuse":
            actions.push(...pgRefuse(at, rng.int(300, 1200)));
            break;
          case "slow":
            actions.push(...pgSlow(at, rng.int(50, 300), rng.int(500, 1500)));
            break;
          case "hold":
            actions.push(...pgHold(at, statementTimeoutMs + rng.int(100, 800)));
            break;
          case "cut":
            actions.push(commitCut(at));
            break;
          case "redis":
            actions.push(...redisOutage(at, rng.int(500, 3000)));
            break;
          case "kill":
            for (let i = 0; i < 4; i++) actions.push(killClient(at + i * rng.int(20, 150), rng.chance(0.5), rng.next()));
            break;
          case "storm":
            actions.push(storm(at));
            break;
        }
      }
      return actions.sort((a, b) => a.atMs - b.atMs);
    },
  },
];

export const scenarioNames = (): string[] => SCENARIOS.map((s) => s.name);
