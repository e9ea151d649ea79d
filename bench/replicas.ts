// Issue 15's rows: regional replicas vs the primary, side by side in one run on one server (the
// product path, `ppreplica`: REPLICATION=on, REPLICA_SHARDS=8, `?region=` picks the route).
//  - handshake (open → ready, last=50) and send→receive at 20 msg/s, through a replica vs the
//    primary. On one machine these show only the replica's overhead (an extra object and an RPC
//    hop); the long-haul hops it saves are counted from the replica's own call counters
//    (/status), per message and per handshake;
//  - fanout to many sockets of one room (publish → last receive) on the primary alone vs over the
//    8 replica shards of one region, with workerd's CPU (all objects share one process here, so
//    CPU per shard is the total over the shards, stated as such).
// Writes docs/benchmarks-replicas.md on full runs (`npm run bench -- --only replicas`).
import { performance } from "node:perf_hooks";
import type { Context, ServerKey } from "./context.js";
import { TEXT } from "./context.js";
import type { FanoutJob, FanoutResult } from "./ipc.js";
import { int, ms, ratio, type Summary, summarize } from "./stats.js";
import { BenchSocket, devToken, Frame, sendFrame } from "./wsclient.js";

const SERVER: ServerKey = "ppreplica";
export const REPLICA_SHARDS = 8;
const ROUTES = [
  { name: "primary", query: "region=primary" },
  { name: "replica (weur)", query: "region=weur" },
] as const;

interface Calls {
  sends: number;
  joins: number;
  syncs: number;
  relays: number;
}
interface ReplicaRow {
  region: string;
  shard: number;
  sockets: number;
  pushes: number;
  calls: Calls;
}

export interface ReplicaReport {
  handshake: Array<{ route: string; summary: Summary }>;
  sendReceive: Array<{ route: string; rate: number; summary: Summary; acked: number }>;
  /** Long-haul calls counted at the replica for a client far from the primary. */
  hops: { perMessage: { pushes: number; sends: number; other: number }; perHandshake: { joins: number; syncs: number }; messages: number; handshakes: number };
  fanout: Array<{ route: string; sockets: number; messages: number; delivered: number; expected: number; last: Summary; first: Summary; workerdPct: number; openS: number; failure: string }>;
}

const sleep = (t: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, t)));

async function replicaRows(url: string, room: string, token: string): Promise<ReplicaRow[]> {
  const res = await fetch(`${url}/v1/rooms/${room}/status`, { headers: { authorization: `Bearer ${token}` } });
  const body = (await res.json()) as { replicas?: ReplicaRow[] };
  return body.replicas ?? [];
}
const totals = (rows: ReplicaRow[]) =>
  rows.reduce(
    (t, r) => ({
      pushes: t.pushes + (r.pushes ?? 0),
      sends: t.sends + (r.calls?.sends ?? 0),
      joins: t.joins + (r.calls?.joins ?? 0),
      syncs: t.syncs + (r.calls?.syncs ?? 0),
      relays: t.relays + (r.calls?.relays ?? 0),
    }),
    { pushes: 0, sends: 0, joins: 0, syncs: 0, relays: 0 },
  );

