// The page section of bench/costs.ts: read cursors vs send throughput, the rooms list at 1,000
// rooms, slow consumers. A section of its own, so that `--splice` can rewrite it in
// docs/benchmarks.md without re-measuring (or touching) the rest of the page.
import { SERVERS } from "./context.js";
import type { Results } from "./document.js";
import { machineLine } from "./machine.js";
import type { CursorRecord, RoomListRecord, SlowRecord } from "./costs.js";
import { type Table, tableToMarkdown } from "./report.js";
import { int, median, ms, ratio } from "./stats.js";

export const COSTS_TITLE = "Read cursors, the rooms list and slow consumers";

const pct = (value: number): string => (Number.isFinite(value) ? `${Math.round(value)}%` : "–");
const mib = (kib: number): string => (Number.isFinite(kib) ? (kib / 1024).toFixed(1) : "–");
const medianOf = <T>(records: readonly T[], f: (r: T) => number): number =>
  records.length ? median(records.map(f)) : Number.NaN;

/** Median over rounds of msg/s marking read ÷ msg/s not marking (the two ran back to back). */
const cursorRatio = (records: readonly CursorRecord[]): number => {
  const ratios: number[] = [];
  for (const a of records.filter((r) => r.markRead)) {
    const b = records.find((r) => !r.markRead && r.round === a.round);
    if (b && b.msgPerS > 0) ratios.push(a.msgPerS / b.msgPerS);
  }
  return ratios.length ? median(ratios) : Number.NaN;
};

const perS = (r: CursorRecord, n: number): number => (n / r.windowMs) * 1000;

export const cursorTable = (r: Results): Table | undefined => {
  const cs = r.cursors ?? [];
  if (!cs.length) return undefined;
  const first = cs[0] as CursorRecord;
  const rows = [true, false].map((markRead) => {
    const rs = cs.filter((c) => c.markRead === markRead);
    return [
      markRead ? "mark read on every message frame" : "never mark read",
      int(medianOf(rs, (c) => c.msgPerS)),
      rs.map((c) => int(c.msgPerS)).join(", "),
      markRead ? ratio(cursorRatio(cs)) : "1 (baseline)",
      `${ms(medianOf(rs, (c) => c.ack.p50))} / ${ms(medianOf(rs, (c) => c.ack.p99))}`,
      int(medianOf(rs, (c) => perS(c, c.reads))),
      int(medianOf(rs, (c) => perS(c, c.receipts))),
      int(medianOf(rs, (c) => perS(c, c.pgWrites))),
      int(medianOf(rs, (c) => perS(c, c.pgCommits))),
      medianOf(rs, (c) => perS(c, c.pgWrites - c.pgCommits)).toFixed(1),
      pct(medianOf(rs, (c) => c.cpu.workerdPct)),
      pct(medianOf(rs, (c) => c.cpu.postgresPct)),
      pct(medianOf(rs, (c) => c.cpu.loadgenMaxPct)),
    ];
  });
  const bad = cs.filter((c) => c.committed !== c.acked + c.warmup || c.errors || c.readerErrors || c.readersClosed);
  return {
    title: `Cursor updates vs send throughput: ${first.writers} writers, ${first.readers} reader sockets, one room`,
    headers: [
      "readers",
      "committed msg/s",
      "per round",
      "ratio",
      "send→ack p50 / p99 ms",
      "read frames/s",
      "receipts received/s",
      "Postgres writes/s",
      "of which commits/s",
      "other writes/s (cursors)",
      "workerd",
      "postgres",
      "busiest load gen",
    ],
    numeric: [false, true, false, true, true, true, true, true, true, true, true, true, true],
    rows,
    notes: [
      `Writers as in the throughput table (closed loop, ${r.plan.window} sends in flight each, one WebSocket per writer); ${first.readers} more sockets of ${first.readers} other users (protocol 2, so they also get the receipts) only receive. "Mark read": each reader answers every \`message\` frame with \`{"type":"read","seq":<that message's seq>}\`, as an eager client would; "never": the same readers send nothing but the \`received\` flow-control frame every 64 entries (both variants send it). msg/s = acks in a ${first.windowMs / 1000} s window, median of ${Math.max(...cs.map((c) => c.round))} round(s), the variants back to back in alternating order, a fresh room each; the ratio is the median of the per-round ratios.`,
      "Postgres writes: transaction ids assigned in the whole cluster during the window (`pg_snapshot_xmax(pg_current_snapshot())` at its start and end: every write statement takes one, reads none; exact, no statistics lag); commits: distinct `xmin` among the room's messages in that range (one per group-commit statement); other = the difference: the coalesced cursor writes (one statement per 250 ms per room), plus anything else that wrote meanwhile (e.g. autovacuum's ANALYZE). CPU in % of one core over the window.",
      bad.length === 0
        ? "Check: after every run the room's latestSeq equalled the acks plus the warm-ups; no send or reader got an error frame and no reader socket closed."
        : `CHECK FAILED in ${bad.length} run(s): ${bad.map((c) => `round ${c.round} ${c.markRead ? "mark read" : "no reads"}: latestSeq ${c.committed} vs ${c.acked} + ${c.warmup}, ${c.errors} send errors, ${c.readerErrors} reader errors, ${c.readersClosed} readers closed`).join("; ")}`,
    ],
  };
};

