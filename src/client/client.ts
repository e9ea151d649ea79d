// The SDK's entry point: holds the configuration (base URL, token source, WebSocket and fetch
// implementations) and hands out joined rooms. Everything with state lives in Room.

import { decodeHistoryRequest, decodeRoomId } from "../protocol/codec.js";
import { type BackoffPolicy, DEFAULT_BACKOFF } from "./backoff.js";
import type { MessagesPage, Profile, RoomSummary } from "./decode.js";
import { ChatClientError } from "./errors.js";
import { type ListMessagesOptions, type Member, type PostResult, type ProfileUpdate, RestApi } from "./http.js";
import { newClientMsgId } from "./outbox.js";
import { Profiles } from "./profiles.js";
import { Room } from "./room.js";
import { TokenSource } from "./token.js";
import type { FetchLike, HistoryCursor, WebSocketConstructor } from "./transport.js";

export interface ChatClientOptions {
  /** Where the chat Worker is, e.g. `https://chat.example.com` (a path prefix is kept). */
  baseUrl: string;
  /**
   * Resolves to a token for the current user, minted by the app's backend. Called when there is no
   * token yet, shortly before the current one expires (its `exp`), and after the server refused it.
   */
  tokenProvider: () => Promise<string>;
  /** Defaults to `globalThis.WebSocket`. On Node 20, pass `WebSocket` from the `ws` package. */
  WebSocket?: WebSocketConstructor;
  /** Defaults to `globalThis.fetch`. */
  fetch?: FetchLike;
  /** Reconnect backoff (full jitter). Default: base 500 ms, cap 10 s. Also used for send retries and hole fills. */
  reconnect?: Partial<BackoffPolicy>;
  /** Ping after this long without a frame; drop the socket after as long again without one. Default 25 s. */
  heartbeatMs?: number;
  /** Reconnect (and resend) if a send is not acked within this. Default 15 s. */
  ackTimeoutMs?: number;
  /** Reconnect if a new socket has not delivered `ready` within this. Default 15 s. */
  readyTimeoutMs?: number;
  /** How long `client.profiles` serves a profile from its cache before asking again. Default 5 minutes. */
  profileMaxAgeMs?: number;
}

export interface JoinOptions {
  /** Start with the newest `last` messages (1–1000). The default: the newest 50. */
  last?: number;
  /** Start after this seq (messages the app already has, e.g. from its own cache). Not with `last`. */
  since?: number;
  /** Abort joining: join() rejects with `aborted` and the room is left. */
  signal?: AbortSignal;
}

/**
 * A client for one user (one `tokenProvider`), able to join any number of rooms.
 *
 * @example
 * const client = new ChatClient({
 *   baseUrl: "https://chat.example.com",
 *   tokenProvider: () => fetch("/api/chat-token").then((r) => r.text()),
 * });
 * const room = await client.join("lobby", { last: 50 });
 * room.on("message", (m) => console.log(`[${m.seq}] ${m.userId}: ${m.text}`));
 * await room.send("hello");
 * const rooms = await client.rooms(); // each with readSeq and unread
 * const { name } = await client.profiles.get("bob");
 */
export class ChatClient {
  readonly #options: ChatClientOptions;
  readonly #tokens: TokenSource;
  readonly #rest: RestApi;
  readonly #rooms = new Set<Room>();

  /**
   * Profiles (display names, avatars) of any user of the tenant, cached; ids asked for in the same
   * tick are fetched in one request.
   *
   * @example
   * const { name } = await client.profiles.get(message.userId);
   */
  readonly profiles: Profiles;

  constructor(options: ChatClientOptions) {
    try {
      new URL(options.baseUrl);
    } catch {
      throw new ChatClientError(
        "bad_request",
        `unable to create the client; baseUrl ${JSON.stringify(options.baseUrl)} is not an absolute URL`,
      );
    }
    if (typeof options.tokenProvider !== "function") {
      throw new ChatClientError(
        "bad_request",
        "unable to create the client; tokenProvider must be a function returning a Promise<string>",
      );
    }
    this.#options = options;
    this.#tokens = new TokenSource(options.tokenProvider);
    const fetchFn: FetchLike | undefined =
      options.fetch ?? (typeof globalThis.fetch === "function" ? globalThis.fetch.bind(globalThis) : undefined);
    this.#rest = new RestApi(
      options.baseUrl,
      this.#tokens,
      fetchFn ??
        (() =>
          Promise.reject(new ChatClientError("bad_request", "unable to make a request; no fetch: pass `fetch` to ChatClient"))),
    );
    this.profiles = new Profiles(this.#rest, options.profileMaxAgeMs);
  }

  /** The current user's id (the token's `sub`), once a token has been fetched. */
  get userId(): string | undefined {
    return this.#tokens.claims?.sub;
  }

