// What a load-generator child does for each job. Every job is prepared first (tokens minted,
// sockets open and `ready`), then started at a wall-clock time the main process picks, so that
// several children of one measurement start together and setup never counts as load.
// Every loop here is bounded by a count and by a deadline.
import { performance } from "node:perf_hooks";
import { Redis } from "ioredis";
import type {
  ConnectJob,
  ConnectResult,
  CpuUse,
  FillJob,
  FillResult,
  Job,
  JobResult,
  PingJob,
  PingResult,
  RateJob,
  RateResult,
  ThroughputJob,
  ThroughputResult,
} from "./ipc.js";
import { prepareScale } from "./scalejobs.js";
import { prepareSlow } from "./costjobs.js";
import { BenchSocket, devToken, Frame, messageSeq, parseFrame, sendFrame } from "./wsclient.js";

const RECEIPT = Buffer.from('{"type":"receipt"');

/** After the measured window, how long in-flight sends may take to be acked before we give up on them. */
const DRAIN_MS = 10_000;

export interface Prepared {
  run(startAt: number): Promise<{ result: JobResult; cpu: CpuUse }>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

class CpuMeter {
  private readonly cpu = process.cpuUsage();
  private readonly wall = performance.now();
  read(): CpuUse {
    const used = process.cpuUsage(this.cpu);
    return { userUs: used.user, systemUs: used.system, wallMs: performance.now() - this.wall };
  }
}

const numberField = (frame: Record<string, unknown>, key: string): number => {
  const value = frame[key];
  if (typeof value !== "number") throw new Error(`frame has no numeric ${key}`);
  return value;
};

const stringField = (frame: Record<string, unknown>, key: string): string => {
  const value = frame[key];
  if (typeof value !== "string") throw new Error(`frame has no string ${key}`);
  return value;
};

/**
 * One send before the measurement, acked: a sender's first send in an open room also makes it a
 * member (a Postgres write), and the room's pool and pipeline are warm when the clock starts.
 */
function warmUp(socket: BenchSocket, clientMsgId: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`warm-up send ${clientMsgId} was not acked within 10 s`)), 10_000);
    socket.onFrame = (kind, data) => {
      if (kind !== Frame.Ack && kind !== Frame.Error) return;
      clearTimeout(timer);
      socket.onFrame = () => {};
      if (kind === Frame.Ack) resolve();
      else reject(new Error(`warm-up send ${clientMsgId} failed: ${data.toString("utf8").slice(0, 200)}`));
    };
    socket.send(sendFrame(clientMsgId, "warm-up"));
  });
}

// ---------------------------------------------------------------------------------------------
// Throughput: closed loop, `window` sends in flight per writer. Acks of one socket arrive in the
// order of its sends (one room commits in order), so a FIFO of send times gives send→ack
// without parsing a single ack.