export const roomListTable = (r: Results): Table | undefined => {
  const ls = r.roomList ?? [];
  if (!ls.length) return undefined;
  const first = ls[0] as RoomListRecord;
  return {
    title: `The rooms list: \`GET /v1/rooms?limit=${first.rooms}\` for a member of ${int(first.rooms)} rooms`,
    headers: [
      "messages per room",
      "messages in those rooms",
      "n",
      "GET p50 ms",
      "p99 ms",
      "max ms",
      "answer",
      "statement p50 ms",
      "blocks touched",
      "reference: scan-based unread p50 ms",
      "its blocks",
      "answers checked",
    ],
    numeric: [true, true, true, true, true, true, true, true, true, true, true, false],
    rows: ls.map((x) => [
      int(x.messagesPerRoom),
      int(x.messagesTotal),
      int(x.get.n),
      ms(x.get.p50),
      ms(x.get.p99),
      ms(x.get.max),
      `${int(x.rooms)} rooms, ${(x.bytes / 1024).toFixed(0)} KiB`,
      x.sqlMatches ? ms(x.sql.p50) : `${ms(x.sql.p50)} (statement changed in src/)`,
      int(x.sqlBlocks),
      ms(x.scan.p50),
      int(x.scanBlocks),
      x.wrong.length ? `${x.wrong.length} wrong: ${x.wrong[0]}` : "all right",
    ]),
    notes: [
      `Seeded by direct SQL (not through the API; ${ls.map((x) => `${x.seedS.toFixed(1)} s for ${int(x.messagesTotal)} messages`).join(", ")}): for each row a fresh user is a member of ${int(first.rooms)} open (public) rooms of the default tenant, each holding that many messages of another member, with \`rooms.message_count\`, \`read_cursors.read_count\` and \`last_seq\` set as the commit statement sets them; the user has read the first half of every room, so every room has unread messages. Then \`ANALYZE\` on the four tables.`,
      `GET: from Node (fetch, connection kept alive) through the Worker, which opens a Postgres connection for each request (through the local wsproxy) and runs one statement; 3 untimed requests per user first, then the users alternating. Every answer was checked: ${int(first.rooms)} rooms, each with the seeded latestSeq, readSeq and unread. Statement: the product's listing statement (copied from \`src/storage/postgres.ts\`, checked against it at run time) under \`EXPLAIN (ANALYZE, BUFFERS)\` from Node, 10 times per user: execution time and shared blocks touched (hit + read). Reference (not the product): the same list counting unread by scanning the messages after each cursor, what the counters replace.`,
    ],
  };
};

const growthKiB = (x: SlowRecord): number => x.rssPeakKiB - x.rssBeforeKiB;

/**
 * Where what the room sent one slow socket was at the end of the hold (MiB): the client counted
 * it all after resuming; the kernel's queues (ss) hold part; the rest was still queued in workerd.
 */
const slowShares = (x: SlowRecord): { sent: number; sendQ: number; recvQ: number; workerd: number; server: number } => {
  const sent = x.deliveredBytesMedian / 1048576;
  const sendQ = x.serverSendQ / 1048576 / x.sockets;
  const recvQ = x.clientRecvQ / 1048576 / x.sockets;
  const workerd = Math.max(0, sent - sendQ - recvQ);
  return { sent, sendQ, recvQ, workerd, server: workerd + sendQ };
};

