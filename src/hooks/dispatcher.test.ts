// The webhook dispatcher's state machine in plain Node: order (one job per endpoint at a time),
// the watermark across a crash, retries with backoff, dead letters, stale and lost jobs.
import { describe, expect, it } from "vitest";
import type { Entry } from "../protocol/frames.js";
import { parseWebhooks, type WebhookSettings } from "./config.js";
import { type EndpointState, HookDispatcher, type HookJob, INFLIGHT_GRACE_S } from "./dispatcher.js";

const settings: WebhookSettings = { allowPrivate: true, maxAttempts: 3, retryBaseS: 10, timeoutMs: 1000 };
const { endpoints } = parseWebhooks(
  "t",
  [
    { id: "a", url: "https://a.example/h", secret: "s".repeat(16), events: ["*"] },
    { id: "e", url: "https://e.example/h", secret: "s".repeat(16), events: ["message.edited"] },
  ],
  false,
);

const message = (seq: number): Entry => ({ roomId: "r", seq, id: `id${seq}`, kind: "message", userId: "u", text: `m${seq}`, clientMsgId: `c${seq}`, createdAt: "2026-01-01T00:00:00.000Z" });

const harness = (saved?: Record<string, EndpointState>) => {
  const log: Entry[] = [];
  const jobs: Array<{ job: HookJob; delay: number }> = [];
  const dead: Array<{ endpointId: string; ids: string[]; attempts: number }> = [];
  let stored: Record<string, EndpointState> | undefined = saved;
  let now = 1_000_000;
  let tokens = 0;
  let failEnqueue = false;
  const d = new HookDispatcher("t", endpoints, settings, {
    read: async (after, upto) => log.filter((e) => e.seq > after && e.seq <= upto),
    enqueue: async (job, delay) => {
      if (failEnqueue) throw new Error("queue down");
      jobs.push({ job, delay });
    },
    save: async (s) => {
      stored = structuredClone(s);
    },
    deadLetter: async (endpointId, events, attempts) => {
      dead.push({ endpointId, ids: events.map((e) => e.id), attempts });
    },
    lastSeq: () => log.length,
    now: () => now,
    token: () => `tok${++tokens}`,
  });
  return {
    d,
    jobs,
    dead,
    stored: () => stored,
    commit: (n: number) => {
      for (let i = 0; i < n; i++) log.push(message(log.length + 1));
    },
    log,
    advance: (ms: number) => {
      now += ms;
    },
    failEnqueue: (v: boolean) => {
      failEnqueue = v;
    },
  };
};

const ofA = (jobs: Array<{ job: HookJob; delay: number }>) => jobs.filter((j) => j.job.endpointId === "a");

