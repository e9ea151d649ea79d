// One scenario from start to verdict: fresh rooms and clients, a load phase with the scenario's
// faults, the heal (every fault off, everyone back online), the drain (every unacked send retried
// until acked), the catch-up (every member sees Postgres' newest seq), then the checks.

import { ChaosClient, type ClientContext } from "./client.js";
import {
  checkErrors,
  checkRoom,
  checkRouting,
  checkStream,
  type Finding,
  Invariant,
  type ReplicaSeen,
  type RoomCounts,
  zeroCounts,
} from "./check.js";
import { REPLICA_SHARDS } from "./env.js";
import type { ChaosEnv } from "./env.js";
import { type ClientRecord, type ErrorTally, newTally, type RoomRecord, type SendRecord } from "./model.js";
import { Rng } from "./rng.js";
import type { FaultAction, FaultContext, Scenario } from "./scenarios.js";
import type { Truth } from "./truth.js";

export interface RunSettings {
  rooms: number;
  writersPerRoom: number;
  readersPerRoom: number;
  /** Mean time between two sends of one writer. */
  sendEveryMs: number;
  /** The share of a writer's requests that change a message (edit, delete, react, reply) rather than send a new one. */
  changeShare: number;
  loadMs: number;
  /** The longest the drain and the catch-up may take after the heal. */
  drainMs: number;
  /** The longest the Redis mirror may take to equal Postgres after the heal. */
  redisHealMs: number;
  mirrorMaxLen: number;
  statementTimeoutMs: number;
  /** Unique per run, in room names, so runs never share a room (Postgres outlives them). */
  runTag: string;
  verbose: boolean;
}

export type RedisVerdict = { kind: "checked"; diffs: number; waitedMs: number } | { kind: "skipped"; why: string };

