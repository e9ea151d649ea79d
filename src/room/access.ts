// Who may do what in a room, and how fast. Pure functions: the room object asks, these answer.

import type { Role, Visibility } from "../storage/types.js";

export type Action = "read" | "send" | "manage";

/**
 * - read (connect, history, members): anyone of the tenant in a public room; members (any role)
 *   in a private room;
 * - send: members and admins (viewers are read-only);
 * - manage (update, delete, add/remove members, change roles): admins.
 */
export const can = (action: Action, visibility: Visibility, role: Role | null): boolean => {
  switch (action) {
    case "read":
      return visibility === "public" || role !== null;
    case "send":
      return role === "member" || role === "admin";
    case "manage":
      return role === "admin";
  }
};

/**
 * A token bucket: `capacity` sends at once, refilled at `ratePerSecond`. Time is passed in, so the
 * bucket is testable and works with workerd's coarse clock.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly capacity: number,
    private readonly ratePerSecond: number,
    now: number,
  ) {
    this.tokens = capacity;
    this.updatedAt = now;
  }

  /** Takes one token; otherwise returns how long until one is available (ms). */
  take(now: number): { ok: true } | { ok: false; retryAfterMs: number } {
    this.tokens = Math.min(this.capacity, this.tokens + ((now - this.updatedAt) / 1000) * this.ratePerSecond);
    this.updatedAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.ceil(((1 - this.tokens) / this.ratePerSecond) * 1000) };
  }

  /** Full again (nothing taken for a while): the holder can be forgotten. */
  isIdle(now: number): boolean {
    return this.tokens + ((now - this.updatedAt) / 1000) * this.ratePerSecond >= this.capacity;
  }
}