describe("HookDispatcher", () => {
  it("keeps one job per endpoint in the queue: the next is built only after the report, so order is the room's", async () => {
    const h = harness();
    h.d.boot(undefined, 0);
    h.commit(3);
    await h.d.run();
    h.commit(2);
    await h.d.run();
    expect(ofA(h.jobs).map((j) => j.job.events.map((e) => [e.seq, e.prevSeq]))).toEqual([[[1, 0], [2, 1], [3, 2]]]);
    const first = ofA(h.jobs)[0]?.job;
    expect(await h.d.report({ endpointId: "a", token: first?.token ?? "" })).toBe("applied");
    await h.d.run();
    expect(ofA(h.jobs).map((j) => j.job.events.map((e) => [e.seq, e.prevSeq]))[1]).toEqual([[4, 3], [5, 4]]);
    expect(h.stored()?.a?.delivered).toBe(3);
  });

  it("an endpoint with nothing subscribed in a range moves its watermark without a job", async () => {
    const h = harness();
    h.d.boot(undefined, 0);
    h.commit(4);
    await h.d.run();
    expect(h.jobs.filter((j) => j.job.endpointId === "e")).toEqual([]);
    expect(h.stored()?.e?.delivered).toBe(4);
  });

  it("a crash between commit and enqueue: a new dispatcher from the saved state enqueues what was committed", async () => {
    const h = harness();
    h.d.boot(undefined, 0);
    h.commit(2);
    await h.d.run();
    await h.d.report({ endpointId: "a", token: ofA(h.jobs)[0]?.job.token ?? "" });
    const release = await h.d.hold();
    h.commit(3); // committed, never enqueued
    const saved = h.stored();
    release();
    const h2 = harness(saved);
    h2.log.push(...h.log);
    h2.d.boot(saved, 5);
    await h2.d.run();
    expect(ofA(h2.jobs).map((j) => j.job.events.map((e) => e.seq))).toEqual([[3, 4, 5]]);
    expect(ofA(h2.jobs)[0]?.job.events[0]?.prevSeq).toBe(2);
  });

  it("a failure re-sends from the failing seq after the backoff (10 s, 20 s); after 3 failures the event is dead-lettered and the endpoint moves on", async () => {
    const h = harness();
    h.d.boot(undefined, 0);
    h.commit(3);
    await h.d.run();
    let job = ofA(h.jobs).at(-1)?.job as HookJob;
    // seq 1 arrived, seq 2 failed.
    await h.d.report({ endpointId: "a", token: job.token, failure: { seq: 2, events: job.events.slice(1, 2), error: "HTTP 503" } });
    await h.d.run();
    let next = ofA(h.jobs).at(-1);
    expect(next?.delay).toBe(10);
    expect(next?.job.events.map((e) => e.seq)).toEqual([2, 3]);
    expect(next?.job.events[0]?.prevSeq).toBe(1);
    expect(next?.job.attempt).toBe(2);
    job = next?.job as HookJob;
    await h.d.report({ endpointId: "a", token: job.token, failure: { seq: 2, events: job.events.slice(0, 1), error: "HTTP 503" } });
    await h.d.run();
    next = ofA(h.jobs).at(-1);
    expect(next?.delay).toBe(20);
    job = next?.job as HookJob;
    await h.d.report({ endpointId: "a", token: job.token, failure: { seq: 2, events: job.events.slice(0, 1), error: "HTTP 503" } });
    await h.d.run();
    expect(h.dead).toEqual([{ endpointId: "a", ids: ["t:r:2"], attempts: 3 }]);
    next = ofA(h.jobs).at(-1);
    // Past the dead letter, at once; prevSeq still names the dead one, so the receiver sees the gap.
    expect(next?.delay).toBe(0);
    expect(next?.job.events.map((e) => [e.seq, e.prevSeq])).toEqual([[3, 2]]);
  });

  it("a stale report (another token) changes nothing; a job presumed lost after its deadline is sent again", async () => {
    const h = harness();
    h.d.boot(undefined, 0);
    h.commit(1);
    await h.d.run();
    expect(await h.d.report({ endpointId: "a", token: "not-mine" })).toBe("stale");
    await h.d.run();
    expect(ofA(h.jobs)).toHaveLength(1);
    h.advance((INFLIGHT_GRACE_S + 1) * 1000);
    await h.d.run();
    expect(ofA(h.jobs)).toHaveLength(2);
    expect(ofA(h.jobs)[1]?.job.events.map((e) => e.seq)).toEqual([1]);
    // The old job's late report is stale now.
    expect(await h.d.report({ endpointId: "a", token: ofA(h.jobs)[0]?.job.token ?? "" })).toBe("stale");
  });

  it("a queue that refuses the send leaves no job recorded; the next run sends it", async () => {
    const h = harness();
    h.d.boot(undefined, 0);
    h.commit(1);
    h.failEnqueue(true);
    expect(await h.d.run()).toBe(false);
    expect(h.stored()?.a?.inflight).toBeUndefined();
    h.failEnqueue(false);
    expect(await h.d.run()).toBe(true);
    expect(ofA(h.jobs)).toHaveLength(1);
  });

  it("a new endpoint starts at the room's last seq (no backfill) and saves that start at boot", async () => {
    const h = harness();
    h.commit(7);
    h.d.boot(undefined, 7);
    await Promise.resolve();
    expect(h.stored()?.a).toEqual({ delivered: 7, prev: 0, failures: 0 });
  });
});
