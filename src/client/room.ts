// One joined room: a socket that is kept alive (reconnect with backoff, resume from the last
// contiguous seq), a Timeline that only ever grows contiguously, and an Outbox that delivers each
// send exactly once, in order. The pure parts decide; this file wires them to sockets and timers.
//
// Every socket event first checks that it comes from the current socket: a replaced socket's late
// `close` or `message` must not touch the state of its successor.

import { decodeSendRequest, encodeFrame, utf8Length } from "../protocol/codec.js";
import { closeCodeOf, ErrorCode } from "../protocol/errors.js";
import {
  type AckFrame,
  ClientFrameType,
  type ErrorFrame,
  type Message,
  type ReadyFrame,
  ServerFrameType,
} from "../protocol/frames.js";
import { DEFAULT_HISTORY_LIMIT, MAX_FRAME_BYTES, MAX_HISTORY_LIMIT } from "../protocol/limits.js";
import { Backoff, type BackoffPolicy } from "./backoff.js";
import { decodeServerFrame } from "./decode.js";
import { Emitter } from "./emitter.js";
import { ChatClientError, type ChatClientErrorCode } from "./errors.js";
import type { RestApi } from "./http.js";
import { newClientMsgId, Outbox, type PendingSend } from "./outbox.js";
import { Timeline } from "./timeline.js";
import type { TokenSource } from "./token.js";
import { type HistoryCursor, roomSocketUrl, WS_OPEN, type WebSocketConstructor, type WebSocketLike } from "./transport.js";

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
  state: [state: ConnectionState, previous: ConnectionState];
  /** Something went wrong that the app may want to show or log; the room keeps retrying unless it went `offline`. */
  error: [error: ChatClientError];
  /** `room.pending` changed (a send was queued, put on the wire, retried, acknowledged or rejected). */
  pending: [pending: readonly PendingSend[]];
}

/** Close codes after which reconnecting cannot help (see closeCodeOf in src/protocol/errors.ts). */
const FATAL_CLOSE_CODES: Readonly<Record<number, ErrorCode>> = {
  4400: ErrorCode.BadRequest,
  4403: ErrorCode.Forbidden,
  4404: ErrorCode.NotFound,
};
const UNAUTHORIZED_CLOSE = 4401;
/** The error code behind an application close code (4429 → rate_limited, 4503 → unavailable, …). */
const CODE_OF_CLOSE: Readonly<Record<number, ErrorCode>> = Object.fromEntries(
  Object.entries(closeCodeOf).map(([code, close]) => [close, code as ErrorCode]),
);
/** A server that refuses this many fresh tokens in a row will not accept the next one either. */
const MAX_UNAUTHORIZED_CLOSES = 3;
/** Sockets that die before `ready` this many times in a row get a fresh token (a browser cannot see an HTTP 401 on the upgrade). */
const EARLY_FAILURES_BEFORE_NEW_TOKEN = 2;
/** An ack normally arrives a moment before or after its `message` frame; only fill over REST if the frame is this late. */
const ACK_GRACE_MS = 1_000;
/** A socket that delivered `ready` and stayed up this long counts as a success for the reconnect backoff. */
const STABLE_CONNECTION_MS = 5_000;
/** Our own close code when we drop a socket that stopped answering. */
const CLOSE_UNRESPONSIVE = 4000;

type Timer = ReturnType<typeof setTimeout>;

/** clearTimeout for a timer that may not be set (Workers' typings refuse `undefined`). */
const clearTimer = (timer: Timer | undefined): void => {
  if (timer !== undefined) clearTimeout(timer);
};

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

interface SendWaiter {
  text: string;
  resolve: (message: Message) => void;
  reject: (error: ChatClientError) => void;
}

interface CommitWaiter {
  ack: AckFrame;
  waiter: SendWaiter;
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
 * room.leave();
 */
export class Room {
  /** The room id this object was joined with. */
  readonly id: string;

  readonly #config: RoomConfig;
  readonly #timeline: Timeline;
  readonly #outbox: Outbox;
  readonly #events = new Emitter<RoomEvents>();
  readonly #reconnectBackoff: Backoff;
  readonly #fillBackoff: Backoff;

