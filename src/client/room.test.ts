// Room behaviour through the public API (ChatClient → Room), against the in-memory FakeServer, with
// fake timers so reconnect backoff, heartbeats and retries run in virtual time.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type Message, PROTOCOL_VERSION } from "../protocol/frames.js";
import { ChatClient, type ChatClientOptions } from "./client.js";
import type { AnyEntry } from "./decode.js";
import { ChatClientError } from "./errors.js";
import type { ConnectionState, Room } from "./room.js";
import { ackOf, errorResponse, type FakeServer as FakeServerType, FakeServer } from "./testing/fake-server.js";
import { fakeJwt } from "./testing/jwt.js";
import { seqs } from "./testing/messages.js";

const BASE_URL = "http://chat.test";
/** Longer than any reconnect delay (cap 10 s). */
const MAX_BACKOFF_MS = 10_000;

const flush = () => vi.advanceTimersByTimeAsync(0);

interface Setup {
  server: FakeServerType;
  client: ChatClient;
  tokenCalls: () => number;
}

const setup = (options: Partial<ChatClientOptions> = {}, tokenLifetimeS = 3600): Setup => {
  const server = new FakeServer("r1");
  let tokenCalls = 0;
  const client = new ChatClient({
    baseUrl: BASE_URL,
    tokenProvider: async () => {
      tokenCalls++;
      const iat = Math.floor(Date.now() / 1000);
      return fakeJwt({ sub: "alice", iat, exp: iat + tokenLifetimeS, n: tokenCalls });
    },
    WebSocket: server.WebSocket,
    fetch: server.fetch,
    ...options,
  });
  return { server, client, tokenCalls: () => tokenCalls };
};

/** Joins and lets the fake server answer with its ready. */
const join = async (s: Setup, options: { last?: number; since?: number } = {}): Promise<Room> => {
  const joining = s.client.join("r1", options);
  await flush();
  s.server.latest.ready();
  await flush();
  return joining;
};

/** Records what the app sees. */
const watch = (room: Room) => {
  const seen = { messages: [] as Message[], states: [] as ConnectionState[], errors: [] as ChatClientError[] };
  room.on("message", (m) => seen.messages.push(m));
  room.on("state", (s) => seen.states.push(s));
  room.on("error", (e) => seen.errors.push(e));
  return seen;
};

const expectContiguous = (messages: readonly Message[]) =>
  expect(seqs(messages)).toEqual(messages.length === 0 ? [] : seqs(messages).map((_, i) => (messages[0] as Message).seq + i));

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date("2026-03-01T00:00:00Z"));
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("join", () => {
  it("resolves once ready is applied, with exactly the newest `last` messages, live", async () => {
    const s = setup();
    s.server.commitMany(80);
    const room = await join(s, { last: 30 });
    expect(seqs(room.messages)).toEqual(seqs(s.server.store.slice(-30)));
    expect(room.state).toBe("live");
    expect(s.server.latest.url.pathname).toBe("/v1/rooms/r1/ws");
    expect(s.server.latest.url.searchParams.get("last")).toBe("30");
    expect(s.server.latest.url.protocol).toBe("ws:");
  });

  it("a last= join whose ready did not fit (truncated by bytes) still resolves with `last` messages, the rest fetched over REST", async () => {
    const s = setup();
    s.server.commitMany(300);
    const joining = s.client.join("r1", { last: 200 }).then((room) => ({ room, lengthWhenResolved: room.messages.length }));
    await flush();
    s.server.latest.ready({ maxMessages: 120 }); // 181..300
    const { room, lengthWhenResolved } = await joining;
    expect(lengthWhenResolved).toBe(200);
    expect(s.server.historyRequests).toEqual([{ after: 100, limit: 80 }]);
    expect(seqs(room.messages)).toEqual(seqs(s.server.store.slice(100)));
  });

  it("does not resolve before ready, and rejects (offline, no retry) when the server closes with 4403", async () => {
    const s = setup();
    const joining = s.client.join("r1");
    await flush();
    let settled = false;
    joining.then(
      () => (settled = true),
      () => (settled = true),
    );
    s.server.latest.open();
    await flush();
    expect(settled).toBe(false);
    s.server.latest.serverClose(4403, "not a member");
    await expect(joining).rejects.toMatchObject({ code: "forbidden" });
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS * 3);
    expect(s.server.sockets).toHaveLength(1);
  });

  it("keeps retrying transient failures before the first ready, and an abort signal ends it", async () => {
    const s = setup();
    const controller = new AbortController();
    const joining = s.client.join("r1", { signal: controller.signal });
    await flush();
    s.server.latest.serverClose(1006);
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    expect(s.server.sockets).toHaveLength(2);
    controller.abort();
    await expect(joining).rejects.toMatchObject({ code: "aborted" });
    expect(s.server.latest.closedByClient).toBeDefined();
  });

  it("a since= join whose ready is truncated resolves only once the hole is filled: complete history, no gap", async () => {
    const s = setup();
    s.server.commitMany(2500);
    const joining = s.client.join("r1", { since: 0 }).then((room) => ({ room, lengthWhenResolved: room.messages.length }));
    await flush();
    s.server.latest.ready();
    const { room, lengthWhenResolved } = await joining;
    expect(lengthWhenResolved).toBe(2500);
    expect(s.server.historyRequests).toEqual([
      { after: 0, limit: 1000 },
      { after: 1000, limit: 500 },
    ]);
    expect(room.messages).toHaveLength(2500);
    expectContiguous(room.messages);
  });

  it("rejects when tokenProvider fails before the first ready (the app has no room to listen to yet)", async () => {
    const s = setup({
      tokenProvider: async () => {
        throw new Error("backend down");
      },
    });
    await expect(s.client.join("r1")).rejects.toMatchObject({
      code: "unauthorized",
      message: "unable to join room r1; tokenProvider failed (backend down)",
    });
    expect(s.server.sockets).toHaveLength(0);
  });

  it("refuses a bad room id or history option before connecting", async () => {
    const s = setup();
    await expect(s.client.join("no spaces")).rejects.toMatchObject({ code: "bad_request" });
    await expect(s.client.join("r1", { last: 5000 })).rejects.toMatchObject({ code: "bad_request" });
    await expect(s.client.join("r1", { last: 5, since: 3 })).rejects.toMatchObject({ code: "bad_request" });
    expect(s.server.sockets).toHaveLength(0);
  });
});

