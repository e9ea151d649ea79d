// The room Durable Object: one per (tenant, room). A thin shell: each runtime event and RPC is a
// short list of calls on the parts beside it —
//   writer.ts     the single writer: epoch claim, seqs, group commit, resync, in-doubt marker
//   sends.ts      the way in for entries: authorize, rate-limit, resend answers, per-user order
//   access.ts     who may do what, and the roles cache
//   mirror.ts     the Redis mirror pump, its retries and the heal alarm
//   sockets.ts    hibernatable sockets, attachments, and the join buffers behind `ready`
//   handshake.ts  what a joining socket is owed; window.ts the recent entries in memory
// Postgres and Redis are behind MessageStore and MirrorStore. The races this file still decides
// (the handshake's watermark, hibernation) are argued where they are decided.
//
// What survives what:
//  - Postgres holds every committed entry, the room's last_seq, writer epoch and members.
//  - Durable Object storage holds the writer epoch this object last claimed, the mirror
//    watermark, an in-doubt marker after an unknown commit outcome, and the heal alarm.
//  - Each socket's attachment holds who it is and whether it got `ready`.
//  - The room's identity is the object's name (`ctx.id.name`, see address.ts), also saved in
//    storage (ROOM_NAME_KEY) because an instance woken by its alarm is not told it.
//  - Memory (seq counter, recent window, queue, roles) is a cache of the above, rebuilt on wake-up.

import { DurableObject } from "cloudflare:workers";
import { type Config, readConfig } from "../config.js";
import { decodeClientFrame, encodeFrame, type HistoryRequest } from "../protocol/codec.js";
import { ChatError, closeCodeOf, ErrorCode, errorBody, httpStatusOf } from "../protocol/errors.js";
import {
  ClientFrameType,
  type DeleteRequest,
  type EditRequest,
  type Entry,
  EntryKind,
  type PresenceEntry,
  type ReactRequest,
  type SendRequest,
  ServerFrameType,
} from "../protocol/frames.js";
import { limitOf, userLimitKey } from "../limits.js";
import { metrics } from "../observability/metrics.js";
import { MAX_BAD_FRAMES_BURST } from "../protocol/limits.js";
import { PostgresStore, useLocalWsProxy } from "../storage/postgres.js";
import { type MirrorStore, UpstashMirror } from "../storage/redis.js";
import { withTimeout } from "../storage/timeout.js";
import {
  type HistoryQuery,
  type MessageStore,
  type Role,
  type RoomKey,
  type RoomPatch,
  type RoomRecord,
  StorageError,
  type Visibility,
} from "../storage/types.js";
import { type Action, can, forbidden, joinsOnSend, RoomAccess, TokenBucket } from "./access.js";
import { roomKeyOf, roomName } from "./address.js";
import { RoomAdmin, type SystemEventBody } from "./admin.js";
import { buildReady, readyQuery } from "./handshake.js";
import { describeError, failureOf } from "./log.js";
import { HEAL_INTERVAL_MS, HealAlarm, MIRRORED_KEY, Mirror } from "./mirror.js";
import type { PipelineOptions } from "./pipeline.js";
import type { Failure, RoomResult, SendOutcome } from "./results.js";
import { Sends, type SendRequestOf } from "./sends.js";
import { answerOf, requestOf } from "./frames.js";
import { attachmentOf, safeClose, SocketHub } from "./sockets.js";
import { RecentWindow } from "./window.js";
import { LiveState } from "./live.js";
import { RoomAttachments } from "./attachments.js";
import { type AttachmentDescriptor, AttachmentStore, attachmentConfig } from "../storage/attachments.js";
import { IN_DOUBT_KEY, roomNotFound, Writer } from "./writer.js";
import { ReplicaFanout } from "./replicas.js";
import { isReplicaOf } from "../replica/address.js";
import type { ForwardedSend } from "../replica/forwarder.js";
import type { ReplicaStatus } from "../replica/replica.js";
import { RoomHooks, WEBHOOKS_KEY } from "../hooks/room-hooks.js";
import type { HookReport } from "../hooks/dispatcher.js";
import type { WebhookEvent } from "../hooks/events.js";
import { WebhookEventType } from "../hooks/config.js";
import { PostgresDeadLetters } from "../hooks/store.js";

/** Storage key of the replicas subscribed to this room (names), so an evicted primary keeps pushing. */
const REPLICAS_KEY = "replicas";
import { ModerationCache, RoomModeration, verdictOf } from "./moderation.js";
import { reviewMessage } from "./before-commit.js";
import { SERVER_ACTOR } from "../protocol/limits.js";
import { ModerationStore, type Restriction, type RestrictionKind } from "../storage/moderation.js";
import type { Part } from "../protocol/parts.js";

const WINDOW_BYTES = 2 * 1024 * 1024;

/**
 * Storage key of the room's name (`<tenant>:<roomId>`). An instance woken by its alarm is not told
 * its name (`ctx.id.name` is undefined there), so the name is saved at every claim, before the heal
 * alarm can be armed, and read back by such an instance.
 */
export const ROOM_NAME_KEY = "roomName";

