// The invariants, as pure functions of what the run recorded and what Postgres and Redis hold
// after the heal. Each finding names its invariant, its room and the evidence (which client,
// which seq, which session), so a failure can be read without re-running anything.

import { isErrorCode } from "../src/protocol/errors.js";
import type { Entry, Message } from "../src/protocol/frames.js";
import { applyChange, compareCodePoints, lastChangeOf, targetOf } from "../src/protocol/lifecycle.js";
import {
  type ClientRecord,
  type ErrorTally,
  kindOfOp,
  type ReactionRow,
  type RoomRecord,
  type RoomTruth,
  type SendRecord,
  type StoredRow,
  type StreamTruth,
  sendKey,
} from "./model.js";

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
  /**
   * Replay convergence: each caught-up member's messages, after applying (applyChange) the
   * change entries it received in the order it received them, equal the current forms Postgres
   * serves: text, tombstone, version, editedAt, reactions per emoji (and its own), replies, updatedSeq.
   */
  ViewsConverge: "views-converge",
  /**
   * Postgres' current forms are its change entries applied in seq order: version = edits, text =
   * the last edit's, a tombstone iff one delete, reply count and last reply, updatedSeq = the last
   * change; no change after a delete; edit versions and delete redaction lists as committed.
   */
  CurrentForms: "current-forms",
  /**
   * Reactions: replaying the reaction entries (per user: add only when absent, remove only when
   * present, all gone with a delete) gives each entry's count and exactly the `reactions` rows.
   */
  ReactionsExact: "reactions-exact",
  /**
   * A deleted message's text (and its edits') is gone: '' in Postgres, nowhere else in the room's
   * rows, not in the Redis stream, and not in any `ready`, REST page or HTTP answer read after
   * the delete committed.
   */
  Redacted: "redacted",
  /**
   * Replica scenarios: after the catch-up, the room's `/status` lists every replica a caught-up
   * client was routed to (`?region=`, shard by user), holding at least that many sockets, and
   * delivered up to Postgres' top: the clients really were spread over those replicas, and no
   * replica is left behind.
   */
  ReplicaRouted: "replica-routed",
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
  changes: 0,
  refused: 0,
  diverged: 0,
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
  /** Acked changes: edits, deletes, reactions and replies (each counted in `acked` too). */
  changes: number;
  /** Changes refused with `conflict` because their target had been deleted meanwhile (justified). */
  refused: number;
  /** Messages whose replayed form in some client differs from Postgres' current form. */
  diverged: number;
}

/** Codes a valid request may get under faults; anything else means the server misjudged us or has a bug. */
export const RETRYABLE_CODES: ReadonlySet<string> = new Set(["unavailable", "rate_limited"]);

const ENVELOPE_FIELDS = ["seq", "id", "userId", "clientMsgId", "createdAt"] as const;

const show = (v: unknown): string => (v === undefined ? "none" : JSON.stringify(v));
const kindOf = (row: StoredRow): string => row.kind ?? "message";

/**
 * The fields where an entry differs from its Postgres row, its text aside ("" when equal): the
 * envelope, the kind, what it names (target, replyTo) and what its kind adds (version, redacts,
 * emoji, count, remove). The text is judged apart (a message's row holds only its current text).
 */
export const envelopeDiff = (roomId: string, entry: Entry, row: StoredRow): string => {
  const diffs: string[] = [];
  const differ = (field: string, got: unknown, want: unknown): void => {
    if (JSON.stringify(got) !== JSON.stringify(want)) diffs.push(`${field} ${show(got)}≠${show(want)}`);
  };
  if (entry.roomId !== roomId) diffs.push(`roomId ${show(entry.roomId)}≠${show(roomId)}`);
  for (const field of ENVELOPE_FIELDS) differ(field, entry[field], row[field]);
  differ("kind", entry.kind, kindOf(row));
  const data = row.data ?? {};
  switch (entry.kind) {
    case "message":
      differ("replyTo", entry.replyTo, row.replyTo);
      break;
    case "edit":
      differ("target", entry.target, row.target);
      differ("version", entry.version, data.version);
      break;
    case "delete":
      differ("target", entry.target, row.target);
      differ("redacts", entry.redacts, data.redacts);
      break;
    case "reaction":
      differ("target", entry.target, row.target);
      differ("emoji", entry.emoji, data.emoji);
      differ("count", entry.count, data.count);
      differ("remove", entry.remove === true, data.remove === true);
      break;
    default:
      break;
  }
  return diffs.join(", ");
};