describe("the message list", () => {
  it("resumes with since = the last contiguous seq and shows each missed message once, in order", async () => {
    const s = setup();
    s.server.commitMany(10);
    const room = await join(s, { last: 5 });
    const seen = watch(room);
    s.server.latest.serverClose(1006);
    await flush();
    expect(room.state).toBe("reconnecting");
    s.server.commitMany(7);
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    expect(s.server.latest.url.searchParams.get("since")).toBe("10");
    s.server.latest.ready();
    await flush();
    expect(seqs(seen.messages)).toEqual([11, 12, 13, 14, 15, 16, 17]);
    expect(seqs(room.messages)).toEqual([6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]);
    expect(seen.states).toEqual(["reconnecting", "live"]);
  });

  it("a truncated ready is filled over REST (pages of 1000 from the cursor) before any of it is shown", async () => {
    const s = setup();
    s.server.commitMany(50);
    const room = await join(s, { last: 50 });
    const seen = watch(room);
    s.server.latest.serverClose(1006);
    s.server.commitMany(2550); // 2550 missed: ready carries the newest 1000
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    s.server.latest.ready();
    expect(seen.messages).toEqual([]); // nothing shown across the hole
    await flush();
    expect(s.server.historyRequests).toEqual([
      { after: 50, limit: 1000 },
      { after: 1050, limit: 550 },
    ]);
    expect(seqs(seen.messages)).toEqual(seqs(s.server.store.slice(50)));
    expect(room.messages).toHaveLength(2600);
    expectContiguous(room.messages);
  });

  it("a message frame after a hole is held, the hole is filled over REST at once, and duplicates are dropped", async () => {
    const s = setup();
    s.server.commitMany(3);
    const room = await join(s);
    const seen = watch(room);
    const [m4, m5, m6] = s.server.commitMany(3) as [Message, Message, Message];
    s.server.latest.deliver({ type: "message", message: m6 }); // 4 and 5 never came
    expect(seqs(room.messages)).toEqual([1, 2, 3]);
    await flush();
    expect(s.server.historyRequests).toEqual([{ after: 3, limit: 2 }]);
    s.server.latest.deliver({ type: "message", message: m4 }); // late duplicates
    s.server.latest.deliver({ type: "message", message: m5 });
    s.server.latest.deliver({ type: "message", message: m6 });
    expect(seqs(seen.messages)).toEqual([4, 5, 6]);
    expect(seqs(room.messages)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("resumes from the last contiguous seq, not the highest seen, while a hole is still unfilled", async () => {
    const s = setup();
    s.server.commitMany(3);
    const room = await join(s);
    const [, , m6] = s.server.commitMany(3) as [Message, Message, Message];
    // REST keeps failing for as long as the test runs, so the hole is still open at the reconnect.
    for (let i = 0; i < 50; i++) s.server.httpOverrides.push(errorResponse(503, "unavailable", "db down"));
    s.server.latest.deliver({ type: "message", message: m6 }); // hole 4..5
    await flush();
    s.server.latest.serverClose(1006);
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    expect(s.server.latest.url.searchParams.get("since")).toBe("3");
    s.server.latest.ready();
    await flush();
    expect(seqs(room.messages)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("loadOlder pages back with after = firstSeq − 1 − limit (clamped at 0) and prepends a contiguous run", async () => {
    const s = setup();
    s.server.commitMany(120);
    const room = await join(s, { last: 50 }); // 71..120
    expect(seqs(await room.loadOlder(30))).toEqual(seqs(s.server.store.slice(40, 70)));
    const [older, oldest] = await Promise.all([room.loadOlder(30), room.loadOlder(30)]); // queued, not overlapping
    expect(seqs(older)).toEqual(seqs(s.server.store.slice(10, 40)));
    expect(seqs(oldest)).toEqual(seqs(s.server.store.slice(0, 10)));
    expect(s.server.historyRequests).toEqual([
      { after: 40, limit: 30 },
      { after: 10, limit: 30 },
      { after: 0, limit: 10 },
    ]);
    expect(room.hasOlder).toBe(false);
    expect(await room.loadOlder()).toEqual([]);
    expect(room.messages).toHaveLength(120);
    expectContiguous(room.messages);
  });
});

describe("send", () => {
  it("resends the outbox in order after a reconnect; each send resolves once, even when its ack arrives twice", async () => {
    const s = setup();
    const room = await join(s);
    const first = s.server.latest;
    const results: string[] = [];
    const send = (text: string) =>
      room.send(text).then((m) => {
        results.push(`${text}@${m.seq}`);
        return m;
      });
    const a = send("a");
    const b = send("b");
    const c = send("c");
    await flush();
    expect(first.sends.map((f) => f.text)).toEqual(["a"]); // one on the wire at a time
    expect(room.pending.map((p) => p.text)).toEqual(["a", "b", "c"]);

    first.commitAndAck(first.sends[0] as never);
    await flush();
    expect(first.sends.map((f) => f.text)).toEqual(["a", "b"]);
    // b is committed, but the connection drops before its ack or message frame leave the server.
    first.commitAndAck(first.sends[1] as never, { ack: false, messageFrame: false });
    first.serverClose(1006);
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    const second = s.server.latest;
    expect(second).not.toBe(first);
    expect(second.url.searchParams.get("since")).toBe("1");
    second.ready(); // carries b (seq 2)
    await flush();
    // b is resent first, with its original clientMsgId; c waits behind it.
    expect(second.sends.map((f) => f.clientMsgId)).toEqual([(first.sends[1] as { clientMsgId: string }).clientMsgId]);
    const bAck = ackOf(s.server.store[1] as Message);
    second.deliver(bAck).deliver(bAck); // the server's dedup answer, delivered twice
    await flush();
    expect(second.sends.map((f) => f.text)).toEqual(["b", "c"]);
    second.commitAndAck(second.sends[1] as never);
    await flush();

    expect(await Promise.all([a, b, c])).toMatchObject([{ seq: 1 }, { seq: 2 }, { seq: 3 }]);
    expect(results).toEqual(["a@1", "b@2", "c@3"]);
    expect(room.messages.map((m) => m.text)).toEqual(["a", "b", "c"]);
    expect(room.pending).toEqual([]);
    expect(s.server.store).toHaveLength(3); // exactly once
  });

  it("an ack that overtakes its message frame resolves with the message once it is in room.messages", async () => {
    const s = setup();
    const room = await join(s);
    let resolved: Message | undefined;
    void room.send("hi").then((m) => (resolved = m));
    await flush();
    const message = s.server.latest.commitAndAck(s.server.latest.sends[0] as never, { messageFrame: false });
    await flush();
    expect(resolved).toBeUndefined();
    s.server.latest.deliver({ type: "message", message });
    await flush();
    expect(resolved).toBe(room.messages[0]);
    expect(s.server.historyRequests).toEqual([]); // no REST call for a frame that was merely late
  });

  it("if the message frame of an acked send never comes, it is fetched over REST after a grace period", async () => {
    const s = setup();
    const room = await join(s);
    const sending = room.send("hi");
    await flush();
    s.server.latest.commitAndAck(s.server.latest.sends[0] as never, { messageFrame: false });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(s.server.historyRequests).toEqual([{ after: 0, limit: 1 }]);
    expect(await sending).toMatchObject({ seq: 1, text: "hi", userId: "alice" });
    expect(seqs(room.messages)).toEqual([1]);
  });

  it("unavailable retries the same send with backoff while later sends wait; a terminal error rejects only its send", async () => {
    const s = setup();
    const room = await join(s);
    const socket = s.server.latest;
    const a = room.send("a");
    const b = room.send("b");
    const c = room.send("c");
    await flush();
    const aFrame = socket.sends[0] as { clientMsgId: string };
    socket.deliver({ type: "error", code: "unavailable", message: "db down", clientMsgId: aFrame.clientMsgId });
    await flush();
    expect(room.pending[0]).toMatchObject({ text: "a", status: "retrying", lastError: { code: "unavailable" } });
    expect(socket.sends).toHaveLength(1); // b did not overtake a
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    expect(socket.sends.map((f) => f.text)).toEqual(["a", "a"]);
    expect((socket.sends[1] as { clientMsgId: string }).clientMsgId).toBe(aFrame.clientMsgId);
    socket.commitAndAck(socket.sends[1] as never);
    await flush();
    const bFrame = socket.sends[2] as { clientMsgId: string; text: string };
    expect(bFrame.text).toBe("b");
    socket.deliver({ type: "error", code: "forbidden", message: "muted", clientMsgId: bFrame.clientMsgId });
    await expect(b).rejects.toMatchObject({ code: "forbidden", clientMsgId: bFrame.clientMsgId });
    await flush();
    socket.commitAndAck(socket.sends[3] as never);
    expect(await a).toMatchObject({ seq: 1, text: "a" });
    expect(await c).toMatchObject({ seq: 2, text: "c" });
  });

  it("rate_limited waits retryAfterMs before resending", async () => {
    const s = setup();
    const room = await join(s);
    void room.send("x");
    await flush();
    const frame = s.server.latest.sends[0] as { clientMsgId: string };
    s.server.latest.deliver({
      type: "error",
      code: "rate_limited",
      message: "slow",
      clientMsgId: frame.clientMsgId,
      retryAfterMs: 4000,
    });
    await vi.advanceTimersByTimeAsync(3999);
    expect(s.server.latest.sends).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(s.server.latest.sends).toHaveLength(2);
  });

  it("refuses text the server would refuse before queueing it (empty, over 4000 characters, frame over 16 KiB)", async () => {
    const s = setup();
    const room = await join(s);
    await expect(room.send("")).rejects.toMatchObject({ code: "bad_request" });
    await expect(room.send("x".repeat(4001))).rejects.toMatchObject({ code: "too_large" });
    await expect(room.send("\u0001".repeat(3000))).rejects.toMatchObject({ code: "too_large" }); // 6 bytes each as JSON
    expect(room.pending).toEqual([]);
    expect(s.server.latest.sends).toEqual([]);
  });

  it("a send with no ack in time drops the socket and resends the same clientMsgId on the next one", async () => {
    const s = setup({ ackTimeoutMs: 5_000 });
    const room = await join(s);
    void room.send("x");
    await flush();
    const first = s.server.latest;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(first.closedByClient).toBeDefined();
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    s.server.latest.ready();
    await flush();
    expect(s.server.latest.sends.map((f) => f.clientMsgId)).toEqual(first.sends.map((f) => f.clientMsgId));
  });
});

describe("joins the server refuses (an error frame, then a close code from the shared table)", () => {
  const refuse = (code: string, message: string, close: number, retryAfterMs?: number) => {
    const socket = s.server.latest.open();
    socket.deliver({ type: "error", code, message, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) } as never);
    socket.serverClose(close, message.slice(0, 120));
  };
  let s: Setup;
  beforeEach(() => {
    s = setup();
  });

  it("4503 (storage down) is retried with growing backoff, and join resolves once the server can serve it", async () => {
    const delays: number[] = [];
    vi.spyOn(Math, "random").mockReturnValue(0.999); // the backoff's ceiling, so growth is visible
    const joining = s.client.join("r1");
    await flush();
    for (let i = 0; i < 4; i++) {
      const before = Date.now();
      refuse("unavailable", "unable to join the room; storage is unavailable, retry later", 4503);
      const count = s.server.sockets.length;
      while (s.server.sockets.length === count) await vi.advanceTimersByTimeAsync(10);
      delays.push(Date.now() - before);
    }
    expect(delays.map((d) => Math.round(d / 10) * 10)).toEqual([500, 1000, 2000, 4000]);
    s.server.latest.ready();
    const room = await joining;
    expect(room.state).toBe("live");
    expect(s.server.sockets).toHaveLength(5);
  });

  it("reports the server's own message once for a refused join (not once for the frame and again for the close)", async () => {
    const room = await join(s);
    const seen = watch(room);
    s.server.latest.serverClose(1006);
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    refuse("unavailable", "unable to join the room; storage is unavailable, retry later", 4503);
    await flush();
    expect(seen.errors.map((e) => [e.code, e.message])).toEqual([
      ["unavailable", "unable to join the room; storage is unavailable, retry later"],
    ]);
    expect(room.state).toBe("reconnecting");
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    s.server.latest.ready();
    await flush();
    expect(room.state).toBe("live");
  });

  it("4400 (resuming from a seq the room does not have) goes offline with one error event and rejects pending sends", async () => {
    s.server.commitMany(5);
    const room = await join(s);
    const seen = watch(room);
    s.server.latest.serverClose(1006);
    const sending = room.send("queued while reconnecting");
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    expect(s.server.latest.url.searchParams.get("since")).toBe("5");
    const message = "unable to resume; since=5 is ahead of the room's latest seq 0";
    refuse("bad_request", message, 4400);
    await expect(sending).rejects.toMatchObject({ code: "bad_request" });
    expect(room.state).toBe("offline");
    expect(seen.states).toEqual(["reconnecting", "offline"]);
    expect(seen.errors.map((e) => [e.code, e.message])).toEqual([["bad_request", message]]);
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS * 3);
    expect(s.server.sockets).toHaveLength(2); // no retry
    await expect(room.send("after")).rejects.toMatchObject({ code: "bad_request" });
  });

  it("a 4400 close without an error frame still goes offline with an error event", async () => {
    const room = await join(s);
    const seen = watch(room);
    s.server.latest.serverClose(4400, "bad cursor");
    await flush();
    expect(room.state).toBe("offline");
    expect(seen.errors.map((e) => e.code)).toEqual(["bad_request"]);
    expect(seen.errors[0]?.message).toContain("4400: bad cursor");
  });

  it("4429 waits at least the frame's retryAfterMs before reconnecting", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0);
    const room = await join(s);
    s.server.latest.serverClose(1006);
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    refuse("rate_limited", "unable to join; too many connections", 4429, 3000);
    await vi.advanceTimersByTimeAsync(2900);
    expect(s.server.sockets).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(200);
    expect(s.server.sockets).toHaveLength(3);
    expect(room.state).toBe("reconnecting");
  });
});

describe("connection", () => {
  it("after close 4401 the next socket uses a new token from tokenProvider", async () => {
    const s = setup();
    const room = await join(s);
    const seen = watch(room);
    const oldToken = s.server.latest.token;
    s.server.latest.serverClose(4401, "token expired");
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    expect(s.tokenCalls()).toBe(2);
    expect(s.server.latest.token).not.toBe(oldToken);
    expect(seen.errors.map((e) => e.code)).toEqual(["unauthorized"]);
  });

  it("a reconnect after the token's refresh point (80% of a short lifetime) asks for a new token first", async () => {
    const s = setup({}, 120); // refresh after 96 s
    await join(s);
    const firstToken = s.server.latest.token;
    await vi.advanceTimersByTimeAsync(90_000);
    s.server.latest.serverClose(1006);
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS); // reconnects within 0.5 s: the connection was stable
    const secondToken = s.server.latest.token;
    expect(secondToken).toBe(firstToken); // still before 96 s
    expect(s.server.sockets).toHaveLength(2);
    s.server.latest.ready();
    await vi.advanceTimersByTimeAsync(10_000);
    s.server.latest.serverClose(1006);
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS); // > 96 s: must be a new token
    expect(s.server.latest.token).not.toBe(firstToken);
  });

  it("sockets that die before ready twice in a row get a fresh token (a browser cannot see a 401 on the upgrade)", async () => {
    const s = setup();
    await join(s);
    const token = s.server.latest.token;
    s.server.latest.serverClose(1006);
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    s.server.latest.serverClose(1006); // refused before ready
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    expect(s.server.latest.token).toBe(token); // once could be anything
    s.server.latest.serverClose(1006); // twice
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    expect(s.server.latest.token).not.toBe(token);
    expect(s.tokenCalls()).toBe(2);
  });

  it("a server that refuses three fresh tokens in a row puts the room offline", async () => {
    const s = setup();
    const room = await join(s);
    const seen = watch(room);
    for (let i = 0; i < 3; i++) {
      s.server.latest.serverClose(4401);
      await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    }
    expect(room.state).toBe("offline");
    expect(s.server.sockets).toHaveLength(3);
    expect(seen.errors.at(-1)).toMatchObject({ code: "unauthorized" });
  });

  it("a socket that stops answering is dropped after a ping goes unanswered, and replaced", async () => {
    const s = setup({ heartbeatMs: 25_000 });
    s.server.answerPings = false;
    const room = await join(s);
    const first = s.server.latest;
    await vi.advanceTimersByTimeAsync(25_000);
    expect(first.sent).toEqual([{ type: "ping" }]);
    await vi.advanceTimersByTimeAsync(25_000);
    expect(first.closedByClient).toMatchObject({ code: 4000 });
    expect(room.state).toBe("reconnecting");
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    expect(s.server.sockets).toHaveLength(2);
  });

  it("a pong keeps the socket; a busy socket is not pinged at all", async () => {
    const s = setup({ heartbeatMs: 25_000 });
    await join(s);
    const socket = s.server.latest;
    await vi.advanceTimersByTimeAsync(25_000); // quiet: a ping, answered by the server
    for (let i = 0; i < 10; i++) {
      await vi.advanceTimersByTimeAsync(10_000);
      socket.deliver({ type: "message", message: s.server.commit(`m${i}`).message });
    }
    expect(socket.sent).toEqual([{ type: "ping" }]);
    expect(socket.closedByClient).toBeUndefined();
  });

  it("reconnects slow down while every new socket is dropped at once, and start fast again after a stable connection", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.99); // jitter at the top of each range, so the ceilings show
    const s = setup({ reconnect: { baseMs: 1_000, maxMs: 60_000 } });
    await join(s);
    const reconnectDelay = async (): Promise<number> => {
      s.server.latest.serverClose(1006);
      const closedAt = Date.now();
      const before = s.server.sockets.length;
      while (s.server.sockets.length === before) await vi.advanceTimersByTimeAsync(10);
      return Date.now() - closedAt;
    };
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      delays.push(await reconnectDelay());
      s.server.latest.ready(); // accepted, then dropped right away on the next round
      await flush();
    }
    expect(delays).toEqual([990, 1980, 3960, 7920, 15840]);
    await vi.advanceTimersByTimeAsync(5_000); // this one stays up
    expect(await reconnectDelay()).toBe(990);
  });

  it("events from a replaced socket are ignored", async () => {
    const s = setup();
    const room = await join(s);
    const first = s.server.latest;
    first.serverClose(1006);
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    s.server.latest.ready();
    await flush();
    first.deliver({ type: "message", message: s.server.commit("ghost").message });
    first.serverClose(1006);
    await flush();
    expect(room.messages).toEqual([]);
    expect(room.state).toBe("live");
  });

  it("an unreadable frame is reported as a protocol error and does not change the list", async () => {
    const s = setup();
    const room = await join(s);
    const seen = watch(room);
    s.server.latest.deliverRaw("{not json");
    s.server.latest.deliverRaw(JSON.stringify({ type: "message", message: { seq: "1" } }));
    expect(seen.errors.map((e) => e.code)).toEqual(["protocol", "protocol"]);
    expect(room.messages).toEqual([]);
  });

  it("leave closes the socket, stops reconnecting, rejects pending sends with `left`, and goes offline", async () => {
    const s = setup();
    const room = await join(s);
    const seen = watch(room);
    const sending = room.send("never acked");
    await flush();
    room.leave();
    await expect(sending).rejects.toMatchObject({ code: "left" });
    expect(s.server.latest.closedByClient).toMatchObject({ code: 1000 });
    expect(seen.states).toEqual(["offline"]);
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS * 3);
    expect(s.server.sockets).toHaveLength(1);
    await expect(room.send("after")).rejects.toBeInstanceOf(ChatClientError);
    await expect(room.loadOlder()).rejects.toMatchObject({ code: "left" });
  });
});

