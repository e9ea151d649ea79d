// Load-generator side of the scale measurements (bench/scale.ts): a joining client's time to a
// consistent view, fanout to many sockets of one room, and many idle rooms. Runs in the children
// forked by bench/pool.ts; every loop is bounded by a count and a deadline.
import { performance } from "node:perf_hooks";
import type { CpuUse, FanoutJob, FanoutResult, JoinVariant, JoinViewJob, JoinViewResult, RoomsJob, RoomsResult } from "./ipc.js";
import { BenchSocket, devToken, Frame, parseFrame, sendFrame } from "./wsclient.js";

interface Prepared {
  run(startAt: number): Promise<{ result: FanoutResult | JoinViewResult | RoomsResult; cpu: CpuUse }>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Wall-clock ms with sub-ms precision, comparable between the load-generator processes. */
const epochNow = (): number => performance.timeOrigin + performance.now();

class CpuMeter {
  private readonly cpu = process.cpuUsage();
  private readonly wall = performance.now();
  read(): CpuUse {
    const used = process.cpuUsage(this.cpu);
    return { userUs: used.user, systemUs: used.system, wallMs: performance.now() - this.wall };
  }
}

/** Runs `work` over `items` with at most `limit` in flight. */
async function eachLimited<T>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      await work(items[index] as T, index);
    }
  });
  await Promise.all(lanes);
}

/**
 * Opens a socket, retrying a refused join ("storage is unavailable": Postgres out of connections)
 * up to 6 times with a growing pause, as a client would; `retries` counts the extra attempts.
 */
async function openRetrying(
  url: string,
  room: string,
  token: string,
  onFrame: ((kind: number, data: Buffer, at: number) => void) | undefined,
  counter: { retries: number },
  query = "",
): Promise<BenchSocket> {
  for (let attempt = 0; ; attempt++) {
    try {
      return (await BenchSocket.open(url, room, token, `last=1${query ? `&${query}` : ""}`, 30_000, onFrame as never)).socket;
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      if (attempt >= 5 || !text.includes("unavailable")) throw error;
      counter.retries++;
      await sleep(250 * (attempt + 1));
    }
  }
}

/** One token per distinct user, minted with bounded concurrency. */
async function tokensFor(url: string, users: readonly string[]): Promise<Map<string, string>> {
  const distinct = [...new Set(users)];
  const tokens = new Map<string, string>();
  await eachLimited(distinct, 16, async (user) => {
    tokens.set(user, await devToken(url, user));
  });
  return tokens;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null;

const seqsOf = (messages: unknown): number[] =>
  Array.isArray(messages) ? messages.flatMap((m) => (isRecord(m) && typeof m.seq === "number" ? [m.seq] : [])) : [];

/** The seq of a `message` frame, found without parsing the whole frame. */
const SEQ_KEY = Buffer.from('"seq":');
const seqOfMessageFrame = (data: Buffer): number => {
  const at = data.indexOf(SEQ_KEY);
  if (at < 0) return Number.NaN;
  let n = 0;
  let digits = 0;
  for (let i = at + SEQ_KEY.length; i < data.length; i++) {
    const c = data[i] ?? 0;
    if (c < 0x30 || c > 0x39) break;
    n = n * 10 + (c - 0x30);
    digits++;
  }
  return digits ? n : Number.NaN;
};

async function restPage(url: string, room: string, token: string, query: string): Promise<number[]> {
  const res = await fetch(`${url}/v1/rooms/${room}/messages?${query}`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(10_000),
  });
  const body: unknown = await res.json();
  if (!res.ok || !isRecord(body)) throw new Error(`GET messages?${query}: HTTP ${res.status}`);
  return seqsOf(body.messages);
}

// ---------------------------------------------------------------------------------------------
// Time to a consistent view.

/** What the client holds: distinct seqs; consistent once they are contiguous and cover what it wants. */
class View {
  private readonly seqs = new Set<number>();
  private min = Number.POSITIVE_INFINITY;
  private max = Number.NEGATIVE_INFINITY;
  duplicates = 0;

  constructor(
    /** The seq acked when the join started: the view must reach at least this. */
    private readonly current: number,
    /** missed1000: the client's cursor (it wants cursor+1 …); last50: undefined. */
    private readonly cursor: number | undefined,
  ) {}

  add(seqs: readonly number[]): void {
    for (const seq of seqs) {
      if (!Number.isFinite(seq)) continue;
      if (this.seqs.has(seq)) {
        this.duplicates++;
        continue;
      }
      this.seqs.add(seq);
      if (seq < this.min) this.min = seq;
      if (seq > this.max) this.max = seq;
    }
  }

  get consistent(): boolean {
    const n = this.seqs.size;
    if (n === 0 || this.max < this.current || this.max - this.min + 1 !== n) return false;
    return this.cursor === undefined ? n >= 50 : this.min <= this.cursor + 1;
  }
}

