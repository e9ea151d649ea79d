// The room's sockets: hibernatable WebSockets, their attachments, and the per-socket buffer that
// keeps live frames behind `ready` while a socket joins. Every frame to a socket goes through
// here, so nothing can overtake `ready`.

import { encodeFrame, utf8Length } from "../protocol/codec.js";
import { closeCodeOf, ErrorCode } from "../protocol/errors.js";
import { ServerFrameType, type ServerFrame } from "../protocol/frames.js";
import { MAX_JOIN_BUFFER_FRAMES, MAX_UNCONFIRMED_BYTES } from "../protocol/limits.js";
import type { RoomKey } from "../storage/types.js";

/** Per-socket state that must survive hibernation (the object's constructor runs again on wake-up). */
export interface SocketAttachment extends RoomKey {
  v: 1;
  userId: string;
  /**
   * The protocol version both sides speak on this socket (min of the client's `v` and ours),
   * so an entry kind a client predates can be shaped for it. Absent in attachments written
   * before versions existed: 1.
   */
  protocol?: number;
  /** True once `ready` was sent: from then on the socket receives live frames directly. */
  ready: boolean;
  /** Presence data this socket set (`presence` frame), with when, so the newest of a user's devices wins. */
  presence?: { data: Record<string, unknown>; at: number };
}

export const attachmentOf = (ws: WebSocket): SocketAttachment | undefined => {
  const value = ws.deserializeAttachment() as SocketAttachment | null;
  return value && value.v === 1 ? value : undefined;
};

/** A socket can be closing at any moment; a failed send to it is not an error of the room. */
export const safeSend = (ws: WebSocket, data: string): void => {
  try {
    ws.send(data);
  } catch {}
};

export const safeClose = (ws: WebSocket, code: number, reason: string): void => {
  try {
    ws.close(code, reason.slice(0, 120));
  } catch {}
};

export class SocketHub {
  /**
   * Sockets between accept and `ready`: frames for them wait here, in order, each entry frame
   * with its seq (a replica's join drops what its `ready` already carries: finishJoin).
   */
  private readonly joining = new Map<WebSocket, Array<{ frame: string; seq?: number }>>();
  /**
   * What each socket was sent since it last said `received`, in UTF-8 bytes: what workerd holds
   * for it. (UTF-16 units would let text of 3-byte characters pin nearly 3× the limit.) The
   * Workers WebSocket has no `bufferedAmount`, and workerd buffers without limit for a client
   * that stops reading, so this count is the only bound on a slow socket's memory.
   * Memory only: after a wake-up every socket starts from 0 again (lenient, never unsafe).
   */
  private readonly unconfirmed = new Map<WebSocket, number>();

  constructor(
    private readonly ctx: DurableObjectState,
    private readonly limits = { maxUnconfirmed: MAX_UNCONFIRMED_BYTES, maxJoinBuffer: MAX_JOIN_BUFFER_FRAMES },
  ) {}

  /** Accepts a socket (hibernatable, tagged with its user) and starts buffering frames for it. */
  accept(ws: WebSocket, attachment: Omit<SocketAttachment, "v" | "ready">): void {
    this.ctx.acceptWebSocket(ws, [attachment.userId]);
    ws.serializeAttachment({ v: 1, ...attachment, ready: false } satisfies SocketAttachment);
    this.joining.set(ws, []);
  }

  isJoining(ws: WebSocket): boolean {
    return this.joining.has(ws);
  }

  /**
   * Sends `ready`, then what was buffered, in one turn, and marks the socket live. With
   * `afterSeq` (a replica, whose watermark comes from the primary after the socket started
   * buffering), buffered entries at or below it are dropped: `ready` carries them.
   */
  finishJoin(ws: WebSocket, ready: string, afterSeq?: number): void {
    const buffered = this.joining.get(ws);
    this.joining.delete(ws);
    if (!buffered) return; // closed while its history was being read
    safeSend(ws, ready);
    for (const { frame, seq } of buffered) if (afterSeq === undefined || seq === undefined || seq > afterSeq) safeSend(ws, frame);
    const attachment = attachmentOf(ws);
    if (attachment) ws.serializeAttachment({ ...attachment, ready: true });
  }

  forget(ws: WebSocket): void {
    this.joining.delete(ws);
    this.unconfirmed.delete(ws);
  }

  /** The client processed everything sent so far (the `received` frame). */
  received(ws: WebSocket): void {
    this.unconfirmed.delete(ws);
  }

  send(ws: WebSocket, frame: ServerFrame): void {
    const encoded = encodeFrame(frame);
    this.sendEncoded(ws, encoded, utf8Length(encoded));
  }

