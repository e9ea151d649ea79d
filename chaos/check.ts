// The invariants, as pure functions of what the run recorded and what Postgres and Redis hold
// after the heal. Each finding names its invariant, its room and the evidence (which client,
// which seq, which session), so a failure can be read without re-running anything.

import { isErrorCode } from "../src/protocol/errors.js";
import type { Entry } from "../src/protocol/frames.js";
import { type ErrorTally, type RoomRecord, type RoomTruth, type StoredRow, type StreamTruth, sendKey } from "./model.js";

export const Invariant = {
  /** Every acked message is in Postgres exactly once, at the seq it was acked with, with its text. */
  AckedStoredOnce: "acked-stored-once",
  /** Postgres holds seq 1..N with no hole, and rooms.last_seq is N. */
  PostgresContiguous: "postgres-contiguous",
  /** Each client's view is contiguous from its first seq, with no duplicate, in order. */
  ViewContiguous: "view-contiguous",
  /** Every client was told exactly what Postgres holds for each seq, so all clients agree. */
  ClientsAgree: "clients-agree",
  /** Every seq in Postgres was acked, or its sender got `unavailable`, a timeout or a lost connection. */
  NoPhantom: "no-phantom",
  /** After the heal, the Redis stream is Postgres' newest window, contiguous, entry for entry. */
  RedisEqualsPostgres: "redis-equals-postgres",
  /** `ready` first and once per socket, ending at its latestSeq, with all the owed history unless truncated. */
  Handshake: "handshake",
  /** Every error is a documented code, and one that a valid request can get (`unavailable`, `rate_limited`). */
  DocumentedErrors: "documented-errors",
  /** After the heal every send is acked and every member has caught up with Postgres. */
  Liveness: "liveness",
} as const;
export type Invariant = (typeof Invariant)[keyof typeof Invariant];

export interface Finding {
  invariant: Invariant;
  room: string;
  detail: string;
}

/** All-zero counts: `sent` and `delivered` start from what is known. */
export const zeroCounts = (sent = 0, delivered: number[] = []): RoomCounts => ({
  sent,
  acked: 0,
  ambiguousResolved: 0,
  ambiguousOpen: 0,
  delivered,
  lost: 0,
  duplicated: 0,
  misordered: 0,
  disagreements: 0,
  phantoms: 0,
  stuck: 0,
});

export interface RoomCounts {
  sent: number;
  acked: number;
  /** Sends with an unknown outcome at some point that were later acked or found in Postgres. */
  ambiguousResolved: number;
  /** Committed, never acked, sender had an unknown outcome: legitimate, but the ack never came back. */
  ambiguousOpen: number;
  /** Messages delivered to each client. */
  delivered: number[];
  lost: number;
  duplicated: number;
  misordered: number;
  disagreements: number;
  phantoms: number;
  /** Sends still unacked and not in Postgres after the heal. */
  stuck: number;
}

/** Codes a valid request may get under faults; anything else means the server misjudged us or has a bug. */
export const RETRYABLE_CODES: ReadonlySet<string> = new Set(["unavailable", "rate_limited"]);

const MESSAGE_FIELDS = ["seq", "id", "userId", "text", "clientMsgId", "createdAt"] as const;

/** The fields where a message differs from its Postgres row ("" when equal). */
export const messageDiff = (roomId: string, message: Entry, row: StoredRow): string => {
  const diffs: string[] = [];
  if (message.roomId !== roomId) diffs.push(`roomId ${JSON.stringify(message.roomId)}≠${JSON.stringify(roomId)}`);
  for (const field of MESSAGE_FIELDS) {
    if (message[field] !== row[field]) diffs.push(`${field} ${JSON.stringify(message[field])}≠${JSON.stringify(row[field])}`);
  }
  return diffs.join(", ");
};

/** Keeps findings readable: at most `limit` per (invariant, room), then one line with the rest counted. */
class Findings {
  readonly list: Finding[] = [];
  private readonly counts = new Map<string, number>();
  constructor(private readonly limit = 6) {}

  add(invariant: Invariant, room: string, detail: string): void {
    const key = `${invariant}\u0000${room}`;
    const n = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, n);
    if (n <= this.limit) this.list.push({ invariant, room, detail });
  }

  finish(): Finding[] {
    for (const [key, n] of this.counts) {
      if (n <= this.limit) continue;
      const [invariant, room] = key.split("\u0000") as [Invariant, string];
      this.list.push({ invariant, room, detail: `… and ${n - this.limit} more like these` });
    }
    return this.list;
  }
}

