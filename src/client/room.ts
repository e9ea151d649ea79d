// One joined room, the SDK's public face. The work is done by parts, each behind a small
// interface so it can be tested on its own: Connection (the socket, reconnects, close codes,
// heartbeat, flow control), Sender (the outbox, acks, exactly-once sends), History (the contiguous
// list, and the REST fetches that fill its holes), and the people features, one file each:
// ReadCursors (read cursor, unread count, receipts), Typing and Presence. This file wires them
// together, owns the join promise, the connection state and the events, and ends them all at once
// when the room goes offline.

import { ErrorCode } from "../protocol/errors.js";
import { type Entry, type Message, ServerFrameType, type SystemEntry } from "../protocol/frames.js";
import { DEFAULT_HISTORY_LIMIT } from "../protocol/limits.js";
import type { BackoffPolicy } from "./backoff.js";
import { type ChangeOptions, type ChangeResult, Changes, type ThreadOptions } from "./changes.js";
import { Connection, type RoomFrame } from "./connection.js";
import { ReadCursors } from "./cursors.js";
import { type AnyEntry, type InboundReadyFrame, isMessage } from "./decode.js";
import { Emitter } from "./emitter.js";
import { ChatClientError, type ChatClientErrorCode } from "./errors.js";
import { History } from "./history.js";
import type { RestApi } from "./http.js";
import type { MessagesPage } from "./decode.js";
import type { PendingSend } from "./outbox.js";
import { Presence, type PresenceChange, type PresenceData } from "./presence.js";
import { Sender } from "./sender.js";
import { isSystem, type TimelineLine } from "./timeline.js";
import type { TokenSource } from "./token.js";
import { Typing } from "./typing.js";
import type { HistoryCursor, WebSocketConstructor } from "./transport.js";
import { type SendPart, PartType } from "../protocol/parts.js";
import { type Attachment, type AttachmentTarget, attachmentUrl, type UploadOptions, uploadAttachment } from "./attachments.js";

/**
 * `connecting` until the first `ready`; `live` while a socket is up and has had its `ready`;
 * `reconnecting` after losing it; `offline` once left, or after a failure that retrying cannot fix
 * (`forbidden`, `not_found`, a token the server keeps refusing).
 */
export type ConnectionState = "connecting" | "live" | "reconnecting" | "offline";

/** The events of a room and their arguments. */
export interface RoomEvents {
  /** A message joined `room.messages`: once per seq, in seq order, never across a hole. */
  message: [message: Message];
  /**
   * A message `room.messages` holds changed: edited, deleted (`message.deleted`), its reactions or
   * its reply count. `change` is the entry that changed it (an edit, delete or reaction, or the
   * reply); fires right after that entry's `entry` event, once per change, in seq order. Changes
   * to messages older than the list are not reported (the list does not hold them).
   */
  update: [message: Message, change: Entry, previous: Message];
  /** A system entry joined `room.timeline` ("alice joined"): membership and room changes, in their place. */
  system: [entry: SystemEntry];
  /**
   * `loadOlder()` put older messages in front of `room.messages` (and `room.timeline`), which no
   * `message` event reports (those come in seq order only): a view that renders the list re-reads it.
   */
  older: [messages: readonly Message[]];
  /**
   * An entry of any kind joined the room's stream, in the same order and with the same guarantees
   * as `message` (which fires right after it for a message). Kinds this SDK does not know (added to
   * the server later) come only here, with their envelope: seq, userId, a `text` summary, createdAt.
   */
  entry: [entry: AnyEntry];
  state: [state: ConnectionState, previous: ConnectionState];
  /** Something went wrong that the app may want to show or log; the room keeps retrying unless it went `offline`. */
  error: [error: ChatClientError];
  /** `room.pending` changed (a send was queued, put on the wire, retried, acknowledged or rejected). */
  pending: [pending: readonly PendingSend[]];
  /** `room.unread` or `room.readSeq` changed (a message of someone else, markRead, another device of yours, a reconnect). */
  unread: [unread: number, readSeq: number];
  /** A user's read cursor moved forward (`room.receipts`): a receipt, or a message of theirs. Yours included. */
  receipt: [userId: string, seq: number];
  /** The set of other users typing changed (`room.typists`). */
  typing: [typists: readonly string[]];
  /** Someone came online, went offline or set their presence data, or a new snapshot came (`room.presence`). */
  presence: [presence: ReadonlyMap<string, PresenceData | undefined>, change: PresenceChange];
}