  #state: ConnectionState = "connecting";
  #pending: readonly PendingSend[] = [];
  #left = false;
  /** Why the room went offline (for sends attempted afterwards). */
  #ended: { code: ChatClientErrorCode; reason: string } | undefined;
  #everReady = false;

  /** The current socket; events from any other socket are ignored. */
  #socket: WebSocketLike | undefined;
  #socketToken: string | undefined;
  /** Whether the current socket has delivered its `ready`. */
  #socketReady = false;
  /** Bumped on every connect attempt, so an attempt that was waiting for a token can tell it is stale. */
  #generation = 0;
  #awaitingPong = false;
  #lastFrameAt = 0;
  #readyAt = 0;
  #unauthorizedCloses = 0;
  #earlyFailures = 0;
  /**
   * The last `error` frame without a clientMsgId on the current socket. A join the server cannot
   * serve is refused with such a frame followed by a close code from the same table (4503, 4400…):
   * the close is then explained by the frame, already reported, and not reported a second time.
   */
  #socketError: { code: ErrorCode; message: string; retryAfterMs?: number } | undefined;

  readonly #sends = new Map<string, SendWaiter>();
  /** Acked sends whose message is not in the timeline yet (its `message` frame is on its way). */
  readonly #committing = new Map<number, CommitWaiter[]>();

  #filling = false;
  /** The first `ready` of a `last=` join was truncated and the older rest is being fetched. */
  #backfilling = false;
  #olderQueue: Promise<unknown> = Promise.resolve();

  #reconnectTimer: Timer | undefined;
  #readyTimer: Timer | undefined;
  #heartbeatTimer: Timer | undefined;
  #ackTimer: Timer | undefined;
  #sendTimer: Timer | undefined;
  #fillTimer: Timer | undefined;
  readonly #sleeps = new Set<() => void>();

  readonly #joined: Promise<Room>;
  #settleJoin: ((error?: ChatClientError) => void) | undefined;

  /** @internal Use {@link ChatClient.join}. */
  constructor(config: RoomConfig) {
    this.id = config.roomId;
    this.#config = config;
    this.#timeline = new Timeline("since" in config.history ? config.history.since : undefined);
    this.#outbox = new Outbox(config.reconnect, config.random);
    this.#reconnectBackoff = new Backoff(config.reconnect, config.random);
    this.#fillBackoff = new Backoff(config.reconnect, config.random);
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
      void this.#connect();
    }
    return this.#joined;
  }

  // ---------------------------------------------------------------------------------------------
  // Public API

  /** The room's messages, ordered by seq, contiguous, without duplicates. A new array after each change. */
  get messages(): readonly Message[] {
    return this.#timeline.messages;
  }