export async function replicaBench(ctx: Context, quick: boolean): Promise<ReplicaReport> {
  const url = ctx.url(SERVER);
  const room = ctx.room("replicas");
  const tokens = new Map<string, string>();
  const token = async (user: string) => {
    const known = tokens.get(user);
    if (known) return known;
    const minted = await devToken(url, `${ctx.runId}-${user}`);
    tokens.set(user, minted);
    return minted;
  };
  // A room with history, and a warm replica (an idle socket keeps it subscribed).
  const filler = (await BenchSocket.open(url, room, await token("filler"), "last=1&region=primary")).socket;
  for (let i = 0; i < 100; i++) filler.send(sendFrame(`fill-${i}`, TEXT));
  await sleep(500);
  const keeper = (await BenchSocket.open(url, room, await token("keeper"), "last=1&region=weur")).socket;

  // Handshakes, alternating routes so drift hits both alike.
  const rounds = quick ? 10 : 60;
  const hs = new Map<string, number[]>(ROUTES.map((r) => [r.name, []]));
  const before = totals(await replicaRows(url, room, await token("ops")));
  for (let i = 0; i < rounds; i++) {
    for (const route of i % 2 ? [...ROUTES].reverse() : ROUTES) {
      const opened = await BenchSocket.open(url, room, await token(`join-${i % 4}`), `last=50&${route.query}`);
      hs.get(route.name)?.push(opened.readyMs);
      await opened.socket.close();
    }
  }
  const afterJoins = totals(await replicaRows(url, room, await token("ops")));
  ctx.log("replicas", `handshakes: ${ROUTES.map((r) => `${r.name} p50 ${ms(summarize(hs.get(r.name) ?? []).p50)} ms`).join(", ")}`);

  // send → receive at 20 msg/s: sender and receiver on the same route.
  const rate = 20;
  const durationMs = quick ? 2000 : 10_000;
  const sendReceive: ReplicaReport["sendReceive"] = [];
  let hopsWindow = { messages: 0, before: afterJoins, after: afterJoins, replicas: 1 };
  for (let round = 0; round < 2; round++) {
    for (const route of round % 2 ? [...ROUTES].reverse() : ROUTES) {
      const sender = (await BenchSocket.open(url, room, await token(`s-${route.name.slice(0, 3)}`), `last=1&${route.query}`)).socket;
      const receiver = (await BenchSocket.open(url, room, await token(`r-${route.name.slice(0, 3)}`), `last=1&${route.query}`)).socket;
      const sentAt = new Map<string, number>();
      const lat: number[] = [];
      let acked = 0;
      receiver.onFrame = (kind, data, at) => {
        if (kind !== Frame.Message) return;
        const m = /"clientMsgId":"(sr-[^"]+)"/.exec(data.toString("utf8"));
        const t = m?.[1] ? sentAt.get(m[1]) : undefined;
        if (t !== undefined) lat.push(at - t);
      };
      sender.onFrame = (kind) => {
        if (kind === Frame.Ack) acked++;
      };
      const isReplica = route.name !== "primary";
      const startRows = isReplica ? await replicaRows(url, room, await token("ops")) : [];
      const startTotals = isReplica ? totals(startRows) : undefined;
      const count = Math.round((rate * durationMs) / 1000);
      const t0 = performance.now();
      for (let i = 0; i < count; i++) {
        await sleep(t0 + (i * 1000) / rate - performance.now());
        const id = `sr-${route.name.slice(0, 3)}-${round}-${i}`;
        sentAt.set(id, performance.now());
        sender.send(sendFrame(id, TEXT));
      }
      await sleep(1000);
      if (isReplica && startTotals) {
        const endRows = await replicaRows(url, room, await token("ops"));
        // Replicas that got pushes in the window (users hash to shards: sender, receiver and the
        // keeper may sit on different ones): pushes are counted per replica.
        const pushed = endRows.filter((r) => (r.pushes ?? 0) > (startRows.find((x) => x.shard === r.shard && x.region === r.region)?.pushes ?? 0)).length;
        hopsWindow = { messages: count, before: startTotals, after: totals(endRows), replicas: Math.max(1, pushed) };
      }
      sendReceive.push({ route: route.name, rate, summary: summarize(lat), acked });
      await sender.close();
      await receiver.close();
    }
  }
  ctx.log("replicas", `send→receive: ${sendReceive.map((s) => `${s.route} p50 ${ms(s.summary.p50)} p99 ${ms(s.summary.p99)} ms`).join("; ")}`);
  const d = (k: keyof ReturnType<typeof totals>) => hopsWindow.after[k] - hopsWindow.before[k];
  const joinsDelta = afterJoins.joins - before.joins;
  const syncsDelta = afterJoins.syncs - before.syncs;
  const hops: ReplicaReport["hops"] = {
    messages: hopsWindow.messages,
    handshakes: rounds,
    perMessage: {
      pushes: d("pushes") / Math.max(1, hopsWindow.messages) / hopsWindow.replicas,
      sends: d("sends") / Math.max(1, hopsWindow.messages),
      other: (d("syncs") + d("relays") + d("joins")) / Math.max(1, hopsWindow.messages),
    },
    perHandshake: { joins: joinsDelta / rounds, syncs: syncsDelta / rounds },
  };
  await keeper.close();
  await filler.close();

  // Fanout: the primary alone vs the replica shards of one region.
  const fanout: ReplicaReport["fanout"] = [];
  const sizes = quick ? [200] : [2000, 10_000];
  const count = quick ? 10 : 30;
  const intervalMs = 200;
  for (const n of sizes) {
    for (const route of ROUTES) {
      const froom = ctx.room(`rfan-${n}-${route.name.slice(0, 3)}`);
      const users = Array.from({ length: n }, (_, i) => `${froom}-r${i}`);
      const procs = ctx.pool.size;
      const parts: FanoutJob[] = Array.from({ length: procs }, (_, p) => ({
        kind: "fanout",
        url,
        room: froom,
        users: users.filter((_, i) => i % procs === p),
        count,
        intervalMs,
        text: TEXT,
        query: route.query,
        ...(p === 0 ? { publisher: `${froom}-publisher` } : {}),
      }));
      ctx.log("replicas", `fanout ${route.name}: opening ${int(n)} sockets`);
      try {
        // The window ends when the last message is published: the job may finish (every socket got
        // everything) before a window of count × interval would, and the CPU sample would be lost.
        const m = await ctx.measure<FanoutResult>(SERVER, parts, (count - 1) * intervalMs, { prepareTimeoutMs: 600_000 });
        const results = m.parts.map((p) => p.result);
        const sentAt = results.find((r) => r.sentAt.length)?.sentAt ?? [];
        const first: number[] = [];
        const last: number[] = [];
        let delivered = 0;
        for (let i = 0; i < count; i++) {
          const sent = sentAt[i];
          const got = results.reduce((s, r) => s + (r.got[i] ?? 0), 0);
          delivered += got;
          if (sent === undefined || got === 0) continue;
          first.push(Math.min(...results.map((r) => r.firstAt[i] ?? Number.NaN).filter(Number.isFinite)) - sent);
          if (got === n) last.push(Math.max(...results.map((r) => r.lastAt[i] ?? Number.NaN).filter(Number.isFinite)) - sent);
        }
        const row = {
          route: route.name,
          sockets: n,
          messages: count,
          delivered,
          expected: n * count,
          first: summarize(first),
          last: summarize(last),
          workerdPct: m.cpu.workerdPct,
          openS: Math.max(...results.map((r) => r.openMs)) / 1000,
          failure: delivered === n * count ? "" : `${int(n * count - delivered)} deliveries missing`,
        };
        fanout.push(row);
        ctx.log(
          "replicas",
          `fanout ${route.name} ${int(n)} sockets: publish→last p50/p99 ${ms(row.last.p50)}/${ms(row.last.p99)} ms, workerd ${Math.round(row.workerdPct)}%, ${int(delivered)}/${int(n * count)} delivered`,
        );
      } catch (error) {
        const failure = error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
        ctx.log("replicas", `fanout ${route.name} ${int(n)} sockets FAILED: ${failure}`);
        fanout.push({ route: route.name, sockets: n, messages: count, delivered: 0, expected: n * count, first: summarize([]), last: summarize([]), workerdPct: Number.NaN, openS: Number.NaN, failure });
      }
    }
  }
  return { handshake: ROUTES.map((r) => ({ route: r.name, summary: summarize(hs.get(r.name) ?? []) })), sendReceive, hops, fanout };
}

