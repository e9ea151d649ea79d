// Message and frame builders for unit tests.

import type { Message, ReadyFrame } from "../../protocol/frames.js";

export const msg = (seq: number, roomId = "r1", userId = "alice"): Message => ({
  roomId,
  seq,
  id: `m-${seq}`,
  userId,
  text: `text ${seq}`,
  clientMsgId: `c-${seq}`,
  createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, seq)).toISOString(),
});

/** Messages from..to inclusive. */
export const range = (from: number, to: number, roomId = "r1"): Message[] =>
  Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => msg(from + i, roomId));

export const ready = (messages: Message[], latestSeq: number, truncated = false, roomId = "r1"): ReadyFrame => ({
  type: "ready",
  roomId,
  messages,
  latestSeq,
  truncated,
});

export const seqs = (messages: readonly Message[]): number[] => messages.map((m) => m.seq);

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