export interface ScenarioResult {
  name: string;
  seed: number;
  elapsedMs: number;
  totals: RoomCounts;
  errors: ErrorTally;
  redis: RedisVerdict;
  findings: Finding[];
  /** The fault schedule as executed, and counters from the proxies. */
  notes: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const TICK_MS = 20;

/**
 * Replica scenarios: where each room's first clients connect. With REPLICA_SHARDS=2, w2 and w3
 * hash to different shards of weur (shardOf: w2 → 0, w3 → 1), so one region has two replicas
 * racing; w1 writes at the primary, w2/w3/w4 at three replicas. Joiners pick at random.
 */
const REPLICA_ROUTES: Readonly<Record<string, string>> = { w1: "primary", w2: "weur", w3: "weur", w4: "apac", r1: "enam" };
const JOINER_ROUTES = ["primary", "weur", "apac", "enam"] as const;

/**
 * The Worker's shard of a user (src/replica/address.ts `shardOf`, FNV-1a; copied: that module
 * pulls in the Worker's types). A drift shows as `replica-routed` findings.
 */
const shardOf = (userId: string, shards: number): number => {
  let hash = 0x811c9dc5;
  for (let i = 0; i < userId.length; i++) {
    hash ^= userId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % Math.max(1, shards);
};

/** `region#shard` of a client's replica, or undefined at the primary. */
export const replicaOfClient = (c: { userId: string; region: string }): string | undefined =>
  c.region === "primary" ? undefined : `${c.region}#${shardOf(c.userId, REPLICA_SHARDS)}`;

/** Seen a stream key for any room in this process: from then on, a missing key is a difference, not "not implemented". */
let mirrorSeen = false;

export async function runScenario(
  scenario: Scenario,
  iteration: number,
  seed: number,
  env: ChaosEnv,
  truth: Truth,
  settings: RunSettings,
  progress: (line: string) => void,
): Promise<ScenarioResult> {
  const rng = new Rng(seed);
  const started = Date.now();
  const now = (): number => Date.now() - started;
  const loadMs = Math.round(settings.loadMs * (scenario.loadFactor ?? 1));
  const errors = newTally();
  const notes: string[] = [];
  const ctx: ClientContext = {
    baseUrl: env.baseUrl,
    wsUrl: env.wsUrl,
    errors,
    now,
    serverRestarting: () => !env.serverUp,
    ackTimeoutMs: settings.statementTimeoutMs * 2 + 2000,
    httpTimeoutMs: settings.statementTimeoutMs * 2 + 3000,
  };

  // --- Rooms and clients ------------------------------------------------------------------
  const records: RoomRecord[] = Array.from({ length: settings.rooms }, (_, r) => ({
    room: `chaos-${settings.runTag}-${scenario.name}-${iteration}-${r}`,
    sends: [],
    clients: [],
  }));
  const clients: ChaosClient[] = [];
  const writers = new Set<ChaosClient>();
  const tokens = new Map<string, string>();
  const tokenFor = async (userId: string): Promise<string> => {
    const cached = tokens.get(userId);
    if (cached) return cached;
    const token = await env.token(userId);
    tokens.set(userId, token);
    return token;
  };
  const addClient = async (
    room: RoomRecord,
    userId: string,
    writes: boolean,
    crng: Rng,
    from?: { since: number },
  ): Promise<ChaosClient> => {
    const record: ClientRecord = {
      room: room.room,
      userId,
      view: [],
      sessions: 0,
      truncated: { readies: 0, filled: 0 },
      protocol: [],
      joined: true,
      log: [],
      region: scenario.replicas ? (REPLICA_ROUTES[userId] ?? crng.fork("region").pick(JOINER_ROUTES)) : "primary",
    };
    room.clients.push(record);
    const firstJoin = from ?? (crng.chance(0.3) ? { since: 0 } : { last: crng.int(1, 200) });
    const register = (send: SendRecord): void => {
      room.sends.push(send);
    };
    const client = new ChaosClient(record, await tokenFor(userId), ctx, crng, register, firstJoin);
    clients.push(client);
    if (writes) writers.add(client);
    client.connect();
    return client;
  };
  let joiners = 0;

  // --- Backlog: history longer than a `ready` holds (1,000), so since=0 joins come truncated ----
  if (scenario.backlog && records[0]) {
    const t = now();
    const stored = await sendBacklog(env, records[0], scenario.backlog, tokenFor);
    notes.push(
      `backlog: ${stored} of ${scenario.backlog} messages put into ${records[0].room} over HTTP in ${((now() - t) / 1000).toFixed(1)} s`,
    );
    progress(
      `  [${scenario.name.padEnd(15)} ${(now() / 1000).toFixed(1).padStart(5)}s backlog ] ${stored} messages in ${records[0].room}`,
    );
  }
  for (let r = 0; r < settings.rooms; r++) {
    const room = records[r];
    if (!room) continue;
    for (let w = 1; w <= settings.writersPerRoom; w++) await addClient(room, `w${w}`, true, rng.fork(`${r}/w${w}`));
    // In the backlog room, readers start from seq 0: more than a `ready` holds, filled over REST.
    const from = scenario.backlog && r === 0 ? { since: 0 } : undefined;
    for (let i = 1; i <= settings.readersPerRoom; i++) await addClient(room, `r${i}`, false, rng.fork(`${r}/r${i}`), from);
  }

  // --- Totals for progress lines ------------------------------------------------------------
  const status = (phase: string): string => {
    let sent = 0;
    let acked = 0;
    for (const room of records) {
      sent += room.sends.length;
      for (const s of room.sends) if (s.acks.length) acked++;
    }
    const delivered = records.reduce((n, room) => n + room.clients.reduce((m, c) => m + c.view.length, 0), 0);
    const pending = clients.reduce((n, c) => n + c.pending, 0);
    const online = clients.filter((c) => c.connected).length;
    const codes = [...errors.codes].map(([k, v]) => `${k} ${v}`).join(", ") || "no errors";
    const broken = [...env.broken].join(", ") || "none";
    return `  [${scenario.name.padEnd(15)} ${(now() / 1000).toFixed(1).padStart(5)}s ${phase.padEnd(8)}] sent ${sent} acked ${acked} delivered ${delivered} pending ${pending} online ${online}/${clients.length} | ${codes} | fault: ${broken}`;
  };
  let lastProgress = 0;
  const maybeProgress = (phase: string): void => {
    if (now() - lastProgress < 2000) return;
    lastProgress = now();
    progress(status(phase));
  };

  // --- Fault schedule -----------------------------------------------------------------------
  const plan = scenario.plan(rng.fork("faults"), loadMs, { statementTimeoutMs: settings.statementTimeoutMs });
  const faultCtx: FaultContext = {
    env,
    clients: () => clients,
    burst: (n) => {
      const brng = rng.fork("burst");
      for (const w of writers)
        if (w.desired !== "gone")
          for (let i = 0; i < n; i++) {
            if (brng.chance(settings.changeShare)) w.change();
            else w.write();
          }
    },
    rng: rng.fork("fault-actions"),
    rooms: records.map((r) => r.room),
    note: (line) => notes.push(line),
    statementTimeoutMs: settings.statementTimeoutMs,
    replicaOf: (c) => replicaOfClient(c.record),
  };
  // Each action starts at its time, whether or not the one before has finished (a restart takes
  // seconds; a Postgres fault scheduled meanwhile still strikes on time).
  const executed: Array<{ t: number; line: string }> = [];
  const runPlan = (actions: FaultAction[]): Promise<void> =>
    Promise.all(
      actions.map(async (action) => {
        const wait = action.atMs - now();
        if (wait > 0) await sleep(wait);
        const t = now();
        let outcome = "";
        try {
          await action.run(faultCtx);
          if (now() - t > 500) outcome = ` (took ${((now() - t) / 1000).toFixed(1)} s)`;
        } catch (e) {
          outcome = `: FAILED ${e instanceof Error ? e.message : String(e)}`;
        }
        const line = `${(t / 1000).toFixed(2)}s ${action.label}${outcome}`;
        executed.push({ t, line });
        if (settings.verbose) progress(`    ${line}`);
      }),
    ).then(() => undefined);
  const cutsBefore = (await env.pgStats()).stats.cuts;
  const restartsBefore = env.restarts;

  // Let the first handshakes finish before the clock of the load phase matters.
  for (let i = 0; i < 100 && clients.some((c) => !c.connected); i++) await sleep(TICK_MS);
  const loadStart = now();
  const faults = runPlan(plan.map((a) => ({ ...a, atMs: a.atMs + loadStart })));

  // --- Load phase ---------------------------------------------------------------------------
  const wrng = rng.fork("workload");
  const nextSend = new Map<ChaosClient, number>();
  const rejoinAt = new Map<ChaosClient, number>();
  const interval = (): number => -Math.log(1 - wrng.next()) * settings.sendEveryMs;
  for (const w of writers) nextSend.set(w, now() + interval());
  const churnP = TICK_MS / 5000; // each client leaves about once every 5 s
  const maxPending = 40;
  const quietAt = loadStart + (scenario.quietAfter ?? 1) * loadMs;
  while (now() - loadStart < loadMs) {
    const t = now();
    for (const w of t < quietAt ? writers : []) {
      let at = nextSend.get(w) ?? t;
      while (at <= t) {
        if (w.desired !== "gone" && w.pending < maxPending) {
          if (wrng.chance(0.07)) w.repeat();
          else if (wrng.chance(settings.changeShare)) w.change();
          else w.write();
        }
        at += interval();
      }
      nextSend.set(w, at);
    }
    for (const c of clients) {
      const back = rejoinAt.get(c);
      if (back !== undefined && back <= t) {
        rejoinAt.delete(c);
        c.rejoin();
      } else if (t < quietAt && c.desired === "online" && wrng.chance(churnP)) {
        c.leave();
        rejoinAt.set(c, t + wrng.int(150, 1500));
      }
      c.tick();
    }
    // Now and then a member leaves for good and someone new joins (with since=0 or last=N).
    if (t < quietAt && wrng.chance(TICK_MS / 4000)) {
      const room = wrng.pick(records);
      const members = clients.filter((c) => c.record.room === room.room && c.desired !== "gone");
      if (members.length > 2 && wrng.chance(0.5)) wrng.pick(members).quit();
      joiners++;
      const joiner = await addClient(room, `j${joiners}`, wrng.chance(0.5), rng.fork(`joiner${joiners}`));
      if (writers.has(joiner)) nextSend.set(joiner, now() + interval());
    }
    maybeProgress("load");
    await sleep(TICK_MS);
  }

  // --- Heal ---------------------------------------------------------------------------------
  // Faults still scheduled after the load phase (none should be) are cut short by the heal.
  await Promise.race([faults, sleep(30_000)]);
  await env.heal();
  const healedAt = now();
  for (const c of clients) {
    c.stormMode = false;
    if (c.desired === "offline") c.rejoin();
  }

  // --- Drain: every unacked send retried until acked ----------------------------------------
  const drainDeadline = healedAt + settings.drainMs;
  while (now() < drainDeadline && clients.some((c) => c.pending > 0 || (c.desired === "online" && !c.connected))) {
    for (const c of clients) {
      if (c.desired === "online" && !c.connected) c.connect();
      c.tick();
    }
    maybeProgress("drain");
    await sleep(TICK_MS);
  }

  // --- Catch-up: every member sees Postgres' newest seq -------------------------------------
  const roomIds = records.map((r) => r.room);
  let last = await truth.lastSeqs(roomIds);
  const behind = (): ChaosClient[] =>
    clients.filter((c) => c.desired === "online" && (c.lastSeq ?? 0) < (last.get(c.record.room) ?? 0));
  const catchUpDeadline = healedAt + settings.drainMs + 2000;
  for (let i = 0; now() < catchUpDeadline && behind().length > 0; i++) {
    for (const c of clients) c.tick();
    maybeProgress("catch-up");
    await sleep(TICK_MS * 2);
    if (i % 25 === 24) last = await truth.lastSeqs(roomIds);
  }
  progress(status("healed"));
  // Replica scenarios: read each room's replicas while the clients are still connected.
  const replicaViews = new Map<string, ReplicaSeen[] | undefined>();
  if (scenario.replicas) {
    const token = await tokenFor("w1");
    for (const room of roomIds) replicaViews.set(room, await roomReplicas(env, room, token));
  }
  for (const c of clients) c.stop();
  // Answers still on their way (a deliberate repeat is not in any outbox) are judged too: wait for
  // them (each is bounded by the HTTP timeout), so no error code arrives after the checks.
  const answersBy = now() + ctx.httpTimeoutMs + 1000;
  while (now() < answersBy && clients.some((c) => c.inFlight > 0)) await sleep(TICK_MS);

  // --- Checks --------------------------------------------------------------------------------
  const findings: Finding[] = [];
  const totals: RoomCounts = zeroCounts();
  const pg = await truth.rooms(roomIds);
  for (const record of records) {
    const { counts, findings: roomFindings } = checkRoom(record, pg.get(record.room) ?? { rows: [], lastSeq: null });
    findings.push(...roomFindings);
    for (const key of Object.keys(totals) as Array<keyof RoomCounts>) {
      if (key === "delivered") totals.delivered.push(...counts.delivered);
      else totals[key] += counts[key];
    }
  }
  findings.push(...checkErrors(scenario.name, errors));
  if (scenario.replicas) {
    for (const record of records) {
      const expected = new Map<string, string[]>();
      for (const c of clients) {
        if (c.record.room !== record.room || c.desired !== "online" || !c.connected) continue;
        const key = replicaOfClient(c.record);
        if (key) expected.set(key, [...(expected.get(key) ?? []), c.userId]);
      }
      const seen = replicaViews.get(record.room);
      findings.push(...checkRouting(record.room, expected, seen, pg.get(record.room)?.lastSeq ?? 0));
      const at = clients
        .filter((c) => c.record.room === record.room)
        .map((c) => `${c.userId}@${replicaOfClient(c.record) ?? "primary"}`);
      notes.push(`routes in ${record.room}: ${at.join(" ")}`);
      notes.push(
        `replicas of ${record.room}: ${
          seen
            ?.map(
              (r) =>
                `${replicaKeyOfName(r.name)} sockets ${r.sockets ?? "?"} delivered ${r.deliveredSeq ?? "-"} fills ${r.fills ?? 0} source ${r.source ?? "-"}`,
            )
            .join("; ") ?? "unreadable"
        }`,
      );
    }
  }

  // Redis: skipped until the mirror exists; then it must equal Postgres within redisHealMs of the heal.
  let redis: RedisVerdict;
  if (!truth.hasRedis) redis = { kind: "skipped", why: "no Redis in this stack" };
  else {
    const redisStart = now();
    let diffs = 0;
    let redisFindings: Finding[] = [];
    for (;;) {
      diffs = 0;
      redisFindings = [];
      let anyKey = false;
      for (const record of records) {
        try {
          const stream = await truth.stream(record.room);
          anyKey ||= stream.exists;
          const r = checkStream(
            record.room,
            pg.get(record.room) ?? { rows: [], lastSeq: null },
            stream,
            settings.mirrorMaxLen,
            record.sends,
          );
          diffs += r.diffs;
          redisFindings.push(...r.findings);
        } catch (e) {
          diffs++;
          redisFindings.push({
            invariant: Invariant.RedisEqualsPostgres,
            room: record.room,
            detail: `reading the stream failed: ${e instanceof Error ? e.message : String(e)}`,
          });
        }
      }
      mirrorSeen ||= anyKey;
      if (!mirrorSeen) {
        redis = {
          kind: "skipped",
          why: "mirror not implemented yet (no stream key chat:{default:<room>}:messages for any room)",
        };
        break;
      }
      if (diffs === 0 || now() - redisStart > settings.redisHealMs) {
        redis = { kind: "checked", diffs, waitedMs: now() - redisStart };
        findings.push(...redisFindings);
        // Evidence for a mirror that did not heal: where the room object thinks its mirror is.
        for (const room of new Set(redisFindings.map((f) => f.room)))
          notes.push(`status of ${room} after the wait: ${await roomStatus(env, room, await tokenFor("w1"))}`);
        const after = `${(redis.waitedMs / 1000).toFixed(1)} s after the checks began`;
        progress(
          `  [${scenario.name.padEnd(15)} ${(now() / 1000).toFixed(1).padStart(5)}s redis   ] ${diffs === 0 ? `mirror equals Postgres ${after}` : `${diffs} differences left ${after}`}`,
        );
        break;
      }
      await sleep(500);
    }
  }

  notes.unshift(...executed.sort((a, b) => a.t - b.t).map((e) => e.line));
  const stats = await env.pgStats();
  const cuts = stats.stats.cuts - cutsBefore;
  if (cuts > 0) notes.push(`commit statements cut: ${cuts}`);
  const truncated = records
    .flatMap((r) => r.clients)
    .reduce((t, c) => ({ readies: t.readies + c.truncated.readies, filled: t.filled + c.truncated.filled }), {
      readies: 0,
      filled: 0,
    });
  if (truncated.readies)
    notes.push(`truncated ready frames filled over REST: ${truncated.readies} (${truncated.filled} messages)`);
  const byOp = new Map<string, number>();
  for (const r of records)
    for (const s of r.sends)
      if (s.acks.length > 0) {
        const op = s.op === "send" || s.op === undefined ? (s.replyTo === undefined ? "messages" : "replies") : `${s.op}s`;
        byOp.set(op, (byOp.get(op) ?? 0) + 1);
      }
  notes.push(`acked: ${[...byOp].map(([op, n]) => `${n} ${op}`).join(", ") || "nothing"}`);
  // Per-socket send order, observed (not judged): at the primary and at replicas apart.
  for (const where of ["primary", "replica"] as const) {
    let pairs = 0;
    const inversions: string[] = [];
    for (const room of records)
      for (const c of room.clients) {
        if ((c.region === "primary") !== (where === "primary") || !c.sendOrder) continue;
        pairs += c.sendOrder.pairs;
        for (const line of c.sendOrder.inversions) inversions.push(`${c.userId}@${c.region} in ${room.room} ${line}`);
      }
    if (pairs > 0)
      notes.push(
        `per-socket send order at the ${where}: ${inversions.length} inverted of ${pairs} pairs (each written once, in order, on one socket, acked on it)` +
          (inversions.length ? `: ${inversions.slice(0, 4).join("; ")}` : ""),
      );
  }
  if (env.restarts > restartsBefore) notes.push(`dev server restarts: ${env.restarts - restartsBefore}`);
  if (errors.transport.size) notes.push(`transport: ${[...errors.transport].map(([k, v]) => `${k} ×${v}`).join(", ")}`);
  return { name: scenario.name, seed, elapsedMs: now(), totals, errors, redis, findings, notes };
}

const replicaKeyOfName = (name: string): string => name.slice(name.lastIndexOf("@") + 1);

/** The `replicas` of `GET /v1/rooms/{roomId}/status` (undefined: unreadable). */
async function roomReplicas(env: ChaosEnv, room: string, token: string): Promise<ReplicaSeen[] | undefined> {
  try {
    const res = await fetch(`${env.baseUrl}/v1/rooms/${room}/status`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(5000),
    });
    if (!res.ok) return undefined;
    const body = (await res.json()) as { replicas?: unknown };
    return Array.isArray(body.replicas) ? (body.replicas as ReplicaSeen[]) : undefined;
  } catch {
    return undefined;
  }
}

/** `GET /v1/rooms/{roomId}/status` (latestSeq, mirroredSeq, mirrorLag, sockets), as text for the notes. */
async function roomStatus(env: ChaosEnv, room: string, token: string): Promise<string> {
  try {
    const res = await fetch(`${env.baseUrl}/v1/rooms/${room}/status`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(5000),
    });
    return `${res.status} ${(await res.text()).slice(0, 200)}`;
  } catch (e) {
    return `unreadable (${e instanceof Error ? e.message : String(e)})`;
  }
}

