// A regional replica of a room: a Durable Object per (tenant, room, region, shard), placed near
// its clients with a location hint (src/replica/address.ts). It holds sockets and fans entries out
// to them; it never writes. The primary room object stays the single writer, sequencer and
// authority on access: a replica forwards every send and every access question to it.
//
// The contract at a replica is the primary's (docs/architecture.md, "Regional replicas"):
//  - The handshake: the socket is accepted (buffering) before the replica asks the primary for
//    its `ready`, and the replica's feed is at or below the primary's watermark W at that moment
//    (it cannot have delivered what was not committed). So the buffer holds everything the feed
//    delivers above the feed's position, and `ready` holds everything up to W: dropping buffered
//    entries at or below W (SocketHub.finishJoin) and waiting until the feed is at W leaves no
//    gap and no duplicate.
//  - The feed (feed.ts) delivers each seq once and in order, from pushes of the primary, a fill
//    from Redis near the replica, or the primary's range as the fallback.
//  - A send's ack waits until the feed delivered the send's own seq, so it follows the entry's
//    frame, as on the primary.
//  - Access: revocations reach the replica in order with entries (controls in the push queue);
//    access-changing system entries and every fill re-check the connected users with the primary;
//    a periodic sync re-checks too. Each check is the primary's decision at that moment.
//
// What survives what: storage holds the replica's name and the seq its sockets were given
// (`delivered`, written before the frames leave: the output gate holds them until it is durable,
// so a restart never re-sends). Sockets' attachments survive hibernation. Memory (the feed's held
// entries, joins in progress) is rebuilt: a join interrupted by a restart is closed (reconnect).

import { DurableObject } from "cloudflare:workers";
import { type Config, readConfig } from "../config.js";
import { decodeClientFrame, encodeFrame, type HistoryRequest } from "../protocol/codec.js";
import { ChatError, closeCodeOf, ErrorCode } from "../protocol/errors.js";
import {
  ClientFrameType,
  type Entry,
  EntryKind,
  type ReadyFrame,
  ServerFrameType,
  type ServerFrame,
  SystemEvent,
} from "../protocol/frames.js";
import { MAX_BAD_FRAMES_BURST } from "../protocol/limits.js";
import type { ReplicaControl, ReplicaPush } from "../room/replicas.js";
import type { RoomResult, SendOutcome } from "../room/results.js";
import { answerOf, requestOf } from "../room/frames.js";
import { attachmentOf, safeClose, SocketHub } from "../room/sockets.js";
import { TokenBucket } from "../room/access.js";
import { roomStub } from "../room/address.js";
import { type MirrorStore, UpstashMirror } from "../storage/redis.js";
import { withTimeout } from "../storage/timeout.js";
import { type ReplicaAddress, replicaAddressOf, replicaName } from "./address.js";
import { ReplicaFeed } from "./feed.js";
import { Forwarder } from "./forwarder.js";

const NAME_KEY = "replicaName";
const DELIVERED_KEY = "delivered";
/** A push may be on its way when a gap shows (an ack overtook it): wait this long before filling. */
const FILL_DELAY_MS = 25;
const FILL_LIMIT = 500;

/** The source of what the feed delivered last (observability). */
type FeedSource = "push" | "redis" | "primary";

/** What `/status` shows for one replica. */
export interface ReplicaStatus {
  name: string;
  region: string;
  shard: number;
  deliveredSeq: number | null;
  knownSeq: number;
  /** Seqs the primary committed that this replica has not delivered yet. */
  lagSeqs: number;
  /** Commit → delivery here of the last entry delivered, ms (same clock only on one machine). */
  lagMs: number | null;
  source: FeedSource | null;
  sockets: number;
  fills: number;
  /** Calls this replica made to the primary (each a long-haul round trip when the two are far apart). */
  calls: { sends: number; joins: number; syncs: number; relays: number };
  lastError?: string;
}

