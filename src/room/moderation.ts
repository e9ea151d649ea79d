// Moderation in the room object: room bans, timed mutes, tenant bans as this room sees them,
// and erasing a user's traces in the room. Pure parts (verdicts, the cache) are tested in plain
// Node (moderation.test.ts); RoomModeration runs in the room with its dependencies injected.
//
// Why a ban cannot race with what it forbids (the property test/moderation.test.ts runs many
// times: no entry of a banned user has a seq above the ban's entry):
//  - The ban is applied in memory FIRST, in one turn with closing the user's sockets: from that
//    turn no socket of theirs is accepted (Room.fetch decides in the accepting turn), no read is
//    served (Room.decide runs after the last await), and no frame is sent to them.
//  - Entries already past their check are caught by the writer: every batch is screened against
//    memory in the synchronous turn it is formed (Writer hooks.admit), before its statement. A
//    batch formed before the ban commits before the ban's own entry (one batch at a time, in
//    order), so its seqs are below the ban's; every batch formed after is screened.
//  - The edge read path (Redis) learns the ban from a mark written before Postgres, in the same
//    round trip as its read; a failure to write the mark undoes the ban (`unavailable`), as a
//    room going private does.
//  - A tenant ban is written to Redis and Postgres by the Worker and then told to every room of
//    the tenant (`tenantBanChanged`), each applying it in memory the same way; the server API
//    answers after every room has it. A room that was not running reads it from Postgres with
//    the user's other restrictions (one query, cached for CACHE_TTL_MS as a backstop).

import { ChatError, ErrorCode } from "../protocol/errors.js";
import { EntryKind, SystemEvent } from "../protocol/frames.js";
import { SERVER_ACTOR } from "../protocol/limits.js";
import { type ModerationState, NO_RESTRICTIONS, type Restriction, type RestrictionKind } from "../storage/moderation.js";
import type { RoomKey } from "../storage/types.js";
import type { SystemEventBody } from "./admin.js";
import { failure, type Failure, type SendOutcome } from "./results.js";
import type { PendingEntry } from "./writer.js";

/** How long a user's restrictions read from Postgres are trusted without a change seen here. */
export const CACHE_TTL_MS = 60_000;

const active = (r: Restriction | null, now: number): r is Restriction => r !== null && (r.until === null || Date.parse(r.until) > now);

const untilText = (r: Restriction): string => (r.until === null ? "" : ` until ${r.until}`);

/**
 * What the restrictions forbid now: a ban (tenant or room) forbids everything, a mute only
 * sending. Undefined: allowed.
 */
export const verdictOf = (state: ModerationState, action: "read" | "send", now: number): ChatError | undefined => {
  const verb = action === "read" ? "read" : "send";
  if (active(state.tenantBan, now)) {
    return new ChatError(ErrorCode.Banned, `unable to ${verb}; you are banned from this tenant${untilText(state.tenantBan)}`);
  }
  if (active(state.ban, now)) return new ChatError(ErrorCode.Banned, `unable to ${verb}; you are banned from this room${untilText(state.ban)}`);
  if (action === "send" && active(state.mute, now)) {
    return new ChatError(ErrorCode.Muted, `unable to send; you are muted in this room${untilText(state.mute)}`);
  }
  return undefined;
};

/** True when the state bans the user now (their sockets must close). */
export const isBanned = (state: ModerationState, now: number): boolean => active(state.tenantBan, now) || active(state.ban, now);

/**
 * Restrictions per user, cached in front of Postgres. The one race it must not lose is the one
 * RoomAccess loses nothing to either: a read that started before a change and answers after it
 * would put the old state back. A change bumps the user's version and a read only fills the
 * cache if none happened meanwhile; while a change is being written (`begin` … `end`), reads
 * never replace what memory says, because Postgres may not say it yet.
 */
export class ModerationCache {
  private readonly states = new Map<string, { state: ModerationState; loadedAt: number }>();
  private readonly versions = new Map<string, number>();
  private readonly changing = new Map<string, number>();

  constructor(
    private readonly load: (userId: string) => Promise<ModerationState>,
    private readonly now: () => number = Date.now,
    private readonly ttlMs = CACHE_TTL_MS,
    private readonly maxCached = 50_000,
  ) {}

  /** The user's restrictions, from memory while fresh, else from Postgres. */
  async stateOf(userId: string): Promise<ModerationState> {
    const cached = this.states.get(userId);
    if (cached && (this.changing.has(userId) || this.now() - cached.loadedAt < this.ttlMs)) return cached.state;
    const version = this.versions.get(userId) ?? 0;
    const state = await this.load(userId);
    if ((this.versions.get(userId) ?? 0) !== version || this.changing.has(userId)) return this.stateOf(userId);
    if (this.states.size >= this.maxCached) this.states.clear();
    this.states.set(userId, { state, loadedAt: this.now() });
    return state;
  }

  /** What memory holds (possibly stale, never older than a change made here); undefined: not loaded. */
  known(userId: string): ModerationState | undefined {
    return this.states.get(userId)?.state;
  }

