// Typing indicators: who is typing now, coalesced. Never touches Postgres or the seq. A user is
// typing from a `typing` frame until TYPING_TTL_MS without a refresh, a `typing` stop frame, a
// message from them, or their last socket closing. The room broadcasts the set only when it
// changes, and a user's frames count at most once per TYPING_MIN_GAP_MS, so a flood of typing
// frames cannot turn into a flood of broadcasts. Pure: time is passed in.

export const TYPING_TTL_MS = 5000;
export const TYPING_MIN_GAP_MS = 500;

export class TypingSet {
  /** userId → when their indicator expires. */
  private readonly until = new Map<string, number>();
  private readonly lastFrame = new Map<string, number>();

  constructor(
    private readonly ttlMs = TYPING_TTL_MS,
    private readonly minGapMs = TYPING_MIN_GAP_MS,
  ) {}

  /** A `typing` frame. Returns true when the set of typists changed (broadcast it). */
  start(userId: string, now: number): boolean {
    const last = this.lastFrame.get(userId);
    if (last !== undefined && now - last < this.minGapMs) return false;
    this.lastFrame.set(userId, now);
    const was = this.until.has(userId);
    this.until.set(userId, now + this.ttlMs);
    return !was;
  }

  /** A stop frame, a message from the user, or their last socket closed. True when the set changed. */
  stop(userId: string): boolean {
    this.lastFrame.delete(userId);
    return this.until.delete(userId);
  }

  /** Drops indicators that ran out; true when the set changed. */
  expire(now: number): boolean {
    let changed = false;
    for (const [userId, until] of this.until) {
      if (until <= now) {
        this.until.delete(userId);
        this.lastFrame.delete(userId);
        changed = true;
      }
    }
    return changed;
  }

  /** When the next indicator runs out (undefined: nobody is typing). */
  nextExpiry(): number | undefined {
    let next: number | undefined;
    for (const until of this.until.values()) if (next === undefined || until < next) next = until;
    return next;
  }

  /** The typists, sorted, without `except` (a socket is not told about its own user). */
  users(except?: string): string[] {
    return [...this.until.keys()].filter((u) => u !== except).sort();
  }
}
