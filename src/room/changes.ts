// Planning a batch that changes messages (edits, deletes, reactions, replies), as a pure function.
//
// Why here and not in SQL: whether a change is allowed depends on the state its target is in
// *after the entries before it* (a delete then an edit of the same message in one batch: the edit
// must be refused), and a refused change must consume no seq. The writer is the room's only
// writer and runs one batch at a time, so between its lookup (one query, `lookupBatch`) and its
// commit nothing else can change the targets: the plan made here from that lookup is exactly what
// the commit does. A stale plan is still impossible to commit: a newer writer fences this one
// (writer.ts, "Fencing"), and the commit checks the duplicate set it was planned with.

import { EntryKind } from "../protocol/frames.js";
import { ErrorCode, ErrorReason } from "../protocol/errors.js";
import { MAX_REACTIONS_PER_MESSAGE } from "../protocol/limits.js";
import type { BatchEffects, BatchLookup, MessageUpdate, NewEntry, Role, TargetState } from "../storage/types.js";
import { sendKey } from "./pipeline.js";

/** An entry of the batch, as the planner needs it: the stored fields, and its author's role when authorized (deleting others' messages needs admin). */
export type PlannedInput = Omit<NewEntry, "id"> & { role?: Role | null };

export type Verdict<T> =
  | { ok: true; entry: T; seq: number | undefined; text: string; data: Record<string, unknown> | undefined }
  | { ok: false; entry: T; code: ErrorCode; message: string; reason?: ErrorReason };

export interface Plan<T> {
  /** One verdict per entry, in batch order. Accepted ones with `seq` undefined are stored already (resends). */
  verdicts: Verdict<T>[];
  effects: BatchEffects;
}

/** Whether an entry needs planning (a plain message without a thread does not). */
export const needsPlan = (entry: PlannedInput): boolean =>
  entry.kind === EntryKind.Edit || entry.kind === EntryKind.Delete || entry.kind === EntryKind.Reaction || entry.replyTo !== undefined;

/** The seqs a batch names (targets and thread parents). */
export const namedSeqs = (entries: readonly PlannedInput[]): number[] => {
  const seqs = new Set<number>();
  for (const e of entries) {
    if (e.target !== undefined) seqs.add(e.target);
    if (e.replyTo !== undefined) seqs.add(e.replyTo);
  }
  return [...seqs];
};

interface Working extends TargetState {
  update: MessageUpdate | undefined;
  /** Edits of this target accepted in this batch (index into verdicts), so a later delete redacts them. */
  batchEdits: number[];
}

/**
 * Plans `entries` (deduplicated within the batch) on top of `lookup`, with seqs from lastSeq + 1
 * for the fresh ones, in order. Never throws.
 */