/** The page: docs/benchmarks-replicas.md. */
export function replicaPage(report: ReplicaReport, machine: string, command: string, date: string): string {
  const [p, r] = [report.handshake[0], report.handshake[1]];
  const sr = (route: string) => summarize(report.sendReceive.filter((s) => s.route === route).flatMap((s) => [s.summary.p50]));
  const srRows = report.sendReceive.map((s) => `| ${s.route} | ${s.rate} | ${ms(s.summary.p50)} | ${ms(s.summary.p99)} | ${ms(s.summary.max)} | ${int(s.summary.n)} |`);
  const fan = report.fanout.map((f) => {
    const base = report.fanout.find((x) => x.sockets === f.sockets && x.route === "primary");
    return `| ${int(f.sockets)} | ${f.route} | ${ms(f.first.p50)} | ${ms(f.last.p50)} | ${ms(f.last.p99)} | ${base && base !== f ? ratio(f.last.p50 / base.last.p50) : "1.00×"} | ${Number.isFinite(f.workerdPct) ? `${Math.round(f.workerdPct)}%` : "–"} | ${Number.isFinite(f.workerdPct) && f.route !== "primary" ? `${Math.round(f.workerdPct / REPLICA_SHARDS)}% (share of ${REPLICA_SHARDS})` : "–"} | ${f.openS.toFixed(1)} s | ${int(f.delivered)}/${int(f.expected)}${f.failure ? ` ${f.failure}` : ""} |`;
  });
  const h = report.hops;
  return `# Benchmarks: regional replicas (issue 15)

Measured ${date} with \`${command}\` on ${machine}. One server on the product path (the bundle \`wrangler deploy\` uploads, run by Miniflare without wrangler dev's inspector), \`REPLICATION=on\`, \`REPLICA_SHARDS=${REPLICA_SHARDS}\`, \`REPLICA_REGION_OVERRIDE=true\`, the Redis mirror on; every row of a table was measured in the same run, routes alternating (\`?region=primary\` vs \`?region=weur\`). All objects run in one workerd process on this machine: a replica here is **not** closer to anyone, so these rows show the replica's overhead; the hops it saves are counted below.

## Handshake (open → \`ready\`, last=50, warm replica)

| route | p50 ms | p99 ms | max ms | n |
|---|---|---|---|---|
${report.handshake.map((x) => `| ${x.route} | ${ms(x.summary.p50)} | ${ms(x.summary.p99)} | ${ms(x.summary.max)} | ${x.summary.n} |`).join("\n")}

Replica / primary at p50: ${p && r ? ratio(r.summary.p50 / p.summary.p50) : "–"}.

## Send → receive at 20 msg/s (sender and receiver on the same route; two rounds each)

| route | msg/s | p50 ms | p99 ms | max ms | n |
|---|---|---|---|---|---|
${srRows.join("\n")}

Replica / primary at p50 (median of rounds): ${ratio(sr(ROUTES[1].name).p50 / sr(ROUTES[0].name).p50)}.

## Long-haul hops, counted

Counted from the replica's call counters (\`/status\` → \`replicas[].calls\`, \`pushes\`) over ${int(h.messages)} messages and ${int(h.handshakes)} handshakes, for a client far from the primary:

| | without a replica (client → primary) | with a replica near the client |
|---|---|---|
| per handshake | the WebSocket upgrade itself crosses: TCP + TLS + upgrade ≈ 3 round trips, then \`ready\` | ${(h.perHandshake.joins + h.perHandshake.syncs).toFixed(2)} round trips replica ↔ primary (${h.perHandshake.joins.toFixed(2)} join + ${h.perHandshake.syncs.toFixed(2)} sync: a cold feed's start); the upgrade stays local |
| per message sent by this client | 1 one-way (frame in) + 1 one-way (frame and ack back) | ${h.perMessage.sends.toFixed(2)} forwarded-send round trips (coalesced while one is in flight) |
| per message received, per socket | 1 one-way per socket | ${h.perMessage.pushes.toFixed(2)} pushes per message **per replica**, shared by all its sockets; ${h.perMessage.other.toFixed(3)} other calls |

## Fanout: one room, one publisher (${report.fanout[0]?.messages ?? 0} messages, 5 msg/s)

| sockets | route | publish→first p50 | publish→last p50 | publish→last p99 | last p50 vs primary | workerd CPU | per shard | sockets opened in | delivered |
|---|---|---|---|---|---|---|---|---|---|
${fan.join("\n")}

CPU per shard cannot be read separately here (all shards share one workerd process): "per shard" is the total divided by ${REPLICA_SHARDS}. See docs/architecture.md, "Regional replicas", for what a room of 1,000,000 sockets would need, worked from these rows.
`;
}