  /**
   * Applies a change in memory now. `pinned`: a change that is still being written (undo it with
   * the returned function, or confirm it with `end`).
   */
  apply(userId: string, patch: Partial<ModerationState>, pinned = false): () => void {
    const before = this.states.get(userId);
    this.versions.set(userId, (this.versions.get(userId) ?? 0) + 1);
    if (!before && !pinned && Object.values(patch).every((r) => r === null)) {
      // Lifting something for a user not loaded: nothing to forget, and assuming "no other
      // restriction" would hide a room ban behind a lifted tenant ban. The next check reads Postgres.
      return () => {};
    }
    // An unloaded user gets a state that says only what this change knows, marked stale, so it
    // is re-read at the next check (never while pinned), which fills in the rest.
    this.states.set(userId, { state: { ...(before?.state ?? NO_RESTRICTIONS), ...patch }, loadedAt: before?.loadedAt ?? 0 });
    if (pinned) this.changing.set(userId, (this.changing.get(userId) ?? 0) + 1);
    return () => {
      this.versions.set(userId, (this.versions.get(userId) ?? 0) + 1);
      if (before) this.states.set(userId, before);
      else this.states.delete(userId);
      if (pinned) this.end(userId);
    };
  }

  /** A pinned change is durable: reads may refresh the user again. */
  end(userId: string): void {
    const n = (this.changing.get(userId) ?? 1) - 1;
    if (n > 0) this.changing.set(userId, n);
    else this.changing.delete(userId);
  }

  /**
   * The writer's screen, synchronous: refuses an entry of a user whom memory knows to be banned
   * or muted now. Entries of the server actor are never refused (its deletes erase a user).
   */
  screen(entry: Pick<PendingEntry, "userId" | "kind">): Failure | undefined {
    if (entry.userId === SERVER_ACTOR || entry.kind === EntryKind.System) return undefined;
    const state = this.states.get(entry.userId)?.state;
    if (!state) return undefined;
    const refused = verdictOf(state, "send", this.now());
    return refused ? failure(refused.code, refused.message) : undefined;
  }
}

/** Who may ban: room admins (not other admins, nor themselves) and the server actor (anyone). */
export const mayRestrict = (actor: string, target: string, targetRole: string | null): ChatError | undefined => {
  if (actor === target) return new ChatError(ErrorCode.BadRequest, "unable to restrict; you cannot restrict yourself");
  if (target === SERVER_ACTOR) return new ChatError(ErrorCode.BadRequest, "unable to restrict; not a user");
  if (targetRole === "admin" && actor !== SERVER_ACTOR) {
    return new ChatError(ErrorCode.Forbidden, "unable to restrict an admin; demote them first (or use the server API)");
  }
  return undefined;
};

export interface ModerationDeps {
  key: RoomKey;
  cache: ModerationCache;
  /** Boots the room and checks that the actor may manage it (the server actor may). */
  authorizeManage(actor: string): Promise<void>;
  roleOf(userId: string): Promise<string | null>;
  /** Memory's role change (a ban ends a membership); returns an undo. */
  revokeRole(userId: string): () => void;
  /** Closes every socket of the user with `code` (in the calling turn). */
  endSockets(userId: string, code: ErrorCode, reason: string): void;
  store: {
    restrict(room: RoomKey, userId: string, kind: RestrictionKind, until: string | null, reason: string | null, actor: string): Promise<{
      restriction: Restriction;
      wasMember: boolean;
    }>;
    lift(room: RoomKey, userId: string, kind: RestrictionKind): Promise<boolean>;
    liveMessageSeqs(room: RoomKey, userId: string, afterSeq: number, limit: number): Promise<number[]>;
    forgetUserInRoom(room: RoomKey, userId: string): Promise<void>;
  };
  /** The edge read path's ban mark (absent: no Redis). Awaited; a failure undoes the ban. */
  markBan?(userId: string, until: string | null): Promise<void>;
  unmarkBan?(userId: string): Promise<void>;
  /** Serialises with membership changes (RoomAdmin.exclusive). */
  exclusive<T>(run: () => Promise<T>): Promise<T>;
  /** Every entry submitted so far has its outcome. */
  settled(): Promise<void>;
  recordEvent(actor: string, event: SystemEventBody, text: string): Promise<void>;
  /** Submits an entry straight to the writer and resolves with its outcome. */
  commit(entry: Omit<PendingEntry, "deliver" | "bytes">): Promise<SendOutcome>;
  /** Drops the user's cursor from memory after writing what is pending (an erase). */
  forgetCursor(userId: string): Promise<void>;
  now?: () => number;
}

export interface RestrictionInfo {
  userId: string;
  kind: RestrictionKind;
  until: string | null;
  reason: string | null;
  createdBy: string;
  createdAt: string;
}

export class RoomModeration {
  constructor(private readonly deps: ModerationDeps) {}

