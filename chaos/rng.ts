// Seeded randomness for the chaos run. Every decision the harness makes (who sends what, when a
// fault strikes, which socket dies) comes from one of these, forked by name from the run's seed,
// so a failing seed replays the same workload and the same fault schedule. Timing on a shared
// machine is not replayable, so a replay reproduces the schedule, not every interleaving.

/** FNV-1a, 32-bit: turns a label into a number to mix into a seed. */
const hash = (text: string): number => {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
};

export class Rng {
  private state: number;

  constructor(readonly seed: number) {
    this.state = seed >>> 0;
  }

  /** mulberry32: small, fast, and good enough to pick fault times. Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi], both included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** A number in [lo, hi). */
  between(lo: number, hi: number): number {
    return lo + this.next() * (hi - lo);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error("Rng.pick: empty list");
    return item;
  }

  /** An independent stream named `label`: the same seed and label always give the same stream. */
  fork(label: string): Rng {
    return new Rng(deriveSeed(this.seed, label));
  }
}

/** The seed of a named sub-stream; used to print a per-scenario seed that replays on its own. */
export const deriveSeed = (seed: number, label: string): number =>
  (Math.imul(seed ^ hash(label), 0x9e3779b1) ^ hash(`${label}#`)) >>> 0;