export const slowTable = (r: Results): Table | undefined => {
  const ss = r.slow ?? [];
  if (!ss.length) return undefined;
  const first = ss[0] as SlowRecord;
  const bound = first.boundBytes / 1048576;
  const f2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : "–");
  return {
    title: `Slow consumers: memory per socket while ${first.sockets} sockets do not read`,
    headers: [
      "consumers",
      "text per message",
      "messages sent",
      "closed by the room",
      "sent to each socket (median)",
      "per socket: in workerd MiB",
      "+ server kernel Send-Q MiB",
      "= held on the server MiB",
      `÷ ${bound} MiB bound`,
      "client kernel Recv-Q MiB",
      "workerd RSS before MiB",
      "peak MiB",
      "growth MiB",
      "growth per socket MiB",
    ],
    numeric: [false, false, true, false, true, true, true, true, true, true, true, true, true, true],
    rows: ss.map((x) => {
      const share = slowShares(x);
      return [
        x.name,
        `${int(x.textChars)} chars, ${(x.textBytes / 1024).toFixed(1)} KiB`,
        int(x.messages),
        x.closed4503 ? `${x.closed4503} of ${x.sockets} with 4503` : `none (${x.closeCodes})`,
        `${int(x.deliveredMedian)} messages, ${(x.deliveredBytesMedian / 1048576).toFixed(1)} MiB`,
        x.read ? "–" : f2(share.workerd),
        f2(share.sendQ),
        x.read ? "–" : f2(share.server),
        x.read ? "–" : `${(share.server / bound).toFixed(2)}×`,
        f2(share.recvQ),
        mib(x.rssBeforeKiB),
        mib(x.rssPeakKiB),
        mib(growthKiB(x)),
        f2(growthKiB(x) / 1024 / x.sockets),
      ];
    }),
    notes: [
      `One \`wrangler dev\` of its own (ours, nothing else ran on it), restarted before each row, so no row inherits another's memory. One writer (reading normally) sends ${int(first.messages)} messages closed-loop (16 in flight) into a fresh room with ${first.sockets} consumer sockets (${first.sockets} users). "Never read": each consumer calls \`ws.pause()\` (Node \`ws\`: stops reading its TCP socket) right after \`ready\` and sends no \`received\` frame; ${(r.plan.slowHoldMs ?? 1500) / 1000} s after the writer's last ack (the hold) it resumes reading and counts the message frames (bytes as on the wire) it had been sent before the room's \`error\` frame and close. "Read": consumers read and send \`received\` every 64 entries, as the SDK does.`,
      `Per socket, at the end of the hold: what the room had sent it is either still queued in workerd, or in the kernel's queues: \`ss\` gives the bytes on the server's side (Send-Q: written by workerd, not yet taken by the client's kernel) and on the client's side (Recv-Q: arrived, not read), averaged over the ${first.sockets} consumer sockets; "in workerd" = sent − Send-Q − Recv-Q. "Held on the server" = in workerd + Send-Q (the client's Recv-Q would be on the client's device).`,
      `RSS: VmRSS summed over the server's workerd processes, sampled every 200 ms from /proc; "peak" is the largest sample between the writer's first send and the resume, "before" right before the first send. RSS is a rough cross-check only: it includes what any room of that size holds (its history window of up to 1,000 messages, V8's heap, frames queued for sockets that read but lag behind a 2-core machine), and freed memory stays in it (after the drain it did not go down).`,
      `The room's bound (MAX_UNCONFIRMED_BYTES, ${bound} MiB) counts the UTF-16 code units of the frames it sent since the socket's last \`received\`: bytes for ASCII, a third of the UTF-8 bytes for 3-byte characters.`,
    ],
  };
};

export const costsTables = (r: Results): Table[] =>
  [cursorTable(r), roomListTable(r), slowTable(r)].filter((t): t is Table => t !== undefined);

const cursorSummary = (r: Results): string | undefined => {
  const cs = r.cursors ?? [];
  if (!cs.length) return undefined;
  const on = cs.filter((c) => c.markRead);
  const off = cs.filter((c) => !c.markRead);
  const other = (rs: CursorRecord[]): string => medianOf(rs, (c) => perS(c, c.pgWrites - c.pgCommits)).toFixed(1);
  return `**Cursor updates:** ${cs[0]?.readers} readers marking read on every message frame (${int(medianOf(on, (c) => perS(c, c.reads)))} read frames/s): ${int(medianOf(on, (c) => c.msgPerS))} msg/s vs ${int(medianOf(off, (c) => c.msgPerS))} msg/s with the same readers not marking read (${ratio(cursorRatio(cs))}, ${cs[0]?.writers} writers). Postgres write statements ${int(medianOf(on, (c) => perS(c, c.pgWrites)))}/s vs ${int(medianOf(off, (c) => perS(c, c.pgWrites)))}/s, of which not commits ${other(on)}/s vs ${other(off)}/s: the cursor writes are coalesced (one statement per 250 ms).`;
};

