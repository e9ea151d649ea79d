// A replica's feed, as a pure state machine: what it has delivered to its sockets, what it holds
// above a gap, and which range it must fetch before it may deliver more. `seq` is dense (1, 2, 3,
// … with no gaps), so a replica knows exactly what it lacks: anything above `delivered` that is
// known committed (a push said so, or an answer from the primary did) and not held yet.
//
// The rules, and why each holds the contract (docs/architecture.md, "Regional replicas"):
//  - Entries are delivered in seq order, each once: an entry at or below `delivered` is a
//    duplicate (a push and a fill overlapping, a retried push) and is dropped; an entry above
//    `delivered + 1` waits in `held` until everything below it arrived.
//  - A fresh replica (nothing delivered, `delivered` undefined) starts at a watermark the primary
//    gives it, not at 0: it has no socket that is owed anything older.
//  - `held` is bounded: a replica that fell that far behind drops what it holds above the gap
//    (it fills the range from the source instead), so a lost push never pins memory.

import type { Entry } from "../protocol/frames.js";

/** What may be held above a gap before the feed stops holding and fills instead. */
export const MAX_HELD_ENTRIES = 5_000;

export class ReplicaFeed {
  /** The highest seq delivered to this replica's sockets (all below it too); undefined: not started. */
  private deliveredSeq: number | undefined;
  /** The highest seq known to be committed at the primary. */
  private knownSeq = 0;
  private readonly held = new Map<number, Entry>();
  private readonly waiters: Array<{ seq: number; resolve: () => void }> = [];

  constructor(private readonly maxHeld = MAX_HELD_ENTRIES) {}

  get delivered(): number | undefined {
    return this.deliveredSeq;
  }

  get known(): number {
    return Math.max(this.knownSeq, this.deliveredSeq ?? 0);
  }

  get heldCount(): number {
    return this.held.size;
  }

  /**
   * Starts a fresh feed at `seq` (the primary's last seq when it registered this replica), or
   * restores one from storage after a wake-up. Held entries above it are delivered now; those at
   * or below it are dropped (the sockets that join from here get them in their history).
   */
  start(seq: number): Entry[] {
    this.deliveredSeq = seq;
    this.learn(seq);
    for (const held of [...this.held.keys()]) if (held <= seq) this.held.delete(held);
    return this.drain();
  }

  /** Forgets everything (the replica has no socket left: nothing is owed to anyone). */
  reset(): void {
    this.deliveredSeq = undefined;
    this.knownSeq = 0;
    this.held.clear();
  }

  /** The primary is at least at `seq` (a push's lastSeq, an ack's seq, a sync answer). */
  learn(seq: number): void {
    if (seq > this.knownSeq) this.knownSeq = seq;
  }

  /**
   * Entries from any source (a push, a Redis read, the primary's range), in any order, with
   * duplicates: returns what may be delivered now, in seq order. Before the feed started,
   * everything is held (the start decides what is owed).
   */
  offer(entries: readonly Entry[]): Entry[] {
    for (const entry of entries) {
      this.learn(entry.seq);
      if (this.deliveredSeq !== undefined && entry.seq <= this.deliveredSeq) continue;
      if (!this.held.has(entry.seq)) this.held.set(entry.seq, entry);
    }
    const out = this.deliveredSeq === undefined ? [] : this.drain();
    if (this.held.size > this.maxHeld) this.dropAboveGap();
    return out;
  }

  /** The range to fetch before anything more can be delivered: (after, upto], or undefined. */
  gap(): { after: number; upto: number } | undefined {
    if (this.deliveredSeq === undefined) return undefined;
    const after = this.deliveredSeq;
    if (this.known <= after) return undefined;
    // Fetch up to the first entry held above the gap (or everything known when none is held).
    let upto = this.known;
    for (const seq of this.held.keys()) if (seq > after && seq - 1 < upto) upto = seq - 1;
    return upto > after ? { after, upto } : undefined;
  }

  /** Resolves once `seq` is delivered (an ack waits for its own entry's frame). */
  reached(seq: number): Promise<void> {
    this.learn(seq);
    if (this.deliveredSeq !== undefined && this.deliveredSeq >= seq) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ seq, resolve }));
  }

  /** Waiters that will never be satisfied here (the feed was reset, the replica is going away). */
  failWaiters(): Array<() => void> {
    const all = this.waiters.splice(0).map((w) => w.resolve);
    return all;
  }

  private drain(): Entry[] {
    const out: Entry[] = [];
    let next = (this.deliveredSeq ?? 0) + 1;
    for (let entry = this.held.get(next); entry; entry = this.held.get(next)) {
      out.push(entry);
      this.held.delete(next);
      next++;
    }
    if (out.length > 0) {
      this.deliveredSeq = next - 1;
      const delivered = this.deliveredSeq;
      for (let i = this.waiters.length - 1; i >= 0; i--) {
        const waiter = this.waiters[i];
        if (waiter && waiter.seq <= delivered) {
          this.waiters.splice(i, 1);
          waiter.resolve();
        }
      }
    }
    return out;
  }

  /** Keeps the lowest entries above the gap, within the bound; the rest is fetched again later. */
  private dropAboveGap(): void {
    const seqs = [...this.held.keys()].sort((a, b) => a - b);
    for (const seq of seqs.slice(this.maxHeld)) this.held.delete(seq);
  }
}
