// Mirrors committed messages to Redis strictly in seq order, from a durable watermark.
// Single flight: one pass at a time; a pass started while one runs is folded into it.
// It never skips: a failed write leaves the watermark where it was, and the next pass (live,
// or the heal alarm) starts from there. So the stream may lag, but never has a hole below its top.

import type { Message } from "../protocol/frames.js";

export interface MirrorDeps {
  /** Committed messages with afterSeq < seq <= uptoSeq, ascending (the window, else Postgres). */
  read(afterSeq: number, uptoSeq: number): Promise<Message[]>;
  write(messages: Message[]): Promise<void>;
  /** Persists the watermark (Durable Object storage). */
  save(mirroredSeq: number): Promise<void>;
}

export class MirrorPump {
  private pass: Promise<boolean> | undefined;
  private again = false;

  constructor(
    private readonly deps: MirrorDeps,
    /** Everything up to here is in the stream. */
    public mirroredSeq: number,
    private readonly batchSize: number,
  ) {}

  /**
   * Mirrors until `target()` is reached. Resolves true when caught up, false after a failure
   * (the caller schedules a retry); never rejects.
   */
  catchUp(target: () => number): Promise<boolean> {
    if (this.pass) {
      this.again = true;
      return this.pass;
    }
    this.pass = this.run(target).finally(() => {
      this.pass = undefined;
    });
    return this.pass;
  }

  private async run(target: () => number): Promise<boolean> {
    try {
      do {
        this.again = false;
        while (this.mirroredSeq < target()) {
          const upto = Math.min(target(), this.mirroredSeq + this.batchSize);
          const batch = await this.deps.read(this.mirroredSeq, upto);
          const expected = upto - this.mirroredSeq;
          if (batch.length !== expected || batch[0]?.seq !== this.mirroredSeq + 1) {
            throw new Error(`mirror read ${batch.length} of ${expected} messages after seq ${this.mirroredSeq}`);
          }
          await this.deps.write(batch);
          this.mirroredSeq = upto;
          await this.deps.save(upto);
        }
      } while (this.again);
      return true;
    } catch (error) {
      this.lastError = error;
      return false;
    }
  }

  lastError: unknown;
}

/** Retry delay after `failures` consecutive failed passes: 0.5 s doubling, capped at 30 s. */
export const mirrorBackoffMs = (failures: number): number => Math.min(30_000, 500 * 2 ** Math.max(0, failures - 1));
