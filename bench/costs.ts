// Costs per user and per socket (issues 12 and 13): what eager read cursors cost the send path,
// what the rooms list costs at 1,000 rooms (and that it does not grow with the messages), and
// how much memory a socket that stops reading can hold in workerd before the room closes it.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import type { Pool } from "@neondatabase/serverless";
import { MAX_UNCONFIRMED_BYTES } from "../src/protocol/limits.js";
import { neonPool } from "../tools/local/neon.js";
import { type Context, type CpuReport, type ServerKey, TEXT } from "./context.js";
import { rssKiB } from "./cpu.js";
import type { SlowJob, SlowResult, ThroughputJob, ThroughputResult } from "./ipc.js";
import { int, median, ms, type Summary, summarize } from "./stats.js";
import { devToken, latestSeq } from "./wsclient.js";

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

const cpuText = (cpu: CpuReport): string =>
  `cpu: loadgen ${Math.round(cpu.loadgenPct)}% (max proc ${Math.round(cpu.loadgenMaxPct)}%), workerd ${Math.round(cpu.workerdPct)}%, pg ${Math.round(cpu.postgresPct)}%, machine ${Math.round(cpu.machinePct)}%`;

const dbOf = (ctx: Context): Pool => neonPool(ctx.stack.databaseUrl, ctx.stack.neonWsProxy || undefined, 1);

// -----------------------------------------------------------------------------------------------
// 1. Cursor updates vs send throughput

export interface CursorRecord {
  server: ServerKey;
  round: number;
  /** Readers answer every message frame with a `read` frame (true), or never mark read (false). */
  markRead: boolean;
  writers: number;
  readers: number;
  windowMs: number;
  msgPerS: number;
  acked: number;
  warmup: number;
  errors: number;
  /** The room's latest seq over REST after the run: must equal acked + warmup. */
  committed: number;
  ack: Summary;
  readerFrames: number;
  reads: number;
  receipts: number;
  readerErrors: number;
  readersClosed: number;
  /**
   * Write transactions in the whole Postgres cluster during the window (transaction ids assigned:
   * pg_snapshot_xmax at the window's start and end; exact, no statistics lag), and of those the
   * room's commit statements (distinct xmin among the room's messages in that xid range).
   */
  pgWrites: number;
  pgCommits: number;
  cpu: CpuReport;
}

const XID_SQL = "SELECT (pg_snapshot_xmax(pg_current_snapshot())::text)::bigint AS x";

/** The next transaction id; every write statement (autocommit) takes exactly one. */
const nextXid = async (db: Pool): Promise<number> => {
  const { rows } = await db.query<{ x: string }>(XID_SQL);
  return Number(rows[0]?.x ?? Number.NaN);
};

