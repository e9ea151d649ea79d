import { describe, expect, it } from "vitest";
import type { Message } from "../protocol/frames.js";
import { buildReady, newestWithin, readyQuery } from "./handshake.js";
import { RecentWindow, sizeOf } from "./window.js";

const NO_EXTRAS = { readSeq: 0, unread: 0, presence: [] };

const msg = (seq: number, text = "x"): Message => ({
  roomId: "r",
  seq,
  kind: "message",
  id: `id${seq}`,
  userId: "u",
  text,
  clientMsgId: `c${seq}`,
  createdAt: "2026-11-28T10:00:00.000Z",
});
const msgs = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => msg(from + i));

describe("RecentWindow", () => {
  it("answers a range only when it holds all of it", () => {
    const w = new RecentWindow(5, 1e9);
    w.append(msgs(1, 8));
    expect(w.firstSeq(8)).toBe(4);
    expect(w.range(3, 8, 8)?.map((m) => m.seq)).toEqual([4, 5, 6, 7, 8]);
    expect(w.range(2, 8, 8)).toBeUndefined();
    expect(w.range(5, 6, 8)?.map((m) => m.seq)).toEqual([6]);
    expect(w.range(8, 8, 8)).toEqual([]);
    expect(w.range(7, 9, 8)).toBeUndefined();
  });

  it("an empty window covers an empty room and nothing else", () => {
    const w = new RecentWindow(5, 1e9);
    expect(w.range(0, 0, 0)).toEqual([]);
    expect(w.range(0, 3, 3)).toBeUndefined();
  });

  it("restarts instead of holding a gap, and trims by bytes", () => {
    const w = new RecentWindow(100, sizeOf(msg(1)) * 3);
    w.append(msgs(1, 3));
    w.append([msg(5)]);
    expect(w.range(4, 5, 5)?.map((m) => m.seq)).toEqual([5]);
    expect(w.range(2, 5, 5)).toBeUndefined();
    w.append(msgs(6, 10));
    expect(w.size).toBe(3);
  });

  it("finds a committed (user, clientMsgId) while it is in the window, and forgets it once trimmed", () => {
    const w = new RecentWindow(5, 1e9);
    w.append(msgs(1, 3));
    expect(w.find("u", "c2")?.seq).toBe(2);
    expect(w.find("v", "c2")).toBeUndefined();
    w.append(msgs(4, 7));
    expect(w.find("u", "c2")).toBeUndefined();
    expect(w.find("u", "c3")?.seq).toBe(3);
    w.reset([]);
    expect(w.find("u", "c7")).toBeUndefined();
  });
});

describe("handshake plan", () => {
  it("since=N asks for (N, W] newest-first capped at 1,000; last=N for the newest N", () => {
    expect(readyQuery({ kind: "since", since: 3 }, 10)).toEqual({ afterSeq: 3, uptoSeq: 10, limit: 1000, from: "newest" });
    expect(readyQuery({ kind: "last", last: 4 }, 10)).toEqual({ afterSeq: 6, uptoSeq: 10, limit: 4, from: "newest" });
    expect(readyQuery({ kind: "last", last: 50 }, 10)).toEqual({ afterSeq: 0, uptoSeq: 10, limit: 50, from: "newest" });
  });

  it("truncated is true exactly when history owed before the first sent message is missing", () => {
    const q = readyQuery({ kind: "since", since: 0 }, 1500);
    const ready = buildReady("r", q, msgs(1, 1500), NO_EXTRAS);
    expect(ready.messages.map((m) => m.seq)).toEqual(Array.from({ length: 1000 }, (_, i) => 501 + i));
    expect(ready.truncated).toBe(true);
    expect(ready.latestSeq).toBe(1500);
    expect(buildReady("r", readyQuery({ kind: "since", since: 500 }, 1500), msgs(501, 1500), NO_EXTRAS).truncated).toBe(false);
    expect(buildReady("r", readyQuery({ kind: "since", since: 7 }, 7), [], NO_EXTRAS).truncated).toBe(false);
    expect(buildReady("r", readyQuery({ kind: "last", last: 3 }, 7), msgs(5, 7), NO_EXTRAS).truncated).toBe(false);
  });

  it("the byte cap keeps the newest messages and marks the frame truncated", () => {
    const big = msgs(1, 10).map((m) => ({ ...m, text: "y".repeat(300_000) }));
    const kept = newestWithin(big, 1024 * 1024);
    expect(kept.map((m) => m.seq)).toEqual([8, 9, 10]);
    const ready = buildReady("r", readyQuery({ kind: "last", last: 10 }, 10), big, NO_EXTRAS);
    expect(ready.messages.map((m) => m.seq)).toEqual([8, 9, 10]);
    expect(ready.truncated).toBe(true);
  });
});
