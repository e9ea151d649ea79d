// History on its own, against a fake REST source over an in-memory store (no socket, no Room).

import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { AnyEntry } from "./decode.js";
import { ACK_GRACE_MS, History, type HistorySource } from "./history.js";
import type { HistoryCursor } from "./transport.js";
import { msg, range, ready, seqs, unknownEntry } from "./testing/messages.js";

const setup = (history: HistoryCursor, store: AnyEntry[]) => {
  const requests: { after: number; limit: number }[] = [];
  const failures: unknown[] = [];
  const source: HistorySource = {
    listEntries: async (_roomId, page) => {
      requests.push(page);
      const failure = failures.shift();
      if (failure) throw failure;
      return { entries: store.filter((e) => e.seq > page.after).slice(0, page.limit), latestSeq: store.length };
    },
  };
  const shown: AnyEntry[] = [];
  const reports: unknown[] = [];
  let changes = 0;
  const list = new History(
    { roomId: "r1", history, rest: source, reconnect: { baseMs: 100, maxMs: 1000 }, random: () => 0.5 },
    { onEntries: (e) => shown.push(...e), onChanged: () => changes++, report: (e) => reports.push(e) },
  );
  return { list, requests, failures, shown, reports, changes: () => changes };
};

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("History", () => {
  it("a truncated ready of a since= list is filled at once; everything is shown once, in order, and the list settles", async () => {
    const store = range(1, 1500);
    const s = setup({ since: 0 }, store);
    s.list.applyReady(ready(store.slice(-1000), 1500, true));
    expect(s.shown).toEqual([]);
    expect(s.list.settle()).toBe(false);
    await vi.advanceTimersByTimeAsync(0);
    expect(s.requests).toEqual([{ after: 0, limit: 500 }]);
    expect(seqs(s.shown)).toEqual(seqs(store));
    expect(s.changes()).toBe(1);
    expect(s.list.settle()).toBe(true);
    expect(s.list.nextCursor()).toEqual({ since: 1500 });
  });

  it("a hole known only from an ack waits ACK_GRACE_MS for its frame before asking REST", async () => {
    const s = setup({ last: 50 }, range(1, 3));
    s.list.applyReady(ready(range(1, 2), 2));
    s.list.noteLatest(3);
    expect(s.list.settle()).toBe(false);
    await vi.advanceTimersByTimeAsync(ACK_GRACE_MS - 1);
    expect(s.requests).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(s.requests).toEqual([{ after: 2, limit: 1 }]);
    expect(seqs(s.list.messages)).toEqual([1, 2, 3]);
  });

  it("entries of unknown kinds need no fetch, and loadOlder returns only the messages of the seqs it pages back over", async () => {
    const store: AnyEntry[] = [msg(1), unknownEntry(2), msg(3), unknownEntry(4), msg(5)];
    const s = setup({ last: 2 }, store);
    s.list.applyReady(ready(store.slice(-2), 5));
    s.list.applyLive(unknownEntry(6));
    expect(s.list.settle()).toBe(true);
    expect(seqs(s.shown)).toEqual([4, 5, 6]);
    expect(seqs(await s.list.loadOlder(3))).toEqual([1, 3]);
    expect(s.requests).toEqual([{ after: 0, limit: 3 }]);
    expect(seqs(s.list.messages)).toEqual([1, 3, 5]);
    expect(s.list.hasOlder).toBe(false);
  });

  it("a failing fill is retried with backoff, and close() ends the loop at once; loadOlder then rejects", async () => {
    const store = range(1, 5);
    const s = setup({ since: 0 }, store);
    s.failures.push(new Error("db down"), new Error("db down"));
    s.list.applyReady(ready([msg(5)], 5, true));
    s.list.settle();
    await vi.advanceTimersByTimeAsync(0);
    expect(s.requests).toHaveLength(1);
    expect(s.reports).toHaveLength(1);
    s.list.close("left", "room r1 was left");
    await vi.advanceTimersByTimeAsync(10_000);
    expect(s.requests).toHaveLength(1);
    expect(s.shown).toEqual([]);
    await expect(s.list.loadOlder()).rejects.toMatchObject({ code: "left" });
  });
});