  /** The same frames to every socket of the room, in order; `seqs[i]` is frame i's entry seq, if any. */
  broadcast(frames: readonly string[], seqs?: readonly number[]): void {
    // Each frame's size is measured once, not once per socket.
    const sized = frames.map((frame) => [frame, utf8Length(frame)] as const);
    for (const ws of this.ctx.getWebSockets()) {
      for (let i = 0; i < sized.length; i++) {
        const [frame, bytes] = sized[i] as (typeof sized)[number];
        this.sendEncoded(ws, frame, bytes, seqs?.[i]);
      }
    }
  }

  /**
   * Frames of a type added in protocol `minProtocol` (typing, presence, receipts go to protocol 2
   * sockets only): a client that predates them would report them as protocol errors.
   */
  broadcastFrom(minProtocol: number, frames: readonly string[]): void {
    const sized = frames.map((frame) => [frame, utf8Length(frame)] as const);
    for (const ws of this.ctx.getWebSockets()) {
      if ((attachmentOf(ws)?.protocol ?? 1) < minProtocol) continue;
      for (const [frame, bytes] of sized) this.sendEncoded(ws, frame, bytes);
    }
  }

  count(userId?: string): number {
    return this.ctx.getWebSockets(userId).length;
  }

  /** Every open socket (not closing) with its attachment; with `minProtocol`, only sockets speaking at least it. */
  each(run: (ws: WebSocket, attachment: SocketAttachment) => void, minProtocol = 1): void {
    for (const ws of this.ctx.getWebSockets()) {
      if (ws.readyState !== WebSocket.READY_STATE_OPEN) continue;
      const attachment = attachmentOf(ws);
      if (attachment && (attachment.protocol ?? 1) >= minProtocol) run(ws, attachment);
    }
  }

  /** Open sockets of `userId`, other than `except` (a socket that is closing still shows up during its close). */
  openOf(userId: string, except?: WebSocket): WebSocket[] {
    return this.ctx.getWebSockets(userId).filter((ws) => ws !== except && ws.readyState === WebSocket.READY_STATE_OPEN);
  }

  /** Stores this socket's presence data in its attachment (survives hibernation). */
  setPresence(ws: WebSocket, data: Record<string, unknown>): void {
    const attachment = attachmentOf(ws);
    if (attachment) ws.serializeAttachment({ ...attachment, presence: { data, at: Date.now() } } satisfies SocketAttachment);
  }

  /** Who has an open socket, each with the newest presence data among their sockets. */
  online(): Map<string, Record<string, unknown> | undefined> {
    const newest = new Map<string, { data: Record<string, unknown>; at: number } | undefined>();
    this.each((_ws, a) => {
      const known = newest.get(a.userId);
      if (!newest.has(a.userId) || (a.presence && (!known || a.presence.at > known.at))) newest.set(a.userId, a.presence ?? known);
    });
    return new Map([...newest].map(([userId, p]) => [userId, p?.data]));
  }

  users(): Set<string> {
    const users = new Set<string>();
    for (const ws of this.ctx.getWebSockets()) {
      const attachment = attachmentOf(ws);
      if (attachment) users.add(attachment.userId);
    }
    return users;
  }

  /** Tells the socket why and closes it with the code of the shared table. */
  end(ws: WebSocket, code: ErrorCode, reason: string): void {
    this.joining.delete(ws);
    this.unconfirmed.delete(ws);
    safeSend(ws, encodeFrame({ type: ServerFrameType.Error, code, message: reason }));
    safeClose(ws, closeCodeOf[code], reason);
  }

  /** Ends every socket of `userId`, or of everyone. */
  endAll(code: ErrorCode, reason: string, userId?: string): void {
    for (const ws of this.ctx.getWebSockets(userId)) this.end(ws, code, reason);
  }

  /** `bytes` is the frame's UTF-8 size (utf8Length), measured by the caller. */
  private sendEncoded(ws: WebSocket, frame: string, bytes: number, seq?: number): void {
    const buffer = this.joining.get(ws);
    if (buffer) {
      buffer.push(seq === undefined ? { frame } : { frame, seq });
      // A join whose history takes this long would hold an unbounded buffer: end it; the
      // client reconnects (with its cursor) and loses nothing.
      if (buffer.length > this.limits.maxJoinBuffer) this.end(ws, ErrorCode.Unavailable, "the join took too long; reconnect");
      return;
    }
    const sent = (this.unconfirmed.get(ws) ?? 0) + bytes;
    if (sent > this.limits.maxUnconfirmed) {
      this.end(ws, ErrorCode.Unavailable, "too far behind: reconnect with since=<your last seq>");
      return;
    }
    this.unconfirmed.set(ws, sent);
    safeSend(ws, frame);
  }
}
