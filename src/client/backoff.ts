// Exponential backoff with full jitter (delay uniform in [0, min(cap, base·2^attempt)]). Full jitter
// spreads a crowd of clients that lost the same server at the same moment, so a redeploy does not
// come back to a thundering herd of synchronized reconnects.

export interface BackoffPolicy {
  /** The ceiling of the first delay. */
  baseMs: number;
  /** No delay is longer than this. */
  maxMs: number;
}

/** Reconnects and send retries: first retry within 0.5 s, never waiting more than 10 s. */
export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, maxMs: 10_000 };

/**
 * The delay before retry number `attempt` (0 for the first retry).
 *
 * @example
 * backoffDelay(3, { baseMs: 500, maxMs: 10_000 }); // somewhere in [0, 4000] ms
 */
export const backoffDelay = (attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number => {
  // 2^attempt overflows to Infinity long before it matters; the cap keeps the result finite.
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt));
  return Math.floor(random() * ceiling);
};

/**
 * Counts consecutive failures and hands out the next delay.
 *
 * @example
 * const backoff = new Backoff();
 * setTimeout(reconnect, backoff.next()); // after a failure
 * backoff.reset();                       // after a success
 */
export class Backoff {
  #attempt = 0;

  constructor(
    private readonly policy: BackoffPolicy = DEFAULT_BACKOFF,
    private readonly random: () => number = Math.random,
  ) {}

  /** Failures since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  next(): number {
    return backoffDelay(this.#attempt++, this.policy, this.random);
  }

  reset(): void {
    this.#attempt = 0;
  }
}
