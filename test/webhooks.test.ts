// Webhooks end to end (issue #18): the room hands committed entries to the REAL local queue, the
// Worker's consumer POSTs them signed to a REAL local receiver (test/webhook-receiver.ts) that
// checks signatures, counts duplicates and checks seq contiguity per room. Crashes, outages and
// dead letters go through the same path.

import { abortAllDurableObjects, env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { eventually, sleep, signToken, sql, TestSocket, uniqueRoom, workerFetchWith, BASE } from "./helpers.js";
import type { Room } from "../src/room/room.js";
import type { RoomHooks } from "../src/hooks/room-hooks.js";

const HOOKS_SECRET = "hooks-secret-not-for-production";
const receiverUrl = (env as unknown as { TEST_WEBHOOK_URL: string }).TEST_WEBHOOK_URL;

interface Arrival {
  id: string;
  type: string;
  roomId: string;
  seq: number | null;
  prevSeq: number | undefined;
  duplicate: boolean;
  at: number;
  data: Record<string, unknown>;
}
interface Log {
  arrivals: Arrival[];
  refused: Array<{ id: string; at: number }>;
  badSignatures: number;
  gaps: Array<{ roomId: string; expected: number; got: number }>;
}

const log = async (endpoint: string, room: string): Promise<Log> =>
  (await (await fetch(`${receiverUrl}/control/${endpoint}?room=${encodeURIComponent(room)}`)).json()) as Log;

const setDown = async (endpoint: string, failStatus: number | null): Promise<void> => {
  await fetch(`${receiverUrl}/control/${endpoint}`, { method: "POST", body: JSON.stringify({ failStatus }) });
};

const token = (user: string) => signToken({ sub: user, tenant: "hooks" }, { secret: HOOKS_SECRET });

const call = async (path: string, user: string, init: { method?: string; body?: unknown } = {}) => {
  const res = await workerFetchWith({}, `${BASE}${path}`, {
    method: init.method ?? (init.body === undefined ? "GET" : "POST"),
    headers: { authorization: `Bearer ${await token(user)}`, "content-type": "application/json" },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  return { status: res.status, body: (await res.json().catch(() => null)) as unknown };
};

const send = (room: string, user: string, clientMsgId: string, text: string, extra: Record<string, unknown> = {}) =>
  call(`/v1/rooms/${room}/messages`, user, { body: { clientMsgId, text, ...extra } });

const stubOf = (room: string) => env.ROOM.get(env.ROOM.idFromName(`hooks:${room}`));

/** Fresh (first-time) seq arrivals, in arrival order. */
const fresh = (l: Log) => l.arrivals.filter((a) => !a.duplicate && a.seq !== null);

describe("webhooks", () => {
  it("every committed entry reaches each endpoint once, signed, in seq order, with the types it subscribed to", async () => {
    const room = uniqueRoom("hooks-all");
    for (let i = 1; i <= 5; i++) expect((await send(room, "alice", `m${i}`, `hello ${i}`)).status).toBeLessThan(300);
    expect((await call(`/v1/rooms/${room}/messages/1`, "alice", { method: "PATCH", body: { clientMsgId: "e1", text: "edited" } })).status).toBeLessThan(300);
    expect((await call(`/v1/rooms/${room}/messages/2/reactions`, "alice", { body: { clientMsgId: "r1", emoji: "👍" } })).status).toBeLessThan(300);
    expect((await call(`/v1/rooms/${room}/messages/3`, "alice", { method: "DELETE", body: { clientMsgId: "d1" } })).status).toBeLessThan(300);
    const all = await eventually("8 events at 'all'", async () => {
      const l = await log("all", room);
      return fresh(l).length >= 8 ? l : undefined;
    }, 20_000);
    const seqs = fresh(all).map((a) => a.seq as number);
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    // (An open room's first send joins its sender without a system entry: seq 1 is the message.)
    expect(fresh(all).map((a) => a.type).slice(5)).toEqual(["message.edited", "reaction", "message.deleted"]);
    expect(fresh(all).map((a) => a.id)).toEqual(seqs.map((s) => `hooks:${room}:${s}`));
    expect(fresh(all).map((a) => a.prevSeq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(all.gaps).toEqual([]);
    const created = await eventually("5 at 'created'", async () => {
      const l = await log("created", room);
      return fresh(l).length >= 5 ? l : undefined;
    });
    // Only message.created; prevSeq chains the events this endpoint was sent.
    expect(fresh(created).map((a) => [a.seq, a.prevSeq, a.type])).toEqual([
      [1, 0, "message.created"],
      [2, 1, "message.created"],
      [3, 2, "message.created"],
      [4, 3, "message.created"],
      [5, 4, "message.created"],
    ]);
    await sleep(1500);
    expect(fresh(await log("created", room))).toHaveLength(5);
  });

  it("a crash between commit and enqueue loses nothing: the next instance enqueues from the watermark, in order", async () => {
    const room = uniqueRoom("hooks-crash");
    expect((await send(room, "alice", "c0", "before")).status).toBeLessThan(300);
    await eventually("seq 1 delivered", async () => (fresh(await log("created", room)).length === 1 ? true : undefined), 15_000);
    // Hold the dispatcher: commits go on (and are acked), nothing is enqueued; then the object dies.
    await runInDurableObject(stubOf(room), async (instance: Room) => {
      await (instance as unknown as { hooks: RoomHooks }).hooks.dispatcher.hold();
    });
    for (let i = 1; i <= 6; i++) expect((await send(room, "alice", `c${i}`, `during ${i}`)).status).toBeLessThan(300);
    await sleep(1500);
    expect(fresh(await log("created", room)).map((a) => a.seq)).toEqual([1]);
    await abortAllDurableObjects();
    // The heal alarm (armed before every commit) wakes a new instance, which resumes from the watermark.
    expect(await runDurableObjectAlarm(stubOf(room))).toBe(true);
    const l = await eventually("7 delivered", async () => {
      const x = await log("created", room);
      return fresh(x).length >= 7 ? x : undefined;
    }, 20_000);
    expect(fresh(l).map((a) => a.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(l.gaps).toEqual([]);
    expect(l.badSignatures).toBe(0);
  });

  it("a receiver outage: sends are acked at once, deliveries retry with backoff, and resume in order after it recovers", async () => {
    const room = uniqueRoom("hooks-outage");
    await setDown("flaky", 503);
    try {
      const started = Date.now();
      for (let i = 1; i <= 4; i++) expect((await send(room, "alice", `o${i}`, `o${i}`)).status).toBeLessThan(300);
      // Webhooks are not on the ack path: four acks while the endpoint is down, quickly.
      expect(Date.now() - started).toBeLessThan(3000);
      // Two failed attempts of the same first event, the second after the 1 s backoff.
      const refused = await eventually("2 failed attempts", async () => {
        const l = await log("flaky", room);
        const mine = l.refused.filter((r) => r.id.startsWith(`hooks:${room}:`));
        return mine.length >= 2 ? mine : undefined;
      }, 15_000);
      expect(refused[0]?.id).toBe(`hooks:${room}:1`);
      expect(refused[1]?.id).toBe(`hooks:${room}:1`);
      expect((refused[1]?.at ?? 0) - (refused[0]?.at ?? 0)).toBeGreaterThanOrEqual(900);
      const status = await stubOf(room).webhookStatus();
      expect(status.ok && status.value.flaky?.failures).toBeGreaterThanOrEqual(1);
    } finally {
      await setDown("flaky", null);
    }
    const l = await eventually("4 delivered after recovery", async () => {
      const x = await log("flaky", room);
      return fresh(x).length >= 4 ? x : undefined;
    }, 20_000);
    expect(fresh(l).map((a) => a.seq)).toEqual([1, 2, 3, 4]);
    expect(l.gaps).toEqual([]);
  });

  it("after WEBHOOK_MAX_ATTEMPTS failures an event is dead-lettered in Postgres, and the endpoint moves on (the receiver sees the gap from prevSeq)", async () => {
    const room = uniqueRoom("hooks-dead");
    await setDown("flaky", 500);
    try {
      expect((await send(room, "alice", "x1", "doomed")).status).toBeLessThan(300);
      await eventually("dead letter row", async () => {
        const rows = await sql<{ event_id: string }>("SELECT event_id FROM webhook_dead_letters WHERE tenant = 'hooks' AND room_id = $1", [room]);
        return rows.length > 0 ? true : undefined;
      }, 20_000);
    } finally {
      await setDown("flaky", null);
    }
    const rows = await sql<{ event_id: string; endpoint_id: string; attempts: number; last_error: string; seq: string }>(
      "SELECT event_id, endpoint_id, attempts, last_error, seq FROM webhook_dead_letters WHERE tenant = 'hooks' AND room_id = $1",
      [room],
    );
    expect(rows).toEqual([{ event_id: `hooks:${room}:1`, endpoint_id: "flaky", attempts: 3, last_error: "HTTP 500", seq: "1" }]);
    const refused = (await log("flaky", room)).refused.filter((r) => r.id === `hooks:${room}:1`);
    expect(refused).toHaveLength(3);
    // Backoff: 1 s, then 2 s.
    expect((refused[2]?.at ?? 0) - (refused[1]?.at ?? 0)).toBeGreaterThanOrEqual(1800);
    expect((await send(room, "alice", "x2", "lives")).status).toBeLessThan(300);
    const l = await eventually("seq 2 delivered", async () => {
      const x = await log("flaky", room);
      return fresh(x).length >= 1 ? x : undefined;
    }, 15_000);
    expect(fresh(l).map((a) => [a.seq, a.prevSeq])).toEqual([[2, 1]]);
    // The other endpoints of the tenant got seq 1 meanwhile: one endpoint's outage holds no other.
    expect(fresh(await log("created", room)).map((a) => a.seq)).toEqual([1, 2]);
  });

  it("offline members get one notification per burst; a mention notifies even inside a burst; online members none", async () => {
    const room = uniqueRoom("hooks-notify");
    expect((await call("/v1/rooms", "alice", { body: { roomId: room, name: "Notify", visibility: "private" } })).status).toBe(201);
    for (const user of ["bob", "carol"]) {
      expect((await call(`/v1/rooms/${room}/members/${user}`, "alice", { method: "PUT", body: { role: "member" } })).status).toBeLessThan(300);
    }
    const carol = await TestSocket.open(room, { user: "carol", token: await token("carol") });
    await carol.ready();
    const base = 2; // member.added × 2
    for (let i = 1; i <= 3; i++) expect((await send(room, "alice", `n${i}`, `burst ${i}`)).status).toBeLessThan(300);
    expect((await send(room, "alice", "n4", "hey @bob, and @carol")).status).toBeLessThan(300);
    expect((await send(room, "alice", "n5", "explicit", { mentions: ["bob"] })).status).toBeLessThan(300);
    const l = await eventually("notifications", async () => {
      const x = await log("all", room);
      return fresh(x).filter((a) => a.seq !== null && a.seq >= base + 5 && a.type === "message.created").length > 0 ? x : undefined;
    }, 20_000);
    const notes = fresh(l).filter((a) => a.type === "notification");
    expect(notes.map((a) => [a.seq, a.data.userId, a.data.reason])).toEqual([
      [base + 1, "bob", "unread"],
      [base + 4, "bob", "mention"],
      [base + 5, "bob", "mention"],
    ]);
    expect(notes.map((a) => a.id)).toEqual(notes.map((a) => `hooks:${room}:${a.seq}:notification:bob`));
    // The explicit mention is carried on the message itself.
    const m5 = fresh(l).find((a) => a.seq === base + 5 && a.type === "message.created");
    expect(m5?.data.mentions).toEqual(["bob"]);
    // room.created (no seq) and the member events reached the all-events endpoint too.
    expect(l.arrivals.some((a) => a.type === "room.created")).toBe(true);
    expect(fresh(l).filter((a) => a.type === "member.added").map((a) => a.seq)).toEqual([1, 2]);
    expect(l.gaps).toEqual([]);
    // Bob reads: his burst is over, the next message notifies him again.
    expect((await call(`/v1/rooms/${room}/read`, "bob", { method: "PUT", body: { seq: base + 5 } })).status).toBeLessThan(300);
    expect((await send(room, "alice", "n6", "after read")).status).toBeLessThan(300);
    await eventually("a new burst", async () => {
      const x = await log("all", room);
      return fresh(x).some((a) => a.type === "notification" && a.seq === base + 6) ? true : undefined;
    }, 15_000);
    carol.close();
  });

  it("a report is a signed report.created event (no seq), once, with the report's row", async () => {
    const room = uniqueRoom("wh-report");
    expect((await send(room, "alice", "r1", "something rude")).status).toBeLessThan(300);
    const reported = await call(`/v1/rooms/${room}/reports`, "bob", { body: { seq: 1, reason: "rude" } });
    expect(reported.status).toBe(201);
    const reportId = (reported.body as { report: { id: string } }).report.id;
    const arrival = await eventually(
      "report.created",
      async () => (await log("all", room)).arrivals.find((a) => a.type === "report.created"),
      15_000,
    );
    expect(arrival).toMatchObject({ id: `hooks:${room}:report:${reportId}`, seq: null, duplicate: false });
    expect(arrival.data).toMatchObject({ id: reportId, reporter: "bob", seq: 1, reason: "rude" });
    const l = await log("all", room);
    expect(l.badSignatures).toBe(0);
    // Only the endpoints that asked for it: "created" subscribes to message.created alone.
    expect((await log("created", room)).arrivals.some((a) => a.type === "report.created")).toBe(false);
  });

  it("a tenant whose endpoint points at loopback is refused when WEBHOOKS_ALLOW_PRIVATE is off (SSRF), with a configuration error", async () => {
    const tenants = JSON.stringify({ evil: { secret: "x".repeat(20), webhooks: [{ url: "http://127.0.0.1:9/hook", secret: "s".repeat(20), events: ["*"] }] } });
    const res = await workerFetchWith({ TENANTS: tenants, WEBHOOKS_ALLOW_PRIVATE: "false" }, `${BASE}/v1/rooms/x/messages`, {
      headers: { authorization: `Bearer ${await signToken({ sub: "a", tenant: "evil" }, { secret: "x".repeat(20) })}` },
    });
    expect(res.status).toBe(500);
    const body = (await res.json()) as { error: { code: string } };
    expect(body.error.code).toBe("internal");
  });
});
