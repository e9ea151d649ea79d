// An in-memory stand-in for one room of the real server, for the SDK's unit tests: a WebSocket
// class whose sockets the test opens, feeds and closes by hand, and a fetch that answers the REST
// history route from the same committed messages. It follows the protocol (ready from since/last,
// truncation at 1000, dedup by clientMsgId) so the tests exercise the SDK against realistic answers;
// the integration tests against the real Worker live elsewhere. It can also play a newer server
// (entries of kinds the SDK does not know, frame types it has never seen) and an older one
// (`protocol = 1`: no `kind` on entries, no `protocol` in `ready`).
//
// It keeps read cursors like the real room (a `read` frame moves the sender's cursor forward, a
// commit moves the author's) and answers `ready` with `readSeq`, the exact `unread` and a presence
// snapshot (`presence`, set by the test). Receipts, typing and presence deltas are delivered by
// the test, by hand, like every other frame. `loseReads` plays a room evicted before it wrote them.
//
// The message lifecycle (edit, delete, react, replies) is modelled like the room does it: the store
// keeps each message as committed and each change as its own entry; `ready` and REST serve messages
// in their current form, computed with the protocol's applyChange (the function the room and the
// SDK use), with the caller's `me` flags; a delete redacts the text of its target's edits in the
// store. `commitFrame` checks a client's change like the room's planner (not_found, forbidden,
// conflict) and `answer` puts the result on a socket, as ack + entry or as an error frame.

import { ErrorCode, ErrorReason } from "../../protocol/errors.js";
import {
  type AckFrame,
  type ClientFrame,
  type Entry,
  type EntryFrame,
  EntryKind,
  type ErrorFrame,
  type Message,
  type PresenceEntry,
  PROTOCOL_VERSION,
  type SendFrame,
  type SystemEntry,
  type SystemEvent,
} from "../../protocol/frames.js";
import { applyChange, redactEntry } from "../../protocol/lifecycle.js";
import { MAX_READY_MESSAGES } from "../../protocol/limits.js";
import {
  type AnyEntry,
  type InboundFrame,
  type InboundReadyFrame,
  isMessage,
  type Profile,
  type UnknownEntry,
} from "../decode.js";
import type { FetchLike, ResponseLike, WebSocketConstructor, WebSocketLike } from "../transport.js";

/** Any frame the fake server can send: the protocol's, one carrying an entry of any kind, or one of a type from the future. */
export type FakeServerFrame = InboundFrame | { type: string; [field: string]: unknown };

export interface HttpCall {
  method: string;
  url: URL;
  authorization: string | undefined;
  body: string | undefined;
}

type Handler<E> = ((event: E) => void) | null;

export class FakeSocket implements WebSocketLike {
  readyState = 0;
  readonly url: URL;
  /** Frames the client sent, parsed. */
  readonly sent: ClientFrame[] = [];
  /** Set when the client closed the socket. */
  closedByClient: { code: number | undefined; reason: string | undefined } | undefined;

  onopen: Handler<never> = null;
  onmessage: Handler<never> = null;
  onclose: Handler<never> = null;
  onerror: Handler<never> = null;

  constructor(
    url: string,
    private readonly server: FakeServer,
  ) {
    this.url = new URL(url);
  }

  get token(): string | null {
    return this.url.searchParams.get("token");
  }

  /** The `send` frames the client sent on this socket, in order. */
  get sends(): SendFrame[] {
    return this.sent.filter((f): f is SendFrame => f.type === "send");
  }

  /** The frames of one type the client sent on this socket, in order. */
  sentOfType<T extends ClientFrame["type"]>(type: T): Extract<ClientFrame, { type: T }>[] {
    return this.sent.filter((f): f is Extract<ClientFrame, { type: T }> => f.type === type);
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("send on a socket that is not open");
    const frame = JSON.parse(data) as ClientFrame;
    this.sent.push(frame);
    if (frame.type === "read" && !this.server.loseReads) this.server.moveCursor(this.server.userId, frame.seq);
    // Like the real server (and unlike everything else here, which the test drives by hand).
    if (frame.type === "ping" && this.server.answerPings)
      queueMicrotask(() => this.readyState === 1 && this.deliver({ type: "pong" }));
  }

