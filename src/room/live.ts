// What the room knows about its people besides the stream: read cursors and receipts
// (cursors.ts), typing (typing.ts) and presence (presence.ts), wired to the room's sockets.
// Typing and presence never touch Postgres or the seq; cursors are written coalesced.
//
// Presence snapshot and deltas, race-free like the history handshake: in the turn a socket is
// accepted, (1) the "online" delta for its user, if any, goes to the sockets already there,
// (2) the snapshot for the new socket is taken, including its own user, and (3) the socket is
// registered, so from then on every delta is buffered behind its `ready`. A delta is thus either
// in the snapshot (taken after it) or delivered after it (buffered), never both, never neither.

import { encodeFrame } from "../protocol/codec.js";
import { ErrorCode } from "../protocol/errors.js";
import { type Entry, EntryKind, type PresenceEntry, type ServerFrame, ServerFrameType } from "../protocol/frames.js";
import type { RoomKey } from "../storage/types.js";
import { CursorBook } from "./cursors.js";
import { PresenceTracker } from "./presence.js";
import type { SocketAttachment, SocketHub } from "./sockets.js";
import { TypingSet } from "./typing.js";

export interface LiveDeps {
  room: RoomKey;
  sockets: SocketHub;
  /** Postgres: the cursor of a user the room does not know yet, counts, and the coalesced write. */
  readCursor(userId: string): Promise<number>;
  saveCursors(cursors: Array<{ userId: string; seq: number }>): Promise<void>;
  /** Messages (kind `message`) with afterSeq < seq <= uptoSeq: from the window, else Postgres. */
  countMessages(afterSeq: number, uptoSeq: number): Promise<number>;
  lastSeq(): number;
  warn(message: string, error: unknown): void;
  now?: () => number;
  /** Regional replicas: every ephemeral frame and the typing set also go to them (src/room/replicas.ts). */
  relay?(frame: ServerFrame, minProtocol: number): void;
  relayTyping?(userIds: string[]): void;
  /** setTimeout, returning a cancel; the room's timers keep it awake only while they are pending. */
  later?: (run: () => void, ms: number) => { cancel(): void };
}

/** The protocol version that introduced receipt, typing and presence frames. */
const LIVE_PROTOCOL = 2;

const defaultLater = (run: () => void, ms: number) => {
  const timer = setTimeout(run, ms);
  return { cancel: () => clearTimeout(timer) };
};

export class LiveState {
  readonly cursors: CursorBook;
  private readonly typing = new TypingSet();
  private readonly presence: PresenceTracker;
  private typingTimer: { cancel(): void } | undefined;
  /**
   * Users connected at regional replicas: userId → (replica → open sockets there). Memory only;
   * each replica reports its full count at every sync (replicaSync), which heals a lost leave
   * (an evicted replica) and refills this after the primary restarts.
   */
  private readonly remote = new Map<string, Map<string, number>>();
  private readonly now: () => number;
  private readonly later: (run: () => void, ms: number) => { cancel(): void };

  constructor(private readonly deps: LiveDeps) {
    this.now = deps.now ?? Date.now;
    this.later = deps.later ?? defaultLater;
    this.cursors = new CursorBook({
      save: (cursors) => deps.saveCursors(cursors),
      receipts: (cursors) => {
        for (const { userId, seq } of cursors) this.broadcast({ type: ServerFrameType.Receipt, userId, seq });
      },
      later: (run, ms) => void this.later(run, ms),
      failed: (error) => deps.warn("read cursors not saved yet", error),
    });
    this.presence = new PresenceTracker({
      later: (run, ms) => this.later(run, ms),
      isOnline: (userId) => this.isOnline(userId),
      offline: (userId) => this.broadcast({ type: ServerFrameType.Presence, userId, online: false }),
    });
  }

  /** Before a join's sync section: make sure the user's cursor is in memory (may read Postgres). */
  async loadCursor(userId: string): Promise<void> {
    if (this.cursors.known(userId) === undefined) this.cursors.learn(userId, await this.deps.readCursor(userId));
  }

