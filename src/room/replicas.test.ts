import { describe, expect, it } from "vitest";
import { EntryKind, type Entry } from "../protocol/frames.js";
import { MAX_QUEUED, ReplicaFanout, type ReplicaPush } from "./replicas.js";

const entry = (seq: number): Entry => ({
  roomId: "r",
  seq,
  kind: EntryKind.Message,
  id: `id-${seq}`,
  userId: "u",
  clientMsgId: `c-${seq}`,
  text: "",
  createdAt: new Date(0).toISOString(),
});

interface Harness {
  fanout: ReplicaFanout;
  pushes: Array<{ name: string; batch: ReplicaPush; answer: (a: { subscribed: boolean } | Error) => void }>;
  saved: string[][];
  timers: Array<() => void>;
}

const harness = (): Harness => {
  const h: Harness = { pushes: [], saved: [], timers: [], fanout: undefined as unknown as ReplicaFanout };
  let last = 0;
  h.fanout = new ReplicaFanout({
    push: (name, batch) =>
      new Promise((resolve, reject) => {
        last = Math.max(last, ...batch.entries.map((e) => e.seq));
        h.pushes.push({ name, batch, answer: (a) => (a instanceof Error ? reject(a) : resolve(a)) });
      }),
    save: async (names) => {
      h.saved.push(names);
    },
    lastSeq: () => last,
    later: (run) => h.timers.push(run),
    warn: () => {},
  });
  return h;
};
const flush = () => new Promise((r) => setTimeout(r, 0));

describe("ReplicaFanout", () => {
  it("one push in flight per replica; commits meanwhile are coalesced, in order", async () => {
    const h = harness();
    await h.fanout.register("t:r@weur#0");
    h.fanout.committed([entry(1)]);
    h.fanout.committed([entry(2)]);
    h.fanout.committed([entry(3)]);
    expect(h.pushes.length).toBe(1);
    h.pushes[0]?.answer({ subscribed: true });
    await flush();
    expect(h.pushes.map((p) => p.batch.entries.map((e) => e.seq))).toEqual([[1], [2, 3]]);
  });

  it("a failed push is retried with the same entries, and revocations are never dropped", async () => {
    const h = harness();
    await h.fanout.register("t:r@weur#0");
    h.fanout.committed([entry(1)]);
    h.fanout.control({ kind: "end", code: "forbidden", reason: "removed", userId: "bob" });
    h.pushes[0]?.answer(new Error("network"));
    await flush();
    h.fanout.committed([entry(2)]);
    expect(h.pushes.length).toBe(1); // waiting for the backoff timer
    h.timers.shift()?.();
    const retry = h.pushes[1]?.batch;
    expect(retry?.entries.map((e) => e.seq)).toEqual([1, 2]);
    // The end control came after entry 1 was queued, so it went in the first batch only if queued
    // before the push; here it was queued while entry 1 was in flight: it goes with the retry.
    expect(retry?.controls).toEqual([{ kind: "end", code: "forbidden", reason: "removed", userId: "bob" }]);
  });

  it("past the bound the oldest entries are dropped (the replica fills them), never controls", async () => {
    const h = harness();
    await h.fanout.register("t:r@weur#0");
    h.fanout.committed([entry(1)]);
    h.fanout.control({ kind: "recheck" });
    h.fanout.committed(Array.from({ length: MAX_QUEUED + 10 }, (_, i) => entry(i + 2)));
    h.pushes[0]?.answer({ subscribed: true });
    await flush();
    const second = h.pushes[1]?.batch;
    expect(second?.entries.length).toBe(MAX_QUEUED);
    expect(second?.entries[0]?.seq).toBe(12);
    expect(second?.controls).toEqual([{ kind: "recheck" }]);
  });

  it("a replica that answers 'no sockets' is forgotten, unless it registered again meanwhile", async () => {
    const h = harness();
    await h.fanout.register("t:r@weur#0");
    await h.fanout.register("t:r@apac#0");
    h.fanout.committed([entry(1)]);
    // apac registers again (a socket joined) while its push is in flight.
    await h.fanout.register("t:r@apac#0");
    for (const p of h.pushes) p.answer({ subscribed: false });
    await flush();
    expect(h.fanout.names).toEqual(["t:r@apac#0"]);
    expect(h.saved.at(-1)).toEqual(["t:r@apac#0"]);
  });

  it("ephemeral frames skip a replica that is failing (no growing queue), revocations do not", async () => {
    const h = harness();
    await h.fanout.register("t:r@weur#0");
    h.fanout.committed([entry(1)]);
    h.pushes[0]?.answer(new Error("down"));
    await flush();
    h.fanout.control({ kind: "typing", userIds: ["ann"] });
    h.fanout.control({ kind: "end", code: "not_found", reason: "deleted" });
    h.timers.shift()?.();
    expect(h.pushes[1]?.batch.controls).toEqual([{ kind: "end", code: "not_found", reason: "deleted" }]);
  });
});