/** Commit statements of a room between two xids: each batch inserts its messages in one statement. */
const commitsBetween = async (db: Pool, room: string, from: number, to: number): Promise<number> => {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(DISTINCT xmin::text) AS n FROM messages
     WHERE tenant = 'default' AND room_id = $1 AND (xmin::text)::bigint >= $2 AND (xmin::text)::bigint < $3`,
    [room, from % 2 ** 32, to % 2 ** 32],
  );
  return Number(rows[0]?.n ?? Number.NaN);
};

export async function cursorCost(ctx: Context, server: ServerKey = "ours"): Promise<CursorRecord[]> {
  const { plan } = ctx;
  const rounds = plan.cursorRounds ?? 3;
  const windowMs = plan.cursorMs ?? 3000;
  const writers = plan.cursorWriters ?? 4;
  const readers = plan.cursorReaders ?? 10;
  const url = ctx.url(server);
  const db = dbOf(ctx);
  const records: CursorRecord[] = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      // Alternate which variant goes first, so that neither always runs on a warmer machine.
      const order = round % 2 === 1 ? [true, false] : [false, true];
      for (const markRead of order) {
        const room = ctx.room(`cur-${markRead ? "read" : "noread"}`);
        const writerUsers = Array.from({ length: writers }, (_, i) => `${room}-w${i}`);
        const readerUsers = Array.from({ length: readers }, (_, i) => `${room}-r${i}`);
        const procs = ctx.pool.size;
        const parts: ThroughputJob[] = Array.from({ length: procs }, (_, p) => ({
          kind: "throughput",
          url,
          room,
          users: writerUsers.filter((_, i) => i % procs === p),
          window: plan.window,
          durationMs: windowMs,
          text: TEXT,
          readers: { users: readerUsers.filter((_, i) => i % procs === p), markRead },
        }));
        let xidStart: Promise<number> = Promise.resolve(Number.NaN);
        let xidEnd: Promise<number> = Promise.resolve(Number.NaN);
        const m = await ctx.measure<ThroughputResult>(server, parts, windowMs, {
          atStart: () => {
            xidStart = nextXid(db);
          },
          atEnd: () => {
            xidEnd = nextXid(db);
          },
        });
        const [from, to] = await Promise.all([xidStart, xidEnd]);
        const pgCommits = await commitsBetween(db, room, from, to);
        const results = m.parts.map((p) => p.result);
        const sum = (f: (r: ThroughputResult) => number): number => results.reduce((s, r) => s + f(r), 0);
        const committed = await latestSeq(url, room, await devToken(url, `${room}-checker`));
        const record: CursorRecord = {
          server,
          round,
          markRead,
          writers,
          readers,
          windowMs,
          msgPerS: (sum((r) => r.ackedInWindow) / windowMs) * 1000,
          acked: sum((r) => r.acked),
          warmup: sum((r) => r.warmup),
          errors: sum((r) => r.errors),
          committed,
          ack: summarize(results.flatMap((r) => r.ackMs)),
          readerFrames: sum((r) => r.readers?.frames ?? 0),
          reads: sum((r) => r.readers?.reads ?? 0),
          receipts: sum((r) => r.readers?.receipts ?? 0),
          readerErrors: sum((r) => r.readers?.errors ?? 0),
          readersClosed: sum((r) => r.readers?.closed ?? 0),
          pgWrites: to - from,
          pgCommits,
          cpu: m.cpu,
        };
        records.push(record);
        const check =
          committed === record.acked + record.warmup &&
          record.errors === 0 &&
          record.readerErrors === 0 &&
          record.readersClosed === 0
            ? ""
            : ` CHECK: latestSeq ${committed} vs ${record.acked} acked + ${record.warmup} warm-up, ${record.errors} send errors, ${record.readerErrors} reader errors, ${record.readersClosed} readers closed`;
        ctx.log(
          "cursors",
          `${markRead ? "mark read" : "no reads "} round ${round}/${rounds}: ${int(record.msgPerS)} msg/s, ack p50 ${ms(record.ack.p50)} ms; readers got ${int(record.readerFrames)} frames, sent ${int(record.reads)} reads, got ${int(record.receipts)} receipts; Postgres writes ${int(record.pgWrites)} (${int(record.pgCommits)} commits) in ${windowMs / 1000} s; ${cpuText(m.cpu)}${check}`,
        );
      }
    }
  } finally {
    await db.end().catch(() => {});
  }
  return records;
}

// -----------------------------------------------------------------------------------------------
// 2. The rooms list at 1,000 rooms

export interface RoomListRecord {
  server: ServerKey;
  rooms: number;
  messagesPerRoom: number;
  messagesTotal: number;
  /** Seeding (direct SQL: rooms, room_members, messages, read_cursors), s. */
  seedS: number;
  /** GET /v1/rooms?limit=<rooms> as the member, end to end from Node (fetch). */
  get: Summary;
  bytes: number;
  /** Wrong answers: a room count, latestSeq or unread that does not match what was seeded. */
  wrong: string[];
  /** The product's statement under EXPLAIN (ANALYZE, BUFFERS): execution ms and blocks touched. */
  sql: Summary;
  sqlBlocks: number;
  /** Reference (not the product): unread counted by scanning messages after the cursor. */
  scan: Summary;
  scanBlocks: number;
  /** False when src/storage/postgres.ts no longer holds the statement copied below. */
  sqlMatches: boolean;
}

/** The product's listing statement, copied from src/storage/postgres.ts (listRoomsOf); checked at run time. */
const LIST_SQL = `SELECT r.room_id, r.name, r.visibility, m.role, r.last_seq, c.read_seq,
                GREATEST(0, r.message_count - COALESCE(c.read_count, 0)) AS unread
         FROM room_members m
         JOIN rooms r ON r.tenant = m.tenant AND r.room_id = m.room_id
         LEFT JOIN read_cursors c ON c.tenant = m.tenant AND c.room_id = m.room_id AND c.user_id = m.user_id
         WHERE m.tenant = $1 AND m.user_id = $2 AND m.left_at IS NULL AND r.deleted_at IS NULL
         ORDER BY r.room_id LIMIT $3`;

/** What the listing would cost without the counters: unread by counting others' messages after the cursor. */
const SCAN_SQL = `SELECT r.room_id, r.last_seq, c.read_seq,
                (SELECT count(*) FROM messages x
                  WHERE x.tenant = m.tenant AND x.room_id = m.room_id AND x.seq > COALESCE(c.read_seq, 0)
                    AND x.kind = 'message' AND x.user_id <> m.user_id) AS unread
         FROM room_members m
         JOIN rooms r ON r.tenant = m.tenant AND r.room_id = m.room_id
         LEFT JOIN read_cursors c ON c.tenant = m.tenant AND c.room_id = m.room_id AND c.user_id = m.user_id
         WHERE m.tenant = $1 AND m.user_id = $2 AND m.left_at IS NULL AND r.deleted_at IS NULL
         ORDER BY r.room_id LIMIT $3`;

const squash = (sql: string): string => sql.replace(/\s+/g, " ").trim();

const listSqlMatches = (): boolean => {
  try {
    const source = readFileSync(resolve(import.meta.dirname, "../src/storage/postgres.ts"), "utf8");
    return squash(source).includes(squash(LIST_SQL));
  } catch {
    return false;
  }
};

/**
 * One user, member of `rooms` open rooms of the default tenant, each holding `perRoom` messages
 * of another user; the member has read the first half of each room (so unread = the rest).
 * Inserted directly (the counters set as the commit statement would: message_count = messages,
 * read_count = messages ≤ read_seq), which takes seconds instead of the hours 200,000 sends would.
 */
async function seedRooms(
  db: Pool,
  prefix: string,
  member: string,
  sender: string,
  rooms: number,
  perRoom: number,
): Promise<void> {
  const roomId = `$1 || '-' || lpad(i::text, 4, '0')`;
  const half = Math.floor(perRoom / 2);
  await db.query(
    `INSERT INTO rooms (tenant, room_id, last_seq, visibility, message_count)
     SELECT 'default', ${roomId}, $2, 'public', $2 FROM generate_series(1, $3) i`,
    [prefix, perRoom, rooms],
  );
  await db.query(
    `INSERT INTO room_members (tenant, room_id, user_id, role)
     SELECT 'default', ${roomId}, u, 'member' FROM generate_series(1, $2) i, unnest($3::text[]) u`,
    [prefix, rooms, [member, sender]],
  );
  await db.query(
    `INSERT INTO messages (tenant, room_id, seq, id, user_id, client_msg_id, text, created_at, kind)
     SELECT 'default', ${roomId}, s, ${roomId} || ':' || s, $4, 'seed-' || s, $5, now(), 'message'
     FROM generate_series(1, $2) i, generate_series(1, $3) s`,
    [prefix, rooms, perRoom, sender, TEXT],
  );
  await db.query(
    `INSERT INTO read_cursors (tenant, room_id, user_id, read_seq, read_count)
     SELECT 'default', ${roomId}, u.user_id, u.seq, u.seq
     FROM generate_series(1, $2) i, unnest($3::text[], $4::bigint[]) AS u(user_id, seq)`,
    [prefix, rooms, [member, sender], [half, perRoom]],
  );
}

interface Explained {
  ms: number;
  blocks: number;
}

const explain = async (db: Pool, sql: string, params: unknown[]): Promise<Explained> => {
  const { rows } = await db.query<{ "QUERY PLAN": Array<{ Plan: Record<string, number>; "Execution Time": number }> }>(
    `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`,
    params,
  );
  const top = rows[0]?.["QUERY PLAN"][0];
  const plan = top?.Plan ?? {};
  return {
    ms: top?.["Execution Time"] ?? Number.NaN,
    blocks: (plan["Shared Hit Blocks"] ?? 0) + (plan["Shared Read Blocks"] ?? 0),
  };
};

export async function roomList(ctx: Context, server: ServerKey = "ours"): Promise<RoomListRecord[]> {
  const { plan } = ctx;
  const rooms = plan.listRooms ?? 1000;
  const sizes = plan.listMessagesPerRoom ?? [10, 200];
  const requests = plan.listRequests ?? 30;
  const url = ctx.url(server);
  const db = dbOf(ctx);
  const sqlMatches = listSqlMatches();
  if (!sqlMatches)
    ctx.log("roomlist", "WARNING: the listing statement in src/storage/postgres.ts changed; update LIST_SQL in bench/costs.ts");
  try {
    const steps: Array<{ perRoom: number; member: string; token: string; seedS: number }> = [];
    for (const perRoom of sizes) {
      const prefix = ctx.room(`list${perRoom}`);
      const member = `${prefix}-member`;
      const t0 = performance.now();
      await seedRooms(db, prefix, member, `${prefix}-sender`, rooms, perRoom);
      const seedS = (performance.now() - t0) / 1000;
      steps.push({ perRoom, member, token: await devToken(url, member), seedS });
      ctx.log(
        "roomlist",
        `seeded ${int(rooms)} rooms × ${int(perRoom)} messages for ${member} in ${seedS.toFixed(1)} s (direct SQL)`,
      );
    }
    // Fresh statistics for the planner, as a database that has lived with these rows would have.
    await db.query("ANALYZE rooms, room_members, read_cursors, messages");
    const samples = steps.map(() => ({
      get: [] as number[],
      bytes: 0,
      wrong: [] as string[],
      sql: [] as Explained[],
      scan: [] as Explained[],
    }));
    const listOnce = async (i: number, timed: boolean): Promise<void> => {
      const step = steps[i];
      const slot = samples[i];
      if (!step || !slot) return;
      const started = performance.now();
      const res = await fetch(`${url}/v1/rooms?limit=${rooms}`, {
        headers: { authorization: `Bearer ${step.token}` },
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      const elapsed = performance.now() - started;
      if (!timed) return;
      slot.get.push(elapsed);
      slot.bytes = text.length;
      const body = JSON.parse(text) as { rooms?: Array<{ latestSeq: number; readSeq: number; unread: number }> };
      const list = body.rooms ?? [];
      const half = Math.floor(step.perRoom / 2);
      if (!res.ok) slot.wrong.push(`HTTP ${res.status}`);
      else if (list.length !== rooms) slot.wrong.push(`${list.length} rooms, expected ${rooms}`);
      else if (list.some((r) => r.latestSeq !== step.perRoom || r.readSeq !== half || r.unread !== step.perRoom - half))
        slot.wrong.push("a room with a wrong latestSeq, readSeq or unread");
    };
    // Warm-up (the Worker's isolate, the planner's caches), then the timed requests, sizes alternating.
    for (let k = 0; k < 3; k++) for (let i = 0; i < steps.length; i++) await listOnce(i, false);
    for (let k = 0; k < requests; k++) {
      for (let j = 0; j < steps.length; j++) await listOnce((j + k) % steps.length, true);
    }
    // The statement itself, from Node (no Worker, no connection setup), and the scan-based reference.
    for (let k = 0; k < 10; k++) {
      for (let i = 0; i < steps.length; i++) {
        const step = steps[i];
        const slot = samples[i];
        if (!step || !slot) continue;
        const params = ["default", step.member, rooms];
        slot.sql.push(await explain(db, LIST_SQL, params));
        slot.scan.push(await explain(db, SCAN_SQL, params));
      }
    }
    return steps.map((step, i): RoomListRecord => {
      const slot = samples[i] ?? { get: [], bytes: 0, wrong: [], sql: [], scan: [] };
      const record: RoomListRecord = {
        server,
        rooms,
        messagesPerRoom: step.perRoom,
        messagesTotal: rooms * step.perRoom,
        seedS: step.seedS,
        get: summarize(slot.get),
        bytes: slot.bytes,
        wrong: slot.wrong,
        sql: summarize(slot.sql.map((e) => e.ms)),
        sqlBlocks: median(slot.sql.map((e) => e.blocks)),
        scan: summarize(slot.scan.map((e) => e.ms)),
        scanBlocks: median(slot.scan.map((e) => e.blocks)),
        sqlMatches,
      };
      ctx.log(
        "roomlist",
        `${int(rooms)} rooms × ${int(step.perRoom)} messages: GET /v1/rooms p50 ${ms(record.get.p50)} ms, p99 ${ms(record.get.p99)} ms (${int(record.bytes)} B); statement ${ms(record.sql.p50)} ms, ${int(record.sqlBlocks)} blocks; scan reference ${ms(record.scan.p50)} ms, ${int(record.scanBlocks)} blocks${record.wrong.length ? ` WRONG: ${record.wrong.length} (${record.wrong[0]})` : ""}`,
      );
      return record;
    });
  } finally {
    await db.end().catch(() => {});
  }
}

// -----------------------------------------------------------------------------------------------
// 3. Slow consumers: bounded memory per socket

export interface SlowRecord {
  server: ServerKey;
  name: string;
  /** Consumers read and report `received` (true), or pause their TCP socket and never report (false). */
  read: boolean;
  sockets: number;
  messages: number;
  /** Characters and UTF-8 bytes of each message's text. */
  textChars: number;
  textBytes: number;
  acked: number;
  writeS: number;
  /** workerd RSS (KiB, VmRSS summed over the server's workerd processes): before the writer, peak while the consumers did not read, and after they drained. */
  rssBeforeKiB: number;
  rssPeakKiB: number;
  rssAfterKiB: number;
  /** Bytes in the kernel's TCP queues of this server's sockets (summed) at the end of the hold: server-side Send-Q, client-side Recv-Q. */
  serverSendQ: number;
  clientRecvQ: number;
  /** Consumers closed with 4503 by the room, and what each had been sent by then (median). */
  closed4503: number;
  closeCodes: string;
  deliveredMedian: number;
  deliveredBytesMedian: number;
  /** The room's bound on unconfirmed data per socket (UTF-16 code units of the frames). */
  boundBytes: number;
  cpu: CpuReport;
}

/**
 * The kernel's share of what the room sent: bytes queued on the server's side of every socket of
 * `port` (Send-Q: not yet acknowledged by the client's kernel) and on the clients' side (Recv-Q:
 * arrived, not yet read by the paused client), from `ss`.
 */
const tcpQueues = (port: string): { serverSendQ: number; clientRecvQ: number } => {
  try {
    const out = execFileSync("ss", ["-tnH", "state", "established", `( sport = :${port} or dport = :${port} )`], {
      encoding: "utf8",
      timeout: 2000,
    });
    let serverSendQ = 0;
    let clientRecvQ = 0;
    for (const line of out.split("\n")) {
      const [recvQ, sendQ, local, peer] = line.trim().split(/\s+/);
      if (!peer) continue;
      if (local?.endsWith(`:${port}`)) serverSendQ += Number(sendQ);
      else if (peer.endsWith(`:${port}`)) clientRecvQ += Number(recvQ);
    }
    return { serverSendQ, clientRecvQ };
  } catch {
    return { serverSendQ: Number.NaN, clientRecvQ: Number.NaN };
  }
};

const THREE_BYTE = "\u6f22"; // 漢: one code point, one UTF-16 unit, three UTF-8 bytes
const asciiText = (chars: number): string => TEXT.repeat(Math.ceil(chars / TEXT.length)).slice(0, chars);

export const SLOW_VARIANTS = [
  { name: "8 sockets that read (received every 64), ASCII text", read: true, text: asciiText(4000) },
  { name: "8 sockets that never read, ASCII text", read: false, text: asciiText(4000) },
  { name: "8 sockets that read (received every 64), 3-byte characters", read: true, text: THREE_BYTE.repeat(4000) },
  { name: "8 sockets that never read, 3-byte characters", read: false, text: THREE_BYTE.repeat(4000) },
] as const;

export async function slowConsumers(ctx: Context, server: ServerKey = "slowmem"): Promise<SlowRecord[]> {
  const { plan } = ctx;
  const sockets = plan.slowSockets ?? 8;
  const count = plan.slowMessages ?? 2500;
  const holdMs = plan.slowHoldMs ?? 1500;
  const records: SlowRecord[] = [];
  for (const [index, variant] of SLOW_VARIANTS.entries()) {
    // Each variant on a freshly started server: memory a previous one left behind (its room's
    // history window, freed buffers the allocator keeps) would blur the growth.
    if (index > 0) await ctx.restart(server);
    const url = ctx.url(server);
    const port = new URL(url).port;
    const groups = ctx.cpuGroups(server);
    await devToken(url, `${ctx.runId}-slow-warm`); // loads the Worker's isolate before "before"
    const room = ctx.room(`slow-${variant.read ? "read" : "paused"}`);
    const name = variant.name.replace(/^8 /, `${sockets} `);
    const job: SlowJob = {
      kind: "slow",
      url,
      room,
      writer: `${room}-writer`,
      consumers: Array.from({ length: sockets }, (_, i) => `${room}-c${i}`),
      read: variant.read,
      count,
      window: 16,
      holdMs,
      text: variant.text,
    };
    const samples: Array<{ at: number; workerd: number; serverSendQ: number; clientRecvQ: number }> = [];
    const sample = (): void => {
      samples.push({
        at: performance.timeOrigin + performance.now(),
        workerd: rssKiB(groups).workerd ?? Number.NaN,
        ...tcpQueues(port),
      });
    };
    let before = Number.NaN;
    const poll = setInterval(sample, 200);
    let m: Awaited<ReturnType<typeof ctx.measure<SlowResult>>>;
    try {
      m = await ctx.measure<SlowResult>(server, [job], 0, {
        atStart: () => {
          before = rssKiB(groups).workerd ?? Number.NaN;
        },
      });
    } finally {
      clearInterval(poll);
    }
    await sleep(1000);
    const after = rssKiB(groups).workerd ?? Number.NaN;
    const r = m.parts[0]?.result;
    if (!r) throw new Error("slow: no result");
    // The peak while nobody read: from the writer's first send until the consumers resumed.
    const held = samples.filter((s) => s.at >= r.writeStartAt && s.at <= r.resumeAt);
    const peak = (f: (s: (typeof samples)[number]) => number): number => Math.max(...held.map(f).filter(Number.isFinite));
    // The last sample before the resume: the writer is done, the room has closed the slow sockets,
    // and what it sent them is in workerd's queues or in the kernel's, none of it read yet.
    const atHold = held[held.length - 1];
    const closed = r.consumers.filter((c) => c.closeCode === 4503);
    const codes = new Map<string, number>();
    for (const c of r.consumers) {
      const key = c.closeCode === undefined ? "open" : String(c.closeCode);
      codes.set(key, (codes.get(key) ?? 0) + 1);
    }
    const record: SlowRecord = {
      server,
      name,
      read: variant.read,
      sockets,
      messages: count,
      textChars: [...variant.text].length,
      textBytes: Buffer.byteLength(variant.text),
      acked: r.acked,
      writeS: (r.writeEndAt - r.writeStartAt) / 1000,
      rssBeforeKiB: before,
      rssPeakKiB: peak((s) => s.workerd),
      rssAfterKiB: after,
      serverSendQ: atHold?.serverSendQ ?? Number.NaN,
      clientRecvQ: atHold?.clientRecvQ ?? Number.NaN,
      closed4503: closed.length,
      closeCodes: [...codes].map(([code, n]) => `${n}× ${code}`).join(", "),
      deliveredMedian: median(r.consumers.map((c) => c.messages)),
      deliveredBytesMedian: median(r.consumers.map((c) => c.bytes)),
      boundBytes: MAX_UNCONFIRMED_BYTES,
      cpu: m.cpu,
    };
    records.push(record);
    const growth = record.rssPeakKiB - record.rssBeforeKiB;
    ctx.log(
      "slow",
      `${name}: ${int(r.acked)}/${int(count)} acked in ${record.writeS.toFixed(1)} s; workerd RSS ${(record.rssBeforeKiB / 1024).toFixed(1)} → peak ${(record.rssPeakKiB / 1024).toFixed(1)} MiB (+${(growth / 1024).toFixed(1)} MiB, ${(growth / 1024 / sockets).toFixed(2)} MiB per socket) → ${(after / 1024).toFixed(1)} MiB after; kernel queues at the end of the hold: server Send-Q ${(record.serverSendQ / 1048576).toFixed(1)} MiB, client Recv-Q ${(record.clientRecvQ / 1048576).toFixed(1)} MiB; closes ${record.closeCodes}; delivered median ${int(record.deliveredMedian)} messages, ${(record.deliveredBytesMedian / 1048576).toFixed(2)} MiB`,
    );
  }
  return records;
}