/**
 * Puts `count` messages into a room over HTTP before the load, from many users at once (each stays
 * within a per-user rate limit's burst). They are recorded like any send, so they are checked too.
 */
async function sendBacklog(
  env: ChaosEnv,
  room: RoomRecord,
  count: number,
  tokenFor: (userId: string) => Promise<string>,
): Promise<number> {
  const users = Math.max(1, Math.ceil(count / 25));
  let stored = 0;
  await Promise.all(
    Array.from({ length: users }, async (_, u) => {
      const userId = `bulk${u + 1}`;
      const token = await tokenFor(userId);
      for (let i = 1; u * 25 + i <= count && i <= 25; i++) {
        const send: SendRecord = {
          room: room.room,
          userId,
          clientMsgId: `b${i}`,
          text: `backlog ${userId} #${i} ${"·".repeat(i * 7)}`,
          attempts: 0,
          uncertain: 0,
          definite: [],
          acks: [],
        };
        room.sends.push(send);
        for (let attempt = 1; attempt <= 8 && send.acks.length === 0; attempt++) {
          send.attempts++;
          try {
            const res = await fetch(`${env.baseUrl}/v1/rooms/${room.room}/messages`, {
              method: "POST",
              headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
              body: JSON.stringify({ clientMsgId: send.clientMsgId, text: send.text }),
              signal: AbortSignal.timeout(15_000),
            });
            const body = (await res.json().catch(() => undefined)) as { message?: { seq?: unknown } } | undefined;
            if ((res.status === 200 || res.status === 201) && typeof body?.message?.seq === "number") {
              send.acks.push({ seq: body.message.seq, via: "http", status: res.status, repeat: false, atMs: 0 });
              stored++;
            } else {
              send.uncertain++;
              await sleep(200 * attempt);
            }
          } catch {
            send.uncertain++;
            await sleep(200 * attempt);
          }
        }
      }
    }),
  );
  return stored;
}