/**
 * Checks one room. `truth` is read after the heal and the drain (no sends in flight, every fault
 * off), so Postgres is final.
 */
export function checkRoom(record: RoomRecord, truth: RoomTruth): { counts: RoomCounts; findings: Finding[] } {
  const { room } = record;
  const f = new Findings();
  const counts: RoomCounts = zeroCounts(record.sends.length, record.clients.map((c) => c.view.length));

  // --- Postgres on its own: 1..N, last_seq = N ----------------------------------------------
  const bySeq = new Map<number, StoredRow>();
  const byKey = new Map<string, StoredRow[]>();
  truth.rows.forEach((row, index) => {
    if (row.seq !== index + 1) {
      f.add(Invariant.PostgresContiguous, room, `row ${index + 1} has seq ${row.seq} (expected ${index + 1})`);
    }
    bySeq.set(row.seq, row);
    const key = sendKey(room, row.userId, row.clientMsgId);
    byKey.set(key, [...(byKey.get(key) ?? []), row]);
  });
  const pgLast = truth.rows.at(-1)?.seq ?? 0;
  if ((truth.lastSeq ?? 0) !== pgLast) {
    f.add(Invariant.PostgresContiguous, room, `rooms.last_seq is ${truth.lastSeq} but the newest message is seq ${pgLast}`);
  }

  // --- Sends: acked → stored once at that seq; ambiguous ones resolved ----------------------
  const sends = new Map(record.sends.map((s) => [sendKey(room, s.userId, s.clientMsgId), s]));
  for (const [key, send] of sends) {
    const stored = byKey.get(key) ?? [];
    const ackSeqs = [...new Set(send.acks.map((a) => a.seq))];
    const who = `${send.userId}/${send.clientMsgId}`;
    if (stored.length > 1) {
      counts.duplicated += stored.length - 1;
      f.add(
        Invariant.AckedStoredOnce,
        room,
        `${who} is stored ${stored.length} times: seqs ${stored.map((r) => r.seq).join(", ")}`,
      );
    }
    if (ackSeqs.length > 1) {
      counts.duplicated += ackSeqs.length - 1;
      const how = send.acks.map((a) => `${a.via}${a.status ? ` ${a.status}` : ""}${a.repeat ? " (repeat)" : ""} → ${a.seq}`);
      f.add(Invariant.AckedStoredOnce, room, `${who} was acked with different seqs: ${how.join("; ")}`);
    }
    const fresh = send.acks.filter((a) => a.status === 201);
    if (fresh.length > 1) {
      counts.duplicated += fresh.length - 1;
      f.add(
        Invariant.AckedStoredOnce,
        room,
        `${who} was answered 201 (new) ${fresh.length} times: seqs ${fresh.map((a) => a.seq).join(", ")}`,
      );
    }
    const row = stored[0];
    if (send.acks.length > 0) {
      counts.acked++;
      if (!row) {
        counts.lost++;
        const there = ackSeqs.map((s) => bySeq.get(s)).map((r) => (r ? `${r.userId}/${r.clientMsgId}` : "nothing"));
        f.add(
          Invariant.AckedStoredOnce,
          room,
          `${who} was acked as seq ${ackSeqs.join("/")} but is not in Postgres (which has ${there.join("/")} there)`,
        );
        continue;
      }
      if (!ackSeqs.includes(row.seq) || ackSeqs.length !== 1) {
        counts.disagreements++;
        f.add(
          Invariant.AckedStoredOnce,
          room,
          `${who} was acked as seq ${ackSeqs.join("/")} but Postgres has it at seq ${row.seq}`,
        );
      }
      if (row.text !== send.text) {
        counts.disagreements++;
        f.add(
          Invariant.AckedStoredOnce,
          room,
          `${who} at seq ${row.seq}: stored text ${JSON.stringify(row.text)} ≠ sent ${JSON.stringify(send.text)}`,
        );
      }
      for (const ack of send.acks) {
        if (ack.id !== undefined && ack.seq === row.seq && (ack.id !== row.id || ack.createdAt !== row.createdAt)) {
          counts.disagreements++;
          f.add(
            Invariant.ClientsAgree,
            room,
            `ack for ${who} carried id ${ack.id} / ${ack.createdAt}; Postgres has ${row.id} / ${row.createdAt}`,
          );
        }
        if (!ack.message) continue;
        const diff = messageDiff(room, ack.message, row);
        if (diff) {
          counts.disagreements++;
          f.add(Invariant.ClientsAgree, room, `HTTP ${ack.status} answer for ${who} differs from Postgres: ${diff}`);
        }
      }
      if (send.uncertain > 0) counts.ambiguousResolved++;
    } else if (row) {
      if (send.uncertain > 0) {
        counts.ambiguousResolved++;
        counts.ambiguousOpen++;
        if (!send.abandoned) {
          f.add(
            Invariant.Liveness,
            room,
            `${who} is committed at seq ${row.seq} but its sender never got an ack after ${send.attempts} attempts`,
          );
        }
      }
      // Committed without an ack and without an unknown outcome: handled as a phantom below.
    } else if (!send.abandoned) {
      counts.stuck++;
      f.add(
        Invariant.Liveness,
        room,
        `${who} was never acked and is not in Postgres after ${send.attempts} attempts (codes: ${send.definite.join(",") || "none"})`,
      );
    }
  }

  // --- No phantom: every stored row was acked or had an unknown outcome ---------------------
  for (const row of truth.rows) {
    const send = sends.get(sendKey(room, row.userId, row.clientMsgId));
    if (!send) {
      counts.phantoms++;
      f.add(Invariant.NoPhantom, room, `seq ${row.seq} (${row.userId}/${row.clientMsgId}) was never sent by any client`);
    } else if (send.acks.length === 0 && send.uncertain === 0) {
      counts.phantoms++;
      const told = send.definite.length ? `was told ${send.definite.join(", ")}` : "got no answer at all";
      f.add(Invariant.NoPhantom, room, `seq ${row.seq} (${row.userId}/${row.clientMsgId}) is committed but its sender ${told}`);
    }
  }

  // --- Each client's view: contiguous, no duplicate, in order, equal to Postgres ------------
  for (const client of record.clients) {
    for (const breach of client.protocol) f.add(Invariant.Handshake, room, `${client.userId}: ${breach}`);
    const seen = new Set<number>();
    let highest = Number.NEGATIVE_INFINITY;
    let first: number | undefined;
    const where = (i: number): string => {
      const d = client.view[i];
      return d ? `(delivery #${i + 1}, session ${d.session}, ${d.source})` : "";
    };
    const jumps: string[] = [];
    client.view.forEach((d, i) => {
      first ??= d.seq;
      if (d.seq > highest + 1 && i > 0) jumps.push(`${highest}→${d.seq} ${where(i)}`);
      if (seen.has(d.seq)) {
        counts.duplicated++;
        f.add(Invariant.ViewContiguous, room, `${client.userId} got seq ${d.seq} twice ${where(i)}`);
      } else if (d.seq < highest) {
        counts.misordered++;
        f.add(Invariant.ViewContiguous, room, `${client.userId} got seq ${d.seq} after seq ${highest} ${where(i)}`);
      }
      seen.add(d.seq);
      highest = Math.max(highest, d.seq);
      const row = bySeq.get(d.seq);
      if (!row) {
        counts.disagreements++;
        f.add(Invariant.ClientsAgree, room, `${client.userId} got seq ${d.seq}, which is not in Postgres ${where(i)}`);
        return;
      }
      const diff = messageDiff(room, d.message, row);
      if (diff) {
        counts.disagreements++;
        f.add(
          Invariant.ClientsAgree,
          room,
          `${client.userId} got a seq ${d.seq} that differs from Postgres: ${diff} ${where(i)}`,
        );
      }
    });
    if (first !== undefined) {
      const holes: number[] = [];
      for (let s = first; s <= highest; s++) if (!seen.has(s)) holes.push(s);
      if (holes.length > 0) {
        counts.lost += holes.length;
        // Which messages they were (Postgres' row), and where the view jumped over them.
        const named = holes.slice(0, 8).map((seq) => {
          const r = bySeq.get(seq);
          return r ? `${seq} (${r.userId}/${r.clientMsgId})` : String(seq);
        });
        const shown = `${named.join(", ")}${holes.length > 8 ? ", …" : ""}`;
        f.add(
          Invariant.ViewContiguous,
          room,
          `${client.userId} never got ${holes.length} seq(s) between ${first} and ${highest}: ${shown}; jumped ${jumps.slice(0, 3).join("; ")}`,
        );
      }
    }
    if (client.joined) {
      // A member that never got `ready` owes nothing countable (it asked for `last`), but is stuck.
      const last = client.view.length ? highest : 0;
      if (last < pgLast) {
        if (client.view.length) counts.lost += pgLast - last;
        f.add(
          Invariant.Liveness,
          room,
          `${client.userId} (still a member, ${client.sessions} sessions) stopped at seq ${client.view.length ? last : "none"}; Postgres has ${pgLast}. last events: ${client.log.slice(-4).join(" | ")}`,
        );
      }
    }
  }
  return { counts, findings: f.finish() };
}