  /**
   * Joins a room. Resolves once the server's `ready` has been applied: `room.messages` then holds the
   * requested history, complete up to the room's latest seq at that moment. Keeps retrying through
   * transient failures; rejects on `forbidden`, `not_found`, a refused token, or abort.
   *
   * @example
   * const room = await client.join("lobby", { last: 100, signal: AbortSignal.timeout(10_000) });
   */
  join(roomId: string, options: JoinOptions = {}): Promise<Room> {
    const id = decodeRoomId(roomId);
    if (!id.ok) return Promise.reject(new ChatClientError(id.error.code, `unable to join room; ${id.error.message}`));
    const request = decodeHistoryRequest(
      options.since === undefined ? undefined : String(options.since),
      options.last === undefined ? undefined : String(options.last),
    );
    if (!request.ok)
      return Promise.reject(new ChatClientError(request.error.code, `unable to join room ${roomId}; ${request.error.message}`));
    const WebSocketImpl = this.#options.WebSocket ?? (globalThis as unknown as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WebSocketImpl) {
      return Promise.reject(
        new ChatClientError(
          "bad_request",
          'unable to join room; this runtime has no global WebSocket: pass one to ChatClient (on Node 20: `import { WebSocket } from "ws"`)',
        ),
      );
    }
    const history: HistoryCursor = request.value.kind === "since" ? { since: request.value.since } : { last: request.value.last };
    const room = new Room({
      roomId,
      baseUrl: this.#options.baseUrl,
      WebSocket: WebSocketImpl,
      tokens: this.#tokens,
      rest: this.#rest,
      history,
      reconnect: { ...DEFAULT_BACKOFF, ...this.#options.reconnect },
      heartbeatMs: this.#options.heartbeatMs ?? 25_000,
      ackTimeoutMs: this.#options.ackTimeoutMs ?? 15_000,
      readyTimeoutMs: this.#options.readyTimeoutMs ?? 15_000,
      random: Math.random,
      onClosed: (closed) => this.#rooms.delete(closed),
    });
    this.#rooms.add(room);
    return room.start(options.signal);
  }

  /**
   * Reads a page of history over REST, without joining: `after` gives seq > after oldest first,
   * otherwise the newest `limit` (default 50, at most 1000).
   *
   * @example
   * const { messages, latestSeq } = await client.fetchMessages("lobby", { after: 0, limit: 1000 });
   */
  fetchMessages(roomId: string, options: ListMessagesOptions = {}): Promise<MessagesPage> {
    return this.#rest.listMessages(roomId, options);
  }

  /**
   * Sends one message over REST, without joining (bots, server-side code). Reusing a clientMsgId
   * returns the original message with `created: false` instead of committing it twice.
   *
   * @example
   * const { message, created } = await client.postMessage("lobby", "deploy finished");
   */
  postMessage(roomId: string, text: string, options: { clientMsgId?: string; signal?: AbortSignal } = {}): Promise<PostResult> {
    return this.#rest.postMessage(roomId, { clientMsgId: options.clientMsgId ?? newClientMsgId(), text }, options.signal);
  }

  /**
   * The rooms the current user belongs to, each with their read cursor and exact unread count
   * (`GET /v1/rooms`). A room you only read (open rooms, public rooms you have not joined) is not
   * listed until you send in it or call {@link becomeMember}. For a joined room, `room.unread` is
   * live; this list is a snapshot: poll it for the others.
   *
   * @example
   * for (const r of await client.rooms()) badge(r.roomId, r.unread);
   */
  rooms(options: { signal?: AbortSignal } = {}): Promise<RoomSummary[]> {
    return this.#rest.listRooms(options.signal);
  }

  /**
   * Becomes a member of a public room (`POST /v1/rooms/{roomId}/join`), so it is listed by
   * {@link rooms}. A private room refuses it (`forbidden`): an admin adds members there.
   *
   * @example
   * await client.becomeMember("lobby");
   */
  becomeMember(roomId: string, options: { signal?: AbortSignal } = {}): Promise<Member> {
    const id = decodeRoomId(roomId);
    if (!id.ok) return Promise.reject(new ChatClientError(id.error.code, `unable to become a member; ${id.error.message}`));
    return this.#rest.joinRoom(roomId, options.signal);
  }

  /**
   * Sets the current user's profile (`PUT /v1/users/me`): a field left out keeps its value, `null`
   * clears it. Resolves with the stored profile, which `client.profiles` then serves.
   *
   * @example
   * await client.setProfile({ name: "Alice", avatarUrl: "https://example.com/alice.png" });
   */
  async setProfile(update: ProfileUpdate, options: { signal?: AbortSignal } = {}): Promise<Profile> {
    const profile = await this.#rest.putProfile(update, options.signal);
    this.profiles.store(profile);
    return profile;
  }

  /**
   * Leaves every joined room.
   *
   * @example
   * window.addEventListener("pagehide", () => client.close());
   */
  close(): void {
    for (const room of [...this.#rooms]) room.leave();
  }
}