  close(code?: number, reason?: string): void {
    this.readyState = 3;
    this.closedByClient = { code, reason };
  }

  // --- driven by the test -------------------------------------------------------------------

  open(): this {
    this.readyState = 1;
    (this.onopen as Handler<unknown>)?.({});
    return this;
  }

  /** Sends a frame, in the shape of the server's protocol version (see FakeServer.protocol). */
  deliver(frame: FakeServerFrame): this {
    return this.deliverRaw(JSON.stringify(this.server.shape(frame)));
  }

  deliverRaw(data: string): this {
    (this.onmessage as Handler<{ data: unknown }>)?.({ data });
    return this;
  }

  /** Opens the socket and sends the `ready` the real server would for this URL's since/last. */
  ready(options: { maxMessages?: number } = {}): this {
    if (this.readyState === 0) this.open();
    return this.deliver(this.server.readyFor(this.url, options.maxMessages));
  }

  /** The server closes the socket (1006 = the connection dropped). */
  serverClose(code = 1006, reason = ""): this {
    this.readyState = 3;
    (this.onclose as Handler<{ code: number; reason: string }>)?.({ code, reason });
    return this;
  }

  /**
   * Answers a client's entry frame (send, edit, delete, react) as the room would: commits it
   * (deduplicated by clientMsgId) and delivers its entry and the ack, or delivers the error frame.
   */
  answer(frame: EntryFrame, options: { messageFrame?: boolean; ack?: boolean } = {}): Entry | ErrorFrame {
    const result = this.server.commitFrame(this.server.userId, frame);
    if ("error" in result) {
      const error: ErrorFrame = {
        type: "error",
        code: result.error.code,
        message: result.error.message,
        clientMsgId: frame.clientMsgId,
        ...(result.error.reason === undefined ? {} : { reason: result.error.reason }),
      };
      this.deliver(error);
      return error;
    }
    if (result.created && options.messageFrame !== false) this.deliver({ type: "message", message: result.entry });
    if (options.ack !== false) this.deliver(ackOf(result.entry));
    return result.entry;
  }

  /** The entry frames (send, edit, delete, react) the client sent on this socket, in order. */
  get entryFrames(): EntryFrame[] {
    return this.sent.filter((f): f is EntryFrame => f.type === "send" || f.type === "edit" || f.type === "delete" || f.type === "react");
  }

  /** Commits the send like the server would (deduplicated by clientMsgId) and answers ack + message frame. */
  commitAndAck(send: SendFrame, options: { messageFrame?: boolean; ack?: boolean } = {}): Message {
    const { message, created } = this.server.commit(send.text, this.server.userId, send.clientMsgId);
    if (created && options.messageFrame !== false) this.deliver({ type: "message", message });
    if (options.ack !== false) this.deliver(ackOf(message));
    return message;
  }
}

export const ackOf = (message: Message | AnyEntry): AckFrame => ({
  type: "ack",
  clientMsgId: message.clientMsgId,
  seq: message.seq,
  id: message.id,
  createdAt: message.createdAt,
});

const jsonResponse = (status: number, body: unknown, headers: Record<string, string> = {}): ResponseLike => ({
  status,
  headers: { get: (name: string) => headers[name.toLowerCase()] ?? null },
  text: async () => JSON.stringify(body),
});