  /** Sends not yet acknowledged by the server, oldest first, for the UI to show as "sending…". */
  get pending(): readonly PendingSend[] {
    return this.#pending;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** Whether older messages exist before `messages[0]` (see {@link loadOlder}). */
  get hasOlder(): boolean {
    return (this.#timeline.firstSeq ?? 1) > 1;
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
   * @example
   * try {
   *   const { seq } = await room.send("hello");
   * } catch (e) {
   *   if (e instanceof ChatClientError && e.code === "too_large") alert("That message is too long");
   * }
   */
  send(text: string, options: { clientMsgId?: string } = {}): Promise<Message> {
    const clientMsgId = options.clientMsgId ?? newClientMsgId();
    if (this.#ended) {
      return Promise.reject(
        new ChatClientError(this.#ended.code, `unable to send the message; ${this.#ended.reason}`, { clientMsgId }),
      );
    }
    // The server would refuse these; say so now, with the same codes, instead of after a round trip.
    const checked = decodeSendRequest({ clientMsgId, text });
    if (!checked.ok) {
      return Promise.reject(
        new ChatClientError(checked.error.code, `unable to send the message; ${checked.error.message}`, { clientMsgId }),
      );
    }
    // Text of at most 4000 characters can still make a frame over 16 KiB once JSON escapes it
    // (a control character becomes six bytes); the server would close the socket for it.
    if (utf8Length(encodeFrame({ type: ClientFrameType.Send, clientMsgId, text })) > MAX_FRAME_BYTES) {
      return Promise.reject(
        new ChatClientError(ErrorCode.TooLarge, `unable to send the message; it is over ${MAX_FRAME_BYTES} bytes as a frame`, {
          clientMsgId,
        }),
      );
    }
    if (this.#sends.has(clientMsgId)) {
      return Promise.reject(
        new ChatClientError(ErrorCode.BadRequest, "unable to send the message; that clientMsgId is already pending", {
          clientMsgId,
        }),
      );
    }
    return new Promise<Message>((resolve, reject) => {
      this.#sends.set(clientMsgId, { text, resolve, reject });
      this.#outbox.enqueue(clientMsgId, text);
      this.#pendingChanged();
      this.#pump();
    });
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
    const run = this.#olderQueue.then(() => this.#loadOlderNow(limit));
    this.#olderQueue = run.catch(() => undefined);
    return run;
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
  // Connecting

  async #connect(): Promise<void> {
    const generation = ++this.#generation;
    this.#reconnectTimer = undefined;
    let token: string;
    try {
      token = await this.#config.tokens.get();
    } catch (error) {
      if (this.#left || generation !== this.#generation) return;
      // Before the first `ready` the app has no room to listen to yet: fail join() so it can tell
      // the user. Later, a provider that fails (a flaky backend) is retried like a lost connection.
      if (!this.#everReady) {
        const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
        this.#shutdown(
          ErrorCode.Unauthorized,
          `tokenProvider failed (${cause instanceof Error ? cause.message : String(cause)})`,
          false,
        );
        return;
      }
      this.#report(error, "get a token");
      this.#scheduleReconnect();
      return;
    }
    if (this.#left || generation !== this.#generation) return;

    const cursor = this.#timeline.cursor;
    const history: HistoryCursor = cursor === undefined ? this.#config.history : { since: cursor };
    let socket: WebSocketLike;
    try {
      socket = new this.#config.WebSocket(roomSocketUrl(this.#config.baseUrl, this.id, token, history).href);
    } catch (cause) {
      this.#report(
        new ChatClientError("network", `unable to connect to room ${this.id}; the WebSocket could not be created`, { cause }),
      );
      this.#scheduleReconnect();
      return;
    }
    this.#socket = socket;
    this.#socketToken = token;
    this.#socketReady = false;
    this.#socketError = undefined;
    this.#awaitingPong = false;
    this.#lastFrameAt = Date.now();
    socket.onopen = () => {
      if (this.#socket === socket) this.#scheduleHeartbeat();
    };
    socket.onmessage = (event: { data: unknown }) => {
      if (this.#socket === socket) this.#onFrame(event.data);
    };
    socket.onclose = (event: { code: number; reason: string }) => {
      if (this.#socket === socket) this.#socketGone(event.code, event.reason);
    };
    // An `error` event is always followed by `close`, which is where it is handled.
    socket.onerror = () => undefined;
    // A socket that opens but never says `ready` (or never opens) is as good as closed.
    this.#readyTimer = setTimeout(() => {
      if (this.#socket === socket) this.#dropSocket("no ready frame in time");
    }, this.#config.readyTimeoutMs);
  }

  /** Reconnects after the next backoff delay, or after `atLeastMs` if that is longer (a `rate_limited` hint). */
  #scheduleReconnect(atLeastMs = 0): void {
    if (this.#left || this.#reconnectTimer !== undefined) return;
    this.#reconnectTimer = setTimeout(() => void this.#connect(), Math.max(atLeastMs, this.#reconnectBackoff.next()));
  }

  /**
   * Keepalive: a ping when the socket has been quiet for `heartbeatMs`; no frame at all for another
   * `heartbeatMs` after it means the connection is dead (a laptop that slept, a NAT that forgot us),
   * which TCP alone may not notice for minutes.
   */
  #scheduleHeartbeat(delayMs: number = this.#config.heartbeatMs): void {
    clearTimer(this.#heartbeatTimer);
    this.#heartbeatTimer = setTimeout(() => {
      if (!this.#socket) return;
      if (this.#awaitingPong) {
        this.#dropSocket("no answer to ping");
        return;
      }
      const quietFor = Date.now() - this.#lastFrameAt;
      if (quietFor < this.#config.heartbeatMs) {
        this.#scheduleHeartbeat(this.#config.heartbeatMs - quietFor);
        return;
      }
      this.#awaitingPong = true;
      this.#write(encodeFrame({ type: ClientFrameType.Ping }));
      this.#scheduleHeartbeat();
    }, delayMs);
  }

  /** We give up on the current socket ourselves (it stopped answering): handled like a close. */
  #dropSocket(reason: string): void {
    this.#socketGone(CLOSE_UNRESPONSIVE, reason);
  }

  #socketGone(code: number, reason: string): void {
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      // A half-open socket may take a long time to report its close; we do not wait for it.
      try {
        if (socket.readyState <= WS_OPEN)
          socket.close(code === CLOSE_UNRESPONSIVE ? CLOSE_UNRESPONSIVE : 1000, reason.slice(0, 120));
      } catch {
        // closing an already-failed socket can throw in some implementations; it is gone either way
      }
    }
    const wasReady = this.#socketReady;
    this.#socketReady = false;
    // Only a connection that stayed up a while resets the backoff: a server that accepts and then
    // drops every socket at once must still see reconnects slow down, not a loop at full speed.
    if (wasReady && Date.now() - this.#readyAt >= STABLE_CONNECTION_MS) this.#reconnectBackoff.reset();
    this.#clearSocketTimers();
    // The send on the wire may or may not have been committed: it is resent first on the next socket.
    this.#outbox.connectionLost();
    this.#pendingChanged();
    if (this.#left) return;

    // An error frame right before this close says why; it has been reported already.
    const explained =
      this.#socketError !== undefined && CODE_OF_CLOSE[code] === this.#socketError.code ? this.#socketError : undefined;
    this.#socketError = undefined;
    const detail = explained
      ? `${explained.message} (close ${code})`
      : `the server closed the connection (${code}${reason ? `: ${reason}` : ""})`;
    const fatal = FATAL_CLOSE_CODES[code];
    if (fatal) {
      // 4400 (e.g. resuming from a seq the room does not have), 4403, 4404: retrying the same
      // request cannot succeed, so the room goes offline and the app decides (rejoin with `last`).
      this.#shutdown(fatal, detail, !explained);
      return;
    }
    if (code === UNAUTHORIZED_CLOSE) {
      if (this.#socketToken !== undefined) this.#config.tokens.invalidate(this.#socketToken);
      if (++this.#unauthorizedCloses >= MAX_UNAUTHORIZED_CLOSES) {
        this.#shutdown(ErrorCode.Unauthorized, `${detail} ${MAX_UNAUTHORIZED_CLOSES} times in a row`);
        return;
      }
      this.#report(new ChatClientError(ErrorCode.Unauthorized, `unable to stay connected; ${detail}, retrying with a new token`));
    } else if (!wasReady && code < 4000 && ++this.#earlyFailures >= EARLY_FAILURES_BEFORE_NEW_TOKEN) {
      // Only an unexplained close (1006) counts: an upgrade refused with HTTP 401 looks exactly
      // like that in a browser. A 4xxx close says what went wrong, and it was not the token.
      if (this.#socketToken !== undefined) this.#config.tokens.invalidate(this.#socketToken);
    }
    if (code >= 4000 && code !== UNAUTHORIZED_CLOSE && code !== CLOSE_UNRESPONSIVE && !explained) {
      this.#report(
        new ChatClientError(CODE_OF_CLOSE[code] ?? ErrorCode.Unavailable, `unable to stay connected; ${detail}, reconnecting`),
      );
    }
    // 4503 (storage down, the room moving), 4500, 4429, 1006…: try again, later each time.
    this.#setState(this.#everReady ? "reconnecting" : "connecting");
    this.#scheduleReconnect(code === closeCodeOf.rate_limited ? (explained?.retryAfterMs ?? 0) : 0);
  }

  #clearSocketTimers(): void {
    clearTimer(this.#readyTimer);
    clearTimer(this.#heartbeatTimer);
    clearTimer(this.#ackTimer);
    clearTimer(this.#sendTimer);
    this.#readyTimer = this.#heartbeatTimer = this.#ackTimer = this.#sendTimer = undefined;
  }

  #write(data: string): boolean {
    const socket = this.#socket;
    if (!socket || socket.readyState !== WS_OPEN) return false;
    try {
      socket.send(data);
      return true;
    } catch {
      this.#dropSocket("send failed");
      return false;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Frames

  #onFrame(data: unknown): void {
    // Any frame proves the socket is alive.
    this.#awaitingPong = false;
    this.#lastFrameAt = Date.now();
    const frame = decodeServerFrame(data);
    if (!frame) {
      this.#report(new ChatClientError("protocol", "unable to read a frame from the server; ignored it"));
      return;
    }
    // Only an error frame that is the last thing before the close explains it.
    if (frame.type !== ServerFrameType.Error) this.#socketError = undefined;
    switch (frame.type) {
      case ServerFrameType.Ready:
        this.#onReady(frame);
        break;
      case ServerFrameType.Message:
        this.#emitMessages(this.#timeline.applyMessage(frame.message));
        this.#timelineChanged();
        break;
      case ServerFrameType.Ack:
        this.#onAck(frame);
        break;
      case ServerFrameType.Error:
        this.#onErrorFrame(frame);
        break;
      case ServerFrameType.Pong:
        break;
    }
  }

  #onReady(frame: ReadyFrame): void {
    if (this.#socketReady) {
      this.#report(new ChatClientError("protocol", "unable to apply a second ready frame on one socket; ignored it"));
      return;
    }
    const cursor = this.#timeline.cursor;
    if (cursor !== undefined && frame.latestSeq < cursor) {
      this.#report(
        new ChatClientError(
          "protocol",
          `unable to resume room ${this.id}; the server's latest seq ${frame.latestSeq} is below ours (${cursor})`,
        ),
      );
    }
    this.#socketReady = true;
    clearTimer(this.#readyTimer);
    this.#readyTimer = undefined;
    this.#readyAt = Date.now();
    this.#earlyFailures = 0;
    this.#unauthorizedCloses = 0;
    const firstReadyOfLastJoin = cursor === undefined && "last" in this.#config.history;
    this.#everReady = true;
    // A truncated ready leaves a hole: its messages are held and emitted once REST has filled it.
    this.#emitMessages(this.#timeline.applyReady(frame));
    if (firstReadyOfLastJoin && frame.truncated && "last" in this.#config.history) {
      // `last=` asked for more than fit in the frame (MAX_READY_BYTES): the rest is older than the
      // list's start, so it is not a hole, but join() promised `last` messages. Fetch them first.
      const missing = this.#config.history.last - frame.messages.length;
      this.#backfilling = true;
      void this.loadOlder(Math.max(1, Math.min(MAX_HISTORY_LIMIT, missing)))
        .catch((error: unknown) => this.#report(error, "load the rest of the requested history"))
        .finally(() => {
          this.#backfilling = false;
          if (!this.#left) this.#timelineChanged();
        });
    }
    this.#setState("live");
    this.#timelineChanged();
    // Resend the outbox, oldest first (the send that was on the wire when the last socket died, if any).
    this.#pump();
  }

  #onAck(frame: AckFrame): void {
    const entry = this.#outbox.ack(frame.clientMsgId);
    const waiter = this.#sends.get(frame.clientMsgId);
    // A repeated ack (or one for a send this room does not know) settles nothing.
    if (!entry || !waiter) return;
    this.#sends.delete(frame.clientMsgId);
    clearTimer(this.#ackTimer);
    this.#ackTimer = undefined;
    this.#pendingChanged();
    this.#timeline.noteLatest(frame.seq);
    const committed = this.#timeline.get(frame.seq);
    const firstSeq = this.#timeline.firstSeq ?? 1;
    if (committed) waiter.resolve(committed);
    else if (frame.seq < firstSeq) waiter.resolve(this.#messageFromAck(frame, waiter.text));
    else {
      const list = this.#committing.get(frame.seq) ?? [];
      list.push({ ack: frame, waiter });
      this.#committing.set(frame.seq, list);
    }
    this.#timelineChanged();
    this.#pump();
  }

  #onErrorFrame(frame: ErrorFrame): void {
    const clientMsgId = frame.clientMsgId;
    const waiter = clientMsgId === undefined ? undefined : this.#sends.get(clientMsgId);
    if (clientMsgId !== undefined && waiter) {
      const wasInFlight = this.#outbox.inFlight()?.clientMsgId === clientMsgId;
      const outcome = this.#outbox.fail(
        clientMsgId,
        {
          code: frame.code,
          message: frame.message,
          ...(frame.retryAfterMs === undefined ? {} : { retryAfterMs: frame.retryAfterMs }),
        },
        Date.now(),
      );
      if (wasInFlight) {
        clearTimer(this.#ackTimer);
        this.#ackTimer = undefined;
      }
      if (outcome.kind === "rejected") {
        this.#sends.delete(clientMsgId);
        waiter.reject(
          new ChatClientError(frame.code, `unable to send the message; ${frame.message}`, {
            clientMsgId,
            ...(frame.retryAfterMs === undefined ? {} : { retryAfterMs: frame.retryAfterMs }),
          }),
        );
      }
      this.#pendingChanged();
      if (frame.code === ErrorCode.Unauthorized) this.#socketGone(UNAUTHORIZED_CLOSE, frame.message);
      else this.#pump();
      return;
    }
    // The server says "unable to <operation>; <reason>" already: its message is passed on as is.
    const retryAfter = frame.retryAfterMs === undefined ? {} : { retryAfterMs: frame.retryAfterMs };
    if (frame.code === ErrorCode.Unauthorized) {
      // The server closes the socket with 4401 after this; we do not wait for the close to arrive
      // (the close handling reports it).
      this.#socketGone(UNAUTHORIZED_CLOSE, frame.message);
      return;
    }
    this.#socketError = { code: frame.code, message: frame.message, ...retryAfter };
    this.#report(new ChatClientError(frame.code, frame.message, retryAfter));
  }

  // ---------------------------------------------------------------------------------------------
  // Sending

  /** Puts the head of the outbox on the wire if the socket is ready and nothing else is in flight. */
  #pump(): void {
    clearTimer(this.#sendTimer);
    this.#sendTimer = undefined;
    if (this.#left || !this.#socketReady || this.#socket?.readyState !== WS_OPEN) return;
    const now = Date.now();
    const next = this.#outbox.next(now);
    if (next) {
      this.#pendingChanged();
      if (!this.#write(encodeFrame({ type: ClientFrameType.Send, clientMsgId: next.clientMsgId, text: next.text }))) return;
      clearTimer(this.#ackTimer);
      // The server answers every send with an ack or an error; silence means the socket or the room is stuck.
      this.#ackTimer = setTimeout(() => {
        this.#report(new ChatClientError(ErrorCode.Unavailable, "unable to get an ack in time; reconnecting to resend"));
        this.#dropSocket("no ack in time");
      }, this.#config.ackTimeoutMs);
      return;
    }
    const wakeAt = this.#outbox.wakeAt();
    if (wakeAt !== undefined) this.#sendTimer = setTimeout(() => this.#pump(), Math.max(0, wakeAt - now));
  }

  /** A committed message rebuilt from its ack, for the rare case where it is not in the timeline. */
  #messageFromAck(ack: AckFrame, text: string): Message {
    return {
      roomId: this.id,
      seq: ack.seq,
      id: ack.id,
      userId: this.#config.tokens.claims?.sub ?? "",
      text,
      clientMsgId: ack.clientMsgId,
      createdAt: ack.createdAt,
    };
  }

  #pendingChanged(): void {
    const next = this.#outbox.pending;
    const same =
      next.length === this.#pending.length &&
      next.every((p, i) => {
        const q = this.#pending[i];
        return (
          q && p.clientMsgId === q.clientMsgId && p.status === q.status && p.attempts === q.attempts && p.retryAt === q.retryAt
        );
      });
    if (same) return;
    this.#pending = next;
    this.#events.emit("pending", next);
  }

  // ---------------------------------------------------------------------------------------------
  // The timeline: holes, acks waiting for their message, the join promise

  /**
   * After any change: settle sends whose message has arrived, fill a hole over REST, and resolve
   * join() once the list is complete up to the first `ready`. A hole with messages held beyond it
   * (a truncated `ready`, a skipped frame) is filled at once; a hole only known from an ack or a
   * `latestSeq` is given ACK_GRACE_MS for its `message` frame to arrive first, as it nearly always does.
   */
  #timelineChanged(): void {
    for (const [seq, waiters] of this.#committing) {
      const message = this.#timeline.get(seq);
      if (!message) continue;
      this.#committing.delete(seq);
      for (const { waiter } of waiters) waiter.resolve(message);
    }
    if (this.#timeline.gap()) this.#fillSoon(this.#timeline.holding ? 0 : ACK_GRACE_MS);
    else if (this.#everReady && !this.#backfilling) this.#settleJoin?.();
  }

  #fillSoon(delayMs: number): void {
    if (this.#filling || this.#left) return;
    if (delayMs === 0) {
      clearTimer(this.#fillTimer);
      this.#fillTimer = undefined;
      void this.#fill();
      return;
    }
    this.#fillTimer ??= setTimeout(() => {
      this.#fillTimer = undefined;
      void this.#fill();
    }, delayMs);
  }

  /** Fetches pages over REST until the list has no hole; retries with backoff; one loop at a time. */
  async #fill(): Promise<void> {
    if (this.#filling || this.#left) return;
    this.#filling = true;
    let reportedStall = false;
    try {
      for (let gap = this.#timeline.gap(); gap && !this.#left; gap = this.#timeline.gap()) {
        try {
          const page = await this.#config.rest.listMessages(this.id, gap);
          if (this.#left) return;
          const added = this.#timeline.applyPage(page.messages, page.latestSeq);
          this.#emitMessages(added);
          if (added.length > 0) {
            this.#fillBackoff.reset();
            continue;
          }
          if (!reportedStall) {
            reportedStall = true;
            this.#report(
              new ChatClientError(
                "protocol",
                `unable to fill messages after seq ${gap.after}; the server returned none yet, retrying`,
              ),
            );
          }
        } catch (error) {
          if (this.#left) return;
          this.#report(error, "fill missing messages");
        }
        await this.#sleep(this.#fillBackoff.next());
      }
    } finally {
      this.#filling = false;
    }
    if (!this.#left) this.#timelineChanged();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimer(timer);
        this.#sleeps.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleeps.add(wake);
    });
  }

  #emitMessages(messages: readonly Message[]): void {
    for (const message of messages) this.#events.emit("message", message);
  }

  async #loadOlderNow(limit: number): Promise<Message[]> {
    if (this.#ended) throw new ChatClientError(this.#ended.code, `unable to load older messages; ${this.#ended.reason}`);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_HISTORY_LIMIT) {
      throw new ChatClientError(ErrorCode.BadRequest, `unable to load older messages; limit must be 1–${MAX_HISTORY_LIMIT}`);
    }
    const firstSeq = this.#timeline.firstSeq;
    if (firstSeq === undefined || firstSeq <= 1) return [];
    const count = Math.min(limit, firstSeq - 1);
    const page = await this.#config.rest.listMessages(this.id, { after: Math.max(0, firstSeq - 1 - count), limit: count });
    if (this.#left) return [];
    return this.#timeline.prependOlder(page.messages);
  }

  // ---------------------------------------------------------------------------------------------
  // State, errors, shutdown

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
    this.#ended = { code, reason };
    this.#generation++;
    clearTimer(this.#reconnectTimer);
    clearTimer(this.#fillTimer);
    this.#reconnectTimer = this.#fillTimer = undefined;
    for (const wake of [...this.#sleeps]) wake();
    const socket = this.#socket;
    this.#socket = undefined;
    this.#socketReady = false;
    this.#clearSocketTimers();
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      try {
        socket.close(1000, "leave");
      } catch {
        // already closed
      }
    }
    // Acked sends are committed: resolve them even though their message frame will not come now.
    for (const waiters of this.#committing.values()) {
      for (const { ack, waiter } of waiters)
        waiter.resolve(this.#timeline.get(ack.seq) ?? this.#messageFromAck(ack, waiter.text));
    }
    this.#committing.clear();
    const unacked = [...this.#sends.entries()];
    this.#sends.clear();
    this.#outbox.clear();
    this.#pendingChanged();
    for (const [clientMsgId, waiter] of unacked) {
      const maybe = code === "left" ? " before the server acknowledged it (it may still have been committed)" : "";
      waiter.reject(new ChatClientError(code, `unable to send the message; ${reason}${maybe}`, { clientMsgId }));
    }
    this.#settleJoin?.(new ChatClientError(code, `unable to join room ${this.id}; ${reason}`));
    if (emitError) this.#report(new ChatClientError(code, `unable to stay in room ${this.id}; ${reason}`));
    this.#setState("offline");
    this.#config.onClosed(this);
  }
}