const listSummary = (r: Results): string | undefined => {
  const ls = r.roomList ?? [];
  const lo = ls[0];
  const hi = ls[ls.length - 1];
  if (!lo || !hi || lo === hi) return undefined;
  return `**Rooms list at ${int(lo.rooms)} rooms:** \`GET /v1/rooms?limit=${lo.rooms}\` p50 ${ms(lo.get.p50)} / p99 ${ms(lo.get.p99)} ms with ${int(lo.messagesPerRoom)} messages per room vs ${ms(hi.get.p50)} / ${ms(hi.get.p99)} ms with ${int(hi.messagesPerRoom)} (${ratio(hi.get.p50 / lo.get.p50)} at p50); the statement itself ${ms(lo.sql.p50)} vs ${ms(hi.sql.p50)} ms (${int(lo.sqlBlocks)} vs ${int(hi.sqlBlocks)} blocks), where counting unread by a scan would take ${ms(lo.scan.p50)} vs ${ms(hi.scan.p50)} ms.`;
};

const slowSummary = (r: Results): string | undefined => {
  const ss = r.slow ?? [];
  if (!ss.length) return undefined;
  const parts = ss
    .filter((x) => !x.read)
    .map((x) => {
      const share = slowShares(x);
      const bound = x.boundBytes / 1048576;
      return `with ${(x.textBytes / 1024).toFixed(1)} KiB texts, ${x.closed4503} of ${x.sockets} were closed with 4503 after ${share.sent.toFixed(1)} MiB each (${(share.sent / bound).toFixed(2)}× the ${bound} MiB bound), of which ${share.server.toFixed(1)} MiB per socket were held on the server (${share.workerd.toFixed(1)} MiB queued in workerd, ${share.sendQ.toFixed(1)} MiB in the kernel's send queue)`;
    });
  const readers = ss.filter((x) => x.read);
  const readersText = readers.every((x) => x.closed4503 === 0)
    ? "no reading socket was closed"
    : "SOME READING SOCKETS WERE CLOSED";
  return `**Slow consumers** (${ss[0]?.sockets} sockets that never read, ${int(ss[0]?.messages ?? 0)} messages of 4,000 characters): ${parts.join("; ")}; ${readersText}. The bound counts UTF-16 code units, so 3-byte characters triple what it lets through.`;
};

/** The whole section, `## …` included. */
export const costsSection = (r: Results): string => {
  const tables = costsTables(r);
  const head = `## ${COSTS_TITLE}\n\n`;
  if (!tables.length) return `${head}Not measured in this run (\`--only cursors,roomlist,slow\` measures it).\n`;
  const m = r.machine;
  const servers = [...new Set([...(r.cursors ?? []), ...(r.roomList ?? []), ...(r.slow ?? [])].map((x) => x.server))];
  const ownRun =
    !r.throughput.length &&
    !r.rates.length &&
    !r.connects.length &&
    !r.mirror &&
    !r.joinView &&
    !r.fanout?.length &&
    !r.rooms?.length;
  const summary = [cursorSummary(r), listSummary(r), slowSummary(r)].filter((s): s is string => s !== undefined);
  return `${head}Measured by \`${r.command}\`${r.quick ? " (quick: smoke-test durations, numbers are rough)" : ""} on ${machineLine(m)}, ${r.date}, code ${m.code}, load average at start ${m.loadAvg}, ${m.postgres}; servers (each its own \`wrangler dev\`, the stack's vars as in Setup): ${servers.map((k) => `**${SERVERS[k].short}** = ${SERVERS[k].label}`).join("; ")}. ${
    ownRun
      ? "A run of its own, written into this page with `--splice`: only this section (and How to run) came from it; the rest of the page is from the run named in Setup."
      : "The same run as the rest of the page."
  }

${summary.map((s) => `- ${s}`).join("\n")}

${tables.map((t) => tableToMarkdown(t)).join("\n\n")}
`;
};
