// The recent-history window kept in the room object's memory: the newest committed messages,
// contiguous by seq. It only makes reads cheaper; losing it (eviction) costs one Postgres read.

import type { Entry } from "../protocol/frames.js";
import { utf8Length } from "../protocol/codec.js";
import { sendKey } from "./pipeline.js";


export class RecentWindow {
  private messages: Entry[] = [];
  private bytes = 0;
  /** (user, clientMsgId) → message, so a resend is recognised without scanning (it is on the send path). */
  private readonly bySend = new Map<string, Entry>();

  constructor(
    private readonly maxMessages: number,
    private readonly maxBytes: number,
  ) {}

  /** The first seq held, or lastSeq + 1 when empty: everything from here to lastSeq is in memory. */
  firstSeq(lastSeq: number): number {
    return this.messages[0]?.seq ?? lastSeq + 1;
  }

  get size(): number {
    return this.messages.length;
  }

  /** Replaces the contents (after a cold start or a resync). `messages` must be contiguous. */
  reset(messages: Entry[]): void {
    this.clear();
    this.append(messages);
  }

  private clear(): void {
    this.messages = [];
    this.bytes = 0;
    this.bySend.clear();
  }

  /** Appends committed messages in seq order; a gap would make reads wrong, so it restarts the window. */
  append(messages: readonly Entry[]): void {
    for (const message of messages) {
      const last = this.messages[this.messages.length - 1];
      if (last && message.seq !== last.seq + 1) this.clear();
      this.messages.push(message);
      this.bytes += sizeOf(message);
      this.bySend.set(sendKey(message.userId, message.clientMsgId), message);
    }
    while (this.messages.length > this.maxMessages || (this.bytes > this.maxBytes && this.messages.length > 1)) {
      const dropped = this.messages.shift();
      if (!dropped) break;
      this.bytes -= sizeOf(dropped);
      this.bySend.delete(sendKey(dropped.userId, dropped.clientMsgId));
    }
  }

  /** Messages with afterSeq < seq <= uptoSeq, if the window holds all of them; otherwise undefined. */
  range(afterSeq: number, uptoSeq: number, lastSeq: number): Entry[] | undefined {
    if (uptoSeq <= afterSeq) return [];
    const first = this.firstSeq(lastSeq);
    if (afterSeq + 1 < first || uptoSeq > lastSeq) return undefined;
    return this.messages.slice(afterSeq + 1 - first, uptoSeq + 1 - first);
  }

  find(userId: string, clientMsgId: string): Entry | undefined {
    return this.bySend.get(sendKey(userId, clientMsgId));
  }
}

/** Approximate wire size of a message (its text dominates); used for the window and `ready` caps. */
export const sizeOf = (message: Entry): number => utf8Length(message.text) + 200;
