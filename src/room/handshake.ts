// The handshake merge, as pure functions. The room object decides *when* (the watermark and the
// buffering, see Room.fetch); these decide *what*: which history a socket gets in `ready`.

import type { HistoryRequest } from "../protocol/codec.js";
import { PROTOCOL_VERSION, ServerFrameType, type Entry, type ReadyFrame } from "../protocol/frames.js";
import { MAX_READY_BYTES, MAX_READY_MESSAGES } from "../protocol/limits.js";
import type { HistoryQuery } from "../storage/types.js";
import { sizeOf } from "./window.js";

/** The history a socket is owed when the room is at `latestSeq` (the watermark). */
export const readyQuery = (request: HistoryRequest, latestSeq: number): HistoryQuery =>
  request.kind === "since"
    ? { afterSeq: request.since, uptoSeq: latestSeq, limit: MAX_READY_MESSAGES, from: "newest" }
    : { afterSeq: Math.max(0, latestSeq - request.last), uptoSeq: latestSeq, limit: request.last, from: "newest" };

/** Keeps the newest messages that fit in `maxBytes` (a `ready` frame must stay a sane size). */
export const newestWithin = (messages: readonly Entry[], maxBytes: number): Entry[] => {
  let bytes = 0;
  let start = messages.length;
  while (start > 0) {
    const next = messages[start - 1];
    if (!next || bytes + sizeOf(next) > maxBytes) break;
    bytes += sizeOf(next);
    start--;
  }
  return messages.slice(start);
};

/**
 * Builds the `ready` frame from the history read for `query` (ascending, ending at uptoSeq).
 * `truncated` tells the client that messages it asked for are missing before the first one
 * it got, so it must fill the hole over REST before showing a contiguous list.
 */
/** What `ready` says about the joining user besides history (read cursor, unread, who is online). */
export type ReadyExtras = Pick<ReadyFrame, "readSeq" | "unread" | "presence">;

export const buildReady = (roomId: string, query: HistoryQuery, history: readonly Entry[], extras: ReadyExtras): ReadyFrame => {
  const messages = newestWithin(history.slice(-query.limit), MAX_READY_BYTES);
  const firstOwed = query.afterSeq + 1;
  const firstSent = messages[0]?.seq ?? query.uptoSeq + 1;
  return {
    type: ServerFrameType.Ready,
    roomId,
    messages,
    latestSeq: query.uptoSeq,
    truncated: firstSent > firstOwed,
    protocol: PROTOCOL_VERSION,
    ...extras,
  };
};
