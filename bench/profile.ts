// `npm run bench:profile`: where the room's CPU goes per message. Starts the product path
// (tools/local/workerd.ts) with workerd's V8 inspector open, drives one room with N closed-loop
// writers (each also receives every message), and takes a sampling CPU profile of workerd's
// isolate over the window; prints self time by function and by part of the code, per message.
//
//   flock /tmp/edge-chat-cpu.lock npm run bench:profile -- --writers 16 --seconds 5 [--mirror] [--out FILE]
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import WebSocket from "ws";
import { startLocalStack } from "../tools/local/stack.js";
import { stackVars } from "../tools/local/wrangler.js";
import { startWorkerd } from "../tools/local/workerd.js";
import { BENCH_VARS } from "./context.js";
import { devToken, wsUrl } from "./wsclient.js";

const { values: args } = parseArgs({
  options: {
    writers: { type: "string", default: "16" },
    seconds: { type: "string", default: "5" },
    window: { type: "string", default: "16" },
    mirror: { type: "boolean", default: false },
    out: { type: "string" },
  },
});

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** A tiny CDP client over the inspector's WebSocket. */
const cdp = async (url: string) => {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  let next = 1;
  const waiting = new Map<number, (result: unknown) => void>();
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data)) as { id?: number; result?: unknown };
    if (msg.id !== undefined) waiting.get(msg.id)?.(msg.result);
  });
  return {
    send: <T>(method: string, params: Record<string, unknown> = {}): Promise<T> =>
      new Promise((resolve) => {
        const id = next++;
        waiting.set(id, (r) => resolve(r as T));
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
};

/** What part of the system a frame belongs to, from its function and source position. */
const partOf = (f: CallFrame): string => {
  if (f.functionName === "(garbage collector)") return "garbage collection";
  if (f.functionName === "(program)" || f.functionName === "(idle)" || f.functionName === "(root)") return `runtime: ${f.functionName}`;
  if (!f.url) return "runtime builtins (native: JSON, WebSocket send, crypto, …)";
  return "JavaScript (the bundle: our code and the drivers)";
};

async function main(): Promise<void> {
  const writers = Number(args.writers);
  const seconds = Number(args.seconds);
  const window = Number(args.window);
  const stack = await startLocalStack({ purpose: "bench" });
  const dir = await mkdtemp(join(tmpdir(), "edge-chat-profile-"));
  const inspectorPort = 19229;
  const vars = stackVars(stack, BENCH_VARS);
  if (!args.mirror) {
    delete vars.UPSTASH_REDIS_REST_URL;
    delete vars.UPSTASH_REDIS_REST_TOKEN;
  }
  const server = await startWorkerd({ port: 18790, vars, persistTo: dir, output: "ignore", inspectorPort });
  try {
    const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json()) as Array<{ webSocketDebuggerUrl: string; title?: string }>;
    const target = targets.find((t) => t.webSocketDebuggerUrl) ?? targets[0];
    if (!target) throw new Error("no inspector target");
    const room = `profile-${Date.now().toString(36)}`;
    const tokens = await Promise.all(Array.from({ length: writers }, (_, i) => devToken(server.url, `${room}-w${i}`)));
    let acked = 0;
    let counting = false;
    let stop = false;
    const sockets = await Promise.all(
      tokens.map(
        (token, w) =>
          new Promise<WebSocket>((resolve, reject) => {
            const ws = new WebSocket(`${wsUrl(server.url)}/v1/rooms/${room}/ws?token=${encodeURIComponent(token)}&v=2&since=0`, { perMessageDeflate: false });
            let n = 0;
            let sinceReport = 0;
            const sendOne = () => {
              if (!stop) ws.send(JSON.stringify({ type: "send", clientMsgId: `w${w}-${n++}`, text: "profile message: the quick brown fox jumps over the lazy dog 42" }));
            };
            ws.on("message", (data) => {
              const text = String(data);
              if (text.startsWith('{"type":"ready"')) {
                for (let i = 0; i < window; i++) sendOne();
                resolve(ws);
              } else if (text.startsWith('{"type":"ack"')) {
                if (counting) acked++;
                sendOne();
              } else if (text.startsWith('{"type":"message"') && ++sinceReport >= 64) {
                sinceReport = 0;
                const seq = /"seq":(\d+)/.exec(text)?.[1] ?? "0";
                ws.send(`{"type":"received","seq":${seq}}`);
              }
            });
            ws.once("error", reject);
          }),
      ),
    );
    await new Promise((r) => setTimeout(r, 1000)); // warm up
    const inspector = await cdp(target.webSocketDebuggerUrl);
    await inspector.send("Profiler.enable");
    await inspector.send("Profiler.setSamplingInterval", { interval: 200 });
    await inspector.send("Profiler.start");
    counting = true;
    await new Promise((r) => setTimeout(r, seconds * 1000));
    counting = false;
    const { profile } = await inspector.send<{ profile: Profile }>("Profiler.stop");
    stop = true;
    inspector.close();
    for (const ws of sockets) ws.close();

    const totalMs = (profile.endTime - profile.startTime) / 1000;
    const sampleMs = totalMs / Math.max(1, profile.samples?.length ?? 1);
    const byFunction = new Map<string, number>();
    const byPart = new Map<string, number>();
    for (const node of profile.nodes) {
      const ms = (node.hitCount ?? 0) * sampleMs;
      if (!ms) continue;
      const f = node.callFrame;
      const key = `${f.functionName || "(anonymous)"}${f.url ? ` ${f.url.split("/").pop()}:${f.lineNumber + 1}` : ""}`;
      byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
      byPart.set(partOf(f), (byPart.get(partOf(f)) ?? 0) + ms);
    }
    const busyMs = [...byPart].filter(([k]) => k !== "runtime: (idle)").reduce((s, [, v]) => s + v, 0);
    const perMsgUs = (ms: number) => ((ms * 1000) / Math.max(1, acked)).toFixed(1);
    const lines: string[] = [];
    lines.push(`${writers} writers (window ${window}), ${seconds} s, mirror ${args.mirror ? "on" : "off"}: ${acked} messages acked (${Math.round(acked / seconds)} msg/s); isolate busy ${busyMs.toFixed(0)} of ${totalMs.toFixed(0)} ms sampled = ${perMsgUs(busyMs)} µs per message`);
    lines.push("", "| part | ms | µs per message | share of busy |", "|---|---:|---:|---:|");
    for (const [k, v] of [...byPart].sort((a, b) => b[1] - a[1])) {
      if (k === "runtime: (idle)") continue;
      lines.push(`| ${k} | ${v.toFixed(0)} | ${perMsgUs(v)} | ${((v / busyMs) * 100).toFixed(0)}% |`);
    }
    lines.push("", "| function (self time) | ms | µs per message | share of busy |", "|---|---:|---:|---:|");
    for (const [k, v] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
      if (k.startsWith("(idle)")) continue;
      lines.push(`| \`${k.replaceAll("|", "\\|")}\` | ${v.toFixed(0)} | ${perMsgUs(v)} | ${((v / busyMs) * 100).toFixed(1)}% |`);
    }
    const text = lines.join("\n");
    console.log(text);
    if (args.out) {
      const command = `npm run bench:profile -- ${process.argv.slice(2).join(" ")}`;
      await writeFile(args.out, `### ${command}\n\nProduct path (tools/local/workerd.ts), ${new Date().toISOString()}, Node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? "?"}). Sampling CPU profile of workerd's isolate (200 µs) through its inspector; self time per function of the bundle (names and lines are the bundle's; src/room/sockets.ts broadcast includes the native WebSocket sends it makes).\n\n${text}\n`);
    }
  } finally {
    await server.stop();
    await stack.close();
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