async function prepareThroughput(job: ThroughputJob): Promise<Prepared> {
  const writers = await Promise.all(
    job.users.map(async (user) => {
      const token = await devToken(job.url, user);
      const { socket } = await BenchSocket.open(job.url, job.room, token, "last=1");
      await warmUp(socket, `${user}-warmup`);
      return { user, socket, inflight: [] as number[], n: 0 };
    }),
  );
  // Cursor cost: readers join after the writers (protocol 2: they also get the receipts).
  const readers = await Promise.all(
    (job.readers?.users ?? []).map(async (user) => {
      const token = await devToken(job.url, user);
      return (await BenchSocket.open(job.url, job.room, token, "v=2&last=1")).socket;
    }),
  );
  return {
    async run(startAt) {
      await sleep(startAt - Date.now());
      const meter = new CpuMeter();
      const t0 = performance.now();
      const endAt = t0 + job.durationMs;
      const r: ThroughputResult = {
        kind: "throughput",
        ackedInWindow: 0,
        sent: 0,
        acked: 0,
        errors: 0,
        framesReceived: 0,
        ackMs: [],
        windowMs: job.durationMs,
        warmup: writers.length,
      };
      let cpu: CpuUse | undefined;
      let finish: () => void = () => {};
      const finished = new Promise<void>((resolve) => {
        finish = resolve;
      });
      const outstanding = (): number => writers.reduce((sum, w) => sum + w.inflight.length, 0);
      const sendOne = (w: (typeof writers)[number]): void => {
        w.n++;
        w.inflight.push(performance.now());
        w.socket.send(sendFrame(`${w.user}-${w.n}`, job.text));
        r.sent++;
      };
      for (const w of writers) {
        w.socket.onFrame = (kind, _data, at) => {
          if (kind === Frame.Message) {
            r.framesReceived++;
            return;
          }
          if (kind !== Frame.Ack && kind !== Frame.Error) return;
          const sentAt = w.inflight.shift() ?? at;
          if (kind === Frame.Ack) {
            r.acked++;
            if (at <= endAt) {
              r.ackedInWindow++;
              r.ackMs.push(at - sentAt);
            }
          } else r.errors++;
          if (at < endAt) sendOne(w);
          else if (cpu && outstanding() === 0) finish();
        };
      }
      if (job.readers) {
        const stats = { frames: 0, reads: 0, receipts: 0, errors: 0, closed: 0 };
        r.readers = stats;
        const markRead = job.readers.markRead;
        for (const reader of readers) {
          reader.onFrame = (kind, data, at) => {
            const inWindow = at <= endAt;
            if (kind === Frame.Message) {
              if (inWindow) stats.frames++;
              // An eager client: every message frame it gets moves its read cursor to that message.
              if (markRead && reader.isOpen) {
                reader.send(`{"type":"read","seq":${messageSeq(data)}}`);
                if (inWindow) stats.reads++;
              }
            } else if (kind === Frame.Error) {
              stats.errors++;
            } else if (inWindow && data.compare(RECEIPT, 0, RECEIPT.length, 0, RECEIPT.length) === 0) {
              stats.receipts++;
            }
          };
        }
      }
      for (const w of writers) for (let i = 0; i < job.window; i++) sendOne(w);
      await sleep(endAt - performance.now());
      cpu = meter.read();
      if (r.readers) r.readers.closed = readers.filter((s) => !s.isOpen).length;
      if (outstanding() === 0) finish();
      await Promise.race([finished, sleep(DRAIN_MS)]);
      await Promise.all([...writers.map((w) => w.socket.close()), ...readers.map((s) => s.close())]);
      return { result: r, cpu };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Fixed rate: open loop. The sender sends on schedule whatever the acks do, so a rate the room
// cannot sustain shows up as a growing latency, not as a quietly lower rate.

async function prepareRate(job: RateJob): Promise<Prepared> {
  const [senderToken, receiverToken] = await Promise.all([
    devToken(job.url, `${job.room}-sender`),
    devToken(job.url, `${job.room}-receiver`),
  ]);
  const sender = (await BenchSocket.open(job.url, job.room, senderToken, "last=1")).socket;
  const receiver = (await BenchSocket.open(job.url, job.room, receiverToken, "last=1")).socket;
  await warmUp(sender, "warmup");
  const watcher = job.mirror ? new StreamWatcher(job.mirror.redisUrl, job.mirror.streamKey) : undefined;
  return {
    async run(startAt) {
      await sleep(startAt - Date.now());
      watcher?.start();
      const meter = new CpuMeter();
      const total = Math.max(1, Math.round((job.rate * job.durationMs) / 1000));
      const interval = 1000 / job.rate;
      const t0 = performance.now();
      const endAt = t0 + job.durationMs;
      const sentAt: number[] = new Array<number>(total).fill(0);
      const ackAt = new Map<number, { index: number; at: number }>(); // seq → which send, when acked
      const r: RateResult = {
        kind: "rate",
        sent: 0,
        acked: 0,
        received: 0,
        errors: 0,
        ackedInWindow: 0,
        ackMs: [],
        recvMs: [],
        maxScheduleLagMs: 0,
        windowMs: job.durationMs,
      };
      let finish: () => void = () => {};
      const finished = new Promise<void>((resolve) => {
        finish = resolve;
      });
      const maybeFinish = (): void => {
        if (r.sent === total && r.acked + r.errors === total && r.received >= r.acked) finish();
      };
      const indexOf = (clientMsgId: string): number => Number(clientMsgId.slice(clientMsgId.lastIndexOf("-") + 1));
      sender.onFrame = (kind, data, at) => {
        if (kind === Frame.Ack) {
          const frame = parseFrame(data);
          const index = indexOf(stringField(frame, "clientMsgId"));
          r.acked++;
          r.ackMs.push(at - (sentAt[index] ?? at));
          if (at <= endAt) r.ackedInWindow++;
          ackAt.set(numberField(frame, "seq"), { index, at });
          maybeFinish();
        } else if (kind === Frame.Error) {
          r.errors++;
          maybeFinish();
        }
      };
      receiver.onFrame = (kind, data, at) => {
        if (kind !== Frame.Message) return;
        const frame = parseFrame(data);
        const message = frame.message;
        if (typeof message !== "object" || message === null || !("clientMsgId" in message)) return;
        const id = message.clientMsgId;
        if (typeof id !== "string" || !id.startsWith("m-")) return; // the warm-up is not measured
        r.received++;
        r.recvMs.push(at - (sentAt[indexOf(id)] ?? at));
        maybeFinish();
      };
      await new Promise<void>((resolve) => {
        const tick = (): void => {
          const now = performance.now();
          while (r.sent < total && t0 + r.sent * interval <= now) {
            r.maxScheduleLagMs = Math.max(r.maxScheduleLagMs, now - (t0 + r.sent * interval));
            sentAt[r.sent] = performance.now();
            sender.send(sendFrame(`m-${r.sent}`, job.text));
            r.sent++;
          }
          if (r.sent < total && now < endAt + DRAIN_MS) setTimeout(tick, Math.max(0, t0 + r.sent * interval - performance.now()));
          else resolve();
        };
        tick();
      });
      await sleep(endAt - performance.now());
      const cpu = meter.read();
      await Promise.race([finished, sleep(DRAIN_MS)]);
      if (watcher) {
        // The mirror may trail the acks; give it a bounded moment to catch up before judging.
        const lastSeq = Math.max(0, ...ackAt.keys());
        await watcher.waitFor(lastSeq, 3000);
        await watcher.stop();
        const afterAckMs: number[] = [];
        const afterSendMs: number[] = [];
        for (const [seq, ack] of ackAt) {
          const visible = watcher.visibleAt.get(seq);
          if (visible === undefined) continue;
          afterAckMs.push(visible - ack.at);
          afterSendMs.push(visible - (sentAt[ack.index] ?? visible));
        }
        r.mirror = { visible: afterAckMs.length, afterAckMs, afterSendMs };
      }
      await Promise.all([sender.close(), receiver.close()]);
      return { result: r, cpu };
    },
  };
}

/**
 * Follows a Redis stream with XREAD BLOCK and notes when each `<seq>-0` entry became visible.
 * It runs in the sender's process so that its times share the sender's clock.
 */
class StreamWatcher {
  readonly visibleAt = new Map<number, number>();
  private readonly redis: Redis;
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  private topSeq = 0;

  constructor(
    redisUrl: string,
    private readonly key: string,
  ) {
    this.redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: false });
    this.redis.on("error", () => {});
  }

  start(): void {
    this.running = true;
    const deadline = performance.now() + 120_000;
    this.loop = (async () => {
      let lastId = "0";
      while (this.running && performance.now() < deadline) {
        const reply = await this.redis.xread("BLOCK", 200, "STREAMS", this.key, lastId).catch(() => null);
        const at = performance.now();
        for (const [, entries] of reply ?? []) {
          for (const [id] of entries) {
            lastId = id;
            const seq = Number(id.split("-")[0]);
            if (!this.visibleAt.has(seq)) this.visibleAt.set(seq, at);
            this.topSeq = Math.max(this.topSeq, seq);
          }
        }
      }
    })();
  }

  async waitFor(seq: number, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.topSeq < seq && performance.now() < deadline) await sleep(20);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop; // ends within one BLOCK timeout
    this.redis.disconnect();
  }
}

