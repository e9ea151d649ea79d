// A backend consumer of the Redis mirror: follows one room's stream from a seq and prints each
// message exactly once, in order, resuming after restarts from a cursor file. This is how a bot,
// a moderation service or a push-notification worker reads a room without holding a socket.
//
//   npm run consume -- --room lobby [--tenant default] [--redis redis://127.0.0.1:6379]
//                      [--cursor .data/consumer-lobby.cursor] [--url http://127.0.0.1:8787 --token <JWT>]
//
// The stream is trimmed (MIRROR_MAXLEN): if the consumer was away longer than the window holds,
// the next entry's seq jumps past cursor+1. That hole is filled over REST (--url/--token) from the
// durable record, so the output stays contiguous; without them the consumer stops and says so.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import IORedis from "ioredis";

const { Redis } = IORedis;
import type { Message } from "../src/protocol/frames.js";

const { values: args } = parseArgs({
  options: {
    room: { type: "string" },
    tenant: { type: "string", default: "default" },
    redis: { type: "string", default: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" },
    cursor: { type: "string" },
    url: { type: "string" },
    token: { type: "string" },
    once: { type: "boolean", default: false },
  },
});
if (!args.room) {
  console.error("usage: npm run consume -- --room <roomId> [--tenant t] [--redis url] [--url http://… --token JWT]");
  process.exit(2);
}
const room = args.room;
const streamKey = `chat:{${args.tenant}:${room}}:messages`;
const cursorFile = args.cursor ?? `.data/consumer-${args.tenant}-${room}.cursor`;

const loadCursor = async (): Promise<number> => Number((await readFile(cursorFile, "utf8").catch(() => "0")).trim()) || 0;
const saveCursor = async (seq: number): Promise<void> => {
  await mkdir(dirname(cursorFile), { recursive: true });
  await writeFile(cursorFile, String(seq));
};

const print = (m: Message): void => console.log(`[${m.seq}] ${m.userId}: ${m.text}`);

/** Fills seq cursor+1 .. upto-1 from the durable record over REST. */
const fillHole = async (cursor: number, upto: number): Promise<number> => {
  if (!args.url || !args.token) {
    throw new Error(`seqs ${cursor + 1}..${upto - 1} were trimmed from the stream; pass --url and --token to fetch them over REST`);
  }
  let at = cursor;
  while (at < upto - 1) {
    const res = await fetch(`${args.url}/v1/rooms/${room}/messages?after=${at}&limit=${Math.min(1000, upto - 1 - at)}`, {
      headers: { authorization: `Bearer ${args.token}` },
    });
    if (!res.ok) throw new Error(`REST fill failed: ${res.status} ${await res.text()}`);
    const { messages } = (await res.json()) as { messages: Message[] };
    if (messages.length === 0) throw new Error(`REST has nothing after ${at}`);
    for (const m of messages) {
      if (m.seq !== at + 1) throw new Error(`REST returned seq ${m.seq} after ${at}`);
      print(m);
      at = m.seq;
      await saveCursor(at);
    }
  }
  return at;
};

const main = async (): Promise<void> => {
  const redis = new Redis(args.redis, { maxRetriesPerRequest: null });
  let cursor = await loadCursor();
  console.error(`following ${streamKey} after seq ${cursor} (cursor file ${cursorFile})`);
  for (;;) {
    // Entry ids are `<seq>-0`, so "after seq N" is simply the id N-0.
    const reply = (await redis.xread("COUNT", 500, "BLOCK", args.once ? 1000 : 5000, "STREAMS", streamKey, `${cursor}-0`)) as
      | Array<[string, Array<[string, string[]]>]>
      | null;
    const entries = reply?.[0]?.[1] ?? [];
    for (const [id, fields] of entries) {
      const seq = Number(id.split("-")[0]);
      if (seq <= cursor) continue; // already printed (restart between print and save)
      if (seq !== cursor + 1) cursor = await fillHole(cursor, seq);
      const raw = fields[fields.indexOf("message") + 1];
      if (raw === undefined) throw new Error(`entry ${id} has no message field`);
      print(JSON.parse(raw) as Message);
      cursor = seq;
      await saveCursor(cursor);
    }
    if (args.once && entries.length === 0) break;
  }
  redis.disconnect();
};

main().catch((error: unknown) => {
  console.error(`consumer: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
