// The Redis mirror: every committed message reaches the room's stream exactly once, in order;
// Redis trouble never blocks a send; crashes and outages heal from the durable watermark.

import { env, runDurableObjectAlarm, runInDurableObject, abortAllDurableObjects } from "cloudflare:test";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Message } from "../src/protocol/frames.js";
import { roomStub } from "../src/room/address.js";
import {
  acmeToken,
  api,
  eventually,
  hasRedis,
  mirroredStream,
  sendAndWait,
  setRedisDown,
  sleep,
  storedMessages,
  TestSocket,
  uniqueRoom,
} from "./helpers.js";

const MAXLEN = 50;
const stubOf = (roomId: string) => roomStub(env, { tenant: "default", roomId });
const status = async (roomId: string) =>
  (await api(`/v1/rooms/${roomId}/status`, { user: "ops" })).body as { latestSeq: number; mirroredSeq: number; mirrorLag: number };

/** The stream must be exactly the newest part of Postgres: contiguous, ending at the last seq, same content. */
const expectStreamMatchesPostgres = async (roomId: string) => {
  const stored = await storedMessages(roomId);
  const stream = await mirroredStream(roomId);
  expect(stream.length).toBeGreaterThanOrEqual(Math.min(MAXLEN, stored.length));
  const tail = stored.slice(stored.length - stream.length);
  expect(stream.map((m) => [m.seq, m.id, m.userId, m.clientMsgId, m.text])).toEqual(
    tail.map((m) => [m.seq, m.id, m.userId, m.clientMsgId, m.text]),
  );
  return stream;
};

