// Connection on its own: the FakeServer's sockets on one side, recording handlers on the other
// (no Room, no Sender, no History), with fake timers.

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { closeCodeOf, ErrorCode } from "../protocol/errors.js";
import { Connection, type ConnectionHandlers } from "./connection.js";
import { FakeServer } from "./testing/fake-server.js";

const flush = () => vi.advanceTimersByTimeAsync(0);

const setup = (options: { ownedSends?: string[] } = {}) => {
  const server = new FakeServer("r1");
  const calls: string[] = [];
  const processed = { seq: 0 };
  const invalidated: string[] = [];
  let tokens = 0;
  const owned = new Set(options.ownedSends ?? []);
  const handlers: ConnectionHandlers = {
    history: () => ({ last: 50 }),
    processedSeq: () => processed.seq,
    onReady: (frame) => calls.push(`ready ${frame.latestSeq}`),
    onFrame: (frame) => calls.push(`frame ${frame.type}`),
    onSendError: (frame) => {
      calls.push(`send error ${frame.code} ${frame.clientMsgId}`);
      return owned.has(frame.clientMsgId);
    },
    onLost: () => calls.push("lost"),
    onRetrying: () => calls.push("retrying"),
    onFatal: (code, _reason, emitError) => calls.push(`fatal ${code}${emitError ? "" : " (already reported)"}`),
    report: (error) => calls.push(`report ${(error as { code: string }).code}`),
  };
  const connection = new Connection(
    {
      roomId: "r1",
      baseUrl: "http://chat.test",
      WebSocket: server.WebSocket,
      tokens: { get: async () => `token-${++tokens}`, invalidate: (token) => invalidated.push(token) },
      reconnect: { baseMs: 100, maxMs: 1000 },
      random: () => 0.5,
      heartbeatMs: 25_000,
      readyTimeoutMs: 15_000,
    },
    handlers,
  );
  return { server, connection, calls, invalidated, processed };
};

/** Starts the connection and lets the fake server answer with its ready; clears the calls so far. */
const live = async (s: ReturnType<typeof setup>) => {
  s.connection.start();
  await flush();
  s.server.latest.ready();
  s.calls.length = 0;
};

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("Connection", () => {
  it("every close code of the shared table is acted on by its error code: bad_request, forbidden, not_found, banned end the room; unauthorized drops the token; the rest reconnect", async () => {
    for (const code of Object.values(ErrorCode)) {
      const s = setup();
      await live(s);
      s.server.latest.serverClose(closeCodeOf[code], "why");
      const expected =
        code === ErrorCode.BadRequest || code === ErrorCode.Forbidden || code === ErrorCode.NotFound || code === ErrorCode.Banned
          ? ["lost", `fatal ${code}`]
          : ["lost", `report ${code}`, "retrying"];
      expect(s.calls, code).toEqual(expected);
      expect(s.invalidated, code).toEqual(code === ErrorCode.Unauthorized ? ["token-1"] : []);
      s.connection.close();
    }
  });

  it("an error frame right before a close with its code explains the close: reported once, by the frame", async () => {
    const s = setup();
    await live(s);
    s.server.latest.deliver({ type: "error", code: "unavailable", message: "storage down" });
    s.server.latest.serverClose(closeCodeOf.unavailable, "storage down");
    expect(s.calls).toEqual(["report unavailable", "lost", "retrying"]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(s.server.sockets).toHaveLength(2);
  });

  it("an unknown frame type reaches no handler and reports nothing, even between an error frame and its close", async () => {
    const s = setup();
    await live(s);
    s.server.latest.deliver({ type: "from-the-future", users: [] });
    expect(s.calls).toEqual([]);
    s.server.latest.deliver({ type: "error", code: "forbidden", message: "removed" });
    s.server.latest.deliver({ type: "also-from-the-future" });
    s.server.latest.serverClose(closeCodeOf.forbidden);
    expect(s.calls).toEqual(["report forbidden", "lost", "fatal forbidden (already reported)"]);
  });

  it("routes frames: entries and acks to onFrame, a send's error to onSendError (or, if no send owns it, handled as about the socket)", async () => {
    const s = setup({ ownedSends: ["mine"] });
    await live(s);
    s.server.latest.deliver({ type: "message", message: s.server.commit("hi").message });
    s.server.latest.deliver({ type: "ack", clientMsgId: "mine", seq: 1, id: "id-1", createdAt: "t" });
    s.server.latest.deliver({ type: "pong" });
    s.server.latest.deliver({ type: "error", code: "unavailable", message: "retry", clientMsgId: "mine" });
    s.server.latest.deliver({ type: "error", code: "internal", message: "whose?", clientMsgId: "not-mine" });
    expect(s.calls).toEqual([
      "frame message",
      "frame ack",
      "send error unavailable mine",
      "send error internal not-mine",
      "report internal",
    ]);
  });

  it("a send refused as unauthorized replaces the socket with a new token", async () => {
    const s = setup({ ownedSends: ["mine"] });
    await live(s);
    s.server.latest.deliver({ type: "error", code: "unauthorized", message: "expired", clientMsgId: "mine" });
    expect(s.calls).toEqual(["send error unauthorized mine", "lost", "report unauthorized", "retrying"]);
    expect(s.server.latest.closedByClient).toBeDefined();
    await vi.advanceTimersByTimeAsync(1000);
    expect(s.server.latest.token).toBe("token-2");
  });

  it("is ready to write only while the socket is open and has had its ready; the URL carries the handlers' cursor and v", async () => {
    const s = setup();
    s.connection.start();
    await flush();
    expect(s.server.latest.url.searchParams.get("last")).toBe("50");
    expect(s.server.latest.url.searchParams.get("v")).toBe("2");
    s.server.latest.open();
    expect(s.connection.ready).toBe(false);
    s.server.latest.ready();
    expect(s.connection.ready).toBe(true);
    expect(s.connection.write({ type: "ping" })).toBe(true);
    expect(s.server.latest.sent).toEqual([{ type: "ping" }]);
    s.connection.close();
    expect(s.connection.ready).toBe(false);
    expect(s.connection.write({ type: "ping" })).toBe(false);
    expect(s.server.latest.closedByClient).toMatchObject({ code: 1000 });
  });

  it("flow control: says `received` with the room's processed seq after every 64 frames of any kind after ready (ready itself not counted), counting again from 0 on a new socket", async () => {
    const s = setup();
    await live(s);
    const received = () => s.server.sockets.map((socket) => socket.sentOfType("received").map((f) => f.seq));
    for (let i = 1; i <= 63; i++) {
      s.processed.seq = i;
      s.server.latest.deliver({ type: "message", message: s.server.commit(`m${i}`).message });
    }
    expect(received()).toEqual([[]]);
    s.processed.seq = 64;
    s.server.latest.deliver({ type: "message", message: s.server.commit("m64").message });
    expect(received()).toEqual([[64]]);
    // Typing, presence, receipts and acks count too: the server counts every frame it sends.
    for (let i = 0; i < 64; i++) s.server.latest.deliver({ type: "typing", userIds: i % 2 ? ["bob"] : [] });
    expect(received()).toEqual([[64, 64]]);
    for (let i = 0; i < 30; i++) s.server.latest.deliver({ type: "presence", userId: "bob", online: true });
    s.server.latest.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1000);
    s.server.latest.ready();
    for (let i = 0; i < 63; i++) s.server.latest.deliver({ type: "receipt", userId: "bob", seq: 1 });
    expect(received()).toEqual([[64, 64], []]);
    s.server.latest.deliver({ type: "pong" });
    expect(received()).toEqual([[64, 64], [64]]);
  });
});