export class FakeServer {
  readonly sockets: FakeSocket[] = [];
  /** The room's committed entries (messages and any other kind); `store[i].seq === i + 1`. */
  readonly store: AnyEntry[] = [];
  readonly httpCalls: HttpCall[] = [];
  /** Answers the next HTTP calls instead of the store (one entry per call), e.g. a 401. */
  readonly httpOverrides: ResponseLike[] = [];
  /** Answer `ping` with `pong`, as the real server does; turn off to play a dead connection. */
  answerPings = true;
  /** The user the fake server attributes sends to (the user of every socket). */
  userId = "alice";
  /** Read cursors per user, as the room keeps them: forward only. */
  readonly cursors = new Map<string, number>();
  /** Ignore `read` frames, as a room evicted before it wrote them would have. */
  loseReads = false;
  /** The presence snapshot the next `ready` carries (undefined: none, as a server from before presence). */
  presence: PresenceEntry[] | undefined = [];
  /** Profiles `GET /v1/users` answers from (others get an empty profile); `PUT /v1/users/me` writes here. */
  readonly profiles = new Map<string, Profile>();
  /** What `GET /v1/rooms` lists, besides this room (which is listed with the caller's cursor and count). */
  readonly otherRooms: Array<{ roomId: string; latestSeq: number; readSeq: number; unread: number }> = [];
  /**
   * The protocol version the server speaks. 1 plays a server from before entry kinds: entries
   * without `kind`, `ready` without `protocol`, on the socket and over REST alike.
   */
  protocol = PROTOCOL_VERSION;

  constructor(readonly roomId = "r1") {}

  get latest(): FakeSocket {
    const socket = this.sockets.at(-1);
    if (!socket) throw new Error("no socket was opened");
    return socket;
  }

  /** Commits a message from someone (or, with a known clientMsgId, returns the original: dedup). */
  commit(text: string, userId = "bob", clientMsgId = `other-${this.store.length + 1}`): { message: Message; created: boolean } {
    const existing = this.store.find((m): m is Message => isMessage(m) && m.userId === userId && m.clientMsgId === clientMsgId);
    if (existing) return { message: existing, created: false };
    const seq = this.store.length + 1;
    const message: Message = {
      roomId: this.roomId,
      seq,
      id: `id-${seq}`,
      kind: EntryKind.Message,
      userId,
      text,
      clientMsgId,
      createdAt: new Date(Date.UTC(2026, 0, 1) + seq).toISOString(),
    };
    this.store.push(message);
    // Sending moves the sender's cursor to their message (in the commit, so never lost).
    this.moveCursor(userId, seq);
    return { message, created: true };
  }

  /** Room admins (may delete any message). */
  readonly admins = new Set<string>();
  /** Who reacted with what: `${target} ${emoji}` → users. */
  readonly #reactors = new Map<string, Set<string>>();

  /** The entry with this seq, if committed. */
  entryAt(seq: number): AnyEntry | undefined {
    return this.store[seq - 1];
  }

  /**
   * A message in its current form, as `ready` and REST serve it to `viewer`: the committed message
   * with every later change applied in seq order (applyChange, with the viewer's `me` flags).
   */
  currentForm(seq: number, viewer = this.userId): Message | undefined {
    const committed = this.entryAt(seq);
    if (!committed || !isMessage(committed)) return undefined;
    let form: Message = committed;
    for (let i = seq; i < this.store.length; i++) {
      const change = this.store[i];
      if (change && isKnownEntry(change)) form = applyChange(form, change, viewer);
    }
    return form;
  }

  /** An entry as `ready` and REST serve it: a message in its current form, any other kind as stored. */
  served(entry: AnyEntry, viewer = this.userId): AnyEntry {
    return isMessage(entry) ? (this.currentForm(entry.seq, viewer) ?? entry) : entry;
  }

  /** Appends a committed entry; a delete redacts its target's edits in the store, as the room does. */
  append<E extends AnyEntry>(entry: E): E {
    if (entry.seq !== this.store.length + 1) throw new Error(`entry ${entry.seq} does not follow ${this.store.length}`);
    this.store.push(entry);
    if (isKnownEntry(entry) && entry.kind === EntryKind.Delete) {
      for (const seq of entry.redacts) {
        const redacted = this.entryAt(seq);
        if (redacted && redacted.kind === EntryKind.Edit && isKnownEntry(redacted)) this.store[seq - 1] = redactEntry(redacted);
      }
    }
    return entry;
  }

