// Message and frame builders for unit tests.

import { EntryKind, type Message, PROTOCOL_VERSION } from "../../protocol/frames.js";
import type { AnyEntry, InboundReadyFrame, UnknownEntry } from "../decode.js";

export const msg = (seq: number, roomId = "r1", userId = "alice"): Message => ({
  roomId,
  seq,
  id: `m-${seq}`,
  kind: EntryKind.Message,
  userId,
  text: `text ${seq}`,
  clientMsgId: `c-${seq}`,
  createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, seq)).toISOString(),
});

/** An entry of a kind this SDK does not know (what a newer server may send), with a valid envelope. */
export const unknownEntry = (seq: number, kind = "poll", roomId = "r1"): UnknownEntry => ({
  roomId,
  seq,
  id: `e-${seq}`,
  kind,
  userId: "system",
  text: `${kind} ${seq}`,
  clientMsgId: `k-${seq}`,
  createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, seq)).toISOString(),
});

/** Messages from..to inclusive. */
export const range = (from: number, to: number, roomId = "r1"): Message[] =>
  Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => msg(from + i, roomId));

export const ready = (messages: AnyEntry[], latestSeq: number, truncated = false, roomId = "r1"): InboundReadyFrame => ({
  type: "ready",
  roomId,
  messages,
  latestSeq,
  truncated,
  protocol: PROTOCOL_VERSION,
});

export const seqs = (entries: readonly { seq: number }[]): number[] => entries.map((m) => m.seq);

/** A small deterministic PRNG (mulberry32), so a failing shuffle can be replayed. */
export const seededRandom = (seed: number): (() => number) => {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
};
