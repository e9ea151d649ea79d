// Sender on its own, against a recording wire and a Map as the list (no socket, no Room).

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ClientFrame, SendFrame } from "../protocol/frames.js";
import type { AnyEntry } from "./decode.js";
import type { PendingSend } from "./outbox.js";
import { Sender, type SenderList, type SenderWire } from "./sender.js";
import { ackOf } from "./testing/fake-server.js";
import { msg } from "./testing/messages.js";

const flush = () => vi.advanceTimersByTimeAsync(0);

const setup = () => {
  const written: ClientFrame[] = [];
  const dropped: string[] = [];
  const wire: SenderWire & { ready: boolean } = {
    ready: true,
    write: (frame) => {
      written.push(frame);
      return true;
    },
    drop: (reason) => dropped.push(reason),
  };
  const entries = new Map<number, AnyEntry>();
  const noted: number[] = [];
  const list: SenderList = {
    get: (seq) => entries.get(seq),
    get firstSeq() {
      return Math.min(1, ...entries.keys());
    },
    noteLatest: (seq) => noted.push(seq),
  };
  const pendings: (readonly PendingSend[])[] = [];
  let changes = 0;
  const sender = new Sender(
    { roomId: "r1", reconnect: { baseMs: 100, maxMs: 1000 }, random: () => 0.5, ackTimeoutMs: 5_000, userId: () => "alice" },
    wire,
    list,
    { pendingChanged: (p) => pendings.push(p), changed: () => changes++, report: () => undefined },
  );
  const sends = () => written.filter((f): f is SendFrame => f.type === "send");
  return { sender, wire, entries, noted, pendings, sends, dropped, changes: () => changes };
};

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("Sender", () => {
  it("puts one send on the wire at a time, the next after the ack; nothing while the wire is not ready", async () => {
    const s = setup();
    s.wire.ready = false;
    const a = s.sender.send("a");
    const b = s.sender.send("b");
    expect(s.sends()).toEqual([]);
    s.wire.ready = true;
    s.sender.pump();
    expect(s.sends().map((f) => f.text)).toEqual(["a"]);
    const first = s.sends()[0] as SendFrame;
    s.entries.set(1, { ...msg(1), clientMsgId: first.clientMsgId, text: "a" });
    s.sender.onAck(ackOf(s.entries.get(1) as never));
    expect(s.noted).toEqual([1]);
    expect(s.changes()).toBe(1);
    expect(s.sends().map((f) => f.text)).toEqual(["a", "b"]);
    expect(await a).toBe(s.entries.get(1)); // the list's own object
    expect(s.sender.pending.map((p) => p.text)).toEqual(["b"]);
    s.sender.close("left", "room r1 was left");
    await expect(b).rejects.toMatchObject({ code: "left" });
  });

  it("a send's mentions go on the wire (and again on a resend); mentions the server would refuse reject without a frame", async () => {
    const s = setup();
    void s.sender.send("lunch?", { mentions: ["bob", "carol"] });
    expect(s.sends().map((f) => f.mentions)).toEqual([["bob", "carol"]]);
    await expect(s.sender.send("x", { mentions: ["bob", "bob"] })).rejects.toMatchObject({ code: "bad_request" });
    expect(s.sends()).toHaveLength(1);
    expect(s.sender.pending[0]?.action).toMatchObject({ type: "send", mentions: ["bob", "carol"] });
  });

  it("an ack whose message is not in the list yet resolves when settleCommitted finds it there", async () => {
    const s = setup();
    s.entries.set(1, msg(1));
    let resolved: unknown;
    void s.sender.send("x").then((m) => (resolved = m));
    const frame = s.sends()[0] as SendFrame;
    const message = { ...msg(2), clientMsgId: frame.clientMsgId, text: "x" };
    s.sender.onAck(ackOf(message));
    s.sender.settleCommitted();
    await flush();
    expect(resolved).toBeUndefined();
    s.entries.set(2, message);
    s.sender.settleCommitted();
    await flush();
    expect(resolved).toBe(message);
  });

  it("an acked send still waiting for its message when sending ends resolves from the ack, not rejects", async () => {
    const s = setup();
    const sending = s.sender.send("x");
    const frame = s.sends()[0] as SendFrame;
    s.sender.onAck({ type: "ack", clientMsgId: frame.clientMsgId, seq: 7, id: "id-7", createdAt: "2026-01-01T00:00:00.007Z" });
    s.sender.close("left", "room r1 was left");
    expect(await sending).toEqual({
      roomId: "r1",
      seq: 7,
      id: "id-7",
      kind: "message",
      userId: "alice",
      text: "x",
      clientMsgId: frame.clientMsgId,
      createdAt: "2026-01-01T00:00:00.007Z",
    });
  });

  it("a send refused as unauthorized is not put back on the socket that refused it; it goes out on the next pump", () => {
    const s = setup();
    void s.sender.send("x");
    const frame = s.sends()[0] as SendFrame;
    const owned = s.sender.onError({ type: "error", code: "unauthorized", message: "expired", clientMsgId: frame.clientMsgId });
    expect(owned).toBe(true);
    expect(s.sends()).toHaveLength(1);
    s.sender.connectionLost();
    s.sender.pump(); // the next socket's ready
    expect(s.sends().map((f) => f.clientMsgId)).toEqual([frame.clientMsgId, frame.clientMsgId]);
    expect(s.sender.onError({ type: "error", code: "internal", message: "?", clientMsgId: "someone-else" })).toBe(false);
  });

  it("no ack within ackTimeoutMs drops the socket through the wire", async () => {
    const s = setup();
    void s.sender.send("x");
    await vi.advanceTimersByTimeAsync(4_999);
    expect(s.dropped).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(s.dropped).toEqual(["no ack in time"]);
  });
});