  /**
   * Commits a client's entry frame from `userId` as the room would, or says why not (with the
   * room's codes: not_found, bad_request, forbidden, conflict). A repeated clientMsgId returns the
   * original entry (`created: false`), whatever happened since.
   */
  commitFrame(userId: string, frame: EntryFrame): { entry: Entry; created: boolean } | { error: { code: ErrorCode; message: string; reason?: ErrorReason } } {
    const existing = this.store.find((e) => e.userId === userId && e.clientMsgId === frame.clientMsgId);
    if (existing && isKnownEntry(existing)) return { entry: existing, created: false };
    const seq = this.store.length + 1;
    const envelope = {
      roomId: this.roomId,
      seq,
      id: `id-${seq}`,
      userId,
      clientMsgId: frame.clientMsgId,
      createdAt: new Date(Date.UTC(2026, 0, 1) + seq).toISOString(),
    };
    const refuse = (code: ErrorCode, message: string, reason?: ErrorReason) => ({
      error: reason === undefined ? { code, message } : { code, message, reason },
    });
    const named = frame.type === "send" ? frame.replyTo : frame.target;
    let target: Message | undefined;
    if (named !== undefined) {
      const entry = this.entryAt(named);
      if (!entry) return refuse(ErrorCode.NotFound, `unable to change it; there is no message ${named} in this room`);
      if (!isMessage(entry)) return refuse(ErrorCode.BadRequest, `unable to change it; entry ${named} is a ${entry.kind}, not a message`);
      target = this.currentForm(named, userId);
      if (target?.deleted) return refuse(ErrorCode.Conflict, `unable to change it; message ${named} was deleted`, ErrorReason.Deleted);
    }
    let entry: Entry;
    switch (frame.type) {
      case "send":
        if (target?.replyTo !== undefined) return refuse(ErrorCode.BadRequest, `unable to reply; message ${named} is a reply itself`);
        entry = { ...envelope, kind: EntryKind.Message, text: frame.text, ...(named === undefined ? {} : { replyTo: named }) };
        this.moveCursor(userId, seq);
        break;
      case "edit": {
        if (target?.userId !== userId) return refuse(ErrorCode.Forbidden, "unable to edit; only its author may edit a message");
        entry = { ...envelope, kind: EntryKind.Edit, text: frame.text, target: frame.target, version: (target.version ?? 0) + 1 };
        break;
      }
      case "delete": {
        if (target?.userId !== userId && !this.admins.has(userId)) {
          return refuse(ErrorCode.Forbidden, "unable to delete; only its author or a room admin may delete a message");
        }
        const edits = this.store.filter((e) => e.kind === EntryKind.Edit && isKnownEntry(e) && e.kind === EntryKind.Edit && e.target === frame.target);
        const redacts = [frame.target, ...edits.map((e) => e.seq)].sort((a, b) => a - b);
        for (const key of [...this.#reactors.keys()]) if (key.startsWith(`${frame.target} `)) this.#reactors.delete(key);
        entry = { ...envelope, kind: EntryKind.Delete, text: "", target: frame.target, redacts };
        break;
      }
      case "react": {
        const key = `${frame.target} ${frame.emoji}`;
        const users = this.#reactors.get(key) ?? new Set<string>();
        if (!frame.remove && users.has(userId)) return refuse(ErrorCode.Conflict, `unable to react; you reacted with ${frame.emoji} already`, ErrorReason.AlreadyReacted);
        if (frame.remove && !users.has(userId)) {
          return refuse(ErrorCode.Conflict, `unable to remove the reaction; you did not react with ${frame.emoji}`, ErrorReason.NotReacted);
        }
        if (frame.remove) users.delete(userId);
        else users.add(userId);
        this.#reactors.set(key, users);
        entry = {
          ...envelope,
          kind: EntryKind.Reaction,
          text: frame.emoji,
          target: frame.target,
          emoji: frame.emoji,
          count: users.size,
          ...(frame.remove ? { remove: true as const } : {}),
        };
        break;
      }
    }
    return { entry: this.append(entry), created: true };
  }

  /** Commits a system entry (a join, a role change…), as the room does for membership and room changes. */
  commitSystem(event: SystemEvent, userId: string, subject?: string): SystemEntry {
    const seq = this.store.length + 1;
    return this.append({
      roomId: this.roomId,
      seq,
      id: `id-${seq}`,
      kind: EntryKind.System,
      userId,
      text: `${userId} ${event} ${subject ?? ""}`.trim(),
      clientMsgId: `system-${seq}`,
      createdAt: new Date(Date.UTC(2026, 0, 1) + seq).toISOString(),
      event,
      ...(subject === undefined ? {} : { subject }),
    });
  }

  /** Moves a user's read cursor forward (never back), as a `read` frame or a send does. */
  moveCursor(userId: string, seq: number): void {
    if (seq > (this.cursors.get(userId) ?? 0)) this.cursors.set(userId, seq);
  }

  /** Messages of others after the user's cursor: what the real room counts. */
  unreadFor(userId: string): number {
    const readSeq = this.cursors.get(userId) ?? 0;
    return this.store.filter((e) => e.seq > readSeq && isMessage(e) && e.userId !== userId).length;
  }

  /** Commits an entry of a kind the SDK does not know (a newer server's: a poll, a reaction…); it takes a seq like any other. */
  commitEntry(kind: string, text = "", userId = "system"): UnknownEntry {
    const seq = this.store.length + 1;
    const entry: UnknownEntry = {
      roomId: this.roomId,
      seq,
      id: `id-${seq}`,
      kind,
      userId,
      text,
      clientMsgId: `${kind}-${seq}`,
      createdAt: new Date(Date.UTC(2026, 0, 1) + seq).toISOString(),
    };
    this.store.push(entry);
    return entry;
  }

  /** Commits `count` messages from others. */
  commitMany(count: number): Message[] {
    return Array.from({ length: count }, (_, i) => this.commit(`bulk ${i}`).message);
  }

  readyFor(url: URL, maxMessages = MAX_READY_MESSAGES): InboundReadyFrame {
    const since = url.searchParams.get("since");
    const last = Number(url.searchParams.get("last") ?? 50);
    const wanted = since === null ? this.store.slice(-last) : this.store.filter((m) => m.seq > Number(since));
    const messages = wanted.slice(-maxMessages).map((e) => this.served(e));
    return {
      type: "ready",
      roomId: this.roomId,
      messages,
      latestSeq: this.store.length,
      // As the server's buildReady: messages that were owed but did not fit, for since= and last= alike.
      truncated: messages.length < wanted.length,
      protocol: PROTOCOL_VERSION,
      readSeq: this.cursors.get(this.userId) ?? 0,
      unread: this.unreadFor(this.userId),
      ...(this.presence === undefined ? {} : { presence: this.presence }),
    };
  }

  /** A frame as this server's version puts it on the wire: version 1 has no `kind` and no `protocol`. */
  shape(frame: FakeServerFrame): unknown {
    if (this.protocol !== 1) return frame;
    if (frame.type === "ready" && "messages" in frame && Array.isArray(frame.messages)) {
      const { protocol: _, readSeq: _r, unread: _u, presence: _p, ...rest } = frame as InboundReadyFrame;
      return { ...rest, messages: frame.messages.map(withoutKind) };
    }
    if (frame.type === "message" && "message" in frame) return { ...frame, message: withoutKind(frame.message) };
    return frame;
  }

  readonly WebSocket: WebSocketConstructor = ((server: FakeServer) =>
    class extends FakeSocket {
      constructor(url: string) {
        super(url, server);
        server.sockets.push(this);
      }
    })(this);

  readonly fetch: FetchLike = async (url, init) => {
    const parsed = new URL(url);
    this.httpCalls.push({ method: init.method, url: parsed, authorization: init.headers.authorization, body: init.body });
    const override = this.httpOverrides.shift();
    if (override) return override;
    const people = this.#peopleRoutes(parsed, init);
    if (people) return people;
    const match = /^\/v1\/rooms\/([^/]+)\/messages$/.exec(parsed.pathname);
    if (!match || init.method !== "GET") return jsonResponse(404, { error: { code: "not_found", message: "no such route" } });
    const after = parsed.searchParams.get("after");
    const limit = Number(parsed.searchParams.get("limit") ?? 50);
    const thread = parsed.searchParams.get("thread");
    // A thread: the replies of one message only (a sparse subset of the stream).
    const listed = thread === null ? this.store : this.store.filter((m) => isMessage(m) && m.replyTo === Number(thread));
    const messages = (
      after === null ? listed.slice(-limit) : listed.filter((m) => m.seq > Number(after)).slice(0, limit)
    ).map((e) => this.served(e));
    return jsonResponse(200, {
      messages: this.protocol === 1 ? messages.map(withoutKind) : messages,
      latestSeq: this.store.length,
    });
  };

  /** `/v1/users…` and `GET /v1/rooms`, as the real API answers them. */
  #peopleRoutes(url: URL, init: { method: string; body?: string }): ResponseLike | undefined {
    const emptyProfile = (userId: string): Profile => ({ userId, name: null, avatarUrl: null, data: {}, updatedAt: null });
    if (url.pathname === "/v1/users" && init.method === "GET") {
      const ids = [...new Set((url.searchParams.get("ids") ?? "").split(",").filter((id) => id !== ""))];
      if (ids.length === 0 || ids.length > 100) return errorResponse(400, "bad_request", "ids must list 1–100 user ids");
      return jsonResponse(200, { profiles: ids.map((id) => this.profiles.get(id) ?? emptyProfile(id)) });
    }
    if (url.pathname === "/v1/users/me" && init.method === "PUT") {
      const patch = JSON.parse(init.body ?? "{}") as Partial<Profile>;
      const profile: Profile = {
        ...(this.profiles.get(this.userId) ?? emptyProfile(this.userId)),
        ...patch,
        userId: this.userId,
        updatedAt: new Date().toISOString(),
      };
      this.profiles.set(this.userId, profile);
      return jsonResponse(200, { profile });
    }
    if (url.pathname === "/v1/rooms" && init.method === "GET") {
      const mine = {
        roomId: this.roomId,
        latestSeq: this.store.length,
        readSeq: this.cursors.get(this.userId) ?? 0,
        unread: this.unreadFor(this.userId),
      };
      return jsonResponse(200, {
        rooms: [mine, ...this.otherRooms].map((r) => ({ ...r, name: r.roomId, visibility: "public", role: "member" })),
      });
    }
    const join = /^\/v1\/rooms\/([^/]+)\/join$/.exec(url.pathname);
    if (join && init.method === "POST") {
      return jsonResponse(200, { member: { userId: this.userId, role: "member", joinedAt: "2026-01-01T00:00:00.000Z" } });
    }
    return undefined;
  }

  /** The `after`/`limit` of every history request, for asserting how holes were filled. */
  get historyRequests(): { after: number | null; limit: number | null }[] {
    return this.httpCalls
      .filter((c) => c.method === "GET" && c.url.pathname.endsWith("/messages"))
      .map((c) => ({
        after: c.url.searchParams.has("after") ? Number(c.url.searchParams.get("after")) : null,
        limit: c.url.searchParams.has("limit") ? Number(c.url.searchParams.get("limit")) : null,
      }));
  }
}

const KNOWN_KINDS: ReadonlySet<string> = new Set(Object.values(EntryKind));
const isKnownEntry = (entry: AnyEntry): entry is Entry => KNOWN_KINDS.has(entry.kind);

/** An entry as a version-1 server sent it. */
const withoutKind = (entry: unknown): unknown => {
  if (typeof entry !== "object" || entry === null) return entry;
  const { kind: _, ...rest } = entry as Record<string, unknown>;
  return rest;
};

export const errorResponse = (status: number, code: string, message: string, headers: Record<string, string> = {}) =>
  jsonResponse(status, { error: { code, message } }, headers);