export class Room extends DurableObject<Env> {
  private readonly config: Config;
  // Who this object is, and its parts: set by `assemble`, in the constructor or, for an instance
  // that does not know its name, before its first event (blockConcurrencyWhile).
  private key!: RoomKey;
  private storeInstance: MessageStore | undefined;
  private writer!: Writer;
  private access!: RoomAccess;
  private sends!: Sends;
  private window!: RecentWindow;
  private sockets!: SocketHub;
  /** Redis (undefined when no Upstash is configured). */
  private mirrorStore: MirrorStore | undefined;
  private mirror!: Mirror;
  private alarmClock!: HealAlarm;
  private admin!: RoomAdmin;
  private live!: LiveState;
  /** Regional replicas subscribed to this room, and the push queue of each (replicas.ts). */
  private replicas!: ReplicaFanout;
  /** Set when an instance could not learn which room it is: it only cancels its alarm. */
  private orphan = false;
  /** Analytics Engine (a no-op without the binding): docs/observability.md. */
  private readonly metrics: ReturnType<typeof metrics>;
  /** Attachments (issue #17): uploads' records and the multipart send check (attachments.ts). */
  private attachments!: RoomAttachments;
  private attachmentStoreInstance: AttachmentStore | undefined;
  /** Webhooks (issue #18): delivery watermarks per endpoint, jobs to the queue (src/hooks/). */
  private hooks!: RoomHooks;
  private deadLetterStore: PostgresDeadLetters | undefined;
  /** Moderation (issue #18): bans, mutes, tenant bans as this room knows them, erasing a user (moderation.ts). */
  private restrictions!: ModerationCache;
  private moderation!: RoomModeration;
  private moderationStoreInstance: ModerationStore | undefined;
  /** Invalid frames per socket (memory only: a wake-up forgives). */
  private readonly badFrames = new WeakMap<WebSocket, TokenBucket>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.config = readConfig(env);
    this.metrics = metrics(env);
    if (this.config.neonWsProxy) useLocalWsProxy(this.config.neonWsProxy);
    // Pings are answered by the runtime without waking a hibernated object.
    ctx.setWebSocketAutoResponse(
      new WebSocketRequestResponsePair(
        encodeFrame({ type: ClientFrameType.Ping }),
        encodeFrame({ type: ServerFrameType.Pong }),
      ),
    );
    // Every request reaches the object through roomStub (idFromName), so it knows its name; an
    // alarm does not carry it (see ROOM_NAME_KEY).
    const key = roomKeyOf(ctx.id.name);
    if (key) {
      this.assemble(key);
      return;
    }
    void ctx.blockConcurrencyWhile(async () => {
      const saved = roomKeyOf(await ctx.storage.get<string>(ROOM_NAME_KEY));
      if (saved) {
        this.assemble(saved);
        return;
      }
      // Nothing to heal under a name we do not know (an alarm armed before names were saved):
      // the room catches up at its next use (every boot resumes the mirror from its watermark).
      this.orphan = true;
      await ctx.storage.deleteAlarm();
    });
  }

  private assemble(key: RoomKey): void {
    const ctx = this.ctx;
    this.key = key;
    this.window = new RecentWindow(this.config.windowMessages, WINDOW_BYTES);
    this.sockets = new SocketHub(ctx);
    this.alarmClock = new HealAlarm(ctx.storage);
    this.mirrorStore = this.config.upstash
      ? new UpstashMirror({ ...this.config.upstash, maxLen: this.config.mirrorMaxLen, timeoutMs: 5000 })
      : undefined;
    this.mirror = new Mirror(
      {
        lastSeq: () => this.writer.lastSeq,
        read: (afterSeq, uptoSeq) => this.readHistory({ afterSeq, uptoSeq, limit: uptoSeq - afterSeq, from: "oldest" }),
        write: (entries) => this.requireMirrorStore().append(this.key, entries),
        remove: (seqs) => this.requireMirrorStore().remove(this.key, seqs),
        save: (seq) => ctx.storage.put(MIRRORED_KEY, seq),
        retryIn: (delayMs) => this.alarmClock.arm(delayMs, true),
        warn: (message, cause) => console.warn(`room ${roomName(this.key)}: ${message}: ${describeError(cause)}`),
        passed: (lag, ok) => this.metrics.mirrorLag(this.key.tenant, this.key.roomId, lag, ok ? "ok" : "unavailable"),
      },
      this.config.mirrorMaxLen,
      this.config.mirrorLingerMs,
    );
    this.access = new RoomAccess(this.key, () => this.store());
    this.replicas = new ReplicaFanout({
      push: (name, batch) => this.env.REPLICA.get(this.env.REPLICA.idFromName(name)).push(batch),
      save: (names) => ctx.storage.put(REPLICAS_KEY, names),
      lastSeq: () => this.writer.lastSeq,
      later: (run, ms) => void setTimeout(run, ms),
      warn: (message, cause) => console.warn(`room ${roomName(this.key)}: ${message}: ${describeError(cause)}`),
    });
    this.restrictions = new ModerationCache((userId) => this.moderationStore().stateOf(this.key, userId));
    this.writer = this.createWriter();
    this.hooks = new RoomHooks({
      key: this.key,
      endpoints: this.config.tenants.get(this.key.tenant)?.webhooks ?? [],
      settings: this.config.webhooks,
      queue: this.env.WEBHOOKS,
      read: (afterSeq, uptoSeq) => this.readHistory({ afterSeq, uptoSeq, limit: uptoSeq - afterSeq, from: "oldest" }),
      lastSeq: () => this.writer.lastSeq,
      save: (states, confirmed) => ctx.storage.put(WEBHOOKS_KEY, states, confirmed ? {} : { allowUnconfirmed: true }),
      deadLetters: () => this.deadLetters(),
      retryIn: (delayMs) => this.alarmClock.arm(delayMs, true),
      warn: (message, cause) => console.warn(`room ${roomName(this.key)}: ${message}: ${describeError(cause)}`),
      lingerMs: this.config.mirrorLingerMs,
      members: async () => (await this.store().listMembers(this.key, 1000)).map((m) => m.userId),
      online: () => new Set(this.live.occupancy().presence.map((p) => p.userId)),
      readSeq: async (userId) => this.live.cursors.known(userId) ?? (await this.store().readCursor(this.key, userId)),
    });
    this.live = new LiveState({
      room: this.key,
      sockets: this.sockets,
      readCursor: (userId) => this.store().readCursor(this.key, userId),
      saveCursors: (cursors) => this.store().saveCursors(this.key, cursors),
      countMessages: (afterSeq, uptoSeq) => this.countMessages(afterSeq, uptoSeq),
      lastSeq: () => this.writer.lastSeq,
      warn: (message, error) => console.warn(`room ${roomName(this.key)}: ${message}: ${describeError(error)}`),
      relay: (frame, minProtocol) => this.replicas.control({ kind: "frame", frame, minProtocol }),
      relayTyping: (userIds) => this.replicas.control({ kind: "typing", userIds }),
    });
    this.attachments = new RoomAttachments({
      key: this.key,
      bucket: this.env.ATTACHMENTS,
      store: () => this.attachmentStore(),
      config: attachmentConfig(this.env),
      authorizeSend: (userId) => this.authorizeSend(userId),
      authorizeRead: async (userId) => (await this.authorize(userId, "read")).record.visibility,
    });
    this.admin = new RoomAdmin({
      key: this.key,
      store: () => this.store(),
      authorize: (userId, action) => this.authorize(userId, action),
      access: this.access,
      writer: this.writer,
      // A socket ended here is ended at every replica too, in order with later entries.
      sockets: { users: () => this.sockets.users(), endAll: (code, reason, userId) => this.endEverywhere(code, reason, userId) },
      accessNarrowed: () => this.replicas.control({ kind: "recheck" }),
      mirrorStore: this.mirrorStore,
      stopMirror: () => this.mirror.stop(),
      forgetRoom: (deleted) => this.forgetRoom(deleted),
      recordEvent: (actor, event, text) => this.recordEvent(actor, event, text),
      purgeObjects: () => this.attachments.purgeObjects(),
    });
    this.sends = new Sends({
      authorize: (userId, asServer) => this.authorizeSend(userId, asServer),
      known: (userId, clientMsgId) => this.window.find(userId, clientMsgId),
      submit: (entry) => this.writer.submit(entry),
      prepare: (userId, request) => this.attachments.prepare(userId, request),
      failureOf: (error, operation) => this.failureOf(error, operation),
      limits: this.config.limits,
      crossRoom: (userId) => limitOf(this.env, "send", userLimitKey(this.key.tenant, userId)),
      review: (userId, request, parts) => this.review(userId, request, parts),
    });
    this.moderation = new RoomModeration({
      key: this.key,
      cache: this.restrictions,
      authorizeManage: async (actor) => {
        await this.authorize(actor, "manage");
      },
      roleOf: (userId) => this.access.roleOf(userId),
      revokeRole: (userId) => {
        const before = this.access.known(userId);
        this.access.set(userId, null);
        return () => {
          if (before !== undefined) this.access.set(userId, before);
        };
      },
      // A ban closes the user's sockets here and at every replica, in order with later entries.
      endSockets: (userId, code, reason) => this.endEverywhere(code, reason, userId),
      store: {
        restrict: (...args) => this.moderationStore().restrict(...args),
        lift: (...args) => this.moderationStore().lift(...args),
        liveMessageSeqs: (...args) => this.moderationStore().liveMessageSeqs(...args),
        forgetUserInRoom: (...args) => this.moderationStore().forgetUserInRoom(...args),
      },
      ...(this.mirrorStore
        ? {
            markBan: (userId: string, until: string | null) => this.requireMirrorStore().markBan?.(this.key, userId, until) ?? Promise.resolve(),
            unmarkBan: (userId: string) => this.requireMirrorStore().markBan?.(this.key, userId, undefined) ?? Promise.resolve(),
          }
        : {}),
      exclusive: (run) => this.admin.exclusive(run),
      settled: () => this.writer.settled(),
      recordEvent: (actor, event, text) => this.recordEvent(actor, event, text),
      commit: (entry) =>
        new Promise((resolve) => this.writer.submit({ ...entry, bytes: entry.text.length * 3 + 200, deliver: resolve })),
      forgetCursor: async (userId) => {
        await this.live.cursors.flush();
        this.live.cursors.forget(userId);
      },
    });
  }

  // ---------------------------------------------------------------------------------------
  // Seams. The benchmark fixture (bench/fixture/) overrides these to measure the baselines
  // (one transaction per message, a connection per statement); production uses them as they are.

  protected createStore(config: Config): MessageStore {
    if (!config.databaseUrl) {
      throw new StorageError("DATABASE_URL is not set; configure it with `wrangler secret put DATABASE_URL`", "failed");
    }
    return new PostgresStore({
      connectionString: config.databaseUrl,
      statementTimeoutMs: config.statementTimeoutMs,
      idleTimeoutMs: config.postgresIdleMs,
      maxConnections: config.postgresMaxConnections,
    });
  }

  protected pipelineOptions(): PipelineOptions {
    return { maxBatchSize: 500, maxBatchBytes: 1024 * 1024 };
  }

  // ---------------------------------------------------------------------------------------
  // RPC used by the Worker's HTTP routes. Every one returns a RoomResult (errors thrown across
  // RPC lose their type) through `rpc`, the one place that maps errors to failures.

  /**
   * `GET /v1/rooms/{roomId}/messages`: after `after` oldest-first, else the newest `limit`; with
   * `thread`, the replies of that message only. Messages in their current form, with the caller's
   * `me` flags on reactions.
   */
  history(userId: string, query: { after: number | undefined; limit: number; thread?: number }) {
    return this.rpc("unable to read history", async () => {
      await this.authorize(userId, "read");
      const latestSeq = this.writer.lastSeq;
      if (query.thread !== undefined) {
        // A thread is a sparse subset of the stream: always read from Postgres (an index range).
        const q: HistoryQuery = {
          afterSeq: query.after ?? query.thread,
          uptoSeq: latestSeq,
          limit: query.limit,
          from: query.after === undefined ? "newest" : "oldest",
          viewer: userId,
          thread: query.thread,
        };
        return { messages: await this.writer.read(q), latestSeq };
      }
      const q: HistoryQuery =
        query.after === undefined
          ? { afterSeq: Math.max(0, latestSeq - query.limit), uptoSeq: latestSeq, limit: query.limit, from: "newest", viewer: userId }
          : { afterSeq: query.after, uptoSeq: latestSeq, limit: query.limit, from: "oldest", viewer: userId };
      return { messages: await this.readHistory(q), latestSeq };
    });
  }

  /** `POST /v1/rooms/{roomId}/messages`: the same way in as a WebSocket send. */
  send(userId: string, request: SendRequest): Promise<SendOutcome> {
    return this.enqueueHttp(userId, requestOf({ type: ClientFrameType.Send, ...request }));
  }

  /** `PATCH /v1/rooms/{roomId}/messages/{seq}`: the same way in as an `edit` frame. */
  edit(userId: string, target: number, request: EditRequest): Promise<SendOutcome> {
    return this.enqueueHttp(userId, requestOf({ type: ClientFrameType.Edit, target, ...request }));
  }

  /** `DELETE /v1/rooms/{roomId}/messages/{seq}`: the same way in as a `delete` frame. */
  deleteMessage(userId: string, target: number, request: DeleteRequest): Promise<SendOutcome> {
    return this.enqueueHttp(userId, requestOf({ type: ClientFrameType.Delete, target, ...request }));
  }

  /** `POST /v1/rooms/{roomId}/messages/{seq}/reactions`: the same way in as a `react` frame. */
  react(userId: string, target: number, request: ReactRequest): Promise<SendOutcome> {
    return this.enqueueHttp(userId, requestOf({ type: ClientFrameType.React, target, ...request }));
  }

  private enqueueHttp(userId: string, request: SendRequestOf, via: "http" | "replica" = "http"): Promise<SendOutcome> {
    return new Promise((resolve) =>
      this.sends.enqueue(userId, request, (outcome) => {
        this.metrics.sends(this.key.tenant, this.key.roomId, outcome.ok ? "ok" : outcome.code, 1, via);
        resolve(outcome);
      }),
    );
  }

  /** `POST /v1/rooms/{roomId}/attachments`, before the bytes: may the caller upload here (src/api/attachments.ts)? */
  admitUpload(userId: string) {
    return this.rpc("unable to upload", () => this.attachments.admitUpload(userId));
  }

  /** `POST /v1/rooms/{roomId}/attachments`, after the bytes are in R2: the upload's record. */
  recordUpload(userId: string, upload: Omit<AttachmentDescriptor, "createdAt">) {
    return this.rpc("unable to record the upload", () => this.attachments.record(userId, upload));
  }

  /** `GET /v1/rooms/{roomId}/attachments/{id}`: may the caller read it, and what it is. */
  attachment(userId: string, id: string) {
    return this.rpc("unable to read the attachment", () => this.attachments.download(userId, id));
  }

  /** `GET /v1/rooms/{roomId}/status`: where the room and its mirror are (ops and tests). */
  status(userId: string) {
    return this.rpc("unable to read the room status", async () => {
      await this.authorize(userId, "read");
      const mirroredSeq = this.mirror.mirroredSeq;
      const latestSeq = this.writer.lastSeq;
      const { users, sockets } = this.live.occupancy();
      return {
        latestSeq,
        mirroredSeq,
        mirrorLag: mirroredSeq === null ? null : latestSeq - mirroredSeq,
        sockets,
        users,
        replicas: await this.describeReplicas(),
      };
    });
  }

  /** `PUT /v1/rooms/{roomId}/read`: moves the caller's read cursor forward (durably, before answering). */
  markRead(userId: string, seq: number) {
    return this.rpc("unable to mark read", async () => {
      await this.authorize(userId, "read");
      await this.live.loadCursor(userId);
      const done = this.live.read(userId, seq);
      if (!done.ok) throw new ChatError(done.code, done.message);
      await this.live.cursors.flush();
      const readSeq = this.live.cursors.known(userId) ?? seq;
      return { readSeq, unread: await this.live.unread(readSeq, this.writer.lastSeq) };
    });
  }

  /** `GET /v1/rooms/{roomId}/presence`: who is online now, and how many sockets. */
  presence(userId: string) {
    return this.rpc("unable to read presence", async () => {
      await this.authorize(userId, "read");
      return this.live.occupancy();
    });
  }

  // ---------------------------------------------------------------------------------------
  // Moderation and the server API (RPC): moderation.ts, where the argument for bans lives.

  /** Bans or mutes `target` (room admins, or the server actor). `until`: ISO time, or null until lifted. */
  restrict(actor: string, target: string, kind: RestrictionKind, until: string | null, reason: string | null) {
    return this.rpc(`unable to ${kind} the user`, () => this.moderation.restrict(actor, target, kind, until, reason));
  }

  /** Lifts a ban or a mute. */
  lift(actor: string, target: string, kind: RestrictionKind) {
    return this.rpc(`unable to lift the ${kind}`, () => this.moderation.lift(actor, target, kind));
  }

  /** The Worker banned (or unbanned) `userId` from the tenant; Postgres and Redis have it already. */
  tenantBanChanged(userId: string, ban: Restriction | null) {
    return this.rpc("unable to apply the tenant ban", async () => {
      this.moderation.tenantBanChanged(userId, ban);
      return { applied: true };
    });
  }

  /** `POST /v1/rooms/{roomId}/reports`: readers of the room may report a message or a user. */
  report(actor: string, report: { seq?: number; userId?: string; reason: string }) {
    return this.rpc("unable to report", async () => {
      await this.authorize(actor, "read");
      if (report.seq !== undefined && report.seq > this.writer.lastSeq) {
        throw new ChatError(ErrorCode.NotFound, "unable to report; no such message in this room");
      }
      const recorded = await this.moderationStore().insertReport(this.key.tenant, {
        id: crypto.randomUUID(),
        roomId: this.key.roomId,
        reporter: actor,
        subject: report.userId ?? null,
        seq: report.seq ?? null,
        reason: report.reason,
      });
      // After the row is durable, off the answer's path (best effort like room.created: the row
      // stays the record, listed by GET /v1/server/reports).
      this.ctx.waitUntil(this.hooks.roomChanged(WebhookEventType.ReportCreated, { ...recorded }));
      return recorded;
    });
  }

  /** The server API's erase, for this room: tombstones for every message of the user, then their membership and cursor go. */
  eraseUser(userId: string) {
    return this.rpc("unable to erase the user", () => this.moderation.erase(userId));
  }

  /**
   * The server API's send: as the system (`userId` = SERVER_ACTOR) or on behalf of a user, who
   * needs no membership but whose bans and mutes hold.
   */
  serverSend(userId: string, request: SendRequest): Promise<SendOutcome> {
    return new Promise((resolve) =>
      this.sends.enqueue(
        userId,
        requestOf({ type: ClientFrameType.Send, ...request }),
        (outcome) => {
          this.metrics.sends(this.key.tenant, this.key.roomId, outcome.ok ? "ok" : outcome.code, 1, "http");
          resolve(outcome);
        },
        true,
      ),
    );
  }

  // ---------------------------------------------------------------------------------------
  // Rooms and members (RPC): admin.ts, where the argument for permission changes lives.

  createRoom(actor: string, init: { visibility: Visibility; name: string; metadata: Record<string, unknown> }) {
    return this.rpc("unable to create the room", async () => {
      const room = await this.admin.create(actor, init);
      await this.hooks.roomChanged(WebhookEventType.RoomCreated, { roomId: this.key.roomId, createdBy: actor, ...init });
      return room;
    });
  }

  getRoom(actor: string) {
    return this.rpc("unable to read the room", () => this.admin.get(actor));
  }

  updateRoom(actor: string, patch: RoomPatch) {
    return this.rpc("unable to update the room", () => this.admin.update(actor, patch));
  }

  deleteRoom(actor: string, purge: boolean) {
    return this.rpc("unable to delete the room", async () => {
      const done = await this.admin.delete(actor, purge);
      await this.hooks.roomChanged(WebhookEventType.RoomDeleted, { roomId: this.key.roomId, deletedBy: actor, purged: purge });
      return done;
    });
  }

  // ---------------------------------------------------------------------------------------
  // Webhooks (RPC from the queue consumer, src/hooks/consumer.ts).

  /** A job was tried: move the endpoint's watermark, schedule the retry or dead-letter. */
  webhookReport(report: HookReport) {
    return this.rpc("unable to record the webhook delivery", async () => {
      await this.writer.ensure();
      return this.hooks.report(report);
    });
  }

  /** The queue gave up on a job (its report never arrived): send it again now. */
  webhookLost(endpointId: string, token: string) {
    return this.rpc("unable to re-send the webhook job", async () => {
      await this.writer.ensure();
      await this.hooks.lost(endpointId, token);
    });
  }

  /** A room event the queue gave up on: recorded as a dead letter. */
  webhookDeadLetter(endpointId: string, event: WebhookEvent) {
    return this.rpc("unable to record the webhook dead letter", () => this.hooks.deadLetter(endpointId, event));
  }

  /** Every endpoint's delivery state in this room (ops and tests). */
  webhookStatus() {
    return this.rpc("unable to read the webhook status", async () => {
      await this.writer.ensure();
      return this.hooks.status();
    });
  }

  join(actor: string) {
    return this.rpc("unable to join the room", () => this.admin.join(actor));
  }

  setMember(actor: string, target: string, role: Role) {
    return this.rpc("unable to change the membership", () => this.admin.setMember(actor, target, role));
  }

  removeMember(actor: string, target: string) {
    return this.rpc("unable to remove the member", () => this.admin.removeMember(actor, target));
  }

  members(actor: string, limit: number) {
    return this.rpc("unable to list the members", () => this.admin.members(actor, limit));
  }

  // ---------------------------------------------------------------------------------------
  // Regional replicas (RPC from src/replica/replica.ts). Each call names the replica; the primary
  // only registers and pushes to replicas of this very room (isReplicaOf), and decides every
  // access question itself, at the moment of the call.

  /**
   * A socket joins at a replica: the same checks and the same `ready` as a join here. The
   * watermark and the registration happen in one turn, so every commit above the watermark is
   * queued for the replica (it buffers them behind this `ready`).
   */
  replicaJoin(replica: string, userId: string, history: HistoryRequest, _protocol: number) {
    return this.rpc("unable to join the room", async () => {
      this.checkReplica(replica);
      await this.authorize(userId, "read", true);
      await this.live.loadCursor(userId);
      await this.restrictions.stateOf(userId);
      this.decide("read", await this.access.roleOf(userId), userId);
      if (history.kind === "since" && history.since > this.writer.lastSeq) {
        throw new ChatError(ErrorCode.BadRequest, `unable to resume; since=${history.since} is ahead of the room's latest seq ${this.writer.lastSeq}`);
      }
      const watermark = this.writer.lastSeq;
      const registered = this.replicas.register(replica);
      // Online for everyone from this turn (the replica reports the socket's close, and its
      // full count at every sync).
      this.live.remoteJoined(replica, userId);
      const readSeq = this.live.cursors.known(userId) ?? 0;
      const query: HistoryQuery = { ...readyQuery(history, watermark), viewer: userId };
      const [messages, unread] = await withTimeout(
        Promise.all([this.readHistory(query), this.live.unread(readSeq, watermark), registered]),
        this.config.limits.handshakeTimeoutMs,
        () => new StorageError("the handshake's history did not arrive in time", "timeout"),
      );
      return buildReady(this.key.roomId, query, messages, { readSeq, unread, presence: this.live.occupancy().presence });
    });
  }

  /** Sends from a replica's clients, in arrival order (one turn): each answered as a REST send is. */
  replicaSends(replica: string, sends: ForwardedSend[]): Promise<SendOutcome[]> {
    if (!isReplicaOf(replica, this.key)) {
      return Promise.resolve(sends.map(() => ({ ok: false as const, code: ErrorCode.BadRequest, message: "unable to send; not a replica of this room" })));
    }
    return Promise.all(sends.map(({ userId, request }) => this.enqueueHttp(userId, request, "replica")));
  }

  /**
   * A replica checks in: it is registered, learns the last seq, hears which of its users may no
   * longer read, and with `entriesAfter` gets the entries after it (its gap, from the window or
   * Postgres).
   */
  replicaSync(replica: string, ask: { users: string[]; entriesAfter: number | undefined; joiner?: string; present?: Record<string, number> }) {
    return this.rpc("unable to join the room", async () => {
      this.checkReplica(replica);
      // A replica's first join may create an open room, as a join here does.
      await this.writer.ensure(ask.joiner);
      const lastSeq = this.writer.lastSeq;
      await this.replicas.register(replica);
      if (ask.present) this.live.remoteReport(replica, ask.present);
      const refused: string[] = [];
      for (const userId of ask.users) {
        try {
          const [role] = await Promise.all([this.access.roleOf(userId), this.restrictions.stateOf(userId)]);
          this.decide("read", role, userId);
        } catch (error) {
          const lost = [ErrorCode.Forbidden, ErrorCode.NotFound, ErrorCode.Banned] as const;
          if (error instanceof ChatError && (lost as readonly string[]).includes(error.code)) refused.push(userId);
          else throw error;
        }
      }
      const after = ask.entriesAfter;
      const entries =
        after === undefined || after >= lastSeq
          ? []
          : await this.readHistory({ afterSeq: after, uptoSeq: lastSeq, limit: Math.min(500, lastSeq - after), from: "oldest" });
      return { lastSeq, refused, entries };
    });
  }

  /** A replica's client marked read, typed or set presence data: as if on a socket here. */
  replicaLive(
    replica: string,
    userId: string,
    act:
      | { kind: "read"; seq: number }
      | { kind: "typing"; stop: boolean }
      | { kind: "presence"; data: Record<string, unknown> }
      | { kind: "left" },
  ) {
    return this.rpc("unable to relay the frame", async () => {
      this.checkReplica(replica);
      if (act.kind === "left") {
        // No access check: going offline is never refused.
        this.live.remoteLeft(replica, userId);
        return {};
      }
      await this.authorize(userId, "read");
      if (act.kind === "read") {
        await this.live.loadCursor(userId);
        const done = this.live.read(userId, act.seq);
        if (!done.ok) throw new ChatError(done.code, done.message);
      } else if (act.kind === "typing") {
        this.live.typingFrame(userId, act.stop);
      } else {
        this.live.remotePresence(userId, act.data);
      }
      return {};
    });
  }

  /** Ends sockets here and queues the same end for every replica, before any later commit's entries. */
  private endEverywhere(code: ErrorCode, reason: string, userId?: string): void {
    this.sockets.endAll(code, reason, userId);
    this.replicas.control(userId === undefined ? { kind: "end", code, reason } : { kind: "end", code, reason, userId });
  }

  private checkReplica(name: string): void {
    if (!isReplicaOf(name, this.key)) throw new ChatError(ErrorCode.BadRequest, "not a replica of this room");
  }

  private async describeReplicas(): Promise<Array<ReplicaStatus | { name: string; unreachable: true }>> {
    const queues = new Map(this.replicas.describe().map((q) => [q.name, q]));
    return Promise.all(
      this.replicas.names.map(async (name) => {
        try {
          const described = await withTimeout(
            this.env.REPLICA.get(this.env.REPLICA.idFromName(name)).describe(),
            1000,
            () => new Error("no answer"),
          );
          return { ...described, pushes: queues.get(name)?.pushes ?? 0, pushQueued: queues.get(name)?.queued ?? 0 };
        } catch {
          return { name, unreachable: true as const };
        }
      }),
    );
  }

  // ---------------------------------------------------------------------------------------
  // WebSockets

  /** The Worker forwards authenticated, validated upgrades here (headers set by the Worker only). */
  override async fetch(request: Request): Promise<Response> {
    const userId = request.headers.get("x-chat-user") ?? "";
    const historyHeader = request.headers.get("x-chat-history");
    if (!userId || !historyHeader) {
      return failureResponse(ErrorCode.BadRequest, "unable to join; the request did not come through the Worker");
    }
    const history = JSON.parse(historyHeader) as HistoryRequest;
    const protocol = Number(request.headers.get("x-chat-protocol") ?? "1") || 1;
    try {
      await this.authorize(userId, "read", true);
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
    try {
      await this.live.loadCursor(userId);
      // Checked again after that await: the decision stands for the turn that accepts.
      await this.restrictions.stateOf(userId);
      this.decide("read", await this.access.roleOf(userId), userId);
    } catch (error) {
      const f = this.failureOf(error, "unable to join the room");
      return refuseSocket(f.code, f.message);
    }
    if (history.kind === "since" && history.since > this.writer.lastSeq) {
      return refuseSocket(
        ErrorCode.BadRequest,
        `unable to resume; since=${history.since} is ahead of the room's latest seq ${this.writer.lastSeq}`,
      );
    }
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    // From here to `accept` (which starts buffering) there is no await: the watermark, the
    // presence snapshot and the registration happen in one turn, so no commit and no presence
    // change can be broadcast in between (live.ts argues the presence half).
    const watermark = this.writer.lastSeq;
    const joined = this.live.joining(userId);
    this.sockets.accept(server, { ...this.key, userId, protocol });
    this.metrics.socket(this.key.tenant, this.key.roomId, "open", this.sockets.count());
    this.ctx.waitUntil(this.completeHandshake(server, history, watermark, joined));
    return new Response(null, { status: 101, webSocket: client });
  }

  /*
   * Why the handshake is race-free. At registration the socket gets watermark W = lastSeq, and
   * from that moment every frame for it is buffered (SocketHub.sendEncoded). Broadcasts only
   * carry seqs the room had not committed before, so every buffered entry has seq > W. The
   * history sent in `ready` is read for seq <= W (from memory, or from Postgres, which holds
   * everything up to W because W was committed). `ready` goes out first, then the buffer in
   * order, in one synchronous turn, and only then is the socket marked live. So the socket sees
   * ..W from history and W+1.. live: no gap (everything > W is buffered or later), no duplicate
   * (history stops at W, the buffer starts above it), in seq order.
   */
  private async completeHandshake(
    ws: WebSocket,
    request: HistoryRequest,
    watermark: number,
    joined: { readSeq: number; presence: PresenceEntry[] },
  ): Promise<void> {
    const query: HistoryQuery = { ...readyQuery(request, watermark), viewer: attachmentOf(ws)?.userId };
    let history: Entry[];
    let unread: number;
    try {
      [history, unread] = await withTimeout(
        Promise.all([this.readHistory(query), this.live.unread(joined.readSeq, watermark)]),
        this.config.limits.handshakeTimeoutMs,
        () => new StorageError("the handshake's history did not arrive in time", "timeout"),
      );
    } catch (error) {
      const f = this.failureOf(error, "unable to read history for the handshake");
      this.sockets.end(ws, f.code, f.message);
      return;
    }
    const ready = buildReady(this.key.roomId, query, history, { readSeq: joined.readSeq, unread, presence: joined.presence });
    this.sockets.finishJoin(ws, encodeFrame(ready));
  }

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    const attachment = attachmentOf(ws);
    if (!attachment) {
      safeClose(ws, closeCodeOf.internal, "socket state lost; reconnect");
      return;
    }
    if (!attachment.ready && !this.sockets.isJoining(ws)) {
      // A socket that never got `ready` cannot survive a restart of the object (its handshake
      // was in memory). Tell the client to reconnect rather than serve it an unknown position.
      safeClose(ws, closeCodeOf.unavailable, "handshake interrupted; reconnect");
      return;
    }
    const decoded = decodeClientFrame(raw);
    if (!decoded.ok) {
      this.answerBadFrame(ws, decoded.error);
      return;
    }
    const frame = decoded.value;
    if (frame.type === ClientFrameType.Ping) {
      this.sockets.send(ws, { type: ServerFrameType.Pong });
      return;
    }
    switch (frame.type) {
      case ClientFrameType.Received:
        this.sockets.received(ws);
        return;
      case ClientFrameType.Read: {
        const done = this.live.read(attachment.userId, frame.seq);
        if (!done.ok) this.answerBadFrame(ws, done);
        return;
      }
      case ClientFrameType.Typing:
        this.live.typingFrame(attachment.userId, frame.stop === true);
        return;
      case ClientFrameType.Presence:
        this.live.presenceData(ws, attachment.userId, frame.data);
        return;
    }
    this.sends.enqueue(attachment.userId, requestOf(frame), (outcome) => {
      this.metrics.sends(this.key.tenant, this.key.roomId, outcome.ok ? "ok" : outcome.code);
      this.sockets.send(ws, answerOf(outcome, frame.clientMsgId));
    });
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.sockets.forget(ws);
    const attachment = attachmentOf(ws);
    if (attachment) this.live.closed(ws, attachment);
    this.metrics.socket(this.key.tenant, this.key.roomId, "close", this.sockets.count());
    // 1005/1006 are not valid to send back; answer a clean close with the same code.
    safeClose(ws, code === 1005 || code === 1006 ? 1000 : code, reason);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    // Abrupt disconnects are normal on mobile networks; nothing to log.
    this.sockets.forget(ws);
    const attachment = attachmentOf(ws);
    if (attachment) this.live.closed(ws, attachment);
  }

  /**
   * A bad frame is answered with a typed error and the socket stays open, up to a burst: a
   * socket that keeps sending garbage is closed (4400), so invalid frames cannot be used to make
   * the room answer without limit.
   */
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
    this.sockets.send(ws, { type: ServerFrameType.Error, ...error });
  }

  /**
   * The heal alarm: after a crash, an outage or an unknown commit outcome, it brings the room
   * back to "everything committed is broadcast and mirrored", with backoff, until it is.
   */
  override async alarm(): Promise<void> {
    if (this.orphan) return;
    this.alarmClock.fired();
    try {
      await this.writer.ensure();
      await this.writer.kick();
    } catch (error) {
      // A room that no longer exists has nothing to heal: do not re-arm.
      if (error instanceof ChatError && error.code === ErrorCode.NotFound) return;
      this.failureOf(error, "unable to heal the room");
      await this.alarmClock.retry();
      return;
    }
    this.alarmClock.healed();
    // A failed mirror pass re-arms the alarm itself; a room that is caught up needs no alarm
    // until its next commit arms one (an idle room is not woken again).
    await this.mirror.run(true);
    await this.hooks.alarm(HEAL_INTERVAL_MS);
    if (this.writer.inDoubt) await this.alarmClock.retry();
  }

  // ---------------------------------------------------------------------------------------
  // The parts, wired

  /** A writer with empty memory (as after a wake-up): it re-claims the room on first use. */
  private createWriter(): Writer {
    return new Writer(
      this.key,
      () => this.store(),
      this.ctx.storage,
      {
        loadRoom: (actor) => this.loadRoom(actor),
        booted: ({ record, recent, reactors, saved }) => {
          // Saved before anything can arm the heal alarm (it is armed only after a claim).
          if (saved.get(ROOM_NAME_KEY) !== roomName(this.key)) void this.ctx.storage.put(ROOM_NAME_KEY, roomName(this.key));
          this.window.reset(recent, reactors);
          this.access.clear();
          const replicas = saved.get(REPLICAS_KEY);
          if (Array.isArray(replicas)) this.replicas.restore(replicas.filter((n): n is string => typeof n === "string" && isReplicaOf(n, this.key)));
          if (this.mirrorStore) {
            const mirrored = saved.get(MIRRORED_KEY);
            this.mirror.boot(typeof mirrored === "number" ? mirrored : undefined, record.lastSeq);
          }
          this.hooks.boot(saved.get(WEBHOOKS_KEY), record.lastSeq);
        },
        publish: (entries) => {
          if (entries.length === 0) return;
          this.window.append(entries);
          // Not awaited: Redis being slow or down never delays a broadcast or an ack.
          this.mirror.committed();
          this.hooks.committed();
          this.broadcast(entries);
          this.replicas.committed(entries);
          this.live.committed(entries);
          // A deleted message's attachments go too (after the commit: the tombstone is durable,
          // so nothing serves them any more; if this fails, the sweep finds them later).
          const deleted = entries.flatMap((e) => (e.kind === EntryKind.Delete ? [e.target] : []));
          if (deleted.length > 0) this.ctx.waitUntil(this.attachments.deleteForSeqs(deleted).catch((error: unknown) => this.failureOf(error, "unable to delete a message's attachments")));
        },
        announce: (entries) => {
          this.broadcast(entries);
          this.replicas.committed(entries);
        },
        lostRole: () => {
          // Send every client to the new owner (they resume with `since`).
          this.window.reset([]);
          this.sockets.endAll(ErrorCode.Unavailable, "room moved; reconnect");
        },
        armAlarm: async () => {
          if (this.mirrorStore || this.writer.inDoubt || this.hooks.active) await this.alarmClock.arm();
        },
        failureOf: (error, operation) => this.failureOf(error, operation),
        measured: (size, ms, code) => this.metrics.commit(this.key.tenant, this.key.roomId, size, ms, code),
        redact: (seqs) => this.mirror.redact(seqs),
        admit: (entry) => this.restrictions.screen(entry),
      },
      { windowEntries: this.config.windowMessages, bootKeys: [MIRRORED_KEY, ROOM_NAME_KEY, REPLICAS_KEY, WEBHOOKS_KEY], pipeline: this.pipelineOptions() },
    );
  }

  /** A system entry, straight to the writer: the change it records was authorized already. */
  private recordEvent(actor: string, event: SystemEventBody, text: string): Promise<void> {
    const id = crypto.randomUUID();
    return new Promise((resolve) =>
      this.writer.submit({
        id,
        kind: EntryKind.System,
        userId: actor,
        clientMsgId: `system:${id}`,
        text,
        data: { ...event },
        bytes: text.length * 3 + 200,
        deliver: (outcome) => {
          if (!outcome.ok) console.warn(`room ${roomName(this.key)}: a ${event.event} entry was not committed: ${outcome.code}`);
          resolve();
        },
      }),
    );
  }

  private store(): MessageStore {
    this.storeInstance ??= this.createStore(this.config);
    return this.storeInstance;
  }

  private attachmentStore(): AttachmentStore {
    if (!this.config.databaseUrl) throw new StorageError("DATABASE_URL is not set", "failed");
    this.attachmentStoreInstance ??= new AttachmentStore({
      connectionString: this.config.databaseUrl,
      statementTimeoutMs: this.config.statementTimeoutMs,
      idleTimeoutMs: this.config.postgresIdleMs,
    });
    return this.attachmentStoreInstance;
  }

  private deadLetters(): PostgresDeadLetters {
    if (!this.config.databaseUrl) throw new StorageError("DATABASE_URL is not set", "failed");
    this.deadLetterStore ??= new PostgresDeadLetters({
      connectionString: this.config.databaseUrl,
      statementTimeoutMs: this.config.statementTimeoutMs,
      idleTimeoutMs: this.config.postgresIdleMs,
    });
    return this.deadLetterStore;
  }

  private requireMirrorStore(): MirrorStore {
    if (!this.mirrorStore) throw new Error("mirror without a store");
    return this.mirrorStore;
  }

  /**
   * The room as Postgres holds it. In tenants with open rooms, the first socket or send of a
   * user (`creator`) creates a public room with no members (nobody becomes its admin, so a
   * squatter cannot make it private); reads never create rooms.
   */
  private async loadRoom(creator: string | undefined): Promise<RoomRecord> {
    const store = this.store();
    const state = await store.readRoomState(this.key);
    if (state && !state.deletedAt) return state;
    // A deleted room (history kept) is never brought back by first use.
    if (state?.deletedAt || !creator || !this.tenant().autoCreateRooms) throw roomNotFound();
    const init = { visibility: "public" as const, name: this.key.roomId, metadata: {}, createdBy: creator, creatorRole: null };
    const created = (await store.createRoom(this.key, init)) ?? (await store.readRoomState(this.key));
    if (!created || created.deletedAt) throw new StorageError("the room vanished while it was being created", "failed");
    await this.mirrorStore?.setAccess(this.key, "public").catch(() => {});
    return created;
  }

  /** After a delete: nothing of the room stays in memory or storage, and no alarm wakes it. */
  private async forgetRoom(deleted: boolean): Promise<void> {
    if (!deleted) {
      await this.ctx.storage.delete(MIRRORED_KEY);
      return;
    }
    // Events not yet enqueued when a room is deleted are not sent (room.deleted is).
    await this.hooks.stop();
    this.writer.forget();
    this.access.clear();
    this.live.cursors.clear();
    this.window.reset([]);
    await this.alarmClock.cancel();
    await this.ctx.storage.delete([MIRRORED_KEY, IN_DOUBT_KEY, ROOM_NAME_KEY, REPLICAS_KEY, WEBHOOKS_KEY]);
  }

  /**
   * Boots the room and checks that `userId` may do `action`. The decision is taken against the
   * room record as it is after the role lookup's await, not as it was before it (admin.ts).
   * `creator`: this call may create an open room (a socket join or a send), reads may not.
   */
  private async authorize(userId: string, action: Action, creator = false): Promise<{ record: RoomRecord; role: Role | null }> {
    if (userId === SERVER_ACTOR) {
      // The server API (an API key of this tenant, checked by the Worker) acts as an admin of every room.
      await this.writer.ensure();
      return this.decide(action, "admin");
    }
    await this.writer.ensure(creator ? userId : undefined);
    const [role] = await Promise.all([this.access.roleOf(userId), this.restrictions.stateOf(userId)]);
    return this.decide(action, role, userId);
  }

  /** A send's check. Open rooms: the first send of a user with no role joins them, explicitly here. */
  private async authorizeSend(userId: string, asServer = false): Promise<Role | null> {
    if (userId === SERVER_ACTOR) return (await this.authorize(userId, "send")).role;
    if (asServer) {
      // On behalf of a user: no membership needed, their restrictions hold.
      await this.writer.ensure();
      await this.restrictions.stateOf(userId);
      return this.decide("send", "member", userId).role;
    }
    await this.writer.ensure(userId);
    const [loaded] = await Promise.all([this.access.roleOf(userId), this.restrictions.stateOf(userId)]);
    let role = loaded;
    const record = this.writer.record;
    if (record && joinsOnSend(record, role, this.tenant().autoCreateRooms)) role = await this.admin.joinOnSend(userId);
    return this.decide("send", role, userId).role;
  }

  /**
   * The decision, synchronous, after the caller's last await. `userId`: their restrictions (loaded
   * by the caller) are checked here too: a ban refuses everything, a mute sending.
   */
  private decide(action: Action, role: Role | null, userId?: string): { record: RoomRecord; role: Role | null } {
    const record = this.writer.record;
    if (!record || this.admin.deleting) throw roomNotFound();
    if (userId !== undefined) {
      const state = this.restrictions.known(userId);
      const refused = state && verdictOf(state, action === "send" ? "send" : "read", Date.now());
      if (refused) throw refused;
    }
    if (!can(action, record.visibility, role)) throw forbidden(action);
    return { record, role };
  }

  /** The tenant's before-commit hook for a message or an edit of a user (before-commit.ts). */
  private async review(userId: string, request: SendRequestOf, parts: Part[] | undefined): Promise<{ text: string; parts?: Part[] } | Failure> {
    const hook = this.tenant().beforeCommit;
    const kind = request.kind;
    if (!hook || userId === SERVER_ACTOR || (kind !== EntryKind.Message && kind !== EntryKind.Edit)) {
      return parts === undefined ? { text: request.text } : { text: request.text, parts };
    }
    const decision = await reviewMessage(
      hook,
      {
        tenant: this.key.tenant,
        roomId: this.key.roomId,
        userId,
        kind,
        clientMsgId: request.clientMsgId,
        text: request.text,
        ...(parts === undefined ? {} : { parts }),
        ...(request.target === undefined ? {} : { target: request.target }),
        ...(request.replyTo === undefined ? {} : { replyTo: request.replyTo }),
      },
      {
        allowPrivate: this.env.ALLOW_PRIVATE_URLS === "true",
        warn: (what) => console.warn(`room ${roomName(this.key)}: ${what} (failMode ${hook.failMode})`),
      },
    );
    if (!decision.ok) return this.failureOf(decision.error, "unable to send");
    return decision.parts === undefined ? { text: decision.text } : { text: decision.text, parts: decision.parts };
  }

  private moderationStore(): ModerationStore {
    if (!this.config.databaseUrl) throw new StorageError("DATABASE_URL is not set", "failed");
    const store = this.store();
    this.moderationStoreInstance ??= new ModerationStore({
      connectionString: this.config.databaseUrl,
      statementTimeoutMs: this.config.statementTimeoutMs,
      idleTimeoutMs: this.config.postgresIdleMs,
      // The room's own connections (PG_MAX_CONNECTIONS), not one more per active room.
      ...(store instanceof PostgresStore ? { pool: store.sharedPool } : {}),
    });
    return this.moderationStoreInstance;
  }

  private tenant() {
    const tenant = this.config.tenants.get(this.key.tenant);
    if (!tenant) throw new ChatError(ErrorCode.Unauthorized, "unable to serve the room; its tenant is not configured");
    return tenant;
  }

  private broadcast(entries: Entry[]): void {
    this.sockets.broadcast(entries.map((message) => encodeFrame({ type: ServerFrameType.Message, message })));
  }

  /** Messages (kind `message`) in (afterSeq, uptoSeq]: counted in memory when the window covers it, else in Postgres. */
  private async countMessages(afterSeq: number, uptoSeq: number): Promise<number> {
    const held = this.window.range(afterSeq, uptoSeq, this.writer.lastSeq);
    if (held) return held.filter((e) => e.kind === EntryKind.Message && !e.deleted).length;
    return this.store().countMessagesAfter(this.key, afterSeq, uptoSeq);
  }

  /**
   * History for seq in (afterSeq, uptoSeq], in current form: from memory when the window covers
   * it, else Postgres; with `viewer`, their `me` flags on reactions.
   */
  private async readHistory(q: HistoryQuery): Promise<Entry[]> {
    const from = q.from === "newest" ? Math.max(q.afterSeq, q.uptoSeq - q.limit) : q.afterSeq;
    const upto = q.from === "newest" ? q.uptoSeq : Math.min(q.uptoSeq, q.afterSeq + q.limit);
    const held = this.window.range(from, upto, this.writer.lastSeq);
    if (!held) return this.writer.read(q);
    return q.viewer === undefined ? held : this.window.personalize(held, q.viewer);
  }

  private async rpc<T>(operation: string, run: () => Promise<T>): Promise<RoomResult<T>> {
    try {
      return { ok: true, value: await run() };
    } catch (error) {
      return this.failureOf(error, operation);
    }
  }

  private failureOf(error: unknown, operation: string): Failure {
    return failureOf(roomName(this.key), error, operation);
  }
}

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
