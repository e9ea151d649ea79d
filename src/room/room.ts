// The room Durable Object: one per (tenant, room). It is the room's single writer and
// sequencer, holds the room's WebSockets (hibernation API), and merges history with live
// messages for every joining socket. The parts live beside it: batching and dedup
// (pipeline.ts), the window (window.ts), the handshake plan (handshake.ts), permissions and
// rate limits (access.ts), the mirror pump (mirror.ts), the sockets and their join buffers
// (sockets.ts); Postgres and Redis are behind MessageStore and MirrorStore. This file wires
// them to the runtime's events and holds the arguments about races and faults.
//
// What survives what:
//  - Postgres holds every committed message, the room's last_seq, writer epoch and members.
//  - Durable Object storage holds the writer epoch this object last claimed, the room key, the
//    mirror watermark, an in-doubt marker after an unknown commit outcome, and the heal alarm.
//  - Each socket's attachment holds who it is (user, room) and whether it got `ready`.
//  - Memory (seq counter, recent window, queue, roles) is a cache of the above, rebuilt on wake-up.

import { DurableObject } from "cloudflare:workers";
import { readConfig, type Config } from "../config.js";
import { decodeClientFrame, encodeFrame, type HistoryRequest } from "../protocol/codec.js";
import { ChatError, closeCodeOf, ErrorCode, errorBody, httpStatusOf } from "../protocol/errors.js";
import {
  ClientFrameType,
  ServerFrameType,
  type Message,
  type SendRequest,
} from "../protocol/frames.js";
import { PostgresStore, useLocalWsProxy } from "../storage/postgres.js";
import { type MirrorStore, UpstashMirror } from "../storage/redis.js";
import {
  type HistoryQuery,
  type Member,
  type MessageStore,
  type Role,
  type RoomKey,
  type RoomPatch,
  type RoomRecord,
  StorageError,
  type Visibility,
} from "../storage/types.js";
import { type Action, can, TokenBucket } from "./access.js";
import { buildReady, readyQuery } from "./handshake.js";
import { MirrorPump, mirrorBackoffMs } from "./mirror.js";
import { CommitPipeline, dedupeBatch } from "./pipeline.js";
import { type Failure, failure, type RoomResult, type SendOutcome } from "./results.js";
import { attachmentOf, safeClose, SocketHub } from "./sockets.js";
import { RecentWindow } from "./window.js";


interface PendingSend {
  id: string;
  userId: string;
  clientMsgId: string;
  text: string;
  bytes: number;
  /** Called exactly once, synchronously, when the send's fate is known. */
  deliver: (outcome: SendOutcome) => void;
}

const WINDOW_BYTES = 2 * 1024 * 1024;
const EPOCH_KEY = "writerEpoch";
const ROOM_KEY = "room";
const MIRRORED_KEY = "mirroredSeq";
/**
 * Saved when a commit's outcome becomes unknown: the last seq every open socket was told about.
 * Hibernation can drop this object's memory while its sockets stay open; the next instance then
 * broadcasts whatever did commit after it, before anything else (see claimWriter).
 */
const IN_DOUBT_KEY = "inDoubtAfter";
/** While a room is active, the heal alarm fires this often to catch up a mirror that a crash left behind. */
const HEAL_INTERVAL_MS = 30_000;
const MIRROR_BATCH = 500;

