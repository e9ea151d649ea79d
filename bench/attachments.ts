// Attachments (issue #17): how fast uploads stream through the Worker into R2 (wrangler dev's
// local R2, on disk), and what an attachment costs a message on its way from sender to receiver
// (the room checks the upload's row and its object, and binds it in the commit statement)
// against plain text, measured side by side, interleaved, in one run.
//
//   flock /tmp/edge-chat-cpu.lock npm run bench -- --only attachments --splice
import { performance } from "node:perf_hooks";
import { WebSocket } from "ws";
import type { Context } from "./context.js";
import { type Table, tableToMarkdown } from "./report.js";
import { ms, type Summary, summarize } from "./stats.js";
import { devToken, wsUrl } from "./wsclient.js";

export const ATTACHMENTS_TITLE = "Attachments";

export interface UploadRecord {
  sizeBytes: number;
  concurrency: number;
  uploads: number;
  seconds: number;
  mbPerS: number;
  perUpload: Summary;
}

export interface SendRecord {
  kind: "plain text" | "text + 1 attachment" | "text + link + 3 attachments";
  sendToReceive: Summary;
}

export interface AttachmentResults {
  uploads: UploadRecord[];
  sends: SendRecord[];
}

interface Uploaded {
  id: string;
}

const upload = async (url: string, room: string, token: string, body: Uint8Array, name: string): Promise<Uploaded> => {
  const res = await fetch(`${url}/v1/rooms/${room}/attachments?name=${encodeURIComponent(name)}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" },
    body,
    signal: AbortSignal.timeout(60_000),
  });
  const json = (await res.json()) as { attachment?: Uploaded; error?: { message: string } };
  if (res.status !== 201 || !json.attachment) throw new Error(`upload failed: HTTP ${res.status} ${json.error?.message ?? ""}`);
  return json.attachment;
};

/** Opens a socket and resolves once `ready` arrived; `onFrame` sees every later frame. */
const openSocket = (url: string, room: string, token: string, onFrame: (frame: Record<string, unknown>) => void): Promise<WebSocket> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`${wsUrl(url)}/v1/rooms/${room}/ws?token=${encodeURIComponent(token)}&v=2&last=1`);
    let ready = false;
    ws.on("message", (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as Record<string, unknown>;
      if (!ready && frame.type === "ready") {
        ready = true;
        resolve(ws);
        return;
      }
      onFrame(frame);
    });
    ws.on("error", reject);
  });

const randomBytes = (size: number): Uint8Array => {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(size, i + 65536)));
  return out;
};

export async function attachmentBench(ctx: Context, quick: boolean): Promise<AttachmentResults> {
  const url = ctx.url("ours");
  const results: AttachmentResults = { uploads: [], sends: [] };

  // 1. Upload throughput: sequential uploads of one size, then 4 at a time.
  const cases: Array<{ size: number; concurrency: number; count: number }> = [
    { size: 64 * 1024, concurrency: 1, count: quick ? 10 : 40 },
    { size: 1024 * 1024, concurrency: 1, count: quick ? 5 : 20 },
    { size: 8 * 1024 * 1024, concurrency: 1, count: quick ? 2 : 6 },
    { size: 1024 * 1024, concurrency: 4, count: quick ? 8 : 20 },
  ];
  for (const c of cases) {
    // A room and users of its own per case: the pending quota (20 unsent uploads per user and room) is not what is measured.
    const room = ctx.room(`upload-${c.size}-${c.concurrency}`);
    const body = randomBytes(c.size);
    // Users of 19 uploads each (under the pending quota of 20 unsent uploads per user and room).
    const tokens = await Promise.all(Array.from({ length: Math.ceil(c.count / 19) }, (_, i) => devToken(url, `${room}-u${i}`.slice(-64))));
    await upload(url, room, tokens[0] ?? "", body.subarray(0, 1024), "warmup.bin");
    const per: number[] = [];
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: c.concurrency }, async () => {
        for (let index = next++; index < c.count; index = next++) {
          const t0 = performance.now();
          await upload(url, room, tokens[Math.floor((index + 1) / 19)] ?? "", body, "bench.bin");
          per.push(performance.now() - t0);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const record: UploadRecord = {
      sizeBytes: c.size,
      concurrency: c.concurrency,
      uploads: per.length,
      seconds,
      mbPerS: (per.length * c.size) / 1024 / 1024 / seconds,
      perUpload: summarize(per),
    };
    results.uploads.push(record);
    ctx.log("attachments", `upload ${c.size / 1024} KiB ×${c.concurrency}: ${record.mbPerS.toFixed(1)} MiB/s, p50 ${ms(record.perUpload.p50)} ms`);
  }

  // 2. Send → receive, interleaved: a plain text message, a text + 1 attachment message, a text + link + 3 attachments message.
  const room = ctx.room("send-parts");
  const sender = await devToken(url, `${room}-s`.slice(0, 64));
  const receiverToken = await devToken(url, `${room}-r`.slice(0, 64));
  const arrived = new Map<string, number>();
  const receiver = await openSocket(url, room, receiverToken, (frame) => {
    const message = frame.type === "message" ? (frame.message as { clientMsgId?: string } | undefined) : undefined;
    if (message?.clientMsgId) arrived.set(message.clientMsgId, performance.now());
  });
  const acks = new Map<string, (frame: Record<string, unknown>) => void>();
  const socket = await openSocket(url, room, sender, (frame) => {
    const id = typeof frame.clientMsgId === "string" ? frame.clientMsgId : undefined;
    if (id && (frame.type === "ack" || frame.type === "error")) acks.get(id)?.(frame);
  });
  const small = randomBytes(16 * 1024);
  const rounds = quick ? 15 : 60;
  const samples: Record<SendRecord["kind"], number[]> = { "plain text": [], "text + 1 attachment": [], "text + link + 3 attachments": [] };
  const sendOne = async (kind: SendRecord["kind"], i: number, record = true): Promise<void> => {
    // Uploads first, not timed: the row shows what the message itself costs.
    const n = kind === "plain text" ? 0 : kind === "text + 1 attachment" ? 1 : 3;
    const ids = await Promise.all(Array.from({ length: n }, () => upload(url, room, sender, small, "photo.bin").then((a) => a.id)));
    const clientMsgId = `${kind.replace(/\W+/g, "-")}-${i}`;
    const frame =
      n === 0
        ? { type: "send", clientMsgId, text: `benchmark message ${i}` }
        : {
            type: "send",
            clientMsgId,
            parts: [
              { type: "text", text: `benchmark message ${i}` },
              ...(n === 3 ? [{ type: "link", url: "https://example.com/benchmark" }] : []),
              ...ids.map((id) => ({ type: "attachment", id })),
            ],
          };
    const acked = new Promise<Record<string, unknown>>((resolve) => acks.set(clientMsgId, resolve));
    const t0 = performance.now();
    socket.send(JSON.stringify(frame));
    const ack = await acked;
    if (ack.type !== "ack") throw new Error(`send ${clientMsgId} failed: ${JSON.stringify(ack)}`);
    for (let waited = 0; !arrived.has(clientMsgId) && waited < 10_000; waited += 1) await new Promise((r) => setTimeout(r, 1));
    const t1 = arrived.get(clientMsgId);
    if (t1 === undefined) throw new Error(`the receiver never got ${clientMsgId}`);
    if (record) samples[kind].push(t1 - t0);
  };
  for (let i = 0; i < 3; i++) for (const kind of ["plain text", "text + 1 attachment"] as const) await sendOne(kind, -1 - i, false); // warm-up
  for (let i = 0; i < rounds; i++) {
    for (const kind of ["plain text", "text + 1 attachment", "text + link + 3 attachments"] as const) await sendOne(kind, i);
  }
  socket.close();
  receiver.close();
  for (const kind of Object.keys(samples) as SendRecord["kind"][]) {
    const record = { kind, sendToReceive: summarize(samples[kind]) };
    results.sends.push(record);
    ctx.log("attachments", `send → receive, ${kind}: p50 ${ms(record.sendToReceive.p50)} ms, p99 ${ms(record.sendToReceive.p99)} ms`);
  }
  return results;
}

const size = (bytes: number): string => (bytes >= 1024 * 1024 ? `${bytes / 1024 / 1024} MiB` : `${bytes / 1024} KiB`);

export const attachmentTables = (r: AttachmentResults): Table[] => [
  {
    title: "Upload throughput through the Worker into R2 (wrangler dev, local R2)",
    headers: ["file size", "uploads at once", "uploads", "MiB/s", "p50 ms per upload", "p99 ms"],
    numeric: [true, true, true, true, true, true],
    rows: r.uploads.map((u) => [size(u.sizeBytes), String(u.concurrency), String(u.uploads), u.mbPerS.toFixed(1), ms(u.perUpload.p50), ms(u.perUpload.p99)]),
  },
  {
    title: "Send → receive: plain text vs messages with attachments (interleaved, one socket each side)",
    headers: ["message", "n", "p50 ms", "p99 ms", "max ms"],
    numeric: [false, true, true, true, true],
    rows: r.sends.map((s) => [s.kind, String(s.sendToReceive.n), ms(s.sendToReceive.p50), ms(s.sendToReceive.p99), ms(s.sendToReceive.max)]),
    notes: ["uploads before each message are not timed; an attachment adds the room's check (one Postgres read, one R2 head per file) and the binding in the commit statement"],
  },
];

/** The page's "Attachments" section (spliced into docs/benchmarks.md by `--only attachments --splice`). */
export const attachmentsSection = (r: AttachmentResults | undefined, machine: string, date: string, command: string): string => {
  const head = `## ${ATTACHMENTS_TITLE}\n\n`;
  if (!r) return `${head}Not measured in this run (\`--only attachments\` measures it).\n`;
  return `${head}Measured ${date.slice(0, 10)} with \`${command}\` on ${machine}, the machine shared with other work (numbers are for orientation). Uploads stream through the Worker (sniffed, hashed, length-checked) into wrangler dev's local R2, which writes to disk; production R2 is a network hop away instead. The send rows alternate the three kinds of message in one room, so they saw the same load.

${attachmentTables(r)
  .map((t) => tableToMarkdown(t))
  .join("\n\n")}
`;
};
