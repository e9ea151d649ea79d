// The room's socket, kept alive: connect with a token and the history cursor, read frames, keep a
// heartbeat, classify every close with the shared error table (closeCodeOf), and reconnect with
// backoff. It knows nothing of messages or sends: the frames it does not handle itself go to its
// handlers, and it learns what to ask for (the cursor) from them.
//
// Every socket event first checks that it comes from the current socket: a replaced socket's late
// `close` or `message` must not touch the state of its successor.

import { encodeFrame } from "../protocol/codec.js";
import { closeCodeOf, ErrorCode } from "../protocol/errors.js";
import {
  type AckFrame,
  type ClientFrame,
  ClientFrameType,
  type ErrorFrame,
  type PresenceFrame,
  type ReceiptFrame,
  ServerFrameType,
  type TypingFrame,
} from "../protocol/frames.js";
import { RECEIVED_EVERY } from "../protocol/limits.js";
import { Backoff, type BackoffPolicy } from "./backoff.js";
import { type InboundEntryFrame, type InboundReadyFrame, readServerFrame } from "./decode.js";
import { ChatClientError, type ChatClientErrorCode } from "./errors.js";
import { clearTimer, type Timer } from "./timers.js";
import { type HistoryCursor, roomSocketUrl, WS_OPEN, type WebSocketConstructor, type WebSocketLike } from "./transport.js";

/**
 * The error code behind each application close code, read backwards from the shared table, so a
 * code added or renumbered there is classified here without an edit.
 */
const ERROR_OF_CLOSE: ReadonlyMap<number, ErrorCode> = new Map(Object.values(ErrorCode).map((code) => [closeCodeOf[code], code]));
/** Closes after which reconnecting cannot help: the same request would be refused again. */
const FATAL_CLOSES: ReadonlySet<ErrorCode> = new Set([ErrorCode.BadRequest, ErrorCode.Forbidden, ErrorCode.NotFound, ErrorCode.Banned]);
/** A server that refuses this many fresh tokens in a row will not accept the next one either. */
const MAX_UNAUTHORIZED_CLOSES = 3;
/** Sockets that die before `ready` this many times in a row get a fresh token (a browser cannot see an HTTP 401 on the upgrade). */
const EARLY_FAILURES_BEFORE_NEW_TOKEN = 2;
/** A socket that delivered `ready` and stayed up this long counts as a success for the reconnect backoff. */
const STABLE_CONNECTION_MS = 5_000;
/** Close codes from here up are the application's (the shared table's); below are WebSocket's own (1006: the connection dropped). */
const FIRST_APPLICATION_CLOSE = 4000;
/** Our own close code when we drop a socket that stopped answering; not in the shared table, so never mistaken for a server's verdict. */
const CLOSE_UNRESPONSIVE = FIRST_APPLICATION_CLOSE;
const CLOSE_NORMAL = 1000;

/** The part of TokenSource a connection uses. */
export interface TokenAccess {
  get(): Promise<string>;
  /** The server refused this token: the next get() asks the provider for a new one. */
  invalidate(token: string): void;
}

export interface ConnectionConfig {
  roomId: string;
  baseUrl: string;
  WebSocket: WebSocketConstructor;
  tokens: TokenAccess;
  reconnect: BackoffPolicy;
  random: () => number;
  heartbeatMs: number;
  readyTimeoutMs: number;
}

/**
 * A frame for the room's other parts: a live entry for the list, an ack for the sender, or one of
 * the people frames (receipt, typing, presence).
 */
export type RoomFrame = InboundEntryFrame | AckFrame | ReceiptFrame | TypingFrame | PresenceFrame;

/** What a connection needs from the room. */
export interface ConnectionHandlers {
  /** What the next socket asks for: the join's own cursor at first, then `since` = the last contiguous seq. */
  history(): HistoryCursor;
  /** The last seq the room has processed (its list is complete up to it), for the `received` report. */
  processedSeq(): number;
  /** The socket's `ready`, once per socket; the connection has already counted it as a success. */
  onReady(frame: InboundReadyFrame): void;
  onFrame(frame: RoomFrame): void;
  /**
   * An `error` frame about one send. Returns false when no pending send has that clientMsgId: the
   * frame is then handled as being about the socket.
   */
  onSendError(frame: ErrorFrame & { clientMsgId: string }): boolean;
  /** The socket is gone, whatever the reason: a send on the wire may or may not have been committed. */
  onLost(): void;
  /** A new socket will be tried after a backoff delay. */
  onRetrying(): void;
  /**
   * Retrying cannot help (a fatal close, a token the server keeps refusing, no token at all before
   * the first `ready`): the room must end. `emitError` is false when the reason was reported already.
   */
  onFatal(code: ChatClientErrorCode, reason: string, emitError: boolean): void;
  report(error: unknown, operation?: string): void;
}

