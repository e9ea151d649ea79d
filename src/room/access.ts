// Who may do what in a room, and how fast. `can` and TokenBucket are pure; RoomAccess adds the
// roles cache in front of Postgres. None of them changes anything on its own: the room object
// asks, these answer, and every change (a join on first send) is a call the room makes itself.

import { ChatError, ErrorCode } from "../protocol/errors.js";
import type { MessageStore, Role, RoomKey, RoomRecord, Visibility } from "../storage/types.js";

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

/** What a decision needs of Postgres. */
export type AccessStore = Pick<MessageStore, "roleOf">;

/**
 * The room's roles, cached. Every membership change goes through the room's object (its single
 * writer), so the cache cannot go stale while this instance holds the writer role; it is cleared
 * whenever the role is claimed again.
 *
 * The one race it must not lose: a role read from Postgres that was started *before* a change
 * (say a removal) and answers *after* it would put the old role back. Each change bumps the
 * user's version, and a read only fills the cache if no change happened while it was in flight.
 */
export class RoomAccess {
  private readonly roles = new Map<string, Role | null>();
  private readonly versions = new Map<string, number>();
  private epoch = 0;

  constructor(
    private readonly room: RoomKey,
    private readonly store: () => AccessStore,
    private readonly maxCached = 50_000,
  ) {}

  /** The user's role now (null: not a member). */
  async roleOf(userId: string): Promise<Role | null> {
    const cached = this.roles.get(userId);
    if (cached !== undefined) return cached;
    const version = this.versions.get(userId) ?? 0;
    const epoch = this.epoch;
    const role = await this.store().roleOf(this.room, userId);
    if (epoch !== this.epoch || (this.versions.get(userId) ?? 0) !== version) {
      // Changed (or cleared) while we read: the newer state wins, whatever this read says.
      return this.roleOf(userId);
    }
    if (this.roles.size >= this.maxCached) this.roles.clear();
    this.roles.set(userId, role);
    return role;
  }

  /** The cached role, if known, without a read (undefined: not cached). */
  known(userId: string): Role | null | undefined {
    return this.roles.get(userId);
  }

  /** Records a change this object made (or is about to make: revocations apply here first). */
  set(userId: string, role: Role | null): void {
    this.versions.set(userId, (this.versions.get(userId) ?? 0) + 1);
    this.roles.set(userId, role);
  }

  /** Forgets everything (a new writer role, a deleted room). Reads in flight do not fill the cache. */
  clear(): void {
    this.epoch++;
    this.roles.clear();
    this.versions.clear();
  }
}

/** The typed refusal of `action`. */
export const forbidden = (action: Action): ChatError => {
  const what = action === "read" ? "read this private room" : action === "send" ? "send here" : "manage this room";
  return new ChatError(ErrorCode.Forbidden, `unable to ${action}; you may not ${what}`);
};

const RANK: Record<Role, number> = { viewer: 1, member: 2, admin: 3 };

/** True when going from `from` to `to` takes a permission away (null = no role). */
export const isRevocation = (from: Role | null, to: Role | null): boolean =>
  (to === null ? 0 : RANK[to]) < (from === null ? 0 : RANK[from]);

/** Open rooms: a first send in a public room by a user with no role makes them a member. */
export const joinsOnSend = (record: RoomRecord, role: Role | null, openRooms: boolean): boolean =>
  role === null && record.visibility === "public" && openRooms;