describe("REST", () => {
  it("a 401 drops the token and retries once with a fresh one", async () => {
    const s = setup();
    s.server.commitMany(3);
    s.server.httpOverrides.push(errorResponse(401, "unauthorized", "expired"));
    const page = await s.client.fetchMessages("r1", { after: 0 });
    expect(seqs(page.messages)).toEqual([1, 2, 3]);
    const [first, second] = s.server.httpCalls;
    expect(first?.authorization).toMatch(/^Bearer /);
    expect(second?.authorization).not.toBe(first?.authorization);
    expect(s.tokenCalls()).toBe(2);
  });

  it("maps the error body and Retry-After into a ChatClientError", async () => {
    const s = setup();
    s.server.httpOverrides.push(errorResponse(429, "rate_limited", "slow down", { "retry-after": "2" }));
    await expect(s.client.fetchMessages("r1")).rejects.toMatchObject({
      code: "rate_limited",
      status: 429,
      retryAfterMs: 2000,
      message: "unable to load messages; slow down",
    });
  });
});

describe("events", () => {
  it("a listener that throws does not stop delivery to the others or break the room", async () => {
    const s = setup();
    const room = await join(s);
    const got: number[] = [];
    room.on("message", () => {
      throw new Error("app bug");
    });
    const off = room.on("message", (m) => got.push(m.seq));
    s.server.latest.deliver({ type: "message", message: s.server.commit("one").message });
    off();
    s.server.latest.deliver({ type: "message", message: s.server.commit("two").message });
    expect(got).toEqual([1]);
    expect(seqs(room.messages)).toEqual([1, 2]);
    // The app's error is rethrown on its own task, where the platform reports it.
    expect(() => vi.runOnlyPendingTimers()).toThrow("app bug");
  });
});

