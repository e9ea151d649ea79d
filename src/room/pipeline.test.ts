import { describe, expect, it } from "vitest";
import { CommitPipeline, dedupeBatch } from "./pipeline.js";

const item = (n: number, bytes = 1) => ({ n, bytes });
const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe("CommitPipeline", () => {
  it("never runs two batches at once, and what arrives meanwhile becomes the next batch, in order", async () => {
    const batches: number[][] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const pipeline = new CommitPipeline<{ n: number; bytes: number }>(
      async (batch) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        batches.push(batch.map((b) => b.n));
        await tick();
        inFlight--;
      },
      { maxBatchSize: 100, maxBatchBytes: 1000 },
    );
    pipeline.submit(item(1));
    for (let n = 2; n <= 10; n++) pipeline.submit(item(n));
    await tick();
    for (let n = 11; n <= 15; n++) pipeline.submit(item(n));
    while (pipeline.busy) await tick();
    expect(maxInFlight).toBe(1);
    expect(batches[0]).toEqual([1]);
    expect(batches.flat()).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    expect(batches.length).toBeLessThanOrEqual(3);
  });

  it("splits by count and by bytes, but always takes at least one item", () => {
    const pipeline = new CommitPipeline<{ n: number; bytes: number }>(async () => {}, { maxBatchSize: 3, maxBatchBytes: 10 });
    // Fill the queue without draining: takeBatch is the pure split.
    const queue = pipeline as unknown as { queue: Array<{ n: number; bytes: number }> };
    queue.queue.push(item(1), item(2), item(3), item(4), item(5, 20), item(6, 6), item(7, 6));
    expect(pipeline.takeBatch().map((i) => i.n)).toEqual([1, 2, 3]);
    expect(pipeline.takeBatch().map((i) => i.n)).toEqual([4]);
    expect(pipeline.takeBatch().map((i) => i.n)).toEqual([5]);
    expect(pipeline.takeBatch().map((i) => i.n)).toEqual([6]);
    expect(pipeline.takeBatch().map((i) => i.n)).toEqual([7]);
  });
});

describe("dedupeBatch", () => {
  it("keeps the first of each (user, clientMsgId) and points repeats at it", () => {
    const batch = [
      { userId: "a", clientMsgId: "1" },
      { userId: "b", clientMsgId: "1" },
      { userId: "a", clientMsgId: "1" },
      { userId: "a", clientMsgId: "2" },
      { userId: "b", clientMsgId: "1" },
    ];
    const { unique, repeats } = dedupeBatch(batch);
    expect(unique).toEqual([batch[0], batch[1], batch[3]]);
    expect(repeats.map((r) => r.original)).toEqual([0, 1]);
  });

  it("does not confuse users whose id and clientMsgId concatenate alike", () => {
    const { unique } = dedupeBatch([
      { userId: "ab", clientMsgId: "c" },
      { userId: "a", clientMsgId: "bc" },
    ]);
    expect(unique).toHaveLength(2);
  });
});
