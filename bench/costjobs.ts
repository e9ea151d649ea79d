// Load-generator side of the slow-consumer measurement (bench/costs.ts). Runs in the children
// forked by bench/pool.ts; every wait is bounded by a deadline.
import { performance } from "node:perf_hooks";
import type { CpuUse, SlowJob, SlowResult } from "./ipc.js";
import { BenchSocket, devToken, Frame, parseFrame, sendFrame } from "./wsclient.js";

interface Prepared {
  run(startAt: number): Promise<{ result: SlowResult; cpu: CpuUse }>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const epochNow = (): number => performance.timeOrigin + performance.now();

class CpuMeter {
  private readonly cpu = process.cpuUsage();
  private readonly wall = performance.now();
  read(): CpuUse {
    const used = process.cpuUsage(this.cpu);
    return { userUs: used.user, systemUs: used.system, wallMs: performance.now() - this.wall };
  }
}

export async function prepareSlow(job: SlowJob): Promise<Prepared> {
  const writerToken = await devToken(job.url, job.writer);
  const writer = (await BenchSocket.open(job.url, job.room, writerToken, "last=1")).socket;
  // Warm-up: the writer's first send makes it a member and warms the room's pool.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("slow: warm-up send not acked within 10 s")), 10_000);
    writer.onFrame = (kind) => {
      if (kind !== Frame.Ack && kind !== Frame.Error) return;
      clearTimeout(timer);
      writer.onFrame = () => {};
      if (kind === Frame.Ack) resolve();
      else reject(new Error("slow: warm-up send failed"));
    };
    writer.send(sendFrame("warmup", "warm-up"));
  });
  const consumers = await Promise.all(
    job.consumers.map(async (user) => {
      const token = await devToken(job.url, user);
      const stats = { messages: 0, bytes: 0, errorCode: "", closeCode: undefined as number | undefined };
      const { socket } = await BenchSocket.open(job.url, job.room, token, "last=1", 10_000, (kind, data) => {
        if (kind === Frame.Message) {
          stats.messages++;
          stats.bytes += data.length;
        } else if (kind === Frame.Error) {
          const code = parseFrame(data).code;
          stats.errorCode = typeof code === "string" ? code : "?";
        }
      });
      if (!job.read) {
        // A client that stops reading: no `received` frames, and nothing read off the TCP socket.
        socket.reportReceived = false;
        socket.pause();
      }
      return { socket, stats };
    }),
  );
  return {
    async run(startAt) {
      await sleep(startAt - Date.now());
      const meter = new CpuMeter();
      const r: SlowResult = {
        kind: "slow",
        sent: 0,
        acked: 0,
        errors: 0,
        writeStartAt: epochNow(),
        writeEndAt: Number.NaN,
        resumeAt: Number.NaN,
        consumers: [],
      };
      // Closed loop: `window` sends in flight until `count` are answered.
      await new Promise<void>((resolve) => {
        const sendNext = (): void => {
          if (r.sent >= job.count) return;
          writer.send(sendFrame(`slow-${r.sent}`, job.text));
          r.sent++;
        };
        writer.onFrame = (kind) => {
          if (kind !== Frame.Ack && kind !== Frame.Error) return;
          if (kind === Frame.Ack) r.acked++;
          else r.errors++;
          if (r.acked + r.errors >= job.count) resolve();
          else sendNext();
        };
        for (let i = 0; i < job.window; i++) sendNext();
        setTimeout(resolve, 120_000);
      });
      r.writeEndAt = epochNow();
      // The main process reads workerd's RSS meanwhile: the slow sockets are still not reading.
      await sleep(job.holdMs);
      r.resumeAt = epochNow();
      for (const c of consumers) c.socket.resume();
      // A slow socket reads what the room sent it before closing it (4503); a reader gets every message.
      const deadline = performance.now() + 30_000;
      const settled = (c: (typeof consumers)[number]): boolean =>
        job.read ? c.stats.messages >= job.count || !c.socket.isOpen : c.socket.serverCloseCode !== undefined || !c.socket.isOpen;
      while (!consumers.every(settled) && performance.now() < deadline) await sleep(20);
      const cpu = meter.read();
      for (const c of consumers) r.consumers.push({ ...c.stats, closeCode: c.socket.serverCloseCode });
      await Promise.all([writer.close(), ...consumers.map((c) => c.socket.close())]);
      return { result: r, cpu };
    },
  };
}