describe("entries of other kinds, and servers of other protocol versions", () => {
  /** Long past the ack grace period and any fill backoff: a fill that was going to be asked for has been. */
  const settleLong = () => vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);

  it("the socket URL says which protocol version the SDK speaks (v=2)", async () => {
    const s = setup();
    await join(s);
    expect(PROTOCOL_VERSION).toBe(2);
    expect(s.server.latest.url.searchParams.get("v")).toBe("2");
  });

  it("an entry of a kind this SDK does not know advances the cursor with no gap and no REST fill; it stays out of room.messages and comes as an `entry` event", async () => {
    const s = setup();
    s.server.commitMany(2);
    s.server.commitEntry("poll", "poll: lunch?"); // seq 3, in the ready
    const room = await join(s);
    expect(seqs(room.messages)).toEqual([1, 2]);
    const seen = watch(room);
    const entries: AnyEntry[] = [];
    room.on("entry", (entry) => entries.push(entry));
    const socket = s.server.latest;
    socket.deliver({ type: "message", message: s.server.commit("a").message }); // 4
    socket.deliver({ type: "message", message: s.server.commitEntry("vote") }); // 5
    socket.deliver({ type: "message", message: s.server.commitEntry("vote") }); // 6
    socket.deliver({ type: "message", message: s.server.commit("b").message }); // 7
    await settleLong();
    expect(s.server.historyRequests).toEqual([]);
    expect(seqs(room.messages)).toEqual([1, 2, 4, 7]);
    expect(room.messages.every((m) => m.kind === "message")).toBe(true);
    expect(seqs(seen.messages)).toEqual([4, 7]);
    expect(entries.map((e) => [e.seq, e.kind])).toEqual([
      [4, "message"],
      [5, "vote"],
      [6, "vote"],
      [7, "message"],
    ]);
    expect(seen.errors).toEqual([]);
    // A send acked right after entries of other kinds resolves as usual.
    const sending = room.send("c");
    await flush();
    socket.deliver({ type: "message", message: s.server.commitEntry("poll") }); // 8
    socket.commitAndAck(socket.sends[0] as never); // 9
    expect(await sending).toMatchObject({ seq: 9, text: "c", kind: "message" });
    expect(seqs(room.messages)).toEqual([1, 2, 4, 7, 9]);
    expect(s.server.historyRequests).toEqual([]);
  });

  it("a reconnect resumes with since = the last seq of any kind: entries of unknown kinds count", async () => {
    const s = setup();
    s.server.commitMany(3);
    const room = await join(s);
    const seen = watch(room);
    s.server.latest.deliver({ type: "message", message: s.server.commitEntry("poll") }); // 4
    s.server.latest.deliver({ type: "message", message: s.server.commitEntry("poll") }); // 5
    s.server.latest.serverClose(1006);
    s.server.commit("while away"); // 6
    await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
    expect(s.server.latest.url.searchParams.get("since")).toBe("5");
    s.server.latest.ready();
    await settleLong();
    expect(seqs(seen.messages)).toEqual([6]);
    expect(seqs(room.messages)).toEqual([1, 2, 3, 6]);
    expect(s.server.historyRequests).toEqual([]);
  });

  it("a hole filled over REST may hold entries of unknown kinds: they close the hole too, and only the messages are shown", async () => {
    const s = setup();
    s.server.commitMany(2);
    const room = await join(s);
    const seen = watch(room);
    s.server.commitEntry("poll"); // 3, never delivered live
    s.server.commit("lost"); // 4, never delivered live
    s.server.latest.deliver({ type: "message", message: s.server.commitEntry("poll") }); // 5: beyond a hole
    s.server.latest.deliver({ type: "message", message: s.server.commit("after").message }); // 6
    await settleLong();
    expect(s.server.historyRequests).toEqual([{ after: 2, limit: 2 }]);
    expect(seqs(seen.messages)).toEqual([4, 6]);
    expect(seqs(room.messages)).toEqual([1, 2, 4, 6]);
  });

  it("a frame of a type this SDK does not know is ignored without an error event; malformed known frames are still reported", async () => {
    const s = setup();
    const room = await join(s);
    const seen = watch(room);
    s.server.latest.deliver({ type: "from-the-future", users: ["bob"] });
    s.server.latest.deliver({ type: "also-from-the-future", userId: "bob" });
    s.server.latest.deliver({ type: "message", message: s.server.commit("still live").message });
    expect(seen.errors).toEqual([]);
    expect(seqs(room.messages)).toEqual([1]);
    expect(room.state).toBe("live");
    s.server.latest.deliverRaw(JSON.stringify({ type: "message", message: { seq: 2 } }));
    s.server.latest.deliverRaw(JSON.stringify({ type: "ready" }));
    s.server.latest.deliverRaw(JSON.stringify({ type: 42 }));
    expect(seen.errors.map((e) => e.code)).toEqual(["protocol", "protocol", "protocol"]);
  });

  it("a version-1 server's entries, without `kind`, are messages: in ready, in live frames, in REST fills and in acks", async () => {
    const s = setup();
    s.server.protocol = 1;
    s.server.commitMany(3);
    // The fake really speaks version 1: no kind on entries, no protocol in ready.
    expect(s.server.shape({ type: "message", message: s.server.store[0] as Message })).not.toHaveProperty("message.kind");
    expect(s.server.shape(s.server.readyFor(new URL("ws://x/?last=5")))).not.toHaveProperty("protocol");
    const room = await join(s);
    const seen = watch(room);
    expect(seqs(room.messages)).toEqual([1, 2, 3]);
    s.server.commit("lost"); // 4, never delivered live
    s.server.latest.deliver({ type: "message", message: s.server.commit("after a hole").message }); // 5
    await settleLong();
    expect(s.server.historyRequests).toEqual([{ after: 3, limit: 1 }]);
    const sending = room.send("mine");
    await flush();
    s.server.latest.commitAndAck(s.server.latest.sends[0] as never);
    expect(await sending).toMatchObject({ seq: 6, kind: "message", text: "mine" });
    expect(seqs(room.messages)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(seqs(seen.messages)).toEqual([4, 5, 6]);
    expect(room.messages.every((m) => m.kind === "message")).toBe(true);
    expect(seen.errors).toEqual([]);
  });
});

describe("flow control", () => {
  it("a client reading a long burst says `received` every 64 frames (here all of them entries), with the seq of the last one it processed", async () => {
    const s = setup();
    const room = await join(s);
    for (let i = 0; i < 200; i++) s.server.latest.deliver({ type: "message", message: s.server.commit(`burst ${i}`).message });
    expect(s.server.latest.sentOfType("received")).toEqual([
      { type: "received", seq: 64 },
      { type: "received", seq: 128 },
      { type: "received", seq: 192 },
    ]);
    expect(room.messages).toHaveLength(200);
  });
});