/** Checks the error tally of a scenario: only documented codes, and only ones a valid request may get. */
export function checkErrors(scenario: string, tally: ErrorTally): Finding[] {
  const findings: Finding[] = [];
  for (const [code, n] of tally.codes) {
    if (!isErrorCode(code))
      findings.push({
        invariant: Invariant.DocumentedErrors,
        room: "*",
        detail: `undocumented error ${JSON.stringify(code)} ×${n}`,
      });
    else if (!RETRYABLE_CODES.has(code)) {
      findings.push({
        invariant: Invariant.DocumentedErrors,
        room: "*",
        detail: `a valid request got ${code} ×${n} (${scenario})`,
      });
    }
  }
  for (const sample of tally.samples.slice(0, 6))
    findings.push({ invariant: Invariant.DocumentedErrors, room: "*", detail: sample });
  return findings;
}

/**
 * The Redis mirror of one room against Postgres: entries `<seq>-0` with one field `message` (the
 * Message as JSON), contiguous, ending at Postgres' newest seq, holding at least the newest
 * min(N, maxLen) (XADD MAXLEN ~ keeps at least maxLen). Returns the number of differences.
 */
export function checkStream(
  room: string,
  rows: readonly StoredRow[],
  stream: StreamTruth,
  maxLen: number,
): { diffs: number; findings: Finding[] } {
  const f = new Findings(4);
  let diffs = 0;
  const diff = (detail: string): void => {
    diffs++;
    f.add(Invariant.RedisEqualsPostgres, room, detail);
  };
  const pgLast = rows.at(-1)?.seq ?? 0;
  if (!stream.exists) {
    if (pgLast > 0) diff(`no stream key, but Postgres has ${pgLast} messages`);
    return { diffs, findings: f.finish() };
  }
  const bySeq = new Map(rows.map((r) => [r.seq, r]));
  let previous: number | undefined;
  for (const entry of stream.entries) {
    const match = /^(\d+)-0$/.exec(entry.id);
    if (!match?.[1]) {
      diff(`entry id ${entry.id} is not <seq>-0`);
      continue;
    }
    const seq = Number(match[1]);
    if (previous !== undefined && seq !== previous + 1) diff(`stream jumps from seq ${previous} to ${seq}`);
    previous = seq;
    const row = bySeq.get(seq);
    if (!row) {
      diff(`stream has seq ${seq}, which is not in Postgres`);
      continue;
    }
    if (entry.fields.length !== 2 || entry.fields[0] !== "message") {
      diff(`seq ${seq}: fields are ${JSON.stringify(entry.fields.filter((_, i) => i % 2 === 0))}, expected exactly ["message"]`);
      continue;
    }
    let message: Entry;
    try {
      message = JSON.parse(entry.fields[1] ?? "") as Entry;
    } catch {
      diff(`seq ${seq}: the message field is not JSON`);
      continue;
    }
    const d = messageDiff(room, message, row);
    if (d) diff(`seq ${seq} differs from Postgres: ${d}`);
  }
  const first = stream.entries.length ? Number(/^(\d+)/.exec(stream.entries[0]?.id ?? "")?.[1]) : pgLast + 1;
  const mustStartBy = Math.max(1, pgLast - maxLen + 1);
  if (previous !== pgLast) diff(`stream ends at seq ${previous ?? "none"}, Postgres at ${pgLast}`);
  if (first > mustStartBy && pgLast > 0)
    diff(`stream starts at seq ${first}; it should hold at least seqs ${mustStartBy}..${pgLast}`);
  return { diffs, findings: f.finish() };
}