export class RoomReplica extends DurableObject<Env> {
  private readonly config: Config;
  private address!: ReplicaAddress;
  private name!: string;
  private readonly feed = new ReplicaFeed();
  private sockets!: SocketHub;
  private forwarder!: Forwarder;
  private mirrorStore: MirrorStore | undefined;
  /** Joins between their first await and their socket's accept: the replica is not idle. */
  private joinsInProgress = 0;
  private starting: Promise<void> | undefined;
  private filling = false;
  private fillTimer: ReturnType<typeof setTimeout> | undefined;
  private fillFailures = 0;
  private fills = 0;
  private readonly calls = { sends: 0, joins: 0, syncs: 0, relays: 0 };
  private source: FeedSource | null = null;
  private lagMs: number | null = null;
  private lastError: string | undefined;
  private readonly badFrames = new WeakMap<WebSocket, TokenBucket>();
  /** Sockets the primary counted online (its join answered): their close is reported even before `ready`. */
  private readonly counted = new WeakSet<WebSocket>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.config = readConfig(env);
    ctx.setWebSocketAutoResponse(
      new WebSocketRequestResponsePair(encodeFrame({ type: ClientFrameType.Ping }), encodeFrame({ type: ServerFrameType.Pong })),
    );
    this.sockets = new SocketHub(ctx);
    this.mirrorStore = this.config.upstash
      ? new UpstashMirror({ ...this.config.upstash, maxLen: this.config.mirrorMaxLen, timeoutMs: 2000 })
      : undefined;
    void ctx.blockConcurrencyWhile(async () => {
      const known = replicaAddressOf(ctx.id.name) ? ctx.id.name : await ctx.storage.get<string>(NAME_KEY);
      const address = replicaAddressOf(known);
      if (!known || !address) {
        await ctx.storage.deleteAlarm();
        return;
      }
      this.name = known;
      this.address = address;
      if (ctx.id.name) await ctx.storage.put(NAME_KEY, known);
      this.forwarder = new Forwarder((sends) => {
        this.calls.sends++;
        return this.primary().replicaSends(this.name, sends);
      });
      // A wake-up (hibernation, an alarm): the sockets still open were given everything up to
      // `delivered`. Without sockets nothing is owed and the feed starts again at the next join.
      const delivered = await ctx.storage.get<number>(DELIVERED_KEY);
      if (ctx.getWebSockets().length > 0 && typeof delivered === "number") this.feed.start(delivered);
    });
  }

  // ---------------------------------------------------------------------------------------
  // Sockets

  /** The Worker forwards authenticated upgrades here (headers set by the Worker only). */
  override async fetch(request: Request): Promise<Response> {
    const userId = request.headers.get("x-chat-user") ?? "";
    const historyHeader = request.headers.get("x-chat-history");
    if (!userId || !historyHeader || !this.address) {
      return Response.json({ error: { code: ErrorCode.BadRequest, message: "unable to join; the request did not come through the Worker" } }, { status: 400 });
    }
    const history = JSON.parse(historyHeader) as HistoryRequest;
    const protocol = Number(request.headers.get("x-chat-protocol") ?? "1") || 1;
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    if (this.sockets.count(userId) >= this.config.limits.socketsPerUser) {
      server.accept();
      server.addEventListener("error", () => {});
      server.send(encodeFrame({ type: ServerFrameType.Error, code: ErrorCode.RateLimited, message: "unable to join the room; too many sockets per user" }));
      server.close(closeCodeOf.rate_limited, "too many sockets per user");
      return new Response(null, { status: 101, webSocket: client });
    }
    this.joinsInProgress++;
    try {
      // A fresh feed starts where the primary is (nothing older is owed to anybody here): the
      // watermark argument above needs a feed position before the socket is accepted.
      await this.start(userId);
    } catch (error) {
      this.joinsInProgress--;
      // The primary's answer (a room that does not exist, …) or, when it did not answer, unavailable.
      const refused = error instanceof ChatError ? error : new ChatError(ErrorCode.Unavailable, "unable to join the room; the room did not answer, try again");
      if (!(error instanceof ChatError)) this.note(error);
      server.accept();
      server.addEventListener("error", () => {});
      server.send(encodeFrame({ type: ServerFrameType.Error, code: refused.code, message: refused.message }));
      server.close(closeCodeOf[refused.code], refused.message.slice(0, 120));
      return new Response(null, { status: 101, webSocket: client });
    }
    this.sockets.accept(server, { ...this.address.room, userId, protocol });
    this.joinsInProgress--;
    this.ctx.waitUntil(this.completeJoin(server, userId, history, protocol));
    await this.armSync();
    return new Response(null, { status: 101, webSocket: client });
  }

  private async completeJoin(ws: WebSocket, userId: string, history: HistoryRequest, protocol: number): Promise<void> {
    let ready: ReadyFrame;
    try {
      // RPC's types cannot express `unknown` values (presence data): the shape is ReadyFrame's.
      this.calls.joins++;
      const answer = (await withTimeout(
        this.primary().replicaJoin(this.name, userId, history, protocol),
        this.config.limits.handshakeTimeoutMs,
        () => new Error("the primary did not answer the join in time"),
      )) as unknown as RoomResult<ReadyFrame>;
      if (!answer.ok) {
        this.sockets.end(ws, answer.code, answer.message);
        return;
      }
      ready = answer.value;
      this.counted.add(ws);
      // Everything up to the watermark must be delivered here before the socket goes live, so
      // that nothing the feed delivers later is at or below it.
      const reached = this.feed.reached(ready.latestSeq);
      this.scheduleFill();
      await withTimeout(reached, this.config.limits.handshakeTimeoutMs, () => new Error("the feed did not reach the join's watermark in time"));
    } catch (error) {
      this.note(error);
      this.sockets.end(ws, ErrorCode.Unavailable, "unable to join the room; reconnect");
      return;
    }
    this.sockets.finishJoin(ws, encodeFrame(ready), ready.latestSeq);
  }

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    const attachment = attachmentOf(ws);
    if (!attachment || !this.address) {
      safeClose(ws, closeCodeOf.internal, "socket state lost; reconnect");
      return;
    }
    if (!attachment.ready && !this.sockets.isJoining(ws)) {
      safeClose(ws, closeCodeOf.unavailable, "handshake interrupted; reconnect");
      return;
    }
    const decoded = decodeClientFrame(raw);
    if (!decoded.ok) {
      this.answerBadFrame(ws, decoded.error);
      return;
    }
    const frame = decoded.value;
    switch (frame.type) {
      case ClientFrameType.Ping:
        this.sockets.send(ws, { type: ServerFrameType.Pong });
        return;
      case ClientFrameType.Received:
        this.sockets.received(ws);
        return;
      case ClientFrameType.Read:
        this.relay(attachment.userId, { kind: "read", seq: frame.seq }, ws);
        return;
      case ClientFrameType.Typing:
        this.relay(attachment.userId, { kind: "typing", stop: frame.stop === true }, ws);
        return;
      case ClientFrameType.Presence:
        this.sockets.setPresence(ws, frame.data);
        this.relay(attachment.userId, { kind: "presence", data: frame.data }, ws);
        return;
    }
    const outcome = await this.forwarder.send(attachment.userId, requestOf(frame));
    if (outcome.ok) {
      // The ack follows the entry's own frame (the primary's order): wait for the feed.
      const reached = this.feed.reached(outcome.message.seq);
      this.scheduleFill();
      try {
        await withTimeout(reached, this.config.limits.handshakeTimeoutMs, () => new Error("the feed did not deliver an acked entry in time"));
      } catch (error) {
        this.note(error);
        // The entry is committed; the client reconnects with its cursor, gets it in history,
        // and its resend is answered from the primary's dedup.
        this.sockets.end(ws, ErrorCode.Unavailable, "this replica fell behind; reconnect");
        return;
      }
    }
    this.sockets.send(ws, answerOf(outcome as SendOutcome, frame.clientMsgId));
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.closed(ws);
    safeClose(ws, code === 1005 || code === 1006 ? 1000 : code, reason);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.closed(ws);
  }

  /** A live socket left: the primary's presence hears it (a lost call is healed by the next sync's count). */
  private closed(ws: WebSocket): void {
    this.sockets.forget(ws);
    const attachment = attachmentOf(ws);
    if (attachment && (attachment.ready || this.counted.has(ws)) && this.address) this.relay(attachment.userId, { kind: "left" }, undefined);
  }

  // ---------------------------------------------------------------------------------------
  // RPC from the primary

  /** The primary's push: controls first (a revocation is never late), then entries. */
  async push(batch: ReplicaPush): Promise<{ subscribed: boolean }> {
    if (!this.address) return { subscribed: false };
    if (this.ctx.getWebSockets().length === 0 && this.joinsInProgress === 0 && this.starting === undefined) {
      // Nobody here: stop the feed (the next join starts it again where the primary is then).
      this.feed.reset();
      await this.ctx.storage.delete(DELIVERED_KEY);
      await this.ctx.storage.deleteAlarm();
      return { subscribed: false };
    }
    for (const control of batch.controls) this.apply(control);
    this.feed.learn(batch.lastSeq);
    this.deliver(this.feed.offer(batch.entries), "push");
    this.scheduleFill();
    return { subscribed: true };
  }

  /** Observability: where this replica's feed is. */
  async describe(): Promise<ReplicaStatus> {
    const delivered = this.feed.delivered;
    return {
      name: this.name,
      region: this.address?.region ?? "unknown",
      shard: this.address?.shard ?? 0,
      deliveredSeq: delivered ?? null,
      knownSeq: this.feed.known,
      lagSeqs: delivered === undefined ? 0 : this.feed.known - delivered,
      lagMs: this.lagMs,
      source: this.source,
      sockets: this.sockets.count(),
      fills: this.fills,
      calls: { ...this.calls },
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
    };
  }

  /** The periodic sync: re-register, catch up, re-check access (and stop when nobody is left). */
  override async alarm(): Promise<void> {
    if (!this.address) return;
    if (this.ctx.getWebSockets().length === 0) {
      this.feed.reset();
      await this.ctx.storage.delete(DELIVERED_KEY);
      return;
    }
    try {
      await this.sync(false);
    } catch (error) {
      this.note(error);
    }
    await this.armSync(true);
  }

  // ---------------------------------------------------------------------------------------
  // The feed

  private primary() {
    return roomStub(this.env, this.address.room);
  }

  /** Starts a fresh feed at the primary's last seq (one call at a time). */
  private start(joiner: string): Promise<void> {
    if (this.feed.delivered !== undefined) return Promise.resolve();
    this.starting ??= (async () => {
      try {
        this.calls.syncs++;
        const answer = await this.primary().replicaSync(this.name, { users: [], entriesAfter: undefined, joiner });
        if (!answer.ok) throw new ChatError(answer.code, answer.message);
        if (this.feed.delivered === undefined) {
          this.deliver(this.feed.start(answer.value.lastSeq), "primary");
          await this.ctx.storage.put(DELIVERED_KEY, answer.value.lastSeq);
        }
      } finally {
        this.starting = undefined;
      }
    })();
    return this.starting;
  }

  private deliver(entries: Entry[], source: FeedSource): void {
    if (entries.length === 0) return;
    const last = entries[entries.length - 1] as Entry;
    // Durable before the frames leave (the output gate holds them until this write is).
    void this.ctx.storage.put(DELIVERED_KEY, last.seq);
    this.source = source;
    this.lagMs = Math.max(0, Date.now() - Date.parse(last.createdAt));
    this.sockets.broadcast(
      entries.map((message) => encodeFrame({ type: ServerFrameType.Message, message })),
      entries.map((e) => e.seq),
    );
    const affected = accessAffected(entries);
    if (affected) void this.recheck(affected === "all" ? [...this.sockets.users()] : affected);
  }

  private scheduleFill(delayMs = FILL_DELAY_MS): void {
    if (this.filling || this.fillTimer !== undefined || !this.feed.gap()) return;
    this.fillTimer = setTimeout(() => {
      this.fillTimer = undefined;
      void this.fill();
    }, delayMs);
  }

  /**
   * Fills the feed's gap: Redis near the replica first (public rooms whose stream holds the
   * range), else the primary's range. Either way the primary re-checks the connected users in
   * the same call before anything filled is delivered: a fill may cover a revocation whose
   * control was lost with a push.
   */
  private async fill(): Promise<void> {
    const gap = this.feed.gap();
    if (!gap || this.filling) return;
    this.filling = true;
    try {
      let fromRedis: Entry[] = [];
      if (this.mirrorStore) {
        try {
          const read = await this.mirrorStore.readAfter(this.address.room, gap.after, Math.min(FILL_LIMIT, gap.upto - gap.after));
          fromRedis = (read?.messages ?? []).filter((e) => e.seq <= gap.upto) as Entry[];
        } catch {
          // Redis down: the primary fills.
        }
      }
      const wanted = fromRedis.length === 0;
      const answer = await this.sync(wanted, gap.after);
      this.fills++;
      const entries = wanted ? answer.entries : fromRedis;
      const delivered = this.feed.offer(entries);
      this.deliver(delivered, wanted ? "primary" : "redis");
      // A fill that moved nothing (the primary had nothing above `after` to give) backs off
      // instead of asking again at once: a gap that cannot be filled must not become a hot loop.
      if (delivered.length === 0) throw new Error(`a fill after seq ${gap.after} brought nothing`);
      this.fillFailures = 0;
    } catch (error) {
      this.note(error);
      this.fillFailures++;
    } finally {
      this.filling = false;
    }
    this.scheduleFill(this.fillFailures === 0 ? 0 : Math.min(5_000, 100 * 2 ** Math.min(this.fillFailures, 6)));
  }

  /** One call to the primary: registers, learns its last seq, ends refused users; with `entries`, the range after `after`. */
  private async sync(entries: boolean, after?: number): Promise<{ entries: Entry[] }> {
    const users = [...this.sockets.users()];
    this.calls.syncs++;
    const answer = await this.primary().replicaSync(this.name, { users, entriesAfter: entries ? after : undefined, present: this.present() });
    if (!answer.ok) throw new Error(answer.message);
    for (const userId of answer.value.refused) this.sockets.endAll(ErrorCode.Forbidden, "you may no longer read this room", userId);
    this.feed.learn(answer.value.lastSeq);
    this.scheduleFill();
    return { entries: answer.value.entries };
  }

  /** Sockets per user here that the primary counted (its join answered, or live). */
  private present(): Record<string, number> {
    const present: Record<string, number> = {};
    this.sockets.each((ws, a) => {
      if (a.ready || this.counted.has(ws)) present[a.userId] = (present[a.userId] ?? 0) + 1;
    });
    return present;
  }

  private async recheck(users: string[]): Promise<void> {
    if (users.length === 0) return;
    try {
      this.calls.syncs++;
      const answer = await this.primary().replicaSync(this.name, { users, entriesAfter: undefined });
      if (!answer.ok) throw new Error(answer.message);
      for (const userId of answer.value.refused) this.sockets.endAll(ErrorCode.Forbidden, "you may no longer read this room", userId);
    } catch (error) {
      // Fail closed: a user whose access could not be confirmed after a change is disconnected
      // (they reconnect and are checked again).
      this.note(error);
      for (const userId of users) this.sockets.endAll(ErrorCode.Unavailable, "unable to confirm your access; reconnect", userId);
    }
  }

  private apply(control: ReplicaControl): void {
    switch (control.kind) {
      case "end":
        this.sockets.endAll(control.code, control.reason, control.userId);
        return;
      case "recheck":
        void this.recheck([...this.sockets.users()]);
        return;
      case "frame":
        this.sockets.broadcastFrom(control.minProtocol, [encodeFrame(control.frame)]);
        return;
      case "typing":
        this.sockets.each(
          (ws, a) => this.sockets.send(ws, { type: ServerFrameType.Typing, userIds: control.userIds.filter((u) => u !== a.userId) }),
          2,
        );
        return;
    }
  }

  private relay(
    userId: string,
    act: { kind: "read"; seq: number } | { kind: "typing"; stop: boolean } | { kind: "presence"; data: Record<string, unknown> } | { kind: "left" },
    ws: WebSocket | undefined,
  ): void {
    this.calls.relays++;
    this.ctx.waitUntil(
      this.primary()
        .replicaLive(this.name, userId, act)
        .then((answer) => {
          if (!answer.ok && ws) this.answerBadFrame(ws, { code: answer.code, message: answer.message });
        })
        .catch((error: unknown) => this.note(error)),
    );
  }

  private async armSync(force = false): Promise<void> {
    if (force || (await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + this.config.replication.syncMs);
  }

  private answerBadFrame(ws: WebSocket, error: { code: ErrorCode; message: string; clientMsgId?: string }): void {
    let bucket = this.badFrames.get(ws);
    if (!bucket) {
      bucket = new TokenBucket(MAX_BAD_FRAMES_BURST, 2, Date.now());
      this.badFrames.set(ws, bucket);
    }
    if (!bucket.take(Date.now()).ok) {
      this.sockets.end(ws, ErrorCode.BadRequest, "too many invalid frames; fix the client and reconnect");
      return;
    }
    this.sockets.send(ws, { type: ServerFrameType.Error, ...error } as ServerFrame);
  }

  private note(error: unknown): void {
    this.lastError = error instanceof Error ? error.message : String(error);
    console.warn(`replica ${this.name ?? "?"}: ${this.lastError}`);
  }
}

/** Which connected users a batch's system entries may have taken access from (or "all"). */
const accessAffected = (entries: readonly Entry[]): string[] | "all" | undefined => {
  const users = new Set<string>();
  for (const e of entries) {
    if (e.kind !== EntryKind.System) continue;
    if (e.event === SystemEvent.RoomUpdated) return "all";
    // A ban (issue #18) takes access too; it follows member_removed for a member, not for a reader of a public room.
    const revokes = [SystemEvent.MemberRemoved, SystemEvent.MemberLeft, SystemEvent.RoleChanged, SystemEvent.MemberBanned] as const;
    if ((revokes as readonly string[]).includes(e.event) && e.subject) {
      users.add(e.subject);
    }
  }
  return users.size > 0 ? [...users] : undefined;
};

export { replicaName };
