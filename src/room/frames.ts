// What a client frame asks the room to commit, and what its socket hears back: shared by the
// primary room object and its regional replicas (src/replica/), which forward sends.

import { ClientFrameType, EntryKind, type EntryFrame, type ServerFrame, ServerFrameType } from "../protocol/frames.js";
import type { SendOutcome } from "./results.js";
import type { SendRequestOf } from "./sends.js";

/** What a frame (or the same REST call) asks the room to commit. */
export const requestOf = (frame: EntryFrame): SendRequestOf => {
  switch (frame.type) {
    case ClientFrameType.Send:
      return {
        kind: EntryKind.Message,
        clientMsgId: frame.clientMsgId,
        text: frame.text,
        ...(frame.replyTo === undefined ? {} : { replyTo: frame.replyTo }),
        ...(frame.parts === undefined ? {} : { parts: frame.parts }),
        // Stored in the message's `data` (and spread onto the entry by entryOf).
        ...(frame.mentions === undefined ? {} : { data: { mentions: frame.mentions } }),
      };
    case ClientFrameType.Edit:
      return { kind: EntryKind.Edit, clientMsgId: frame.clientMsgId, text: frame.text, target: frame.target };
    case ClientFrameType.Delete:
      return { kind: EntryKind.Delete, clientMsgId: frame.clientMsgId, text: "", target: frame.target };
    case ClientFrameType.React:
      return {
        kind: EntryKind.Reaction,
        clientMsgId: frame.clientMsgId,
        text: frame.emoji,
        target: frame.target,
        data: frame.remove ? { emoji: frame.emoji, remove: true } : { emoji: frame.emoji },
      };
  }
};

/** What a socket hears about its send: the ack (after its own entry's frame), or the typed error. */
export const answerOf = (outcome: SendOutcome, clientMsgId: string): ServerFrame =>
  outcome.ok
    ? {
        type: ServerFrameType.Ack,
        clientMsgId: outcome.message.clientMsgId,
        seq: outcome.message.seq,
        id: outcome.message.id,
        createdAt: outcome.message.createdAt,
      }
    : {
        type: ServerFrameType.Error,
        code: outcome.code,
        message: outcome.message,
        clientMsgId,
        ...(outcome.retryAfterMs === undefined ? {} : { retryAfterMs: outcome.retryAfterMs }),
        ...(outcome.reason === undefined ? {} : { reason: outcome.reason }),
      };
