// Group commit. Awaiting Postgres does not stop other events from entering a Durable Object
// (input gates only cover its own storage), so the pipeline serialises itself: at most one
// batch is in flight, and everything submitted meanwhile becomes the next batch.

export interface PipelineOptions {
  /** The most sends in one batch (one Postgres statement). */
  maxBatchSize: number;
  /** The most text bytes in one batch, so one statement stays well under Postgres' limits. */
  maxBatchBytes: number;
}

export class CommitPipeline<T extends { bytes: number }> {
  private readonly queue: T[] = [];
  private running = false;

  constructor(
    /** Commits one batch and delivers every outcome before it resolves; it must not throw. */
    private readonly commit: (batch: T[]) => Promise<void>,
    private readonly options: PipelineOptions,
  ) {}

  get queued(): number {
    return this.queue.length;
  }

  get busy(): boolean {
    return this.running;
  }

  submit(item: T): void {
    this.queue.push(item);
    this.submitted++;
    void this.kick();
  }

  /**
   * Resolves once everything submitted so far has been through a commit (delivered), whatever
   * is submitted after. A permission change awaits it, so that no entry authorized before the
   * change is committed after the change is reported done.
   */
  settled(): Promise<void> {
    const target = this.submitted;
    if (this.processed >= target) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ target, resolve }));
  }

  private submitted = 0;
  private processed = 0;
  private waiters: Array<{ target: number; resolve: () => void }> = [];

  /**
   * Runs the commit step now even with nothing queued (an empty batch), so work that must happen
   * in the pipeline's turn — a resync after an unknown outcome — is not left waiting for a send.
   * Resolves when the pipeline is idle.
   */
  kick(): Promise<void> {
    // A kick while a batch is in flight (say the heal alarm fires during a failing commit)
    // must still get its own pass after that batch: the work it asks for may only have
    // become necessary during it.
    if (this.draining) {
      this.kicked = true;
      return this.draining;
    }
    this.draining = this.drain();
    return this.draining;
  }

  private draining: Promise<void> | undefined;
  private kicked = false;

  /** Takes the next batch off the queue: at least one item if any, then up to the size and byte limits. */
  takeBatch(): T[] {
    let bytes = 0;
    let count = 0;
    for (const item of this.queue) {
      if (count > 0 && (count >= this.options.maxBatchSize || bytes + item.bytes > this.options.maxBatchBytes)) break;
      bytes += item.bytes;
      count++;
    }
    return this.queue.splice(0, count);
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      do {
        this.kicked = false;
        const batch = this.takeBatch();
        try {
          await this.commit(batch);
        } finally {
          this.processed += batch.length;
          const done = this.waiters.filter((w) => w.target <= this.processed);
          this.waiters = this.waiters.filter((w) => w.target > this.processed);
          for (const w of done) w.resolve();
        }
      } while (this.queue.length > 0 || this.kicked);
    } finally {
      // Cleared in the same turn as the last check of the queue: an item submitted from here on
      // starts a new drain. (Clearing it in a later `.finally` left a window in which a submit
      // saw a drain that had already made its last check, and waited for the next submit.)
      this.running = false;
      this.draining = undefined;
    }
  }
}

/** The idempotency key of a send: (user, clientMsgId), unambiguous whatever the ids contain. */
export const sendKey = (userId: string, clientMsgId: string): string => `${userId.length}:${userId}${clientMsgId}`;

/**
 * Within one batch, the same (user, clientMsgId) may appear twice (a client resent before its
 * first ack). Only the first is sent to Postgres; the repeats share its outcome as duplicates.
 */
export const dedupeBatch = <T extends { userId: string; clientMsgId: string }>(
  batch: readonly T[],
): { unique: T[]; repeats: Array<{ item: T; original: number }> } => {
  const firstIndex = new Map<string, number>();
  const unique: T[] = [];
  const repeats: Array<{ item: T; original: number }> = [];
  for (const item of batch) {
    const key = sendKey(item.userId, item.clientMsgId);
    const seen = firstIndex.get(key);
    if (seen === undefined) {
      firstIndex.set(key, unique.length);
      unique.push(item);
    } else {
      repeats.push({ item, original: seen });
    }
  }
  return { unique, repeats };
};
