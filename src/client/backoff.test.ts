import { describe, expect, it } from "vitest";
import { Backoff, backoffDelay } from "./backoff.js";

const policy = { baseMs: 500, maxMs: 10_000 };

describe("backoff", () => {
  it("every delay is within [0, min(cap, base·2^attempt)] (full jitter)", () => {
    for (let attempt = 0; attempt < 40; attempt++) {
      const ceiling = Math.min(10_000, 500 * 2 ** attempt);
      expect(backoffDelay(attempt, policy, () => 0)).toBe(0);
      const top = backoffDelay(attempt, policy, () => 0.999_999);
      expect(top).toBeLessThanOrEqual(ceiling);
      expect(top).toBeGreaterThanOrEqual(ceiling - 1);
    }
  });

  it("grows exponentially until the cap of about 10 s, and reset starts over", () => {
    const backoff = new Backoff(policy, () => 0.999_999);
    const delays = Array.from({ length: 7 }, () => backoff.next());
    expect(delays).toEqual([499, 999, 1999, 3999, 7999, 9999, 9999]);
    expect(backoff.attempt).toBe(7);
    backoff.reset();
    expect(backoff.next()).toBe(499);
  });
});