/**
 * One room's socket and its successors. Start it once; it reconnects by itself until closed or
 * until a close says retrying cannot help (then `onFatal`).
 *
 * @example
 * const connection = new Connection(config, handlers);
 * connection.start();
 * if (connection.ready) connection.write({ type: "send", clientMsgId, text });
 * connection.close(); // on leave
 */
export class Connection {
  readonly #config: ConnectionConfig;
  readonly #handlers: ConnectionHandlers;
  readonly #backoff: Backoff;

  /** The current socket; events from any other socket are ignored. */
  #socket: WebSocketLike | undefined;
  #socketToken: string | undefined;
  /** Whether the current socket has delivered its `ready`. */
  #socketReady = false;
  #everReady = false;
  #closed = false;
  /** Bumped on every connect attempt, so an attempt that was waiting for a token can tell it is stale. */
  #generation = 0;
  #awaitingPong = false;
  #lastFrameAt = 0;
  #readyAt = 0;
  #unauthorizedCloses = 0;
  #earlyFailures = 0;
  /** Frames processed on the current socket since its last `received` report (flow control). */
  #unreported = 0;
  /**
   * The last `error` frame without a clientMsgId on the current socket. A join the server cannot
   * serve is refused with such a frame followed by a close code from the same table: the close is
   * then explained by the frame, already reported, and not reported a second time.
   */
  #socketError: { code: ErrorCode; message: string; retryAfterMs?: number } | undefined;

  #reconnectTimer: Timer | undefined;
  #readyTimer: Timer | undefined;
  #heartbeatTimer: Timer | undefined;

  constructor(config: ConnectionConfig, handlers: ConnectionHandlers) {
    this.#config = config;
    this.#handlers = handlers;
    this.#backoff = new Backoff(config.reconnect, config.random);
  }

  /** Whether a frame can go out now: the socket is open and has delivered its `ready`. */
  get ready(): boolean {
    return this.#socketReady && this.#socket?.readyState === WS_OPEN;
  }

  /** Whether any socket has delivered a `ready` yet. */
  get everReady(): boolean {
    return this.#everReady;
  }

  start(): void {
    void this.#connect();
  }

  /** Puts a frame on the current socket; false if there is none open (or it just failed and is being replaced). */
  write(frame: ClientFrame): boolean {
    const socket = this.#socket;
    if (!socket || socket.readyState !== WS_OPEN) return false;
    try {
      socket.send(encodeFrame(frame));
      return true;
    } catch {
      this.drop("send failed");
      return false;
    }
  }

  /** We give up on the current socket ourselves (it stopped answering): handled like a close, then replaced. */
  drop(reason: string): void {
    this.#gone(CLOSE_UNRESPONSIVE, reason);
  }