/** The fields where a message differs from its Postgres row, text included ("" when equal). */
export const messageDiff = (roomId: string, message: Entry, row: StoredRow): string => {
  const d = envelopeDiff(roomId, message, row);
  const t = message.text === row.text ? "" : `text ${show(message.text)}≠${show(row.text)}`;
  return [d, t].filter(Boolean).join(", ");
};

/** Reactions as one comparable string, in code point order: "👍×2(me) 🎉×1". */
const reactionsOf = (message: Message): string =>
  [...(message.reactions ?? [])]
    .sort((a, b) => compareCodePoints(a.emoji, b.emoji))
    .map((r) => `${r.emoji}×${r.count}${r.me ? "(me)" : ""}`)
    .join(" ");

/** Where two forms of one message differ: text, tombstone, version, reactions, replies, updatedSeq. */
export const formDiff = (got: Message, want: Message): string => {
  const diffs: string[] = [];
  const differ = (field: string, a: unknown, b: unknown): void => {
    if (JSON.stringify(a) !== JSON.stringify(b)) diffs.push(`${field} ${show(a)}≠${show(b)}`);
  };
  differ("text", got.text, want.text);
  differ("deleted", got.deleted === true, want.deleted === true);
  differ("version", got.version ?? 0, want.version ?? 0);
  differ("editedAt", got.editedAt, want.editedAt);
  differ("reactions", reactionsOf(got), reactionsOf(want));
  differ("replyTo", got.replyTo, want.replyTo);
  differ("replyCount", got.replyCount ?? 0, want.replyCount ?? 0);
  differ("lastReplySeq", got.lastReplySeq, want.lastReplySeq);
  differ("updatedSeq", lastChangeOf(got), lastChangeOf(want));
  return diffs.join(", ");
};

/** One request, for findings: "w1/m7 (react 👍 on 12)". */
export const describe = (send: SendRecord): string => {
  const who = `${send.userId}/${send.clientMsgId}`;
  switch (send.op ?? "send") {
    case "edit":
      return `${who} (edit of ${send.target})`;
    case "delete":
      return `${who} (delete of ${send.target})`;
    case "react":
      return `${who} (${send.remove ? "unreact" : "react"} ${send.emoji} on ${send.target})`;
    default:
      return send.replyTo === undefined ? who : `${who} (reply to ${send.replyTo})`;
  }
};

/**
 * Postgres' rows of one room and the run's requests, indexed the ways the checks look them up,
 * with what follows from them: each message's edits, delete, reactions and replies, the text it
 * had at each version, and the current form Postgres serves for it.
 */
export class RoomIndex {
  readonly bySeq = new Map<number, StoredRow>();
  readonly byKey = new Map<string, StoredRow[]>();
  readonly sends = new Map<string, SendRecord>();
  /** Per message seq, its change rows of each kind, in seq order. */
  readonly edits = new Map<number, StoredRow[]>();
  readonly deletes = new Map<number, StoredRow[]>();
  readonly reacts = new Map<number, StoredRow[]>();
  readonly replies = new Map<number, StoredRow[]>();
  /** Per message seq, the seqs of every entry that changed it (edits, deletes, reactions, replies). */
  readonly changes = new Map<number, number[]>();
  readonly reactions: ReactionRow[];
  readonly pgLast: number;

  constructor(
    readonly room: string,
    readonly truth: RoomTruth,
    sends: readonly SendRecord[],
  ) {
    for (const s of sends) this.sends.set(sendKey(room, s.userId, s.clientMsgId), s);
    const push = (map: Map<number, StoredRow[]>, seq: number, row: StoredRow): void => {
      map.set(seq, [...(map.get(seq) ?? []), row]);
    };
    for (const row of truth.rows) {
      this.bySeq.set(row.seq, row);
      const key = sendKey(room, row.userId, row.clientMsgId);
      this.byKey.set(key, [...(this.byKey.get(key) ?? []), row]);
      const kind = kindOf(row);
      const named = kind === "message" ? row.replyTo : row.target;
      if (named === undefined) continue;
      if (kind === "edit") push(this.edits, named, row);
      else if (kind === "delete") push(this.deletes, named, row);
      else if (kind === "reaction") push(this.reacts, named, row);
      else if (kind === "message") push(this.replies, named, row);
      else continue;
      this.changes.set(named, [...(this.changes.get(named) ?? []), row.seq]);
    }
    this.reactions = truth.reactions ?? [];
    this.pgLast = truth.rows.at(-1)?.seq ?? 0;
  }

  recordOf(row: StoredRow): SendRecord | undefined {
    return this.sends.get(sendKey(this.room, row.userId, row.clientMsgId));
  }