/** Settings a room gets from its ChatClient. */
export interface RoomConfig {
  roomId: string;
  baseUrl: string;
  WebSocket: WebSocketConstructor;
  tokens: TokenSource;
  rest: RestApi;
  /** What the first socket asks for; later sockets resume with `since` = the last contiguous seq. */
  history: HistoryCursor;
  reconnect: BackoffPolicy;
  heartbeatMs: number;
  ackTimeoutMs: number;
  readyTimeoutMs: number;
  random: () => number;
  /** Called once when the room goes offline for good (the client forgets it). */
  onClosed: (room: Room) => void;
}

/**
 * A joined room. Get one from {@link ChatClient.join}.
 *
 * @example
 * const room = await client.join("lobby", { last: 50 });
 * render(room.messages);
 * const off = room.on("message", () => render(room.messages));
 * room.on("state", (state) => showBanner(state !== "live"));
 * const message = await room.send("hello"); // committed, with its seq
 * await room.loadOlder(50);                 // older history, prepended to room.messages
 * room.on("unread", (n) => setBadge(n));    // room.unread, room.readSeq; room.markRead()
 * room.on("typing", (who) => showTyping(who));
 * room.on("presence", (online) => showOnline([...online.keys()]));
 * room.leave();
 */
export class Room {
  /** The room id this object was joined with. */
  readonly id: string;

  readonly #config: RoomConfig;
  readonly #events = new Emitter<RoomEvents>();
  readonly #history: History;
  readonly #connection: Connection;
  readonly #sender: Sender;
  readonly #changes: Changes;
  readonly #cursors: ReadCursors;
  readonly #typing: Typing;
  readonly #presence: Presence;

  #state: ConnectionState = "connecting";
  #left = false;

  readonly #joined: Promise<Room>;
  #settleJoin: ((error?: ChatClientError) => void) | undefined;

