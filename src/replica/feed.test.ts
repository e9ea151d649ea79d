import { describe, expect, it } from "vitest";
import { EntryKind, type Entry } from "../protocol/frames.js";
import { ReplicaFeed } from "./feed.js";

const entry = (seq: number): Entry => ({
  roomId: "r",
  seq,
  kind: EntryKind.Message,
  id: `id-${seq}`,
  userId: "u",
  clientMsgId: `c-${seq}`,
  text: `m${seq}`,
  createdAt: new Date(0).toISOString(),
});
const seqs = (entries: Entry[]) => entries.map((e) => e.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => entry(from + i));

/** A deterministic shuffle (xorshift), so a failure names its seed. */
const shuffled = <T>(items: T[], seed: number): T[] => {
  let x = seed || 1;
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = Math.abs(x) % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
};

describe("ReplicaFeed", () => {
  it("holds everything until it starts, then delivers only above the start", () => {
    const feed = new ReplicaFeed();
    expect(feed.offer(range(3, 6))).toEqual([]);
    expect(seqs(feed.start(4))).toEqual([5, 6]);
    expect(feed.delivered).toBe(6);
  });

  it("delivers in order, drops duplicates, holds above a gap and names the gap", () => {
    const feed = new ReplicaFeed();
    feed.start(0);
    expect(seqs(feed.offer([entry(1), entry(2)]))).toEqual([1, 2]);
    expect(seqs(feed.offer([entry(2), entry(1)]))).toEqual([]);
    expect(seqs(feed.offer([entry(5), entry(6)]))).toEqual([]);
    expect(feed.gap()).toEqual({ after: 2, upto: 4 });
    expect(seqs(feed.offer([entry(3), entry(4)]))).toEqual([3, 4, 5, 6]);
    expect(feed.gap()).toBeUndefined();
  });

  it("a learned seq above everything held is a gap to fill", () => {
    const feed = new ReplicaFeed();
    feed.start(10);
    feed.learn(13);
    expect(feed.gap()).toEqual({ after: 10, upto: 13 });
  });

  it("whatever the order and duplication of its inputs, delivers 1..n exactly once in order", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const feed = new ReplicaFeed();
      feed.start(0);
      const all = range(1, 60);
      // Every entry at least once, some twice, in a shuffled order, in chunks.
      const input = shuffled([...all, ...all.filter((_, i) => (i * seed) % 7 === 0)], seed);
      const out: Entry[] = [];
      for (let i = 0; i < input.length; i += 1 + (seed % 5)) out.push(...feed.offer(input.slice(i, i + 1 + (seed % 5))));
      expect(seqs(out), `seed ${seed}`).toEqual(seqs(all));
    }
  });

  it("bounds what it holds above a gap and fills the rest later", () => {
    const feed = new ReplicaFeed(3);
    feed.start(0);
    feed.offer(range(2, 10));
    expect(feed.heldCount).toBe(3);
    expect(feed.gap()).toEqual({ after: 0, upto: 1 });
    expect(seqs(feed.offer([entry(1)]))).toEqual([1, 2, 3, 4]);
    expect(feed.gap()).toEqual({ after: 4, upto: 10 });
  });

  it("resolves a waiter once its seq is delivered, not before", async () => {
    const feed = new ReplicaFeed();
    feed.start(0);
    let done = false;
    const reached = feed.reached(2).then(() => {
      done = true;
    });
    feed.offer([entry(1)]);
    await Promise.resolve();
    expect(done).toBe(false);
    feed.offer([entry(2)]);
    await reached;
    expect(done).toBe(true);
  });
});