export class Room extends DurableObject<Env> {
  private readonly config: Config;
  private room: RoomKey | undefined;
  private storeInstance: MessageStore | undefined;
  /** Set once this instance holds the room's writer epoch in Postgres. */
  private writer: { epoch: number } | undefined;
  private booting: Promise<{ epoch: number }> | undefined;
  /** The room's committed high-water mark as this writer knows it. */
  private lastSeq = 0;
  /**
   * Set after any commit whose outcome is unknown (timeout, connection lost after the statement
   * was sent). Before the next seq is assigned, the room re-reads last_seq from Postgres and
   * broadcasts whatever did commit, so no seq is assigned twice and none is skipped.
   */
  private needsResync = false;
  /** Set when a newer instance took the writer role; this one disconnects its sockets. */
  private lostWriterRole = false;
  private readonly window: RecentWindow;
  private readonly pipeline: CommitPipeline<PendingSend>;
  private readonly sockets: SocketHub;
  /** Redis mirror (undefined when no Upstash is configured): store, pump and retry state. */
  private readonly mirrorStore: MirrorStore | undefined;
  private mirror: MirrorPump | undefined;
  private mirrorFailures = 0;
  /** During a Redis outage, live commits do not retry the mirror; the heal alarm does, with backoff. */
  private mirrorRetryAt = 0;
  /** True while a heal alarm is known to be set (memory only: re-armed after every wake-up). */
  private alarmArmed = false;
  /** The room as Postgres holds it (visibility, name, metadata), loaded with the writer role. */
  private record: RoomRecord | undefined;
  /**
   * Roles by user, cached: every membership change goes through this object (the room's single
   * writer), so the cache cannot go stale while this instance holds the writer role.
   */
  private readonly roles = new Map<string, Role | null>();
  /** Sends of one user are authorized and queued strictly in arrival order (see enqueueSend). */
  private readonly sendChains = new Map<string, Promise<void>>();
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.config = readConfig(env);
    if (this.config.neonWsProxy) useLocalWsProxy(this.config.neonWsProxy);
    this.window = new RecentWindow(this.config.windowMessages, WINDOW_BYTES);
    this.sockets = new SocketHub(ctx);
    this.mirrorStore = this.config.upstash
      ? new UpstashMirror({ ...this.config.upstash, maxLen: this.config.mirrorMaxLen, timeoutMs: 5000 })
      : undefined;
    this.pipeline = new CommitPipeline((batch) => this.commit(batch), {
      maxBatchSize: this.config.maxBatchSize,
      maxBatchBytes: 1024 * 1024,
    });
    // Pings are answered by the runtime without waking a hibernated object.
    ctx.setWebSocketAutoResponse(
      new WebSocketRequestResponsePair(
        encodeFrame({ type: ClientFrameType.Ping }),
        encodeFrame({ type: ServerFrameType.Pong }),
      ),
    );
  }

  // ---------------------------------------------------------------------------------------
  // RPC used by the Worker's HTTP routes

  /** `GET /v1/rooms/{roomId}/messages`: after `after` oldest-first, else the newest `limit`. */
  async history(
    room: RoomKey,
    userId: string,
    query: { after: number | undefined; limit: number },
  ): Promise<RoomResult<{ messages: Message[]; latestSeq: number }>> {
    try {
      await this.authorize(room, userId, "read");
      const latestSeq = this.lastSeq;
      const q =
        query.after === undefined
          ? { afterSeq: Math.max(0, latestSeq - query.limit), uptoSeq: latestSeq, limit: query.limit, from: "newest" as const }
          : { afterSeq: query.after, uptoSeq: latestSeq, limit: query.limit, from: "oldest" as const };
      const messages = await this.readHistory(room, q);
      return { ok: true, value: { messages, latestSeq } };
    } catch (error) {
      return this.failureOf(error, "unable to read history");
    }
  }

  /** `POST /v1/rooms/{roomId}/messages`: the same pipeline as a WebSocket send. */
  async send(room: RoomKey, userId: string, request: SendRequest): Promise<SendOutcome> {
    this.adopt(room);
    return new Promise((resolve) => this.enqueueSend(room, userId, request, resolve));
  }

  /** `GET /v1/rooms/{roomId}/status`: where the room and its mirror are (ops and tests). */
  async status(
    room: RoomKey,
    userId: string,
  ): Promise<RoomResult<{ latestSeq: number; mirroredSeq: number | null; mirrorLag: number | null; sockets: number }>> {
    try {
      await this.authorize(room, userId, "read");
      const mirroredSeq = this.mirror ? this.mirror.mirroredSeq : null;
      return {
        ok: true,
        value: {
          latestSeq: this.lastSeq,
          mirroredSeq,
          mirrorLag: mirroredSeq === null ? null : this.lastSeq - mirroredSeq,
          sockets: this.sockets.count(),
        },
      };
    } catch (error) {
      return this.failureOf(error, "unable to read the room status");
    }
  }

  // ---------------------------------------------------------------------------------------
  // Rooms and members (RPC). Every change goes through the room's object, so it can act on the
  // live sockets at once (a removed member is disconnected before the call returns).

  async createRoom(
    room: RoomKey,
    actor: string,
    init: { visibility: Visibility; name: string; metadata: Record<string, unknown> },
  ): Promise<RoomResult<RoomInfo>> {
    try {
      this.adopt(room);
      const record = await this.store().createRoom(room, { ...init, createdBy: actor });
      if (!record) throw new ChatError(ErrorCode.Conflict, "unable to create the room; the id is taken (perhaps by a deleted room)");
      this.writer = undefined; // re-boot on next use, with this record
      this.roles.set(actor, "admin");
      if (record.visibility === "public") void this.mirrorStore?.setAccess(room, "public").catch(() => {});
      return { ok: true, value: roomInfo(room, record, "admin") };
    } catch (error) {
      return this.failureOf(error, "unable to create the room");
    }
  }

  async getRoom(room: RoomKey, actor: string): Promise<RoomResult<RoomInfo>> {
    try {
      const { record, role } = await this.authorize(room, actor, "read");
      return { ok: true, value: roomInfo(room, { ...record, lastSeq: this.lastSeq }, role) };
    } catch (error) {
      return this.failureOf(error, "unable to read the room");
    }
  }

  async updateRoom(room: RoomKey, actor: string, patch: RoomPatch): Promise<RoomResult<RoomInfo>> {
    try {
      const { record, role } = await this.authorize(room, actor, "manage");
      const goingPrivate = patch.visibility === "private" && record.visibility === "public";
      // The edge read path serves a room from Redis only while Redis says it is public: say
      // "private" there first, so no edge read can outlive the change.
      if (goingPrivate && this.mirrorStore) await this.mirrorStore.setAccess(room, "private");
      const updated = await this.store().updateRoom(room, patch);
      if (!updated) throw new ChatError(ErrorCode.NotFound, "unable to update the room; it does not exist");
      this.record = { ...updated, lastSeq: this.lastSeq, writerEpoch: record.writerEpoch };
      if (patch.visibility === "public" && record.visibility === "private") {
        void this.mirrorStore?.setAccess(room, "public").catch(() => {});
      }
      if (goingPrivate) await this.disconnectNonMembers(room);
      return { ok: true, value: roomInfo(room, this.record, role) };
    } catch (error) {
      return this.failureOf(error, "unable to update the room");
    }
  }

  async deleteRoom(room: RoomKey, actor: string, purge: boolean): Promise<RoomResult<{ deleted: true; purged: boolean }>> {
    try {
      await this.authorize(room, actor, "manage");
      if (this.mirrorStore) await this.mirrorStore.drop(room);
      await this.store().deleteRoom(room, purge);
      this.record = undefined;
      this.writer = undefined;
      this.roles.clear();
      this.window.reset([]);
      this.mirror = undefined;
      // Nothing left to heal: no alarm may wake a deleted room again.
      await this.ctx.storage.deleteAlarm();
      await this.ctx.storage.delete([MIRRORED_KEY, ROOM_KEY]);
      this.alarmArmed = false;
      this.sockets.endAll(ErrorCode.NotFound, "the room was deleted");
      return { ok: true, value: { deleted: true, purged: purge } };
    } catch (error) {
      return this.failureOf(error, "unable to delete the room");
    }
  }

  /** Joins a public room as a member (a no-op for someone who already has a role). */
  async join(room: RoomKey, actor: string): Promise<RoomResult<Member>> {
    try {
      const { record, role } = await this.authorize(room, actor, "read");
      if (record.visibility !== "public" && role === null) {
        throw new ChatError(ErrorCode.Forbidden, "unable to join; private rooms are joined by invitation");
      }
      const member = await this.store().setMember(room, actor, role ?? "member");
      this.roles.set(actor, member.role);
      return { ok: true, value: member };
    } catch (error) {
      return this.failureOf(error, "unable to join the room");
    }
  }

  /** Adds a member or changes a role (admins only). */
  async setMember(room: RoomKey, actor: string, target: string, role: Role): Promise<RoomResult<Member>> {
    try {
      await this.authorize(room, actor, "manage");
      const member = await this.store().setMember(room, target, role);
      this.roles.set(target, member.role);
      return { ok: true, value: member };
    } catch (error) {
      return this.failureOf(error, "unable to change the membership");
    }
  }

  /** Removes a member (admins, or anyone for themselves: leaving). Their sockets close at once if they lose read access. */
  async removeMember(room: RoomKey, actor: string, target: string): Promise<RoomResult<{ removed: boolean }>> {
    try {
      if (actor === target) await this.authorize(room, actor, "read");
      else await this.authorize(room, actor, "manage");
      const removed = await this.store().removeMember(room, target);
      this.roles.set(target, null);
      if (this.record && !can("read", this.record.visibility, null)) {
        this.sockets.endAll(ErrorCode.Forbidden, "you are no longer a member of this room", target);
      }
      return { ok: true, value: { removed } };
    } catch (error) {
      return this.failureOf(error, "unable to remove the member");
    }
  }

  async members(room: RoomKey, actor: string, limit: number): Promise<RoomResult<{ members: Member[] }>> {
    try {
      await this.authorize(room, actor, "read");
      return { ok: true, value: { members: await this.store().listMembers(room, limit) } };
    } catch (error) {
      return this.failureOf(error, "unable to list the members");
    }
  }

  private async disconnectNonMembers(room: RoomKey): Promise<void> {
    for (const userId of this.sockets.users()) {
      if ((await this.roleOf(room, userId)) === null) {
        this.sockets.endAll(ErrorCode.Forbidden, "the room became private; you are not a member", userId);
      }
    }
  }

  // ---------------------------------------------------------------------------------------
  // WebSockets

  /** The Worker forwards authenticated, validated upgrades here (headers set by the Worker only). */
  override async fetch(request: Request): Promise<Response> {
    const room = { tenant: request.headers.get("x-chat-tenant") ?? "", roomId: request.headers.get("x-chat-room") ?? "" };
    const userId = request.headers.get("x-chat-user") ?? "";
    const historyHeader = request.headers.get("x-chat-history");
    if (!room.tenant || !room.roomId || !userId || !historyHeader) {
      return failureResponse(ErrorCode.BadRequest, "unable to join; the request did not come through the Worker");
    }
    const history = JSON.parse(historyHeader) as HistoryRequest;
    try {
      await this.authorize(room, userId, "read");
    } catch (error) {
      const f = this.failureOf(error, "unable to join the room");
      return refuseSocket(f.code, f.message);
    }
    if (this.sockets.count(userId) >= this.config.limits.socketsPerUser) {
      return refuseSocket(
        ErrorCode.RateLimited,
        `unable to join the room; ${this.config.limits.socketsPerUser} sockets per user per room are open already`,
      );
    }
    if (history.kind === "since" && history.since > this.lastSeq) {
      return refuseSocket(
        ErrorCode.BadRequest,
        `unable to resume; since=${history.since} is ahead of the room's latest seq ${this.lastSeq}`,
      );
    }
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    // From here to `accept` (which starts buffering) there is no await: the watermark and the
    // registration happen in one turn, so no commit can be broadcast in between.
    const watermark = this.lastSeq;
    this.sockets.accept(server, { ...room, userId });
    this.ctx.waitUntil(this.completeHandshake(server, room, history, watermark));
    return new Response(null, { status: 101, webSocket: client });
  }

  /*
   * Why the handshake is race-free. At registration the socket gets watermark W = lastSeq, and
   * from that moment every broadcast for it is buffered (see `deliverFrame`). Broadcasts only
   * carry seqs the room had not committed before, so every buffered frame has seq > W. The
   * history sent in `ready` is read for seq <= W (from memory, or from Postgres, which holds
   * everything up to W because W was committed). `ready` goes out first, then the buffer in
   * order, in one synchronous turn, and only then is the socket marked live. So the socket sees
   * ..W from history and W+1.. live: no gap (everything > W is buffered or later), no duplicate
   * (history stops at W, the buffer starts above it), in seq order.
   */
  private async completeHandshake(
    ws: WebSocket,
    room: RoomKey,
    request: HistoryRequest,
    watermark: number,
  ): Promise<void> {
    const query = readyQuery(request, watermark);
    let history: Message[];
    try {
      history = await withTimeout(
        this.readHistory(room, query),
        this.config.limits.handshakeTimeoutMs,
        () => new StorageError("the handshake's history did not arrive in time", "timeout"),
      );
    } catch (error) {
      const f = this.failureOf(error, "unable to read history for the handshake");
      this.sockets.end(ws, f.code, f.message);
      return;
    }
    this.sockets.finishJoin(ws, encodeFrame(buildReady(room.roomId, query, history)));
  }

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    const attachment = attachmentOf(ws);
    if (!attachment) {
      safeClose(ws, closeCodeOf.internal, "socket state lost; reconnect");
      return;
    }
    const room = { tenant: attachment.tenant, roomId: attachment.roomId };
    this.adopt(room);
    if (!attachment.ready && !this.sockets.isJoining(ws)) {
      // A socket that never got `ready` cannot survive a restart of the object (its handshake
      // was in memory). Tell the client to reconnect rather than serve it an unknown position.
      safeClose(ws, closeCodeOf.unavailable, "handshake interrupted; reconnect");
      return;
    }
    const decoded = decodeClientFrame(raw);
    if (!decoded.ok) {
      this.sockets.send(ws, { type: ServerFrameType.Error, ...decoded.error });
      return;
    }
    const frame = decoded.value;
    if (frame.type === ClientFrameType.Ping) {
      this.sockets.send(ws, { type: ServerFrameType.Pong });
      return;
    }
    this.enqueueSend(room, attachment.userId, frame, (outcome) => {
      this.sockets.send(
        ws,
        outcome.ok
          ? {
              type: ServerFrameType.Ack,
              clientMsgId: outcome.message.clientMsgId,
              seq: outcome.message.seq,
              id: outcome.message.id,
              createdAt: outcome.message.createdAt,
            }
          : {
              type: ServerFrameType.Error,
              code: outcome.code,
              message: outcome.message,
              clientMsgId: frame.clientMsgId,
              ...(outcome.retryAfterMs === undefined ? {} : { retryAfterMs: outcome.retryAfterMs }),
            },
      );
    });
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.sockets.forget(ws);
    // 1005/1006 are not valid to send back; answer a clean close with the same code.
    safeClose(ws, code === 1005 || code === 1006 ? 1000 : code, reason);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    // Abrupt disconnects are normal on mobile networks; nothing to log.
    this.sockets.forget(ws);
  }

  // ---------------------------------------------------------------------------------------
  // The write path

  /**
   * Authorizes and rate-limits a send, then queues it. Checking may wait on storage (the first
   * send of a user loads their role), so a user's sends are chained: each is checked and queued
   * only after the one before it, and a socket's sends reach the pipeline in the order they came.
   */
  private enqueueSend(room: RoomKey, userId: string, request: SendRequest, deliver: PendingSend["deliver"]): void {
    const previous = this.sendChains.get(userId) ?? Promise.resolve();
    const next = previous.then(async () => {
      try {
        await this.authorize(room, userId, "send");
      } catch (error) {
        deliver(this.failureOf(error, "unable to send"));
        return;
      }
      const limited = this.takeSendToken(userId);
      if (limited) deliver(limited);
      else this.submit(userId, request, deliver);
    });
    this.sendChains.set(userId, next);
    void next.finally(() => {
      if (this.sendChains.get(userId) === next) this.sendChains.delete(userId);
    });
  }

  /** The per-user token bucket (memory only: a restart forgives, which is acceptable for a flood guard). */
  private takeSendToken(userId: string): Failure | undefined {
    const now = Date.now();
    let bucket = this.buckets.get(userId);
    if (!bucket) {
      if (this.buckets.size > 10_000) for (const [u, b] of this.buckets) if (b.isIdle(now)) this.buckets.delete(u);
      bucket = new TokenBucket(this.config.limits.sendBurst, this.config.limits.sendRatePerSecond, now);
      this.buckets.set(userId, bucket);
    }
    const taken = bucket.take(now);
    if (taken.ok) return undefined;
    return {
      ...failure(ErrorCode.RateLimited, `unable to send; too many messages, retry in ${taken.retryAfterMs} ms`),
      retryAfterMs: taken.retryAfterMs,
    };
  }

  private submit(userId: string, request: SendRequest, deliver: PendingSend["deliver"]): void {
    // A resend of something already committed and still in memory is answered at once.
    const known = this.window.find(userId, request.clientMsgId);
    if (known) {
      deliver({ ok: true, message: known, duplicate: true });
      return;
    }
    this.pipeline.submit({
      id: crypto.randomUUID(),
      userId,
      clientMsgId: request.clientMsgId,
      text: request.text,
      bytes: request.text.length * 3 + request.clientMsgId.length,
      deliver,
    });
  }

  /** One batch: at most one runs at a time (CommitPipeline). Delivers every outcome; never throws. */
  private async commit(batch: PendingSend[]): Promise<void> {
    const room = this.room;
    if (!room) throw new Error("commit before the room was adopted");
    const { unique, repeats } = dedupeBatch(batch);
    let results: Array<{ message: Message; duplicate: boolean }>;
    let fresh: Message[];
    try {
      const { epoch } = await this.ensureWriter(room);
      if (this.needsResync) await this.resync(room, epoch);
      if (batch.length === 0) return; // a kick: the resync above was the work
      // Armed before the commit, so a crash between commit and mirror still gets healed.
      await this.armHealAlarm();
      const createdAt = new Date().toISOString();
      const outcome = await this.store().commitBatch(room, epoch, this.lastSeq, createdAt, unique);
      if (outcome.kind === "rejected") {
        // Our epoch or last_seq was stale: find out which before anything else is sequenced.
        // Nothing of this batch was written; its senders retry with the same clientMsgIds.
        this.needsResync = true;
        await this.resync(room, epoch);
        throw new StorageError("the room's state moved under this writer; nothing was committed", "failed");
      }
      let seq = this.lastSeq;
      fresh = [];
      results = unique.map((pending, index) => {
        const original = outcome.duplicates.get(index);
        if (original) return { message: original, duplicate: true };
        seq += 1;
        const message: Message = {
          roomId: room.roomId,
          seq,
          id: pending.id,
          userId: pending.userId,
          text: pending.text,
          clientMsgId: pending.clientMsgId,
          createdAt,
        };
        fresh.push(message);
        return { message, duplicate: false };
      });
      this.lastSeq = outcome.lastSeq;
    } catch (error) {
      // Whatever failed, the outcome may be unknown: re-read Postgres before the next seq
      // (at the next send, or when the heal alarm fires if no send comes).
      if (this.writer) {
        this.needsResync = true;
        // Not awaited, but the runtime's output gate holds the `unavailable` frames below until
        // this write is durable: no client hears of the failure unless the marker survives.
        void this.ctx.storage.put(IN_DOUBT_KEY, this.lastSeq).catch(() => {});
        void this.armHealAlarm().catch(() => {});
      }
      const f = this.failureOf(error, "unable to commit the message");
      for (const pending of batch) pending.deliver(f);
      // Only after the senders heard `unavailable`: if another instance owns the room now,
      // send every client there.
      if (!this.writer && this.lostWriterRole) this.disconnectAll();
      return;
    }
    // Committed. Broadcast first, in seq order, then ack: a sender sees its own message frame
    // before its ack, and the next batch cannot start before both are out (we are still inside
    // the pipeline's turn).
    this.publish(fresh);
    unique.forEach((pending, index) => {
      const result = results[index];
      if (result) pending.deliver({ ok: true, ...result });
    });
    for (const { item, original } of repeats) {
      const result = results[original];
      if (result) item.deliver({ ok: true, message: result.message, duplicate: true });
    }
  }

  /**
   * Re-reads the room from Postgres after an unknown outcome. If the epoch moved, another
   * instance owns the room now (see docs/architecture.md, "Fencing"): drop the writer role and
   * close the sockets so clients reconnect to the new owner. If last_seq moved, the unknown
   * commit did happen: those messages are broadcast now, before any newer seq.
   */
  private async resync(room: RoomKey, epoch: number): Promise<void> {
    const state = await this.store().readRoomState(room);
    if (!state || state.writerEpoch !== epoch) {
      this.writer = undefined;
      this.lostWriterRole = true;
      this.window.reset([]);
      this.needsResync = false;
      throw new StorageError("another instance of this room took over; reconnect", "failed");
    }
    if (state.lastSeq > this.lastSeq) {
      const missed = await this.store().readMessages(room, {
        afterSeq: this.lastSeq,
        uptoSeq: state.lastSeq,
        limit: state.lastSeq - this.lastSeq,
        from: "oldest",
      });
      if (missed.length !== state.lastSeq - this.lastSeq) {
        throw new StorageError(`resync read ${missed.length} of ${state.lastSeq - this.lastSeq} messages`, "failed");
      }
      this.lastSeq = state.lastSeq;
      // Same turn as the broadcast: the output gate releases the frames only once the marker is
      // gone, so a crash cannot make the next instance broadcast them a second time.
      void this.ctx.storage.delete(IN_DOUBT_KEY).catch(() => {});
      this.publish(missed);
    } else {
      void this.ctx.storage.delete(IN_DOUBT_KEY).catch(() => {});
    }
    this.needsResync = false;
  }

  /** Makes committed messages visible: the window, every socket in seq order, then the mirror. */
  private publish(messages: Message[]): void {
    if (messages.length === 0) return;
    this.window.append(messages);
    // Not awaited: Redis being slow or down never delays a broadcast or an ack.
    void this.mirrorNow();
    this.broadcast(messages);
  }

  private broadcast(messages: Message[]): void {
    this.sockets.broadcast(messages.map((message) => encodeFrame({ type: ServerFrameType.Message, message })));
  }

  // ---------------------------------------------------------------------------------------
  // Writer role and storage

  /** The room key arrives with every call; an object only ever serves one room. */
  private adopt(room: RoomKey): void {
    if (!this.room) this.room = room;
    else if (this.room.tenant !== room.tenant || this.room.roomId !== room.roomId) {
      throw new Error(`room object for ${this.room.tenant}:${this.room.roomId} got a call for ${room.tenant}:${room.roomId}`);
    }
  }

  private store(): MessageStore {
    if (!this.storeInstance) {
      if (!this.config.databaseUrl) {
        throw new StorageError("DATABASE_URL is not set; configure it with `wrangler secret put DATABASE_URL`", "failed");
      }
      this.storeInstance = new PostgresStore({
        connectionString: this.config.databaseUrl,
        statementTimeoutMs: this.config.statementTimeoutMs,
        idleTimeoutMs: this.config.postgresIdleMs,
        maxConnections: this.config.postgresMaxConnections,
        reuseConnections: this.config.postgresConnections === "pooled",
      });
    }
    return this.storeInstance;
  }

  /** Claims the writer role once per instance (after every wake-up), then loads the window. */
  private async ensureWriter(room: RoomKey, actor?: string): Promise<{ epoch: number }> {
    this.adopt(room);
    if (this.writer) return this.writer;
    this.booting ??= this.claimWriter(room, actor).finally(() => {
      this.booting = undefined;
    });
    return this.booting;
  }

  /** Boots the room and checks that `userId` may do `action`; throws a ChatError otherwise. */
  private async authorize(room: RoomKey, userId: string, action: Action): Promise<{ record: RoomRecord; role: Role | null }> {
    await this.ensureWriter(room, userId);
    const record = this.record;
    if (!record) throw new ChatError(ErrorCode.NotFound, "unable to find the room");
    let role = await this.roleOf(room, userId);
    if (action === "send" && role === null && record.visibility === "public" && this.tenant(room).autoCreateRooms) {
      // Open rooms: the first send joins the sender as a member.
      role = (await this.store().setMember(room, userId, "member")).role;
      this.roles.set(userId, role);
    }
    if (!can(action, record.visibility, role)) {
      const what = action === "read" ? "this private room" : action === "send" ? "send here" : "manage this room";
      throw new ChatError(ErrorCode.Forbidden, `unable to ${action}; you may not ${action === "read" ? "read " : ""}${what}`);
    }
    return { record, role };
  }

  private async roleOf(room: RoomKey, userId: string): Promise<Role | null> {
    const cached = this.roles.get(userId);
    if (cached !== undefined) return cached;
    const role = await this.store().roleOf(room, userId);
    if (this.roles.size > 50_000) this.roles.clear();
    this.roles.set(userId, role);
    return role;
  }

  private tenant(room: RoomKey) {
    const tenant = this.config.tenants.get(room.tenant);
    if (!tenant) throw new ChatError(ErrorCode.Unauthorized, "unable to serve the room; its tenant is not configured");
    return tenant;
  }

  /*
   * Fencing. The platform can briefly run two instances of one object (an old one that has not
   * noticed it was replaced, and the new one). Each instance, before its first write, picks
   * epoch = max(epoch in its storage, epoch in Postgres) + 1, persists it in its storage (a
   * replaced instance's storage writes fail), and claims it in Postgres only if it is higher
   * than the stored one. Every commit is one statement that advances last_seq only WHERE
   * writer_epoch = my epoch AND last_seq = what I expect, under the row lock of `rooms`. So once
   * a newer instance has claimed, an older one can never commit again: its statements match no
   * row and insert nothing, and the (room, seq) primary key forbids a seq being used twice even
   * if that argument had a hole.
   */
  private async claimWriter(room: RoomKey, actor: string | undefined): Promise<{ epoch: number }> {
    const store = this.store();
    const saved = await this.ctx.storage.get<number>([EPOCH_KEY, MIRRORED_KEY, IN_DOUBT_KEY]);
    let state = await store.readRoomState(room);
    if (!state || state.deletedAt) {
      // Rooms exist once created, except in tenants with open rooms, where first use creates a
      // public one. A deleted room (history kept) is never brought back by first use.
      if (state?.deletedAt || !actor || !this.tenant(room).autoCreateRooms) {
        throw new ChatError(ErrorCode.NotFound, "unable to find the room; it does not exist");
      }
      state =
        (await store.createRoom(room, { visibility: "public", name: room.roomId, metadata: {}, createdBy: actor })) ??
        (await store.readRoomState(room));
      if (!state || state.deletedAt) throw new StorageError("the room vanished while it was being created", "failed");
      void this.mirrorStore?.setAccess(room, "public").catch(() => {});
    }
    const epoch = Math.max(saved.get(EPOCH_KEY) ?? 0, state?.writerEpoch ?? 0) + 1;
    // The room key is kept for the heal alarm, which arrives without one.
    await this.ctx.storage.put({ [EPOCH_KEY]: epoch, [ROOM_KEY]: room });
    const claimed = await store.claimWriter(room, epoch);
    if (!claimed) throw new StorageError("another instance of this room claimed it first; retry", "failed");
    const recent = await store.readMessages(room, {
      afterSeq: Math.max(0, claimed.lastSeq - this.config.windowMessages),
      uptoSeq: claimed.lastSeq,
      limit: this.config.windowMessages,
      from: "newest",
    });
    // An unknown outcome the previous instance never resolved: the sockets that outlived it
    // (hibernation keeps them open) were told about seqs up to `inDoubt` only.
    const inDoubt = saved.get(IN_DOUBT_KEY);
    const unannounced =
      inDoubt !== undefined && inDoubt < claimed.lastSeq
        ? await store.readMessages(room, { afterSeq: inDoubt, uptoSeq: claimed.lastSeq, limit: claimed.lastSeq - inDoubt, from: "oldest" })
        : [];
    this.lastSeq = claimed.lastSeq;
    this.window.reset(recent);
    this.needsResync = false;
    if (inDoubt !== undefined) {
      // One turn: marker gone and frames out together (the output gate holds the frames until
      // the delete is durable). Sockets joining from now on get these seqs in `ready` instead.
      void this.ctx.storage.delete(IN_DOUBT_KEY).catch(() => {});
      this.broadcast(unannounced);
    }
    this.record = { ...state, ...claimed };
    this.roles.clear();
    this.writer = { epoch };
    if (this.mirrorStore) {
      // No watermark yet (a new room, or storage that was reset): the stream only ever needs the
      // newest MIRROR_MAXLEN messages, so older ones are not pushed again.
      const mirrored = saved.get(MIRRORED_KEY) ?? Math.max(0, claimed.lastSeq - this.config.mirrorMaxLen);
      this.mirror = new MirrorPump(this.mirrorDeps(room), Math.min(mirrored, claimed.lastSeq), MIRROR_BATCH);
      // A crash between a commit and its mirror leaves the watermark behind: heal on every wake-up.
      if (this.mirror.mirroredSeq < this.lastSeq) void this.mirrorNow();
    }
    return this.writer;
  }

  /** After losing the epoch: send every client to the new owner (they resume with `since`). */
  private disconnectAll(): void {
    this.lostWriterRole = false;
    this.sockets.endAll(ErrorCode.Unavailable, "room moved; reconnect");
  }

  // ---------------------------------------------------------------------------------------
  // Redis mirror and the heal alarm

  private mirrorDeps(room: RoomKey) {
    const mirrorStore = this.mirrorStore;
    if (!mirrorStore) throw new Error("mirror without a store");
    return {
      read: (afterSeq: number, uptoSeq: number) =>
        this.readHistory(room, { afterSeq, uptoSeq, limit: uptoSeq - afterSeq, from: "oldest" }),
      write: (messages: Message[]) => mirrorStore.append(room, messages),
      save: (seq: number) => this.ctx.storage.put(MIRRORED_KEY, seq),
    };
  }

  /** Catches the mirror up to the committed seq; on failure, retries later from the watermark. */
  private async mirrorNow(fromAlarm = false): Promise<void> {
    const mirror = this.mirror;
    if (!mirror || (!fromAlarm && Date.now() < this.mirrorRetryAt)) return;
    const caughtUp = await mirror.catchUp(() => this.lastSeq);
    if (caughtUp) {
      this.mirrorFailures = 0;
      this.mirrorRetryAt = 0;
      return;
    }
    this.mirrorFailures++;
    const delay = mirrorBackoffMs(this.mirrorFailures);
    this.mirrorRetryAt = Date.now() + delay;
    console.warn(
      `room ${this.room?.tenant}:${this.room?.roomId}: mirror behind by ${this.lastSeq - mirror.mirroredSeq} ` +
        `(failure ${this.mirrorFailures}, retry in ${delay} ms): ${describeError(mirror.lastError)}`,
    );
    await this.armHealAlarm(delay, true).catch(() => {});
  }

  /** Sets the heal alarm unless one is already set (or moves it earlier with `force`). */
  private async armHealAlarm(delayMs = HEAL_INTERVAL_MS, force = false): Promise<void> {
    if (!this.mirrorStore && !this.needsResync) return;
    if (this.alarmArmed && !force) return;
    this.alarmArmed = true;
    await this.ctx.storage.setAlarm(Date.now() + delayMs);
  }

  /**
   * The heal alarm: after a crash, an outage or an unknown commit outcome, it brings the room
   * back to "everything committed is broadcast and mirrored", with backoff, until it is.
   */
  override async alarm(): Promise<void> {
    this.alarmArmed = false;
    const room = await this.ctx.storage.get<RoomKey>(ROOM_KEY);
    if (!room) return;
    try {
      await this.ensureWriter(room);
      await this.pipeline.kick();
    } catch (error) {
      // A room that no longer exists has nothing to heal: do not re-arm.
      if (error instanceof ChatError && error.code === ErrorCode.NotFound) return;
      this.failureOf(error, "unable to heal the room");
      this.mirrorFailures++;
      await this.armHealAlarm(mirrorBackoffMs(this.mirrorFailures));
      return;
    }
    // A failed pass re-arms the alarm itself; a room that is caught up needs no alarm until its
    // next commit arms one (an idle room is not woken again).
    await this.mirrorNow(true);
    if (this.needsResync) await this.armHealAlarm(mirrorBackoffMs(++this.mirrorFailures), true);
  }

  /** History for seq in (afterSeq, uptoSeq]: from memory when the window covers it, else Postgres. */
  private async readHistory(room: RoomKey, q: HistoryQuery): Promise<Message[]> {
    const from = q.from === "newest" ? Math.max(q.afterSeq, q.uptoSeq - q.limit) : q.afterSeq;
    const upto = q.from === "newest" ? q.uptoSeq : Math.min(q.uptoSeq, q.afterSeq + q.limit);
    return this.window.range(from, upto, this.lastSeq) ?? this.store().readMessages(room, q);
  }

  private failureOf(error: unknown, operation: string): Failure {
    if (error instanceof ChatError) {
      const f = failure(error.code, error.message);
      return error.retryAfterMs === undefined ? f : { ...f, retryAfterMs: error.retryAfterMs };
    }
    if (error instanceof StorageError) {
      console.warn(`room ${this.room?.tenant}:${this.room?.roomId}: ${operation}: ${error.message}`, describeCause(error));
      return failure(ErrorCode.Unavailable, `${operation}; storage is unavailable, retry later`);
    }
    console.error(`room ${this.room?.tenant}:${this.room?.roomId}: ${operation}`, error);
    return failure(ErrorCode.Internal, `${operation}; internal error`);
  }
}