  /** The seq of the (first) delete of message `seq`, if it was deleted. */
  deletedAt(seq: number | undefined): number | undefined {
    return seq === undefined ? undefined : this.deletes.get(seq)?.[0]?.seq;
  }

  /** The text message `seq` had at `version` (0: as sent), as far as Postgres and the records know. */
  textAt(seq: number, version: number): string | undefined {
    const row = this.bySeq.get(seq);
    if (!row) return undefined;
    if (version === 0) return this.recordOf(row)?.text ?? (!row.deleted && (row.version ?? 0) === 0 ? row.text : undefined);
    const edit = this.edits.get(seq)?.[version - 1];
    if (!edit) return undefined;
    return edit.text !== "" ? edit.text : this.recordOf(edit)?.text;
  }

  /** Every text message `seq` ever had that the records know: what must be gone once it is deleted. */
  textsOf(seq: number): string[] {
    const texts: string[] = [];
    const row = this.bySeq.get(seq);
    const sent = row && this.recordOf(row)?.text;
    if (sent) texts.push(sent);
    for (const edit of this.edits.get(seq) ?? []) {
      const t = this.recordOf(edit)?.text;
      if (t) texts.push(t);
    }
    return texts;
  }

  /** The current form Postgres serves for a message row (src/storage/postgres.ts toEntry), with `viewer`'s flags. */
  formOf(row: StoredRow, viewer?: string): Message {
    const m: Message = {
      roomId: this.room,
      seq: row.seq,
      id: row.id,
      kind: "message",
      userId: row.userId,
      text: row.text,
      clientMsgId: row.clientMsgId,
      createdAt: row.createdAt,
    };
    if (row.replyTo !== undefined) m.replyTo = row.replyTo;
    if (row.deleted) m.deleted = true;
    else {
      if (row.editedAt !== undefined) {
        m.editedAt = row.editedAt;
        m.version = row.version ?? 0;
      }
      const byEmoji = new Map<string, { count: number; me: boolean }>();
      for (const r of this.reactions) {
        if (r.target !== row.seq) continue;
        const e = byEmoji.get(r.emoji) ?? { count: 0, me: false };
        e.count++;
        e.me ||= r.userId === viewer;
        byEmoji.set(r.emoji, e);
      }
      if (byEmoji.size > 0)
        m.reactions = [...byEmoji]
          .sort((a, b) => compareCodePoints(a[0], b[0]))
          .map(([emoji, e]) => (e.me ? { emoji, count: e.count, me: true as const } : { emoji, count: e.count }));
    }
    if ((row.replyCount ?? 0) > 0) {
      m.replyCount = row.replyCount;
      if (row.lastReplySeq !== undefined) m.lastReplySeq = row.lastReplySeq;
    }
    if (row.updatedSeq !== undefined) m.updatedSeq = row.updatedSeq;
    return m;
  }
}

/**
 * A client's messages after it applied, in the order it received them, every change entry it
 * received to the message it names (the SDK's rule: src/protocol/lifecycle.ts applyChange), with
 * the seqs of the changes that took effect, per message.
 */