  /**
   * In the accept turn, before the socket is registered: announce the user if they were not
   * online, and take the snapshot the new socket's `ready` will carry (see the top of this file).
   */
  joining(userId: string): { readSeq: number; presence: PresenceEntry[] } {
    if (this.presence.joined(userId, this.isOnline(userId))) {
      this.broadcast({ type: ServerFrameType.Presence, userId, online: true });
    }
    const online = this.onlineEverywhere();
    if (!online.has(userId)) online.set(userId, undefined);
    for (const { userId: leaving, data } of this.presence.leavingUsers()) if (!online.has(leaving)) online.set(leaving, data);
    const presence = [...online]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([id, data]) => (data === undefined ? { userId: id } : { userId: id, data }));
    return { readSeq: this.cursors.known(userId) ?? 0, presence };
  }

  /** Unread for `ready`: messages after the cursor up to the watermark (own messages are never after it). */
  unread(readSeq: number, watermark: number): Promise<number> {
    return readSeq >= watermark ? Promise.resolve(0) : this.deps.countMessages(readSeq, watermark);
  }

  /** A `read` frame or `PUT …/read`. Throws nothing; returns an error text for a cursor ahead of the room. */
  read(userId: string, seq: number): { ok: true } | { ok: false; code: ErrorCode; message: string } {
    const latest = this.deps.lastSeq();
    if (seq > latest) {
      return { ok: false, code: ErrorCode.BadRequest, message: `unable to mark read; seq ${seq} is ahead of the room's latest seq ${latest}` };
    }
    this.cursors.read(userId, seq);
    return { ok: true };
  }

  typingFrame(userId: string, stop: boolean): void {
    const changed = stop ? this.typing.stop(userId) : this.typing.start(userId, this.now());
    if (changed) this.announceTyping();
    this.scheduleTypingExpiry();
  }

  presenceData(ws: WebSocket, userId: string, data: Record<string, unknown>): void {
    this.deps.sockets.setPresence(ws, data);
    this.broadcast({ type: ServerFrameType.Presence, userId, online: true, data });
  }

  /** A socket of `userId` became live at `replica`: online for everyone, as a join here is. */
  remoteJoined(replica: string, userId: string): void {
    const wasOnline = this.isOnline(userId);
    const at = this.remote.get(userId) ?? new Map<string, number>();
    at.set(replica, (at.get(replica) ?? 0) + 1);
    this.remote.set(userId, at);
    if (this.presence.joined(userId, wasOnline)) this.broadcast({ type: ServerFrameType.Presence, userId, online: true });
  }

  /** A socket of `userId` at `replica` closed. */
  remoteLeft(replica: string, userId: string): void {
    const at = this.remote.get(userId);
    const n = at?.get(replica) ?? 0;
    if (!at || n === 0) return;
    if (n > 1) at.set(replica, n - 1);
    else at.delete(replica);
    if (at.size === 0) this.remote.delete(userId);
    this.presence.left(userId, this.isOnline(userId), undefined);
    if (!this.isOnline(userId) && this.typing.stop(userId)) this.announceTyping();
  }

  /** A replica's full report (its sync): who has how many sockets there now. */
  remoteReport(replica: string, present: Readonly<Record<string, number>>): void {
    for (const [userId, at] of this.remote) {
      const reported = present[userId] ?? 0;
      for (let n = at.get(replica) ?? 0; n > reported; n--) this.remoteLeft(replica, userId);
    }
    for (const [userId, count] of Object.entries(present)) {
      for (let n = this.remote.get(userId)?.get(replica) ?? 0; n < count; n++) this.remoteJoined(replica, userId);
    }
  }

  private isOnline(userId: string): boolean {
    return this.deps.sockets.openOf(userId).length > 0 || this.remote.has(userId);
  }

  /** Local sockets' users with their data, and users connected at replicas. */
  private onlineEverywhere(): Map<string, Record<string, unknown> | undefined> {
    const online = this.deps.sockets.online();
    for (const userId of this.remote.keys()) if (!online.has(userId)) online.set(userId, undefined);
    return online;
  }

  /** Presence data set by a user connected at a replica (their socket's data lives there). */
  remotePresence(userId: string, data: Record<string, unknown>): void {
    this.broadcast({ type: ServerFrameType.Presence, userId, online: true, data });
  }

  /** Committed entries: a sender's message moves their cursor and ends their typing indicator. */
  committed(entries: readonly Entry[]): void {
    let typingChanged = false;
    for (const entry of entries) {
      if (entry.kind !== EntryKind.Message) continue;
      this.cursors.sent(entry.userId, entry.seq);
      if (this.typing.stop(entry.userId)) typingChanged = true;
    }
    if (typingChanged) this.announceTyping();
  }

  /** A socket closed: its user may go offline (after the grace period) and stops typing. */
  closed(ws: WebSocket, attachment: SocketAttachment): void {
    const stillOnline = this.deps.sockets.openOf(attachment.userId, ws).length > 0;
    this.presence.left(attachment.userId, stillOnline, attachment.presence?.data);
    if (!stillOnline && this.typing.stop(attachment.userId)) this.announceTyping();
  }

  /** Occupancy for `/status` and `GET …/presence`. */
  occupancy(): { users: number; sockets: number; presence: PresenceEntry[] } {
    const online = this.onlineEverywhere();
    let sockets = 0;
    this.deps.sockets.each(() => {
      sockets++;
    });
    const presence = [...online]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([userId, data]) => (data === undefined ? { userId } : { userId, data }));
    return { users: online.size, sockets, presence };
  }

  private announceTyping(): void {
    this.deps.relayTyping?.(this.typing.users());
    // Each socket hears the typists other than its own user.
    this.deps.sockets.each(
      (ws, attachment) => this.deps.sockets.send(ws, { type: ServerFrameType.Typing, userIds: this.typing.users(attachment.userId) }),
      LIVE_PROTOCOL,
    );
  }

  private scheduleTypingExpiry(): void {
    this.typingTimer?.cancel();
    const next = this.typing.nextExpiry();
    if (next === undefined) return;
    this.typingTimer = this.later(() => {
      this.typingTimer = undefined;
      if (this.typing.expire(this.now())) this.announceTyping();
      this.scheduleTypingExpiry();
    }, Math.max(0, next - this.now()));
  }

  /** Receipts, typing and presence are protocol 2 frames: never sent to a version-1 client. */
  private broadcast(frame: ServerFrame): void {
    this.deps.relay?.(frame, LIVE_PROTOCOL);
    this.deps.sockets.broadcastFrom(LIVE_PROTOCOL, [encodeFrame(frame)]);
  }
}