// ---------------------------------------------------------------------------------------------
// Fill: gives a room history for the handshake measurements.

async function prepareFill(job: FillJob): Promise<Prepared> {
  const token = await devToken(job.url, `${job.room}-filler`);
  const { socket } = await BenchSocket.open(job.url, job.room, token, "last=1");
  return {
    async run(startAt) {
      await sleep(startAt - Date.now());
      const meter = new CpuMeter();
      const r: FillResult = { kind: "fill", latestSeq: 0, errors: 0 };
      let sent = 0;
      let done = 0;
      await new Promise<void>((resolve) => {
        const sendNext = (): void => {
          if (sent >= job.count) return;
          socket.send(sendFrame(`fill-${sent}`, job.text));
          sent++;
        };
        socket.onFrame = (kind, data) => {
          if (kind !== Frame.Ack && kind !== Frame.Error) return;
          if (kind === Frame.Ack) r.latestSeq = Math.max(r.latestSeq, numberField(parseFrame(data), "seq"));
          else r.errors++;
          done++;
          sendNext();
          if (done === job.count) resolve();
        };
        for (let i = 0; i < 64; i++) sendNext();
        setTimeout(resolve, 60_000);
      });
      const cpu = meter.read();
      await socket.close();
      return { result: r, cpu };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Connect → ready, one handshake at a time, variants round-robin (rotated each round so that no
// variant always runs right after the same other one).

async function prepareConnect(job: ConnectJob): Promise<Prepared> {
  const token = await devToken(job.url, `${job.room}-joiner`);
  return {
    async run(startAt) {
      await sleep(startAt - Date.now());
      const meter = new CpuMeter();
      const out = job.variants.map((v) => ({ name: v.name, ms: [] as number[], readyBytes: 0, failures: [] as string[] }));
      const deadline = performance.now() + 120_000;
      for (let round = 0; round < job.rounds && performance.now() < deadline; round++) {
        for (let k = 0; k < job.variants.length; k++) {
          const index = (k + round) % job.variants.length;
          const variant = job.variants[index];
          const slot = out[index];
          if (!variant || !slot) continue;
          try {
            const opened = await BenchSocket.open(job.url, job.room, token, variant.query);
            if (opened.readyMessages !== variant.expectMessages) {
              slot.failures.push(`ready carried ${opened.readyMessages} messages, expected ${variant.expectMessages}`);
            }
            slot.ms.push(opened.readyMs);
            slot.readyBytes = opened.readyBytes;
            await opened.socket.close();
          } catch (error) {
            slot.failures.push(error instanceof Error ? error.message : String(error));
          }
        }
      }
      const result: ConnectResult = { kind: "connect", variants: out };
      return { result, cpu: meter.read() };
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Ping → pong: the cheapest round trip the stack offers on an open socket.

async function preparePing(job: PingJob): Promise<Prepared> {
  const token = await devToken(job.url, `${job.room}-pinger`);
  const { socket } = await BenchSocket.open(job.url, job.room, token, "last=1");
  return {
    async run(startAt) {
      await sleep(startAt - Date.now());
      const meter = new CpuMeter();
      const result: PingResult = { kind: "ping", ms: [] };
      for (let i = 0; i < job.count; i++) {
        const rtt = await new Promise<number | undefined>((resolve) => {
          const timer = setTimeout(() => resolve(undefined), 5000);
          const started = performance.now();
          socket.onFrame = (kind, _data, at) => {
            if (kind !== Frame.Pong) return;
            clearTimeout(timer);
            resolve(at - started);
          };
          socket.send('{"type":"ping"}');
        });
        if (rtt === undefined) break;
        result.ms.push(rtt);
      }
      const cpu = meter.read();
      await socket.close();
      return { result, cpu };
    },
  };
}

export function prepare(job: Job): Promise<Prepared> {
  switch (job.kind) {
    case "throughput":
      return prepareThroughput(job);
    case "rate":
      return prepareRate(job);
    case "fill":
      return prepareFill(job);
    case "connect":
      return prepareConnect(job);
    case "ping":
      return preparePing(job);
    case "joinview":
    case "fanout":
    case "rooms":
      return prepareScale(job);
    case "slow":
      return prepareSlow(job);
  }
}