export const planBatch = <T extends PlannedInput>(entries: readonly T[], lookup: BatchLookup, lastSeq: number, createdAt: string): Plan<T> => {
  const working = new Map<number, Working>();
  for (const [seq, t] of lookup.targets) working.set(seq, { ...t, counts: new Map(t.counts), reacted: new Set(t.reacted), update: undefined, batchEdits: [] });
  const verdicts: Verdict<T>[] = [];
  const deleted: number[] = [];
  const added = new Map<string, { target: number; emoji: string; userId: string }>();
  const removed = new Map<string, { target: number; emoji: string; userId: string }>();
  let next = lastSeq;

  const refuse = (entry: T, code: ErrorCode, message: string, reason?: ErrorReason): void => {
    verdicts.push(reason === undefined ? { ok: false, entry, code, message } : { ok: false, entry, code, message, reason });
  };
  const touch = (t: Working, seq: number): MessageUpdate => {
    t.update ??= { seq: t.seq, version: t.version, deleted: t.deleted, replyDelta: 0, updatedSeq: seq };
    t.update.updatedSeq = seq;
    return t.update;
  };
  /** The target as a message that may be changed, or the refusal. */
  const messageAt = (seq: number | undefined, what: string): Working | { code: ErrorCode; message: string; reason?: ErrorReason } => {
    const t = seq === undefined ? undefined : working.get(seq);
    if (!t) return { code: ErrorCode.NotFound, message: `unable to ${what}; there is no message ${seq} in this room` };
    if (t.kind !== EntryKind.Message) return { code: ErrorCode.BadRequest, message: `unable to ${what}; entry ${seq} is a ${t.kind}, not a message` };
    if (t.deleted) return { code: ErrorCode.Conflict, message: `unable to ${what}; message ${seq} was deleted`, reason: ErrorReason.Deleted };
    return t;
  };

  for (const entry of entries) {
    // A resend of something committed is answered with the original, whatever happened since.
    if (lookup.existing.has(sendKey(entry.userId, entry.clientMsgId))) {
      verdicts.push({ ok: true, entry, seq: undefined, text: entry.text, data: entry.data });
      continue;
    }
    if (!needsPlan(entry)) {
      next += 1;
      verdicts.push({ ok: true, entry, seq: next, text: entry.text, data: entry.data });
      continue;
    }
    switch (entry.kind) {
      case EntryKind.Message: {
        const parent = messageAt(entry.replyTo, "reply");
        if (!("seq" in parent)) {
          refuse(entry, parent.code, parent.message, parent.reason);
          continue;
        }
        if (parent.replyTo !== null) {
          refuse(entry, ErrorCode.BadRequest, `unable to reply; message ${parent.seq} is a reply itself: reply to ${parent.replyTo}, its thread`);
          continue;
        }
        next += 1;
        const u = touch(parent, next);
        u.replyDelta += 1;
        u.lastReplySeq = next;
        verdicts.push({ ok: true, entry, seq: next, text: entry.text, data: entry.data });
        continue;
      }
      case EntryKind.Edit: {
        const t = messageAt(entry.target, "edit");
        if (!("seq" in t)) {
          refuse(entry, t.code, t.message, t.reason);
          continue;
        }
        if (t.userId !== entry.userId) {
          refuse(entry, ErrorCode.Forbidden, "unable to edit; only its author may edit a message");
          continue;
        }
        next += 1;
        t.version += 1;
        const u = touch(t, next);
        u.version = t.version;
        u.text = entry.text;
        u.editedAt = createdAt;
        t.batchEdits.push(verdicts.length);
        verdicts.push({ ok: true, entry, seq: next, text: entry.text, data: { version: t.version } });
        continue;
      }
      case EntryKind.Delete: {
        const t = messageAt(entry.target, "delete");
        if (!("seq" in t)) {
          refuse(entry, t.code, t.message, t.reason);
          continue;
        }
        if (t.userId !== entry.userId && entry.role !== "admin") {
          refuse(entry, ErrorCode.Forbidden, "unable to delete; only its author or a room admin may delete a message");
          continue;
        }
        next += 1;
        t.deleted = true;
        const u = touch(t, next);
        u.deleted = true;
        u.text = undefined;
        u.editedAt = undefined;
        deleted.push(t.seq);
        // Edits accepted earlier in this batch are committed without their text: it never exists
        // in Postgres, and never reaches a socket.
        const redacts = [t.seq, ...t.edits];
        for (const index of t.batchEdits) {
          const v = verdicts[index];
          if (v?.ok) {
            verdicts[index] = { ...v, text: "" };
            if (v.seq !== undefined) redacts.push(v.seq);
          }
        }
        // Its reactions go with it (the commit deletes every reaction row of a deleted message).
        for (const [k, row] of added) if (row.target === t.seq) added.delete(k);
        for (const [k, row] of removed) if (row.target === t.seq) removed.delete(k);
        t.reacted.clear();
        t.counts.clear();
        verdicts.push({ ok: true, entry, seq: next, text: "", data: { redacts: redacts.sort((a, b) => a - b) } });
        continue;
      }
      case EntryKind.Reaction: {
        const t = messageAt(entry.target, "react");
        if (!("seq" in t)) {
          refuse(entry, t.code, t.message, t.reason);
          continue;
        }
        const emoji = typeof entry.data?.emoji === "string" ? entry.data.emoji : "";
        const remove = entry.data?.remove === true;
        const key = `${emoji} ${entry.userId}`;
        const has = t.reacted.has(key);
        if (!remove && has) {
          refuse(entry, ErrorCode.Conflict, `unable to react; you reacted with ${emoji} already`, ErrorReason.AlreadyReacted);
          continue;
        }
        if (remove && !has) {
          refuse(entry, ErrorCode.Conflict, `unable to remove the reaction; you did not react with ${emoji}`, ErrorReason.NotReacted);
          continue;
        }
        const count = (t.counts.get(emoji) ?? 0) + (remove ? -1 : 1);
        if (!remove && count === 1 && t.counts.size >= MAX_REACTIONS_PER_MESSAGE) {
          refuse(entry, ErrorCode.BadRequest, `unable to react; a message has at most ${MAX_REACTIONS_PER_MESSAGE} different reactions`);
          continue;
        }
        next += 1;
        if (count === 0) t.counts.delete(emoji);
        else t.counts.set(emoji, count);
        const k = reactionKey(t.seq, emoji, entry.userId);
        const row = { target: t.seq, emoji, userId: entry.userId };
        if (remove) {
          t.reacted.delete(key);
          if (!added.delete(k)) removed.set(k, row);
        } else {
          t.reacted.add(key);
          if (!removed.delete(k)) added.set(k, row);
        }
        touch(t, next);
        verdicts.push({ ok: true, entry, seq: next, text: emoji, data: remove ? { emoji, remove: true, count } : { emoji, count } });
        continue;
      }
      default:
        next += 1;
        verdicts.push({ ok: true, entry, seq: next, text: entry.text, data: entry.data });
    }
  }
  const updates: MessageUpdate[] = [];
  for (const t of working.values()) if (t.update) updates.push(t.update);
  const expectedDuplicates = verdicts.filter((v) => v.ok && v.seq === undefined).length;
  return { verdicts, effects: { updates, deleted, reactionsAdded: [...added.values()], reactionsRemoved: [...removed.values()], expectedDuplicates } };
};

/** Emojis and shortcodes never contain a space (codec.ts validateEmoji), so these keys are unambiguous. */
const reactionKey = (target: number, emoji: string, userId: string): string => `${target} ${emoji} ${userId}`;