async function joinOnce(
  job: JoinViewJob,
  token: string,
  variant: JoinVariant,
  current: number,
): Promise<{ ms: number; duplicates: number; truncated: boolean; restCalls: number }> {
  const cursor = variant.want === "missed1000" ? current - 1000 : undefined;
  const view = new View(current, cursor);
  const started = performance.now();
  let doneAt = Number.NaN;
  let settle: () => void = () => {};
  const settled = new Promise<void>((resolve) => {
    settle = resolve;
  });
  const check = (at: number): void => {
    if (Number.isNaN(doneAt) && view.consistent) {
      doneAt = at;
      settle();
    }
  };
  const query =
    variant.strategy === "twostep"
      ? `since=${current}` // nothing owed: the socket only delivers what commits from now on
      : variant.want === "last50"
        ? "last=50"
        : `since=${cursor}`;
  const opened = await BenchSocket.open(job.url, job.room, token, query, 10_000, (kind, data, at) => {
    if (kind !== Frame.Message) return;
    view.add([seqOfMessageFrame(data)]);
    check(at);
  });
  let restCalls = 0;
  const truncated = opened.ready.truncated === true;
  try {
    const readySeqs = seqsOf(opened.ready.messages);
    view.add(readySeqs);
    check(performance.now());
    let rest: string | undefined;
    if (variant.strategy === "twostep") {
      rest = variant.want === "last50" ? "limit=50" : `after=${cursor}&limit=1000`;
    } else if (truncated && cursor !== undefined) {
      // What the SDK does with a truncated `ready`: fill the hole below its first message over REST.
      const first = readySeqs[0] ?? opened.latestSeq + 1;
      rest = `after=${cursor}&limit=${Math.max(1, Math.min(1000, first - cursor - 1))}`;
    }
    if (rest && Number.isNaN(doneAt)) {
      restCalls++;
      view.add(await restPage(job.url, job.room, token, rest));
      check(performance.now());
    }
    await Promise.race([settled, sleep(10_000)]);
    if (Number.isNaN(doneAt)) throw new Error(`no consistent view within 10 s (${variant.name}, current ${current})`);
    return { ms: doneAt - started, duplicates: view.duplicates, truncated, restCalls };
  } finally {
    await opened.socket.close();
  }
}

