// Presence: who is in the room now, per user across devices: a user is online while any of their
// sockets is open. The truth is the room's hibernatable sockets (their tags and attachments), so
// it survives hibernation and eviction; this part only decides when to announce a change.
//
// Flapping: a socket that closes and is replaced within PRESENCE_GRACE_MS (a reconnect) must not
// produce an offline/online pair, so a user's last socket closing starts a grace period; a new
// socket of theirs within it cancels the offline delta, and nobody hears anything. Pure: the
// timer is injected.

export const PRESENCE_GRACE_MS = 1500;

export type PresenceData = Record<string, unknown>;

export interface PresenceDeps {
  later(run: () => void, ms: number): { cancel(): void };
  /** True while the user has an open socket in the room (asked when the grace period ends). */
  isOnline(userId: string): boolean;
  /** Broadcasts `{"type":"presence","userId","online":false}`. */
  offline(userId: string): void;
}

export class PresenceTracker {
  private readonly leaving = new Map<string, { timer: { cancel(): void }; data: PresenceData | undefined }>();

  constructor(
    private readonly deps: PresenceDeps,
    private readonly graceMs = PRESENCE_GRACE_MS,
  ) {}

  /**
   * A socket of `userId` is being accepted; `hadSockets`: they had another one open already.
   * Returns true when the room must announce them online (nobody saw them online before).
   */
  joined(userId: string, hadSockets: boolean): boolean {
    const pending = this.leaving.get(userId);
    if (pending) {
      // A reconnect within the grace period: they never looked offline to anyone.
      pending.timer.cancel();
      this.leaving.delete(userId);
      return false;
    }
    return !hadSockets;
  }

  /** A socket of `userId` closed; `stillOnline`: another of theirs is open; `data`: their presence data. */
  left(userId: string, stillOnline: boolean, data: PresenceData | undefined): void {
    if (stillOnline || this.leaving.has(userId)) return;
    const timer = this.deps.later(() => {
      this.leaving.delete(userId);
      if (!this.deps.isOnline(userId)) this.deps.offline(userId);
    }, this.graceMs);
    this.leaving.set(userId, { timer, data });
  }

  /**
   * Users whose offline delta is still pending, with their last data: everyone else still sees
   * them online, so a snapshot given now must include them (the delta then removes them for all).
   */
  leavingUsers(): Array<{ userId: string; data: PresenceData | undefined }> {
    return [...this.leaving].map(([userId, { data }]) => ({ userId, data }));
  }
}