  private get now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Bans or mutes `target` (see the argument at the top of this file). */
  restrict(actor: string, target: string, kind: RestrictionKind, until: string | null, reason: string | null): Promise<RestrictionInfo> {
    return this.deps.exclusive(async () => {
      const { key, cache, store } = this.deps;
      await this.deps.authorizeManage(actor);
      const role = await this.deps.roleOf(target);
      const refused = mayRestrict(actor, target, role);
      if (refused) throw refused;
      await cache.stateOf(target);
      const draft: Restriction = { until, reason, createdBy: actor, createdAt: new Date(this.now).toISOString() };
      // Memory first, in one turn with the sockets: from here the user is refused everywhere.
      const undo = cache.apply(target, kind === "ban" ? { ban: draft } : { mute: draft }, true);
      const undoRole = kind === "ban" ? this.deps.revokeRole(target) : () => {};
      if (kind === "ban") this.deps.endSockets(target, ErrorCode.Banned, "you were banned from this room");
      let stored: { restriction: Restriction; wasMember: boolean };
      try {
        if (kind === "ban") await this.deps.markBan?.(target, until);
        stored = await store.restrict(key, target, kind, until, reason, actor);
      } catch (error) {
        undo();
        undoRole();
        throw error;
      }
      cache.apply(target, kind === "ban" ? { ban: stored.restriction } : { mute: stored.restriction });
      cache.end(target);
      // Entries that were already past every check have their outcome before the timeline line.
      await this.deps.settled();
      const timed = until === null ? {} : { until };
      if (kind === "ban") {
        if (stored.wasMember) await this.deps.recordEvent(actor, { event: SystemEvent.MemberRemoved, subject: target }, `${actor} removed ${target}`);
        await this.deps.recordEvent(actor, { event: SystemEvent.MemberBanned, subject: target, ...timed }, `${actor} banned ${target}`);
      } else {
        await this.deps.recordEvent(actor, { event: SystemEvent.MemberMuted, subject: target, ...timed }, `${actor} muted ${target}`);
      }
      return { userId: target, kind, ...stored.restriction };
    });
  }

  /** Lifts a ban or a mute: durable first, then memory (a grant). A lifted ban does not restore the membership. */
  lift(actor: string, target: string, kind: RestrictionKind): Promise<{ lifted: boolean }> {
    return this.deps.exclusive(async () => {
      const { key, cache, store } = this.deps;
      await this.deps.authorizeManage(actor);
      const lifted = await store.lift(key, target, kind);
      cache.apply(target, kind === "ban" ? { ban: null } : { mute: null });
      if (kind === "ban") await this.deps.unmarkBan?.(target).catch(() => {});
      if (lifted) {
        await this.deps.recordEvent(
          actor,
          { event: kind === "ban" ? SystemEvent.MemberUnbanned : SystemEvent.MemberUnmuted, subject: target },
          `${actor} ${kind === "ban" ? "unbanned" : "unmuted"} ${target}`,
        );
      }
      return { lifted };
    });
  }

  /** A tenant ban (or its lifting) that the Worker wrote: applied in memory, sockets closed. */
  tenantBanChanged(userId: string, ban: Restriction | null): void {
    this.deps.cache.apply(userId, { tenantBan: ban });
    if (ban && isBanned({ ...NO_RESTRICTIONS, tenantBan: ban }, this.now)) {
      this.deps.endSockets(userId, ErrorCode.Banned, "you were banned from this tenant");
    }
  }

  /**
   * Erases the user here: every message of theirs becomes a tombstone through the writer (so
   * live clients get the delete entries), then their membership and read cursor go. Retrying is
   * safe: each delete's clientMsgId is derived from its target.
   */
  erase(userId: string): Promise<{ deleted: number }> {
    return this.deps.exclusive(async () => {
      const { key, store } = this.deps;
      await this.deps.authorizeManage(SERVER_ACTOR);
      this.deps.revokeRole(userId);
      this.deps.endSockets(userId, ErrorCode.Forbidden, "this account was erased");
      let deleted = 0;
      let after = 0;
      for (;;) {
        const seqs = await store.liveMessageSeqs(key, userId, after, 500);
        if (seqs.length === 0) break;
        const outcomes = await Promise.all(
          seqs.map((target) =>
            this.deps.commit({
              id: crypto.randomUUID(),
              kind: EntryKind.Delete,
              userId: SERVER_ACTOR,
              clientMsgId: `erase:${target}`,
              text: "",
              target,
              role: "admin",
            }),
          ),
        );
        for (const outcome of outcomes) {
          if (outcome.ok) deleted += outcome.duplicate ? 0 : 1;
          // Deleted meanwhile (by its author or an admin): a tombstone already.
          else if (outcome.code !== ErrorCode.Conflict) throw new ChatError(outcome.code, outcome.message);
        }
        after = seqs[seqs.length - 1] ?? after;
      }
      await this.deps.forgetCursor(userId);
      await store.forgetUserInRoom(key, userId);
      return { deleted };
    });
  }
}
