import { describe, expect, it } from "vitest";
import type { Message } from "../protocol/frames.js";
import type { AnyEntry } from "./decode.js";
import { msg, range, ready, seededRandom, seqs, unknownEntry } from "./testing/messages.js";
import { Timeline } from "./timeline.js";

/** The invariant the app relies on: ascending by one, no duplicates. */
const expectContiguous = (messages: readonly Message[]) => {
  const bad = messages.findIndex((m, i) => i > 0 && m.seq !== (messages[i - 1] as Message).seq + 1);
  expect(bad, `list breaks at index ${bad}: ${seqs(messages.slice(Math.max(0, bad - 1), bad + 1))}`).toBe(-1);
};

describe("Timeline", () => {
  it("a last= join starts the list at the first message of ready, and resumes from its latestSeq", () => {
    const timeline = new Timeline();
    expect(timeline.cursor).toBeUndefined();
    expect(seqs(timeline.applyReady(ready(range(451, 500), 500)))).toEqual(range(451, 500).map((m) => m.seq));
    expect(timeline.cursor).toBe(500);
    expect(timeline.firstSeq).toBe(451);
    expect(timeline.gap()).toBeUndefined();
  });

  it("an empty room gives an empty list resuming from 0; a since= join with nothing new resumes from since", () => {
    const empty = new Timeline();
    empty.applyReady(ready([], 0));
    expect(empty.cursor).toBe(0);
    expect(empty.firstSeq).toBe(1);
    const upToDate = new Timeline(42);
    upToDate.applyReady(ready([], 42));
    expect(upToDate.cursor).toBe(42);
    expect(upToDate.messages).toEqual([]);
  });

  it("duplicates (seq <= last) are dropped and the list is unchanged (same array)", () => {
    const timeline = new Timeline();
    timeline.applyReady(ready(range(1, 3), 3));
    const before = timeline.messages;
    expect(timeline.applyMessage(msg(2))).toEqual([]);
    expect(timeline.applyMessage(msg(3))).toEqual([]);
    expect(timeline.messages).toBe(before);
    expect(seqs(timeline.applyMessage(msg(4)))).toEqual([4]);
    expect(timeline.messages).not.toBe(before);
  });

  it("a message beyond a hole is held back, the hole is requested, and filling it releases both in order", () => {
    const timeline = new Timeline();
    timeline.applyReady(ready(range(1, 3), 3));
    expect(timeline.applyMessage(msg(7))).toEqual([]);
    expect(seqs(timeline.messages)).toEqual([1, 2, 3]);
    expect(timeline.gap()).toEqual({ after: 3, limit: 3 }); // 4, 5, 6: stops before the held 7
    expect(seqs(timeline.applyPage(range(4, 6), 7))).toEqual([4, 5, 6, 7]);
    expect(timeline.gap()).toBeUndefined();
  });

  it("a truncated ready on resume holds its messages until the hole after the cursor is filled, in pages of up to 1000", () => {
    const timeline = new Timeline(100);
    // 2500 missed; ready holds the newest 1000 (1601..2600).
    expect(timeline.applyReady(ready(range(1601, 2600), 2600, true))).toEqual([]);
    expect(timeline.messages).toEqual([]);
    expect(timeline.gap()).toEqual({ after: 100, limit: 1000 });
    expect(timeline.applyPage(range(101, 1100), 2600)).toHaveLength(1000);
    expect(timeline.gap()).toEqual({ after: 1100, limit: 500 });
    const rest = timeline.applyPage(range(1101, 1600), 2600);
    expect(rest).toHaveLength(1500); // 1101..1600 plus the held 1601..2600
    expect(timeline.cursor).toBe(2600);
    expectContiguous(timeline.messages);
    expect(timeline.messages).toHaveLength(2500);
  });

  it("an ack for a seq past the list (its message frame not seen yet) makes that seq a hole to fill", () => {
    const timeline = new Timeline();
    timeline.applyReady(ready(range(1, 2), 2));
    timeline.noteLatest(5);
    expect(timeline.gap()).toEqual({ after: 2, limit: 3 });
    timeline.noteLatest(4); // never moves back
    expect(timeline.knownLatest).toBe(5);
  });

  it("frames that arrive before the first ready of a last= join are kept only if they continue its list", () => {
    const timeline = new Timeline();
    timeline.applyMessage(msg(11)); // continues the ready below
    timeline.applyMessage(msg(5)); // older than the list's start: dropped
    expect(timeline.messages).toEqual([]);
    expect(seqs(timeline.applyReady(ready(range(9, 10), 10)))).toEqual([9, 10, 11]);
    expect(timeline.gap()).toBeUndefined();
  });

  it("older pages are prepended only as the contiguous run ending right before the first message", () => {
    const timeline = new Timeline();
    timeline.applyReady(ready(range(51, 60), 60));
    expect(seqs(timeline.prependOlder([msg(47), msg(49), msg(50), msg(55)]))).toEqual([49, 50]);
    expect(seqs(timeline.messages)).toEqual([49, 50, ...range(51, 60).map((m) => m.seq)]);
    expect(timeline.prependOlder([msg(30)])).toEqual([]);
    expect(timeline.get(49)?.seq).toBe(49);
    expect(timeline.get(60)?.seq).toBe(60);
    expect(timeline.get(61)).toBeUndefined();
  });

  it("an entry of an unknown kind takes its seq: the cursor moves past it with no gap, and `messages` (the same array) leaves it out", () => {
    const timeline = new Timeline();
    timeline.applyReady(ready([msg(1), unknownEntry(2)], 2));
    expect(timeline.cursor).toBe(2);
    expect(seqs(timeline.messages)).toEqual([1]);
    const before = timeline.messages;
    expect(seqs(timeline.applyMessage(unknownEntry(3)))).toEqual([3]);
    expect(timeline.messages).toBe(before); // no message changed: the app's list is untouched
    expect(timeline.cursor).toBe(3);
    expect(timeline.gap()).toBeUndefined();
    expect(seqs(timeline.applyMessage(msg(4)))).toEqual([4]);
    expect(seqs(timeline.messages)).toEqual([1, 4]);
    expect(seqs(timeline.entries)).toEqual([1, 2, 3, 4]);
    expect(timeline.get(3)?.kind).toBe("poll");
  });

  it("a hole of unknown-kind entries is filled like any other, and older pages may start with one", () => {
    const timeline = new Timeline(10);
    expect(timeline.applyMessage(msg(13))).toEqual([]);
    expect(timeline.gap()).toEqual({ after: 10, limit: 2 });
    expect(seqs(timeline.applyPage([unknownEntry(11), unknownEntry(12)], 13))).toEqual([11, 12, 13]);
    expect(seqs(timeline.messages)).toEqual([13]);
    const older = new Timeline();
    older.applyReady(ready(range(5, 6), 6));
    expect(seqs(older.prependOlder([msg(2), unknownEntry(3), unknownEntry(4)]))).toEqual([2, 3, 4]);
    expect(seqs(older.messages)).toEqual([2, 5, 6]);
    expect(older.firstSeq).toBe(2);
  });

  it("no ordering or duplication of frames and pages ever produces a non-contiguous list (randomized, seeded)", () => {
    for (let seed = 1; seed <= 200; seed++) {
      const random = seededRandom(seed);
      const total = 30 + Math.floor(random() * 50);
      const readyUpTo = Math.floor(random() * 10);
      const timeline = new Timeline();
      timeline.applyReady(ready(range(1, readyUpTo), readyUpTo));
      // Live frames for the rest, shuffled, with ~30% duplicated, and some lost entirely.
      const frames = range(readyUpTo + 1, total).flatMap((m) => (random() < 0.3 ? [m, m] : random() < 0.1 ? [] : [m]));
      for (let i = frames.length - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [frames[i], frames[j]] = [frames[j] as Message, frames[i] as Message];
      }
      const shown: AnyEntry[] = [...timeline.messages];
      for (const frame of frames) {
        shown.push(...timeline.applyMessage(frame));
        expectContiguous(timeline.messages);
        // Sometimes fill the reported gap over "REST" (a page that may overlap the list).
        const gap = timeline.gap();
        if (gap && random() < 0.2) shown.push(...timeline.applyPage(range(gap.after + 1, gap.after + gap.limit), total));
      }
      for (let gap = timeline.gap(); gap; gap = timeline.gap()) {
        shown.push(...timeline.applyPage(range(gap.after + 1, Math.min(total, gap.after + gap.limit)), total));
      }
      // What the app was shown, event by event, is exactly 1..total once each, in order.
      expect(seqs(shown), `seed ${seed}`).toEqual(range(1, total).map((m) => m.seq));
      expect(timeline.messages).toEqual(shown);
    }
  });
});