  /** @internal Use {@link ChatClient.join}. */
  constructor(config: RoomConfig) {
    this.id = config.roomId;
    this.#config = config;
    const report = (error: unknown, operation?: string) => this.#report(error, operation);
    const userId = () => config.tokens.claims?.sub;
    this.#history = new History(
      {
        roomId: config.roomId,
        history: config.history,
        rest: config.rest,
        reconnect: config.reconnect,
        random: config.random,
        viewer: userId,
      },
      {
        onEntries: (entries, updates) => {
          // The count first, so a `message` listener reads the unread count that includes its message.
          this.#cursors.onEntries(entries);
          for (const entry of entries) {
            this.#events.emit("entry", entry);
            if (isMessage(entry)) this.#events.emit("message", entry);
            else if (isSystem(entry)) this.#events.emit("system", entry);
            const update = updates.get(entry.seq);
            if (update) this.#events.emit("update", update.message, update.change as Entry, update.previous);
          }
        },
        onChanged: () => this.#changed(),
        report,
      },
    );
    this.#connection = new Connection(
      {
        roomId: config.roomId,
        baseUrl: config.baseUrl,
        WebSocket: config.WebSocket,
        tokens: config.tokens,
        reconnect: config.reconnect,
        random: config.random,
        heartbeatMs: config.heartbeatMs,
        readyTimeoutMs: config.readyTimeoutMs,
      },
      {
        history: () => this.#history.nextCursor(),
        processedSeq: () => this.#history.lastSeq ?? 0,
        onReady: (frame) => this.#onReady(frame),
        onFrame: (frame) => this.#onFrame(frame),
        onSendError: (frame) => this.#sender.onError(frame),
        onLost: () => {
          this.#sender.connectionLost();
          this.#typing.connectionLost();
        },
        onRetrying: () => this.#setState(this.#connection.everReady ? "reconnecting" : "connecting"),
        onFatal: (code, reason, emitError) => this.#shutdown(code, reason, emitError),
        report,
      },
    );
    this.#sender = new Sender(
      {
        roomId: config.roomId,
        reconnect: config.reconnect,
        random: config.random,
        ackTimeoutMs: config.ackTimeoutMs,
        userId,
      },
      this.#connection,
      this.#history,
      {
        pendingChanged: (pending) => this.#events.emit("pending", pending),
        changed: () => this.#changed(),
        report,
      },
    );
    this.#changes = new Changes(config.roomId, this.#sender, this.#history, config.rest);
    this.#cursors = new ReadCursors({ userId }, this.#connection, this.#history, {
      changed: (readSeq, unread) => this.#events.emit("unread", unread, readSeq),
      receipt: (user, seq) => this.#events.emit("receipt", user, seq),
    });
    this.#typing = new Typing(userId, this.#connection, { changed: (typists) => this.#events.emit("typing", typists) });
    this.#presence = new Presence(this.#connection, {
      changed: (presence, change) => this.#events.emit("presence", presence, change),
    });
    this.#joined = new Promise<Room>((resolve, reject) => {
      this.#settleJoin = (error) => {
        this.#settleJoin = undefined;
        if (error) reject(error);
        else resolve(this);
      };
    });
    // join() may be rejected before anyone awaits it (an abort); that must not be an unhandled rejection.
    this.#joined.catch(() => undefined);
  }

  /** @internal Starts connecting; resolves once the first `ready` is applied and the list is complete up to it. */
  start(signal?: AbortSignal): Promise<Room> {
    if (signal?.aborted) {
      this.#shutdown("aborted", "the join was aborted");
    } else {
      signal?.addEventListener(
        "abort",
        () => {
          if (this.#settleJoin) this.#shutdown("aborted", "the join was aborted");
        },
        { once: true },
      );
      this.#connection.start();
    }
    return this.#joined;
  }

  // ---------------------------------------------------------------------------------------------
  // Public API

  /**
   * The room's messages, ordered by seq, contiguous, without duplicates, each in its current form:
   * edits, deletes (a tombstone: `deleted: true`, `text` ""), reactions (with `me` on yours) and
   * reply counts applied. Replies are messages too (with `replyTo`). A new array after each change.
   */
  get messages(): readonly Message[] {
    return this.#history.messages;
  }

  /**
   * What a chat shows as lines: `messages` and the system entries (kind `system`: joins, leaves,
   * member and role changes, room updates) in their place, ordered by seq. A new array after each change.
   *
   * @example
   * for (const line of room.timeline) line.kind === "system" ? renderNotice(line.text) : renderMessage(line);
   */
  get timeline(): readonly TimelineLine[] {
    return this.#history.lines;
  }

  /** Sends not yet acknowledged by the server, oldest first, for the UI to show as "sending…". */
  get pending(): readonly PendingSend[] {
    return this.#sender.pending;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** Whether older messages exist before `messages[0]` (see {@link loadOlder}). */
  get hasOlder(): boolean {
    return this.#history.hasOlder;
  }

  /**
   * Listens to an event; returns the function that stops listening.
   *
   * @example
   * const off = room.on("message", (m) => console.log(`[${m.seq}] ${m.userId}: ${m.text}`));
   * off();
   */
  on<K extends keyof RoomEvents>(event: K, listener: (...args: RoomEvents[K]) => void): () => void {
    return this.#events.on(event, listener);
  }

  /**
   * Sends a message. Resolves with the committed message (with its seq) once the server has acked it
   * and it is in `room.messages`. Until then it is in `room.pending` and survives reconnects: it is
   * resent with the same clientMsgId until acked, so it is committed exactly once, and sends are
   * committed in the order they were made. Rejects with `bad_request`, `too_large` or `forbidden`
   * (never retried), or `left` if the room is left first (a send already on the wire may still
   * have been committed).
   *
   * `mentions` names users to notify (up to 20 user ids, besides any `@userId` in the text): a
   * mentioned member with no socket in the room gets a `notification` webhook (docs/webhooks.md).
   *
   * @example
   * try {
   *   const { seq } = await room.send("hello");
   *   await room.send("lunch?", { mentions: ["bob"] });
   * } catch (e) {
   *   if (e instanceof ChatClientError && e.code === "too_large") alert("That message is too long");
   * }
   */
  send(input: string | { parts: readonly SendPart[] }, options: { clientMsgId?: string; mentions?: readonly string[] } = {}): Promise<Message> {
    this.#typing.sent();
    return this.#sender.send(input, options);
  }

  /**
   * Uploads a file to this room (you must be allowed to send here). Resolves with the stored
   * attachment; send it with `room.send({ parts: [{ type: "attachment", id }] })`, or use
   * {@link sendFile} for both. `onProgress` reports bytes sent (XMLHttpRequest in browsers).
   * Uploads never sent are deleted after 24 hours.
   *
   * @example
   * const a = await room.upload(file, { onProgress: ({ loaded, total }) => (bar.value = loaded / total) });
   * await room.send({ parts: [{ type: "text", text: "the plan" }, { type: "attachment", id: a.id }] });
   */
  upload(file: Blob, options: UploadOptions = {}): Promise<Attachment> {
    return uploadAttachment(this.#attachmentTarget(), file, options);
  }

  /**
   * Uploads a file and sends it as a message (with an optional caption). If the send fails,
   * the upload stays yours for 24 hours: send its id again, or upload again.
   *
   * @example
   * const message = await room.sendFile(file, { text: "holiday", onProgress: showProgress });
   */
  async sendFile(file: Blob, options: UploadOptions & { text?: string; clientMsgId?: string } = {}): Promise<Message> {
    const { text, clientMsgId, ...upload } = options;
    const attachment = await this.upload(file, upload);
    const parts: SendPart[] = [
      ...(text ? [{ type: PartType.Text, text } as const] : []),
      { type: PartType.Attachment, id: attachment.id },
    ];
    return this.send({ parts }, clientMsgId === undefined ? {} : { clientMsgId });
  }

  /** A fresh signed URL for an attachment of this room, for <img src> or a download link (valid a few minutes). */
  attachmentUrl(id: string, signal?: AbortSignal): Promise<Attachment> {
    return attachmentUrl(this.#attachmentTarget(), id, signal);
  }

  #attachmentTarget(): AttachmentTarget {
    return { baseUrl: this.#config.baseUrl, roomId: this.id, tokens: this.#config.tokens };
  }

  // --- message lifecycle (changes.ts) -------------------------------------------------------

  /**
   * Edits your message `seq`. Goes through the outbox like a send (exactly once by clientMsgId,
   * across reconnects, in order with your sends). Resolves once committed and applied to
   * `room.messages` (with the edited message as `message`). Rejects with `forbidden` (not yours),
   * `not_found` (no such message), `conflict` (it was deleted), `bad_request` or `too_large`.
   *
   * @example
   * const { message } = await room.edit(42, "fixed the typo");
   * message?.editedAt; // set
   */
  edit(seq: number, text: string, options: ChangeOptions = {}): Promise<ChangeResult> {
    return this.#changes.edit(seq, text, options);
  }

  /**
   * Deletes message `seq` (yours, or any as a room admin): it stays in `room.messages` as a
   * tombstone (`deleted: true`, no text, no reactions). Rejects with `forbidden`, `not_found` or
   * `conflict` (deleted already).
   *
   * @example
   * await room.delete(42);
   */
  delete(seq: number, options: ChangeOptions = {}): Promise<ChangeResult> {
    return this.#changes.delete(seq, options);
  }

  /**
   * Reacts to message `seq` with `emoji` (one emoji, or a `:shortcode:`). If you had reacted with it
   * already the server answers `conflict` and this still resolves (with `seq` undefined): the state
   * is what you asked for. Rejects with `forbidden` (a viewer), `not_found`, `conflict` (the message
   * was deleted) or `bad_request` (not an emoji, or too many different emoji on the message).
   *
   * @example
   * await room.react(42, "👍");
   */
  react(seq: number, emoji: string, options: ChangeOptions = {}): Promise<ChangeResult> {
    return this.#changes.react(seq, emoji, options);
  }

  /**
   * Takes back your reaction `emoji` on message `seq`. Resolves (with `seq` undefined) if you had
   * not reacted with it; otherwise like {@link react}.
   *
   * @example
   * const mine = message.reactions?.find((r) => r.emoji === "👍")?.me;
   * await (mine ? room.unreact(42, "👍") : room.react(42, "👍"));
   */
  unreact(seq: number, emoji: string, options: ChangeOptions = {}): Promise<ChangeResult> {
    return this.#changes.react(seq, emoji, { ...options, remove: true });
  }

  /**
   * Replies in the thread of message `seq` (a message that is not itself a reply, and not deleted):
   * a send with `replyTo`, resolving with the reply like {@link send}. The parent's `replyCount` and
   * `lastReplySeq` in `room.messages` follow. Rejects like send, plus `not_found` and `conflict`
   * (the parent was deleted) and `bad_request` (the parent is a reply).
   *
   * @example
   * const reply = await room.reply(42, "agreed");
   */
  reply(seq: number, text: string, options: ChangeOptions = {}): Promise<Message> {
    this.#typing.sent();
    return this.#changes.reply(seq, text, options);
  }

  /**
   * One page of the replies to message `seq` over REST (`?thread=`), oldest first, in current form:
   * the newest `limit` (default 50), or those after `after`. Replies the list holds are in
   * `room.messages` too (with `replyTo`), and kept current there; a page is not.
   *
   * @example
   * const { messages } = await room.thread(42, { limit: 100 });
   */
  thread(seq: number, options: ThreadOptions = {}): Promise<MessagesPage> {
    return this.#changes.thread(seq, options);
  }

  // --- read cursor ---------------------------------------------------------------------------

  /**
   * Your read cursor in this room: every entry up to this seq counts as read (0: never read). It
   * only moves forward: {@link markRead}, a receipt from another device of yours, or a message you
   * sent (sending reads everything before it).
   */
  get readSeq(): number {
    return this.#cursors.readSeq;
  }

  /**
   * Messages of others after {@link readSeq}: exact, as the server counts them (other kinds of
   * entries and your own messages never count). From `ready`, then one more for each message of
   * someone else that arrives; recounted from the server on every reconnect. The `unread` event
   * says when it changes.
   *
   * @example
   * room.on("unread", (unread) => (badge.textContent = unread > 0 ? String(unread) : ""));
   */
  get unread(): number {
    return this.#cursors.unread;
  }

  /**
   * Each user's read cursor as far as this client has seen it: from `receipt` frames since the
   * join (there is no snapshot of others' cursors), and from each user's own messages (sending
   * moves the sender's cursor). Yours is in it too. The `receipt` event says when it changes.
   *
   * @example
   * const seenBy = [...room.receipts].filter(([user, seq]) => user !== me && seq >= last.seq).map(([user]) => user);
   */
  get receipts(): ReadonlyMap<string, number> {
    return this.#cursors.receipts;
  }

  /**
   * Marks everything up to `seq` as read (default: the newest entry the list holds). Updates
   * `readSeq` and `unread` at once; the server hears of it in a `read` frame, at most one per
   * 250 ms (calls in between are coalesced into the next frame, with the newest seq), never with
   * a seq lower than one already sent. Offline, the frame waits for the next socket; a cursor the
   * server lost (its memory went before it was written) is sent again after a reconnect. Throws
   * `bad_request` for a seq that is not a non-negative integer or is beyond the newest known seq.
   *
   * @example
   * document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && room.markRead());
   * room.on("message", () => document.visibilityState === "visible" && room.markRead());
   */
  markRead(seq?: number): void {
    this.#cursors.markRead(seq);
  }

  // --- typing --------------------------------------------------------------------------------

  /** Other users typing now (never you). The `typing` event says when it changes. */
  get typists(): readonly string[] {
    return this.#typing.typists;
  }

  /**
   * Says you are typing. Call it on every keystroke: it sends a `typing` frame at most every 2 s,
   * which keeps your indicator alive (the server drops it 5 s after the last one). Sending a
   * message ends it (the server clears it when the message is delivered); so does {@link stopTyping}.
   * Nothing is queued while offline.
   *
   * @example
   * input.addEventListener("input", () => (input.value === "" ? room.stopTyping() : room.typing()));
   */
  typing(): void {
    this.#typing.typing();
  }

  /**
   * Ends your typing indicator now (the input was cleared, or lost focus) rather than when it expires.
   *
   * @example
   * input.addEventListener("blur", () => room.stopTyping());
   */
  stopTyping(): void {
    this.#typing.stopTyping();
  }

  // --- presence ------------------------------------------------------------------------------

  /**
   * Who is online in the room (you included), each with the data they set with
   * {@link setPresence} (undefined if none). From the snapshot in each `ready`, then every
   * change; a new map after each change. The `presence` event says when it changes.
   *
   * @example
   * room.on("presence", (online) => render([...online.keys()]));
   */
  get presence(): ReadonlyMap<string, PresenceData | undefined> {
    return this.#presence.presence;
  }

  /**
   * Sets your presence data in this room (a JSON object of at most 1 KiB), shown to everyone with
   * your presence. Kept and sent again on every reconnect. Throws `too_large` or `bad_request`
   * for data the server would refuse.
   *
   * @example
   * room.setPresence({ status: "away" });
   */
  setPresence(data: PresenceData): void {
    this.#presence.set(data);
  }

  /**
   * Loads up to `limit` (1–1000) messages older than `messages[0]` over REST and puts them in front of
   * `room.messages`. Resolves with the messages added (empty when there is nothing older). Calls are
   * queued, so two quick calls load two consecutive pages.
   *
   * @example
   * if (room.hasOlder) await room.loadOlder(50);
   */
  loadOlder(limit: number = DEFAULT_HISTORY_LIMIT): Promise<Message[]> {
    return this.#history.loadOlder(limit).then((added) => {
      if (added.length > 0) this.#events.emit("older", added);
      return added;
    });
  }

  /**
   * Leaves the room: closes the socket, stops reconnecting and rejects pending sends with `left`.
   * The room's last event is its `state` change to `offline`.
   *
   * @example
   * room.leave();
   */
  leave(): void {
    if (!this.#left) this.#shutdown("left", `room ${this.id} was left`, false);
  }

  // ---------------------------------------------------------------------------------------------
  // Wiring

  #onReady(frame: InboundReadyFrame): void {
    // The server's count is as of `latestSeq`: taken before the list applies the frame's entries,
    // which it already counted, and finished (a lost cursor re-sent) once the list holds them.
    this.#cursors.beforeReady(frame);
    this.#history.applyReady(frame);
    this.#cursors.afterReady();
    this.#presence.onReady(frame.presence);
    this.#setState("live");
    this.#changed();
    // Resend the outbox, oldest first (the send that was on the wire when the last socket died, if any).
    this.#sender.pump();
  }

  #onFrame(frame: RoomFrame): void {
    switch (frame.type) {
      case ServerFrameType.Message:
        this.#history.applyLive(frame.message);
        this.#changed();
        break;
      case ServerFrameType.Ack:
        this.#sender.onAck(frame);
        break;
      case ServerFrameType.Receipt:
        this.#cursors.onReceipt(frame.userId, frame.seq);
        break;
      case ServerFrameType.Typing:
        this.#typing.onFrame(frame.userIds);
        break;
      case ServerFrameType.Presence:
        this.#presence.onFrame(frame);
        break;
    }
  }

  /**
   * After any change to the list: settle sends whose message has arrived, let History fill a hole,
   * and resolve join() once the list is complete up to the first `ready`.
   */
  #changed(): void {
    this.#sender.settleCommitted();
    if (this.#history.settle() && this.#connection.everReady) this.#settleJoin?.();
  }

  #setState(state: ConnectionState): void {
    const previous = this.#state;
    if (state === previous) return;
    this.#state = state;
    this.#events.emit("state", state, previous);
  }

  #report(error: unknown, operation?: string): void {
    const chatError =
      error instanceof ChatClientError
        ? error
        : new ChatClientError(ErrorCode.Internal, `unable to ${operation ?? "continue"}; ${String(error)}`, { cause: error });
    this.#events.emit("error", chatError);
  }

  /**
   * Ends the room for good: join() (if still pending) and every unacknowledged send are rejected with
   * `code`; the error is also emitted when `emitError` (a failure rather than a leave()).
   */
  #shutdown(code: ChatClientErrorCode, reason: string, emitError = true): void {
    if (this.#left) return;
    this.#left = true;
    this.#history.close(code, reason);
    this.#connection.close();
    this.#cursors.close();
    this.#sender.close(code, reason);
    this.#settleJoin?.(new ChatClientError(code, `unable to join room ${this.id}; ${reason}`));
    if (emitError) this.#report(new ChatClientError(code, `unable to stay in room ${this.id}; ${reason}`));
    this.#setState("offline");
    this.#config.onClosed(this);
  }
}