describe.skipIf(!hasRedis())("Redis mirror", () => {
  beforeAll(() => {
    if (!hasRedis()) console.log("no Redis: mirror tests skipped (CI=true requires one)");
  });
  afterEach(async () => {
    await setRedisDown(false);
  });

  it("after a burst from several writers the stream holds exactly the committed seqs, in order, with their content, trimmed to the newest", async () => {
    const room = uniqueRoom("mirror");
    const writers = await Promise.all([0, 1, 2].map((w) => TestSocket.open(room, { user: `w${w}` })));
    await Promise.all(writers.map((w) => w.ready()));
    for (let i = 0; i < 60; i++) for (const [w, s] of writers.entries()) s.send({ type: "send", clientMsgId: `m${w}-${i}`, text: `t${w}-${i}` });
    await writers[0]?.untilSeq(180);
    await eventuallyAsync("mirror lag 0", async () => (await status(room)).mirrorLag === 0);
    const stream = await expectStreamMatchesPostgres(room);
    expect(stream[stream.length - 1]?.seq).toBe(180);
    expect(stream.length).toBeLessThan(180); // trimmed (MAXLEN ~ 50)
    for (const w of writers) w.close();
  });

  it("Redis down mid-burst: sends are still acked while it is down; after it returns the stream equals Postgres, no gap, no duplicate", async () => {
    const room = uniqueRoom("mirror-down");
    const writer = await TestSocket.open(room, { user: "w" });
    await writer.ready();
    for (let i = 1; i <= 10; i++) writer.send({ type: "send", clientMsgId: `a${i}`, text: `a${i}` });
    await writer.untilSeq(10);
    await setRedisDown(true);
    for (let i = 11; i <= 40; i++) writer.send({ type: "send", clientMsgId: `a${i}`, text: `a${i}` });
    // Every send is acked while Redis is still down: the mirror is off the ack path.
    await eventually("40 acks", () => (writer.ofType("ack").length === 40 ? true : undefined));
    expect(writer.ofType("error")).toEqual([]);
    expect((await status(room)).mirrorLag).toBeGreaterThan(0);
    await setRedisDown(false);
    // The heal alarm retries with backoff (0.5 s, 1 s, …); run it now rather than wait.
    await runDurableObjectAlarm(stubOf(room));
    await eventuallyAsync("mirror lag 0", async () => (await status(room)).mirrorLag === 0);
    await expectStreamMatchesPostgres(room);
    writer.close();
  });

  it("a crash between commit and mirror is healed by the alarm: nothing lost, nothing twice", async () => {
    const room = uniqueRoom("mirror-crash");
    const writer = await TestSocket.open(room, { user: "w" });
    await writer.ready();
    for (let i = 1; i <= 5; i++) await sendAndWait(writer, `c${i}`, `c${i}`);
    await eventuallyAsync("mirrored", async () => (await status(room)).mirrorLag === 0);
    // Commits succeed while every mirror write fails, then the object dies: its memory is gone,
    // only the watermark in storage and the armed alarm remain.
    await setRedisDown(true);
    for (let i = 6; i <= 12; i++) await sendAndWait(writer, `c${i}`, `c${i}`);
    await abortAllDurableObjects();
    await setRedisDown(false);
    expect((await mirroredStream(room)).map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);
    const fired = await runDurableObjectAlarm(stubOf(room));
    expect(fired).toBe(true);
    await eventuallyAsync("healed", async () => (await mirroredStream(room)).length === 12);
    await expectStreamMatchesPostgres(room);
  });

  it("after a crash the heal alarm alone heals the stream: an instance woken by its alarm knows which room it is", async () => {
    const room = uniqueRoom("mirror-alarm-only");
    const writer = await TestSocket.open(room, { user: "w" });
    await writer.ready();
    await sendAndWait(writer, "k1", "k1");
    await eventuallyAsync("mirrored", async () => (await status(room)).mirrorLag === 0);
    await setRedisDown(true);
    for (let i = 2; i <= 4; i++) await sendAndWait(writer, `k${i}`, `k${i}`);
    // The mirror writes MIRROR_LINGER_MS (10 ms) after a commit: let that pass run and fail, so it
    // arms the heal alarm's 0.5 s retry (otherwise only the 30 s heal interval is armed, and this
    // test would wait past its timeout for it). Then the object dies; nothing calls it again.
    await sleep(200);
    await abortAllDurableObjects();
    await setRedisDown(false);
    // No request reaches the room from here on: only its alarm can bring the stream up to date.
    await eventuallyAsync("healed by the alarm", async () => (await mirroredStream(room)).length === 4, 15_000);
    await expectStreamMatchesPostgres(room);
  });

  it("re-mirroring already mirrored seqs is a no-op success, and healing concurrent with live sends never reorders", async () => {
    const room = uniqueRoom("mirror-dup");
    const writer = await TestSocket.open(room, { user: "w" });
    await writer.ready();
    for (let i = 1; i <= 20; i++) writer.send({ type: "send", clientMsgId: `d${i}`, text: `d${i}` });
    await writer.untilSeq(20);
    await eventuallyAsync("mirrored", async () => (await status(room)).mirrorLag === 0);
    // Lose the watermark (as if a crash hit after XADD but before the watermark was saved).
    await runInDurableObject(stubOf(room), async (_instance, state) => {
      await state.storage.put("mirroredSeq", 3);
    });
    await abortAllDurableObjects();
    // Wake-up heals from seq 4 (XADDs of 4..20 are "already there") while live sends continue.
    const writer2 = await TestSocket.open(room, { user: "w", since: 20 });
    await writer2.ready();
    for (let i = 21; i <= 40; i++) writer2.send({ type: "send", clientMsgId: `d${i}`, text: `d${i}` });
    await writer2.untilSeq(40);
    await eventuallyAsync("mirrored", async () => (await status(room)).mirrorLag === 0);
    const stream = await expectStreamMatchesPostgres(room);
    expect(stream[stream.length - 1]?.seq).toBe(40);
    expect(new Set(stream.map((m) => m.seq)).size).toBe(stream.length);
    writer2.close();
  });

  it("edge reads: served from Redis (contiguous from after+1) when the window covers them, from the room otherwise", async () => {
    const room = uniqueRoom("edge");
    for (let i = 1; i <= 120; i++) await api(`/v1/rooms/${room}/messages`, { user: "w", body: { clientMsgId: `e${i}`, text: `e${i}` } });
    await eventuallyAsync("mirrored", async () => (await status(room)).mirrorLag === 0);
    const firstInStream = (await mirroredStream(room))[0]?.seq ?? 0;
    expect(firstInStream).toBeGreaterThan(1);

    const near = await api(`/v1/rooms/${room}/messages?after=110&limit=5`, { user: "r" });
    expect(near.headers.get("x-chat-source")).toBe("redis");
    expect(near.body).toMatchObject({ latestSeq: 120 });
    expect((near.body as { messages: Message[] }).messages.map((m) => m.seq)).toEqual([111, 112, 113, 114, 115]);

    // A page that reaches the tip is the room's: it must hold everything acked, whatever Redis lags.
    const tip = await api(`/v1/rooms/${room}/messages?after=115&limit=50`, { user: "r" });
    expect(tip.headers.get("x-chat-source")).toBe("room");
    expect((tip.body as { messages: Message[] }).messages.map((m) => m.seq)).toEqual([116, 117, 118, 119, 120]);

    const deep = await api(`/v1/rooms/${room}/messages?after=0&limit=10`, { user: "r" });
    expect(deep.headers.get("x-chat-source")).toBe("room");
    expect((deep.body as { messages: Message[] }).messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);

    // Same answer from either source for the same page.
    const viaRedis = await api(`/v1/rooms/${room}/messages?after=100&limit=20`, { user: "r" });
    await setRedisDown(true);
    const viaRoom = await api(`/v1/rooms/${room}/messages?after=100&limit=20`, { user: "r" });
    expect(viaRedis.headers.get("x-chat-source")).toBe("redis");
    expect(viaRoom.headers.get("x-chat-source")).toBe("room");
    expect(viaRedis.body).toEqual(viaRoom.body);
  });

  it("edge reads never serve a private room: members are answered by the room object, others are forbidden", async () => {
    const roomId = uniqueRoom("edge-private");
    const owner = await acmeToken("owner");
    expect((await api("/v1/rooms", { token: owner, body: { roomId, visibility: "private" } })).status).toBe(201);
    for (let i = 1; i <= 5; i++) await api(`/v1/rooms/${roomId}/messages`, { token: owner, body: { clientMsgId: `p${i}`, text: "p" } });
    await eventuallyAsync("mirrored", async () => {
      const res = await api(`/v1/rooms/${roomId}/status`, { token: owner });
      return (res.body as { mirrorLag: number }).mirrorLag === 0;
    });
    expect((await mirroredStream(roomId, "acme")).length).toBe(5);
    const member = await api(`/v1/rooms/${roomId}/messages?after=1`, { token: owner });
    expect(member.headers.get("x-chat-source")).toBe("room");
    expect((member.body as { messages: Message[] }).messages.map((m) => m.seq)).toEqual([2, 3, 4, 5]);
    const outsider = await api(`/v1/rooms/${roomId}/messages?after=1`, { token: await acmeToken("outsider") });
    expect(outsider.status).toBe(403);
  });
});

/** Polls an async condition. */
const eventuallyAsync = async (what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
};