/** A room as the API shows it, with the caller's role. */
export interface RoomInfo {
  roomId: string;
  name: string;
  visibility: Visibility;
  metadata: Record<string, unknown>;
  createdBy: string | null;
  createdAt: string;
  latestSeq: number;
  role: Role | null;
}

const roomInfo = (room: RoomKey, record: RoomRecord, role: Role | null): RoomInfo => ({
  roomId: room.roomId,
  name: record.name,
  visibility: record.visibility,
  metadata: record.metadata,
  createdBy: record.createdBy,
  createdAt: record.createdAt,
  latestSeq: record.lastSeq,
  role,
});

const withTimeout = <T>(promise: Promise<T>, ms: number, error: () => Error): Promise<T> => {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(error()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => {
    if (timer !== null) clearTimeout(timer);
  });
};




const failureResponse = (code: ErrorCode, message: string): Response =>
  Response.json(errorBody(code, message), { status: httpStatusOf[code] });

/**
 * Refuses a join the room cannot serve (storage down, a cursor from the future) after the
 * upgrade: browsers hide an HTTP error on an upgrade behind a bare 1006, so the client gets an
 * `error` frame and a close code from the shared table instead, and knows whether to retry.
 */
const refuseSocket = (code: ErrorCode, message: string): Response => {
  const pair = new WebSocketPair();
  const [client, server] = [pair[0], pair[1]];
  // The client closes as soon as it reads the frame; that abrupt end is expected, not an error.
  server.addEventListener("error", () => {});
  server.accept();
  server.send(encodeFrame({ type: ServerFrameType.Error, code, message }));
  server.close(closeCodeOf[code], message.slice(0, 120));
  return new Response(null, { status: 101, webSocket: client });
};

const describeError = (error: unknown): string =>
  error instanceof Error ? `${error.name}: ${loggable(error.message)}${error instanceof StorageError ? ` ${describeCause(error)}` : ""}` : "unknown";

/**
 * Driver errors can carry secrets or user content in their text (connection strings; Upstash
 * echoes the whole command, message texts included). Logs get the class, the code and the
 * first part of the message only.
 */
const describeCause = (error: Error): string => {
  const cause = error.cause;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return `cause: ${cause.name}${typeof code === "string" ? ` (${code})` : ""}: ${loggable(cause.message)}`;
  }
  return "";
};

const loggable = (text: string): string =>
  text
    .split(/, command was:/)[0]
    ?.replace(/(postgres(ql)?|redis|rediss|https?):\/\/\S+/g, "$1://…")
    .slice(0, 200) ?? "";