export const replayView = (client: ClientRecord): Map<number, { message: Message; applied: number[]; from: string }> => {
  const held = new Map<number, { message: Message; applied: number[]; from: string }>();
  for (const d of client.view) {
    const entry = d.message;
    if (entry.kind === "message" && !held.has(entry.seq))
      held.set(entry.seq, { message: entry, applied: [], from: `${d.source}, session ${d.session}` });
    const target = targetOf(entry);
    const h = target === undefined ? undefined : held.get(target);
    if (!h) continue;
    const next = applyChange(h.message, entry, client.userId);
    if (next !== h.message) h.applied.push(entry.seq);
    h.message = next;
  }
  return held;
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
  const counts: RoomCounts = zeroCounts(
    record.sends.length,
    record.clients.map((c) => c.view.length),
  );
  const idx = new RoomIndex(room, truth, record.sends);
  const { bySeq, byKey, pgLast } = idx;

  // --- Postgres on its own: 1..N, last_seq = N ----------------------------------------------
  truth.rows.forEach((row, index) => {
    if (row.seq !== index + 1) {
      f.add(Invariant.PostgresContiguous, room, `row ${index + 1} has seq ${row.seq} (expected ${index + 1})`);
    }
  });
  if ((truth.lastSeq ?? 0) !== pgLast) {
    f.add(Invariant.PostgresContiguous, room, `rooms.last_seq is ${truth.lastSeq} but the newest message is seq ${pgLast}`);
  }
  checkForms(idx, f);
  checkReactions(idx, f);
  checkRedactedRows(idx, f);

  // When each message's delete was first acked (ms into the scenario): an HTTP answer to a request
  // sent after that must not carry its text.
  const deleteAckedAt = new Map<number, number>();
  for (const s of record.sends) {
    if (s.op !== "delete" || s.target === undefined) continue;
    const at = Math.min(...s.acks.map((a) => a.atMs));
    if (Number.isFinite(at)) deleteAckedAt.set(s.target, Math.min(at, deleteAckedAt.get(s.target) ?? at));
  }

  // --- Sends: acked → stored once at that seq; ambiguous ones resolved ----------------------
  const sends = idx.sends;
  for (const [key, send] of sends) {
    const stored = byKey.get(key) ?? [];
    const ackSeqs = [...new Set(send.acks.map((a) => a.seq))];
    const who = describe(send);
    const op = send.op ?? "send";
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
    judgeRefusals(idx, send, f, counts);
    const row = stored[0];
    if (row && send.refused) {
      counts.phantoms++;
      f.add(
        Invariant.NoPhantom,
        room,
        `${who} is committed at seq ${row.seq}, yet it was refused with ${send.refused} (a refused change takes no seq)`,
      );
    }
    if (send.acks.length > 0) {
      counts.acked++;
      if (op !== "send" || send.replyTo !== undefined) counts.changes++;
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
      const wrong = storedAsAsked(idx, send, row);
      if (wrong) {
        counts.disagreements++;
        f.add(Invariant.AckedStoredOnce, room, `${who} at seq ${row.seq}: ${wrong}`);
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
        const diff = [envelopeDiff(room, ack.message, row), textProblem(idx, ack.message, row)].filter(Boolean).join(", ");
        if (diff) {
          counts.disagreements++;
          f.add(Invariant.ClientsAgree, room, `HTTP ${ack.status} answer for ${who} differs from Postgres: ${diff}`);
        }
        // The message the answer shows (itself, or an edit's target) deleted before the request left?
        const shown =
          ack.message.kind === "message" ? ack.message.seq : ack.message.kind === "edit" ? ack.message.target : undefined;
        const gone = shown === undefined ? undefined : deleteAckedAt.get(shown);
        if (gone !== undefined && ack.sentAtMs !== undefined && ack.sentAtMs > gone && ack.message.text !== "") {
          f.add(
            Invariant.Redacted,
            room,
            `HTTP ${ack.status} answer for ${who} (request sent ${ack.sentAtMs} ms in) carries text ${show(ack.message.text)} of message ${shown}, whose delete was acked at ${gone} ms`,
          );
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
    } else if (!send.abandoned && !send.refused) {
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
    // System entries (joins, role changes, …) are the room's own, not a client's request.
    if (kindOf(row) === "system") continue;
    const send = sends.get(sendKey(room, row.userId, row.clientMsgId));
    if (!send) {
      counts.phantoms++;
      f.add(Invariant.NoPhantom, room, `seq ${row.seq} (${row.userId}/${row.clientMsgId}) was never sent by any client`);
    } else if (send.acks.length === 0 && send.uncertain === 0 && !send.refused) {
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
      return d ? `(delivery #${i + 1}, session ${d.session}, ${d.source}${d.asOf === undefined ? "" : ` as of ${d.asOf}`})` : "";
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
      const diff = [envelopeDiff(room, d.message, row), textProblem(idx, d.message, row)].filter(Boolean).join(", ");
      if (diff) {
        counts.disagreements++;
        f.add(
          Invariant.ClientsAgree,
          room,
          `${client.userId} got a seq ${d.seq} that differs from Postgres: ${diff} ${where(i)}`,
        );
      }
      const leak = leakedText(idx, d.message, d.asOf);
      if (leak) f.add(Invariant.Redacted, room, `${client.userId} ${leak} ${where(i)}`);
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
      } else {
        // Caught up: its replayed view must be what Postgres serves now (replay convergence).
        for (const [seq, h] of replayView(client)) {
          const row = bySeq.get(seq);
          if (!row || kindOf(row) !== "message") continue; // clients-agree has it
          const diff = formDiff(h.message, idx.formOf(row, client.userId));
          if (!diff) continue;
          counts.diverged++;
          const applied = h.applied.length ? `applied ${h.applied.join(", ")}` : "applied no change";
          const changes = idx.changes.get(seq) ?? [];
          f.add(
            Invariant.ViewsConverge,
            room,
            `${client.userId}'s seq ${seq} (from ${h.from}, ${applied}; Postgres' changes of it: ${changes.join(", ") || "none"}) differs from Postgres' current form: ${diff}`,
          );
        }
      }
    }
  }
  return { counts, findings: f.finish() };
}

/** What of an acked request's row differs from what was asked ("" when it is stored as asked). */
function storedAsAsked(idx: RoomIndex, send: SendRecord, row: StoredRow): string {
  const op = send.op ?? "send";
  const wrong: string[] = [];
  if (kindOf(row) !== kindOfOp[op]) wrong.push(`stored as a ${kindOf(row)}, asked as ${op}`);
  if (op === "send") {
    if (row.replyTo !== send.replyTo) wrong.push(`replyTo ${show(row.replyTo)} ≠ asked ${show(send.replyTo)}`);
    // The row holds the current text; as sent only while it was never edited nor deleted.
    if (!row.deleted && (row.version ?? 0) === 0 && row.text !== send.text)
      wrong.push(`stored text ${show(row.text)} ≠ sent ${show(send.text)}`);
    return wrong.join("; ");
  }
  if (row.target !== send.target) wrong.push(`target ${show(row.target)} ≠ asked ${show(send.target)}`);
  if (op === "edit" && row.text !== send.text && !(row.text === "" && idx.deletedAt(row.target) !== undefined))
    wrong.push(`stored text ${show(row.text)} ≠ sent ${show(send.text)} (and its target is not deleted)`);
  if (op === "react") {
    if (row.data?.emoji !== send.emoji) wrong.push(`emoji ${show(row.data?.emoji)} ≠ asked ${show(send.emoji)}`);
    if ((row.data?.remove === true) !== (send.remove === true))
      wrong.push(`remove ${show(row.data?.remove)} ≠ asked ${show(send.remove)}`);
  }
  return wrong.join("; ");
}

/**
 * The `conflict`s a request got: fine for a reaction or a reply whose target someone deleted
 * meanwhile (the client could not know); anything else is a valid request refused.
 */
function judgeRefusals(idx: RoomIndex, send: SendRecord, f: Findings, counts: RoomCounts): void {
  const conflicts = send.definite.filter((c) => c === "conflict").length;
  if (conflicts === 0) return;
  const named = send.op === "react" ? send.target : send.op === undefined || send.op === "send" ? send.replyTo : undefined;
  const deletedAt = idx.deletedAt(named);
  if (named !== undefined && deletedAt !== undefined) {
    counts.refused += conflicts;
    return;
  }
  f.add(
    Invariant.DocumentedErrors,
    idx.room,
    `${describe(send)} was refused with conflict ×${conflicts}, but ${named === undefined ? "nothing it names can conflict" : `message ${named} is not deleted`} (codes: ${send.definite.join(",")})`,
  );
}

/** How a delivered entry's text differs from what Postgres and the records say it was (undefined: it agrees). */
function textProblem(idx: RoomIndex, entry: Entry, row: StoredRow): string | undefined {
  switch (entry.kind) {
    case "message": {
      if (entry.deleted) return row.deleted ? undefined : "a tombstone, but Postgres has the message not deleted";
      const version = entry.version ?? 0;
      const want = idx.textAt(row.seq, version);
      if (want === undefined) {
        const edits = idx.edits.get(row.seq)?.length ?? 0;
        return version > edits ? `version ${version}, but Postgres has ${edits} edit(s) of it` : undefined;
      }
      return entry.text === want ? undefined : `text ${show(entry.text)} ≠ version ${version}'s ${show(want)}`;
    }
    case "edit": {
      if (entry.text === row.text) return undefined;
      // An edit shown before its message was deleted had its text then (leakedText judges when).
      if (row.text === "" && idx.deletedAt(row.target) !== undefined && entry.text === idx.recordOf(row)?.text) return undefined;
      return `text ${show(entry.text)} ≠ ${show(row.text)}`;
    }
    default:
      return entry.text === row.text ? undefined : `text ${show(entry.text)} ≠ ${show(row.text)}`;
  }
}

/** A message (or an edit of it) read at `asOf` with its text, though it was deleted at or before then. */
function leakedText(idx: RoomIndex, entry: Entry, asOf: number | undefined): string | undefined {
  const shown = entry.kind === "message" ? entry.seq : entry.kind === "edit" ? entry.target : undefined;
  if (shown === undefined) return undefined;
  if (entry.kind === "message" && entry.deleted && entry.text !== "")
    return `got tombstone ${entry.seq} with text ${show(entry.text)}`;
  const deletedAt = idx.deletedAt(shown);
  if (asOf === undefined || deletedAt === undefined || deletedAt > asOf || entry.text === "") return undefined;
  return `got ${entry.kind} ${entry.seq} with text ${show(entry.text)} in an answer as of seq ${asOf}, though message ${shown} was deleted at seq ${deletedAt}`;
}

/** current-forms: each message row is its change rows applied in seq order. */
function checkForms(idx: RoomIndex, f: Findings): void {
  const { room } = idx;
  for (const row of idx.truth.rows) {
    const kind = kindOf(row);
    if (kind === "edit" || kind === "delete" || kind === "reaction" || (kind === "message" && row.replyTo !== undefined)) {
      const named = kind === "message" ? row.replyTo : row.target;
      const target = named === undefined ? undefined : idx.bySeq.get(named);
      if (!target || kindOf(target) !== "message" || (named ?? 0) >= row.seq)
        f.add(Invariant.CurrentForms, room, `${kind} ${row.seq} names ${named}, which is not an earlier message`);
      else if (kind === "message" && target.replyTo !== undefined)
        f.add(Invariant.CurrentForms, room, `reply ${row.seq} replies to ${named}, which is a reply itself`);
    }
    if (kind !== "message") continue;
    const seq = row.seq;
    const edits = idx.edits.get(seq) ?? [];
    const deletes = idx.deletes.get(seq) ?? [];
    const replies = idx.replies.get(seq) ?? [];
    const changes = idx.changes.get(seq) ?? [];
    const del = deletes[0];
    const wrong: string[] = [];
    const expect = (field: string, got: unknown, want: unknown): void => {
      if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(`${field} ${show(got)}, expected ${show(want)}`);
    };
    if (deletes.length > 1) wrong.push(`deleted ${deletes.length} times (seqs ${deletes.map((d) => d.seq).join(", ")})`);
    if (del) {
      const after = changes.filter((c) => c > del.seq);
      if (after.length) wrong.push(`changed by ${after.join(", ")} after its delete at ${del.seq}`);
      const redacts = [seq, ...edits.filter((e) => e.seq < del.seq).map((e) => e.seq)].sort((a, b) => a - b);
      expect(`delete ${del.seq}'s redacts`, del.data?.redacts, redacts);
    }
    edits.forEach((e, i) => {
      expect(`edit ${e.seq}'s version`, e.data?.version, i + 1);
    });
    expect("version", row.version ?? 0, edits.length);
    expect("deleted", row.deleted === true, del !== undefined);
    if (!del) {
      const last = edits.at(-1);
      if (last) expect("text", row.text, last.text);
      expect("edited_at", row.editedAt, last?.createdAt);
    } else expect("edited_at", row.editedAt, undefined);
    expect("reply_count", row.replyCount ?? 0, replies.length);
    expect("last_reply_seq", row.lastReplySeq, replies.at(-1)?.seq);
    expect("updated_seq", row.updatedSeq, changes.length ? Math.max(...changes) : undefined);
    if (wrong.length) f.add(Invariant.CurrentForms, room, `message ${seq}: ${wrong.join("; ")}`);
  }
}

/** reactions-exact: replay the reaction entries per message; counts and the `reactions` rows must follow. */
function checkReactions(idx: RoomIndex, f: Findings): void {
  const { room } = idx;
  const expected = new Set<string>();
  const key = (target: number, emoji: string, userId: string): string => `${target} ${emoji} ${userId}`;
  for (const [target, entries] of idx.reacts) {
    const deletedAt = idx.deletedAt(target);
    const users = new Map<string, Set<string>>();
    for (const e of entries) {
      if (deletedAt !== undefined && e.seq > deletedAt) continue; // current-forms has it
      const emoji = String(e.data?.emoji ?? "");
      const remove = e.data?.remove === true;
      const set = users.get(emoji) ?? new Set<string>();
      users.set(emoji, set);
      if (remove && !set.has(e.userId))
        f.add(
          Invariant.ReactionsExact,
          room,
          `reaction ${e.seq}: ${e.userId} takes back ${emoji} on ${target}, which they had not added`,
        );
      if (!remove && set.has(e.userId))
        f.add(Invariant.ReactionsExact, room, `reaction ${e.seq}: ${e.userId} adds ${emoji} on ${target} a second time`);
      if (remove) set.delete(e.userId);
      else set.add(e.userId);
      if (Number(e.data?.count) !== set.size)
        f.add(
          Invariant.ReactionsExact,
          room,
          `reaction ${e.seq} (${emoji} on ${target}) says count ${show(e.data?.count)}; replaying the reaction entries gives ${set.size}`,
        );
    }
    if (deletedAt !== undefined) continue; // a deleted message keeps no reaction
    for (const [emoji, set] of users) for (const u of set) expected.add(key(target, emoji, u));
  }
  const actual = new Set(idx.reactions.map((r) => key(r.target, r.emoji, r.userId)));
  const missing = [...expected].filter((k) => !actual.has(k));
  const extra = [...actual].filter((k) => !expected.has(k));
  for (const k of missing.slice(0, 6))
    f.add(
      Invariant.ReactionsExact,
      room,
      `the reaction entries leave "${k}" (target emoji user), but the reactions table has no such row`,
    );
  for (const k of extra.slice(0, 6))
    f.add(
      Invariant.ReactionsExact,
      room,
      `the reactions table has "${k}" (target emoji user), which the reaction entries do not leave`,
    );
}

/** redacted (Postgres): a deleted message and its edits have text '', and none of their texts is anywhere in the room. */
function checkRedactedRows(idx: RoomIndex, f: Findings): void {
  const { room } = idx;
  const gone: Array<{ seq: number; text: string }> = [];
  for (const [seq] of idx.deletes) {
    const row = idx.bySeq.get(seq);
    if (row && row.text !== "")
      f.add(Invariant.Redacted, room, `deleted message ${seq} still has text ${show(row.text)} in Postgres`);
    for (const e of idx.edits.get(seq) ?? [])
      if (e.text !== "")
        f.add(Invariant.Redacted, room, `edit ${e.seq} of deleted message ${seq} still has text ${show(e.text)} in Postgres`);
    for (const text of idx.textsOf(seq)) gone.push({ seq, text });
  }
  if (gone.length === 0) return;
  for (const row of idx.truth.rows) {
    const data = row.data === undefined ? "" : JSON.stringify(row.data);
    for (const g of gone) {
      if (row.seq === g.seq || (kindOf(row) === "edit" && row.target === g.seq)) continue; // reported above
      if (row.text.includes(g.text) || data.includes(JSON.stringify(g.text).slice(1, -1)))
        f.add(Invariant.Redacted, room, `seq ${row.seq} holds ${show(g.text)}, a text of deleted message ${g.seq}`);
    }
  }
}

/**
 * Checks the error tally of a scenario: only documented codes, and only ones a valid request may
 * get. Codes answered to a recorded request that checkRoom judges itself (`tally.judged`: a
 * `conflict` for a reaction on a message deleted meanwhile) are left out here.
 */
export function checkErrors(scenario: string, tally: ErrorTally): Finding[] {
  const findings: Finding[] = [];
  for (const [code, total] of tally.codes) {
    const n = total - (tally.judged.get(code) ?? 0);
    if (n <= 0) continue;
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
 * The Redis mirror of one room against Postgres. Entries are `<seq>-0` with one field `message`
 * (the entry as JSON), ascending, ending at Postgres' newest seq. The stream holds each message
 * only while it is unchanged (src/storage/redis.ts): a message that was edited, deleted, reacted
 * to or replied to is taken out (XDEL), and so are the edits of a deleted message. So every entry
 * present must equal Postgres' entry as committed (a message: its unchanged current form), and
 * every seq of the newest min(N, maxLen) that is absent must be one of those changed ones
 * (XADD MAXLEN ~ keeps at least maxLen entries; holes only widen the seqs they span). No text
 * of a deleted message may be anywhere in the stream (`sends`: the run's requests, which know
 * those texts). Returns the number of differences.
 */
export function checkStream(
  room: string,
  truth: RoomTruth,
  stream: StreamTruth,
  maxLen: number,
  sends: readonly SendRecord[] = [],
): { diffs: number; findings: Finding[] } {
  const f = new Findings(4);
  let diffs = 0;
  const diff = (detail: string, invariant: Invariant = Invariant.RedisEqualsPostgres): void => {
    diffs++;
    f.add(invariant, room, detail);
  };
  const idx = new RoomIndex(room, truth, sends);
  const { pgLast } = idx;
  if (!stream.exists) {
    if (pgLast > 0) diff(`no stream key, but Postgres has ${pgLast} messages`);
    return { diffs, findings: f.finish() };
  }
  /** Why a seq may be absent from the stream (undefined: it must be there). */
  const changed = (row: StoredRow): string | undefined => {
    if (kindOf(row) === "message" && row.updatedSeq !== undefined) return `changed at ${row.updatedSeq}`;
    if (kindOf(row) === "edit" && idx.deletedAt(row.target) !== undefined) return `an edit of deleted ${row.target}`;
    return undefined;
  };
  const gone: Array<{ seq: number; text: string }> = [];
  for (const [seq] of idx.deletes) for (const text of idx.textsOf(seq)) gone.push({ seq, text });
  const present = new Set<number>();
  let previous: number | undefined;
  for (const entry of stream.entries) {
    const match = /^(\d+)-0$/.exec(entry.id);
    if (!match?.[1]) {
      diff(`entry id ${entry.id} is not <seq>-0`);
      continue;
    }
    const seq = Number(match[1]);
    if (previous !== undefined && seq <= previous) diff(`stream goes from seq ${previous} back to ${seq}`);
    previous = seq;
    present.add(seq);
    for (const g of gone) {
      if (entry.fields.some((field) => field.includes(g.text) || field.includes(JSON.stringify(g.text).slice(1, -1))))
        diff(`seq ${seq} in the stream holds ${show(g.text)}, a text of deleted message ${g.seq}`, Invariant.Redacted);
    }
    const row = idx.bySeq.get(seq);
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
    const why = changed(row);
    if (why) {
      diff(`stream still holds seq ${seq} (${kindOf(row)}), which is ${why}: it serves a stale form`);
      continue;
    }
    const d = messageDiff(room, message, row);
    const form = message.kind === "message" ? formDiff(message, idx.formOf(row)) : "";
    if (d || form) diff(`seq ${seq} differs from Postgres: ${[d, form].filter(Boolean).join(", ")}`);
  }
  if (previous !== pgLast) diff(`stream ends at seq ${previous ?? "none"}, Postgres at ${pgLast}`);
  const mustStartBy = Math.max(1, pgLast - maxLen + 1);
  const missing: number[] = [];
  for (let seq = mustStartBy; seq <= Math.min(pgLast, previous ?? pgLast); seq++) {
    const row = idx.bySeq.get(seq);
    if (!present.has(seq) && row && !changed(row)) missing.push(seq);
  }
  if (missing.length > 0)
    diff(
      `stream misses ${missing.length} unchanged entr${missing.length === 1 ? "y" : "ies"} of seqs ${mustStartBy}..${pgLast}: ${missing.slice(0, 8).join(", ")}${missing.length > 8 ? ", …" : ""}`,
    );
  return { diffs, findings: f.finish() };
}

/** One replica as the room's `/status` lists it (the fields the checker reads). */
export interface ReplicaSeen {
  name: string;
  sockets?: number;
  deliveredSeq?: number | null;
  fills?: number;
  source?: string | null;
  unreachable?: boolean;
}

/** `region#shard` of a replica name (`<tenant>:<room>@<region>#<shard>`), or undefined. */
export const replicaKeyOf = (name: string): string | undefined => {
  const match = /@([a-z]+)#(\d+)$/.exec(name);
  return match ? `${match[1]}#${match[2]}` : undefined;
};

/**
 * `expected`: per replica (`region#shard`), the caught-up clients routed there; `seen`: the
 * room's `/status` replicas (undefined: unreadable); `lastSeq`: Postgres' top for the room.
 */
export function checkRouting(
  room: string,
  expected: ReadonlyMap<string, readonly string[]>,
  seen: readonly ReplicaSeen[] | undefined,
  lastSeq: number,
): Finding[] {
  const findings: Finding[] = [];
  if (expected.size === 0) return findings;
  if (!seen) return [{ invariant: Invariant.ReplicaRouted, room, detail: "the room's /status (replicas) was unreadable" }];
  const byKey = new Map<string, ReplicaSeen>();
  for (const r of seen) {
    const key = replicaKeyOf(r.name);
    if (key) byKey.set(key, r);
  }
  for (const [key, users] of [...expected].sort(([a], [b]) => a.localeCompare(b))) {
    const r = byKey.get(key);
    if (!r) {
      findings.push({
        invariant: Invariant.ReplicaRouted,
        room,
        detail: `no replica ${key} in /status, though ${users.join(", ")} connected there`,
      });
      continue;
    }
    if (r.unreachable) {
      findings.push({ invariant: Invariant.ReplicaRouted, room, detail: `replica ${key} did not answer /status` });
      continue;
    }
    if ((r.sockets ?? 0) < users.length)
      findings.push({
        invariant: Invariant.ReplicaRouted,
        room,
        detail: `replica ${key} holds ${r.sockets ?? 0} socket(s), but ${users.length} client(s) are connected there (${users.join(", ")})`,
      });
    if ((r.deliveredSeq ?? 0) < lastSeq)
      findings.push({
        invariant: Invariant.ReplicaRouted,
        room,
        detail: `replica ${key} delivered up to ${r.deliveredSeq ?? "nothing"}, Postgres is at ${lastSeq}, after the catch-up`,
      });
  }
  return findings;
}
