// Read cursors in the room object: the highest seq each user has read, coalesced so that a
// stream of `read` frames costs one Postgres statement per interval for all users together, and
// one receipt per user per interval for the room's sockets. Pure: the timer is injected.

export interface CursorDeps {
  /** Writes the pending cursors (forward only; Postgres keeps the higher one). */
  save(cursors: Array<{ userId: string; seq: number }>): Promise<void>;
  /** Tells the room's sockets about cursors that moved. */
  receipts(cursors: Array<{ userId: string; seq: number }>): void;
  /** Runs `run` after `ms` (setTimeout in the room). */
  later(run: () => void, ms: number): void;
  /** A failed save: logged; the cursors stay pending and are retried at the next flush. */
  failed(error: unknown): void;
}

export const CURSOR_FLUSH_MS = 250;

export class CursorBook {
  /** The highest seq known read per user (memory: Postgres is loaded on demand, see `known`). */
  private readonly cursors = new Map<string, number>();
  private readonly pending = new Map<string, number>();
  private readonly announce = new Map<string, number>();
  private scheduled = false;
  private saving: Promise<void> | undefined;

  constructor(
    private readonly deps: CursorDeps,
    private readonly flushMs = CURSOR_FLUSH_MS,
  ) {}

  /** The cursor if this object knows it (undefined: read it from Postgres, then `learn`). */
  known(userId: string): number | undefined {
    return this.cursors.get(userId);
  }

  /** A cursor read from Postgres; never moves a known one back. */
  learn(userId: string, seq: number): number {
    const next = Math.max(seq, this.cursors.get(userId) ?? 0);
    this.cursors.set(userId, next);
    return next;
  }

  /**
   * The user read up to `seq` (a `read` frame or REST). Returns false when it does not move the
   * cursor forward (an old or repeated update: nothing is written or announced).
   */
  read(userId: string, seq: number): boolean {
    const current = this.cursors.get(userId);
    if (current !== undefined && seq <= current) return false;
    this.cursors.set(userId, seq);
    this.pending.set(userId, seq);
    this.announce.set(userId, seq);
    this.schedule();
    return true;
  }

  /**
   * The user sent a message at `seq`: the commit statement already moved their cursor in
   * Postgres; memory follows. No receipt: the message itself says it.
   */
  sent(userId: string, seq: number): void {
    if ((this.cursors.get(userId) ?? 0) < seq) this.cursors.set(userId, seq);
    const pending = this.pending.get(userId);
    if (pending !== undefined && pending <= seq) this.pending.delete(userId);
  }

  /** Writes what is pending now (also before the room is deleted or a test asks). */
  async flush(): Promise<void> {
    await this.saving;
    const receipts = [...this.announce].map(([userId, seq]) => ({ userId, seq }));
    this.announce.clear();
    if (receipts.length > 0) this.deps.receipts(receipts);
    const batch = [...this.pending].map(([userId, seq]) => ({ userId, seq }));
    if (batch.length === 0) return;
    this.pending.clear();
    this.saving = this.deps.save(batch).catch((error: unknown) => {
      // Keep what did not land (unless a newer value came meanwhile) and try again later.
      for (const { userId, seq } of batch) if ((this.pending.get(userId) ?? -1) < seq) this.pending.set(userId, seq);
      this.deps.failed(error);
      this.schedule();
    });
    await this.saving;
    this.saving = undefined;
  }

  /** Forgets one user (erased): call after `flush`, so nothing of theirs is written after their row goes. */
  forget(userId: string): void {
    this.cursors.delete(userId);
    this.pending.delete(userId);
    this.announce.delete(userId);
  }

  /** Forgets everything (the room was deleted, or the writer role claimed anew). */
  clear(): void {
    this.cursors.clear();
    this.pending.clear();
    this.announce.clear();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.deps.later(() => {
      this.scheduled = false;
      void this.flush();
    }, this.flushMs);
  }
}