  /** Closes the socket for good and stops reconnecting. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#generation++;
    clearTimer(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    const socket = this.#socket;
    this.#socket = undefined;
    this.#socketReady = false;
    this.#clearTimers();
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      try {
        socket.close(CLOSE_NORMAL, "leave");
      } catch {
        // already closed
      }
    }
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
      if (this.#closed || generation !== this.#generation) return;
      // Before the first `ready` the app has no room to listen to yet: fail join() so it can tell
      // the user. Later, a provider that fails (a flaky backend) is retried like a lost connection.
      if (!this.#everReady) {
        const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
        this.#handlers.onFatal(
          ErrorCode.Unauthorized,
          `tokenProvider failed (${cause instanceof Error ? cause.message : String(cause)})`,
          false,
        );
        return;
      }
      this.#handlers.report(error, "get a token");
      this.#scheduleReconnect();
      return;
    }
    if (this.#closed || generation !== this.#generation) return;

    let socket: WebSocketLike;
    try {
      socket = new this.#config.WebSocket(
        roomSocketUrl(this.#config.baseUrl, this.#config.roomId, token, this.#handlers.history()).href,
      );
    } catch (cause) {
      this.#handlers.report(
        new ChatClientError("network", `unable to connect to room ${this.#config.roomId}; the WebSocket could not be created`, {
          cause,
        }),
      );
      this.#scheduleReconnect();
      return;
    }
    this.#socket = socket;
    this.#socketToken = token;
    this.#socketReady = false;
    this.#socketError = undefined;
    this.#unreported = 0;
    this.#awaitingPong = false;
    this.#lastFrameAt = Date.now();
    socket.onopen = () => {
      if (this.#socket === socket) this.#scheduleHeartbeat();
    };
    socket.onmessage = (event: { data: unknown }) => {
      if (this.#socket === socket) this.#onData(event.data);
    };
    socket.onclose = (event: { code: number; reason: string }) => {
      if (this.#socket === socket) this.#gone(event.code, event.reason);
    };
    // An `error` event is always followed by `close`, which is where it is handled.
    socket.onerror = () => undefined;
    // A socket that opens but never says `ready` (or never opens) is as good as closed.
    this.#readyTimer = setTimeout(() => {
      if (this.#socket === socket) this.drop("no ready frame in time");
    }, this.#config.readyTimeoutMs);
  }

  /** Reconnects after the next backoff delay, or after `atLeastMs` if that is longer (a `rate_limited` hint). */
  #scheduleReconnect(atLeastMs = 0): void {
    if (this.#closed || this.#reconnectTimer !== undefined) return;
    this.#reconnectTimer = setTimeout(() => void this.#connect(), Math.max(atLeastMs, this.#backoff.next()));
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
        this.drop("no answer to ping");
        return;
      }
      const quietFor = Date.now() - this.#lastFrameAt;
      if (quietFor < this.#config.heartbeatMs) {
        this.#scheduleHeartbeat(this.#config.heartbeatMs - quietFor);
        return;
      }
      this.#awaitingPong = true;
      this.write({ type: ClientFrameType.Ping });
      this.#scheduleHeartbeat();
    }, delayMs);
  }

  #clearTimers(): void {
    clearTimer(this.#readyTimer);
    clearTimer(this.#heartbeatTimer);
    this.#readyTimer = this.#heartbeatTimer = undefined;
  }

  // ---------------------------------------------------------------------------------------------
  // Frames

  #onData(data: unknown): void {
    // Any frame proves the socket is alive.
    this.#awaitingPong = false;
    this.#lastFrameAt = Date.now();
    const socket = this.#socket;
    const wasReady = this.#socketReady;
    this.#read(data);
    if (wasReady && this.#socket === socket) this.#reportReceived();
  }

  /**
   * Flow control: the server counts what it sent a socket since the socket's last `received` and
   * closes one that is more than MAX_UNCONFIRMED_BYTES behind (4503 "too far behind"). Every
   * RECEIVED_EVERY frames processed, the SDK says so. It counts every frame after `ready`, not
   * only entries, because the server counts every frame too: a quiet room with busy typing and
   * presence would otherwise creep towards the limit on a long-lived socket. `ready` itself is
   * not counted by the server, so it is not counted here.
   */
  #reportReceived(): void {
    if (++this.#unreported < RECEIVED_EVERY) return;
    this.#unreported = 0;
    this.write({ type: ClientFrameType.Received, seq: this.#handlers.processedSeq() });
  }

  #read(data: unknown): void {
    const reading = readServerFrame(data);
    // A frame type added to the protocol after this SDK shipped: the server is newer, not broken,
    // and says nothing this SDK acts on. Skipped without an `error` event, and it is not the error
    // frame that explains a close either (the protocol only adds frame types, see docs/protocol.md).
    if (reading.result === "unknown-type") return;
    if (reading.result === "malformed") {
      this.#handlers.report(new ChatClientError("protocol", "unable to read a frame from the server; ignored it"));
      return;
    }
    const { frame } = reading;
    // Only an error frame that is the last thing before the close explains it.
    if (frame.type !== ServerFrameType.Error) this.#socketError = undefined;
    switch (frame.type) {
      case ServerFrameType.Ready:
        if (this.#socketReady) {
          this.#handlers.report(
            new ChatClientError("protocol", "unable to apply a second ready frame on one socket; ignored it"),
          );
          return;
        }
        this.#socketReady = true;
        clearTimer(this.#readyTimer);
        this.#readyTimer = undefined;
        this.#readyAt = Date.now();
        this.#earlyFailures = 0;
        this.#unauthorizedCloses = 0;
        this.#everReady = true;
        this.#handlers.onReady(frame);
        break;
      case ServerFrameType.Error:
        this.#onErrorFrame(frame);
        break;
      case ServerFrameType.Pong:
        break;
      default:
        this.#handlers.onFrame(frame);
    }
  }

  #onErrorFrame(frame: ErrorFrame): void {
    const clientMsgId = frame.clientMsgId;
    if (clientMsgId !== undefined && this.#handlers.onSendError({ ...frame, clientMsgId })) {
      // A send refused for its token: the socket's token is refused too; replace both.
      if (frame.code === ErrorCode.Unauthorized) this.#gone(closeCodeOf.unauthorized, frame.message);
      return;
    }
    if (frame.code === ErrorCode.Unauthorized) {
      // The server closes the socket with the unauthorized close code after this; we do not wait
      // for the close to arrive (the close handling reports it).
      this.#gone(closeCodeOf.unauthorized, frame.message);
      return;
    }
    // The server says "unable to <operation>; <reason>" already: its message is passed on as is.
    const retryAfter = frame.retryAfterMs === undefined ? {} : { retryAfterMs: frame.retryAfterMs };
    this.#socketError = { code: frame.code, message: frame.message, ...retryAfter };
    this.#handlers.report(new ChatClientError(frame.code, frame.message, retryAfter));
  }

  // ---------------------------------------------------------------------------------------------
  // Closes

  /** The current socket is gone (closed by the server, lost, or dropped by us): classify the close and act on it. */
  #gone(code: number, reason: string): void {
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      // A half-open socket may take a long time to report its close; we do not wait for it.
      try {
        if (socket.readyState <= WS_OPEN)
          socket.close(code === CLOSE_UNRESPONSIVE ? CLOSE_UNRESPONSIVE : CLOSE_NORMAL, reason.slice(0, 120));
      } catch {
        // closing an already-failed socket can throw in some implementations; it is gone either way
      }
    }
    const wasReady = this.#socketReady;
    this.#socketReady = false;
    // Only a connection that stayed up a while resets the backoff: a server that accepts and then
    // drops every socket at once must still see reconnects slow down, not a loop at full speed.
    if (wasReady && Date.now() - this.#readyAt >= STABLE_CONNECTION_MS) this.#backoff.reset();
    this.#clearTimers();
    this.#handlers.onLost();
    if (this.#closed) return;

    const errorCode = ERROR_OF_CLOSE.get(code);
    // An error frame right before this close says why; it has been reported already.
    const explained = this.#socketError !== undefined && errorCode === this.#socketError.code ? this.#socketError : undefined;
    this.#socketError = undefined;
    const detail = explained
      ? `${explained.message} (close ${code})`
      : `the server closed the connection (${code}${reason ? `: ${reason}` : ""})`;
    if (errorCode !== undefined && FATAL_CLOSES.has(errorCode)) {
      // bad_request (e.g. resuming from a seq the room does not have), forbidden, not_found:
      // retrying the same request cannot succeed, so the room goes offline and the app decides
      // (rejoin with `last`).
      this.#handlers.onFatal(errorCode, detail, !explained);
      return;
    }
    if (errorCode === ErrorCode.Unauthorized) {
      if (this.#socketToken !== undefined) this.#config.tokens.invalidate(this.#socketToken);
      if (++this.#unauthorizedCloses >= MAX_UNAUTHORIZED_CLOSES) {
        this.#handlers.onFatal(ErrorCode.Unauthorized, `${detail} ${MAX_UNAUTHORIZED_CLOSES} times in a row`, true);
        return;
      }
      this.#handlers.report(
        new ChatClientError(ErrorCode.Unauthorized, `unable to stay connected; ${detail}, retrying with a new token`),
      );
    } else if (!wasReady && code < FIRST_APPLICATION_CLOSE && ++this.#earlyFailures >= EARLY_FAILURES_BEFORE_NEW_TOKEN) {
      // Only an unexplained close (1006) counts: an upgrade refused with HTTP 401 looks exactly
      // like that in a browser. An application close says what went wrong, and it was not the token.
      if (this.#socketToken !== undefined) this.#config.tokens.invalidate(this.#socketToken);
    }
    if (code >= FIRST_APPLICATION_CLOSE && errorCode !== ErrorCode.Unauthorized && code !== CLOSE_UNRESPONSIVE && !explained) {
      this.#handlers.report(
        new ChatClientError(errorCode ?? ErrorCode.Unavailable, `unable to stay connected; ${detail}, reconnecting`),
      );
    }
    // unavailable (storage down, the room moving), internal, rate_limited, 1006…: try again, later each time.
    this.#handlers.onRetrying();
    this.#scheduleReconnect(errorCode === ErrorCode.RateLimited ? (explained?.retryAfterMs ?? 0) : 0);
  }
}