async function prepareJoinView(job: JoinViewJob): Promise<Prepared> {
  const [writerToken, joinToken] = await Promise.all([
    devToken(job.url, `${job.room}-writer`),
    devToken(job.url, `${job.room}-joiner`),
  ]);
  const writer = (await BenchSocket.open(job.url, job.room, writerToken, "last=1")).socket;
  return {
    async run(startAt) {
      await sleep(startAt - Date.now());
      const meter = new CpuMeter();
      let acked = 0;
      let written = 0;
      writer.onFrame = (kind, data) => {
        if (kind !== Frame.Ack) return;
        const seq = parseFrame(data).seq;
        if (typeof seq === "number" && seq > acked) acked = seq;
        written++;
      };
      // Open-loop writer at `rate`, bounded by a deadline.
      let writing = true;
      const interval = 1000 / job.rate;
      const t0 = performance.now();
      let sent = 0;
      const deadline = t0 + 300_000;
      const tick = (): void => {
        const now = performance.now();
        while (writing && t0 + sent * interval <= now) writer.send(sendFrame(`jw-${sent++}`, job.text));
        if (writing && now < deadline) setTimeout(tick, Math.max(0, t0 + sent * interval - performance.now()));
      };
      tick();
      const deadlineWait = performance.now() + 5000;
      while (acked === 0 && performance.now() < deadlineWait) await sleep(10);
      await sleep(300); // the writer is in its stride before the first join
      const out: JoinViewResult["variants"] = job.variants.map((v) => ({
        name: v.name,
        ms: [],
        duplicates: [],
        truncated: 0,
        restCalls: 0,
        failures: [],
      }));
      const until = performance.now() + 240_000;
      for (let round = 0; round < job.rounds && performance.now() < until; round++) {
        for (let k = 0; k < job.variants.length; k++) {
          const index = (k + round) % job.variants.length;
          const variant = job.variants[index];
          const slot = out[index];
          if (!variant || !slot) continue;
          try {
            const r = await joinOnce(job, joinToken, variant, acked);
            slot.ms.push(r.ms);
            slot.duplicates.push(r.duplicates);
            if (r.truncated) slot.truncated++;
            slot.restCalls += r.restCalls;
          } catch (error) {
            slot.failures.push(error instanceof Error ? error.message : String(error));
          }
        }
      }
      writing = false;
      const cpu = meter.read();
      await sleep(200);
      await writer.close();
      return { result: { kind: "joinview", variants: out, written }, cpu };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Fanout: many receiving sockets in one room, one publisher.

const PUB_KEY = Buffer.from('"clientMsgId":"pub-');
const pubIndexOf = (data: Buffer): number => {
  const at = data.indexOf(PUB_KEY);
  if (at < 0) return -1;
  let n = 0;
  let digits = 0;
  for (let i = at + PUB_KEY.length; i < data.length; i++) {
    const c = data[i] ?? 0;
    if (c < 0x30 || c > 0x39) break;
    n = n * 10 + (c - 0x30);
    digits++;
  }
  return digits ? n : -1;
};

async function prepareFanout(job: FanoutJob): Promise<Prepared> {
  const opening = performance.now();
  const tokens = await tokensFor(job.url, job.publisher ? [...job.users, job.publisher] : job.users);
  const firstAt = new Array<number>(job.count).fill(Number.NaN);
  const lastAt = new Array<number>(job.count).fill(Number.NaN);
  const got = new Array<number>(job.count).fill(0);
  let received = 0;
  let notify: () => void = () => {};
  const onFrame = (kind: number, data: Buffer): void => {
    if (kind !== Frame.Message) return;
    const at = epochNow();
    const i = pubIndexOf(data);
    if (i < 0 || i >= job.count) return;
    if (Number.isNaN(firstAt[i] as number)) firstAt[i] = at;
    lastAt[i] = at;
    got[i] = (got[i] ?? 0) + 1;
    received++;
    if (received === job.count * job.users.length) notify();
  };
  const sockets: BenchSocket[] = new Array(job.users.length);
  const counter = { retries: 0 };
  await eachLimited(job.users, 16, async (user, i) => {
    sockets[i] = await openRetrying(job.url, job.room, tokens.get(user) ?? "", onFrame, counter, job.query);
  });
  const openMs = performance.now() - opening;
  let publisher: BenchSocket | undefined;
  let errors = 0;
  if (job.publisher) {
    publisher = (await BenchSocket.open(job.url, job.room, tokens.get(job.publisher) ?? "", `last=1${job.query ? `&${job.query}` : ""}`)).socket;
    // The first send joins the publisher as a member (a Postgres write): not part of the measurement.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("fanout warm-up not acked within 10 s")), 10_000);
      (publisher as BenchSocket).onFrame = (kind) => {
        if (kind !== Frame.Ack && kind !== Frame.Error) return;
        clearTimeout(timer);
        resolve();
      };
      (publisher as BenchSocket).send(sendFrame("warmup", "warm-up"));
    });
    publisher.onFrame = (kind) => {
      if (kind === Frame.Error) errors++;
    };
  }
  return {
    async run(startAt) {
      await sleep(startAt - Date.now());
      const meter = new CpuMeter();
      const runStart = performance.now();
      const sentAt: number[] = [];
      const all = new Promise<void>((resolve) => {
        notify = resolve;
        if (received === job.count * job.users.length) resolve();
      });
      if (publisher) {
        const t0 = performance.now();
        for (let i = 0; i < job.count; i++) {
          await sleep(t0 + i * job.intervalMs - performance.now());
          sentAt.push(epochNow());
          publisher.send(sendFrame(`pub-${i}`, job.text));
        }
      }
      await Promise.race([all, sleep(runStart + job.count * job.intervalMs + 10_000 - performance.now())]);
      const cpu = meter.read();
      const closing = [...sockets, ...(publisher ? [publisher] : [])];
      await eachLimited(closing, 64, (s) => s.close());
      const result: FanoutResult = {
        kind: "fanout",
        sockets: job.users.length,
        openMs,
        openRetries: counter.retries,
        firstAt,
        lastAt,
        got,
        sentAt,
        errors,
      };
      return { result, cpu };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Many rooms: sockets opened in prepare, idle during the measured window.

async function prepareRooms(job: RoomsJob): Promise<Prepared> {
  const opening = performance.now();
  const targets = job.rooms.flatMap(({ room, users }) => users.map((user) => ({ room, user })));
  const tokens = await tokensFor(
    job.url,
    targets.map((t) => t.user),
  );
  const sockets: BenchSocket[] = [];
  const failures: string[] = [];
  const counter = { retries: 0 };
  await eachLimited(targets, 16, async ({ room, user }) => {
    try {
      sockets.push(await openRetrying(job.url, room, tokens.get(user) ?? "", undefined, counter));
    } catch (error) {
      failures.push(error instanceof Error ? error.message : String(error));
    }
  });
  const openMs = performance.now() - opening;
  return {
    async run(startAt) {
      await sleep(startAt - Date.now());
      const meter = new CpuMeter();
      await sleep(job.holdMs);
      const cpu = meter.read();
      const droppedWhileIdle = sockets.filter((s) => !s.isOpen).length;
      await eachLimited(sockets, 64, (s) => s.close());
      return {
        result: { kind: "rooms", opened: sockets.length, openMs, openRetries: counter.retries, droppedWhileIdle, failures },
        cpu,
      };
    },
  };
}

export function prepareScale(job: JoinViewJob | FanoutJob | RoomsJob): Promise<Prepared> {
  switch (job.kind) {
    case "joinview":
      return prepareJoinView(job);
    case "fanout":
      return prepareFanout(job);
    case "rooms":
      return prepareRooms(job);
  }
}
