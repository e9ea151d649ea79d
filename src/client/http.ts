// The REST half of the protocol: history pages (to fill holes and page back) and HTTP sends.
// Every call carries `Authorization: Bearer`; a 401 drops the token and is retried once with a
// fresh one, because a token can expire between the check and the request.

import { ErrorCode, httpStatusOf } from "../protocol/errors.js";
import type { Message, SendRequest } from "../protocol/frames.js";
import {
  decodeEntriesPage,
  decodeErrorBody,
  decodeMessage,
  decodeProfile,
  decodeProfiles,
  decodeRoomSummaries,
  type EntriesPage,
  isMessage,
  type MessagesPage,
  type Profile,
  type RoomSummary,
} from "./decode.js";
import { ChatClientError } from "./errors.js";
import type { TokenSource } from "./token.js";
import { apiUrl, type FetchLike } from "./transport.js";

const codeOfStatus = (status: number): ErrorCode =>
  (Object.entries(httpStatusOf).find(([, s]) => s === status)?.[0] as ErrorCode | undefined) ??
  (status >= 500 ? ErrorCode.Unavailable : ErrorCode.BadRequest);

/** `Retry-After` is seconds (or an HTTP date, which we do not expect from our own API). */
const retryAfterMs = (header: string | null): number | undefined => {
  if (header === null || !/^\d+(\.\d+)?$/.test(header.trim())) return undefined;
  return Math.round(Number(header) * 1000);
};

export interface ListMessagesOptions {
  /** Messages with seq > after, oldest first. Without it: the newest `limit`. */
  after?: number;
  /** 1–1000, default 50 (the server's default). */
  limit?: number;
  signal?: AbortSignal;
}

/** What `PUT /v1/users/me` changes: a field left out keeps its value, `null` clears it. */
export interface ProfileUpdate {
  /** 1–100 characters, or null. */
  name?: string | null;
  /** An http(s) URL of at most 2,048 characters, or null. */
  avatarUrl?: string | null;
  /** A JSON object of at most 4 KiB; replaces the stored one. */
  data?: Record<string, unknown>;
}

/** The caller's membership of a room (`POST /v1/rooms/{roomId}/join`). */
export interface Member {
  userId: string;
  role: string;
  joinedAt: string;
}

/** The result of `POST /v1/rooms/{roomId}/messages`: `created` is false for a repeated clientMsgId. */
export interface PostResult {
  message: Message;
  created: boolean;
}

export class RestApi {
  constructor(
    private readonly baseUrl: string,
    private readonly tokens: TokenSource,
    private readonly fetchFn: FetchLike,
  ) {}

  /** `GET /v1/rooms/{roomId}/messages?after=&limit=` → `{ messages, latestSeq }`, ascending; messages only. */
  async listMessages(roomId: string, options: ListMessagesOptions = {}): Promise<MessagesPage> {
    const page = await this.listEntries(roomId, options);
    return { messages: page.entries.filter(isMessage), latestSeq: page.latestSeq };
  }

  /**
   * The same route with entries of every kind, as the room's list needs them: `after` and `limit`
   * count seqs, so a page of kinds this SDK does not know still moves the cursor.
   */
  async listEntries(roomId: string, options: ListMessagesOptions = {}): Promise<EntriesPage> {
    const url = apiUrl(this.baseUrl, `v1/rooms/${encodeURIComponent(roomId)}/messages`);
    if (options.after !== undefined) url.searchParams.set("after", String(options.after));
    if (options.limit !== undefined) url.searchParams.set("limit", String(options.limit));
    const { body } = await this.#request("load messages", "GET", url, undefined, options.signal);
    const page = decodeEntriesPage(body);
    if (!page) throw new ChatClientError("protocol", "unable to load messages; the response is not a messages page");
    return page;
  }

  /**
   * `GET /v1/rooms/{roomId}/messages?thread=<seq>&after=&limit=` → a thread's replies, oldest first,
   * in their current form (after `after`; without it, the newest `limit`).
   */
  async listThread(roomId: string, thread: number, options: ListMessagesOptions = {}): Promise<MessagesPage> {
    const url = apiUrl(this.baseUrl, `v1/rooms/${encodeURIComponent(roomId)}/messages`);
    url.searchParams.set("thread", String(thread));
    if (options.after !== undefined) url.searchParams.set("after", String(options.after));
    if (options.limit !== undefined) url.searchParams.set("limit", String(options.limit));
    const { body } = await this.#request("load the thread", "GET", url, undefined, options.signal);
    const page = decodeEntriesPage(body);
    if (!page) throw new ChatClientError("protocol", "unable to load the thread; the response is not a messages page");
    return { messages: page.entries.filter(isMessage), latestSeq: page.latestSeq };
  }

  /** `POST /v1/rooms/{roomId}/messages` with `{ clientMsgId, text }` → 201 (or 200 for a repeat). */
  async postMessage(roomId: string, send: SendRequest, signal?: AbortSignal): Promise<PostResult> {
    const url = apiUrl(this.baseUrl, `v1/rooms/${encodeURIComponent(roomId)}/messages`);
    const { status, body } = await this.#request("send the message", "POST", url, JSON.stringify(send), signal);
    const message = decodeMessage(
      typeof body === "object" && body !== null ? (body as { message?: unknown }).message : undefined,
    );
    if (!message) throw new ChatClientError("protocol", "unable to send the message; the response has no message");
    return { message, created: status === 201 };
  }

  /** `GET /v1/rooms` → the rooms the caller belongs to, each with its read cursor and unread count. */
  async listRooms(signal?: AbortSignal): Promise<RoomSummary[]> {
    const { body } = await this.#request("list rooms", "GET", apiUrl(this.baseUrl, "v1/rooms"), undefined, signal);
    const rooms = decodeRoomSummaries(body);
    if (!rooms) throw new ChatClientError("protocol", "unable to list rooms; the response is not a rooms list");
    return rooms;
  }

  /** `POST /v1/rooms/{roomId}/join` (public rooms) → the caller's membership. */
  async joinRoom(roomId: string, signal?: AbortSignal): Promise<Member> {
    const url = apiUrl(this.baseUrl, `v1/rooms/${encodeURIComponent(roomId)}/join`);
    const { body } = await this.#request("become a member", "POST", url, undefined, signal);
    const member = typeof body === "object" && body !== null ? (body as { member?: unknown }).member : undefined;
    if (typeof member !== "object" || member === null) {
      throw new ChatClientError("protocol", "unable to become a member; the response has no member");
    }
    const { userId, role, joinedAt } = member as Record<string, unknown>;
    if (typeof userId !== "string" || typeof role !== "string" || typeof joinedAt !== "string") {
      throw new ChatClientError("protocol", "unable to become a member; the response has no member");
    }
    return { userId, role, joinedAt };
  }

  /** `GET /v1/users?ids=a,b` → their profiles, in the order asked (1–100 distinct ids). */
  async getProfiles(userIds: readonly string[], signal?: AbortSignal): Promise<Profile[]> {
    const url = apiUrl(this.baseUrl, "v1/users");
    url.searchParams.set("ids", userIds.join(","));
    const { body } = await this.#request("read profiles", "GET", url, undefined, signal);
    const profiles = decodeProfiles(body);
    if (!profiles) throw new ChatClientError("protocol", "unable to read profiles; the response is not a profiles list");
    return profiles;
  }

  /** `PUT /v1/users/me` → the caller's profile as stored. */
  async putProfile(update: ProfileUpdate, signal?: AbortSignal): Promise<Profile> {
    const url = apiUrl(this.baseUrl, "v1/users/me");
    const { body } = await this.#request("save the profile", "PUT", url, JSON.stringify(update), signal);
    const profile = decodeProfile(
      typeof body === "object" && body !== null ? (body as { profile?: unknown }).profile : undefined,
    );
    if (!profile) throw new ChatClientError("protocol", "unable to save the profile; the response has no profile");
    return profile;
  }

  async #request(
    operation: string,
    method: string,
    url: URL,
    body: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ status: number; body: unknown }> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.tokens.get();
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: "application/json" };
      if (body !== undefined) headers["content-type"] = "application/json";
      let response: Awaited<ReturnType<FetchLike>>;
      let text: string;
      try {
        response = await this.fetchFn(url.href, {
          method,
          headers,
          ...(body === undefined ? {} : { body }),
          ...(signal === undefined ? {} : { signal }),
        });
        text = await response.text();
      } catch (cause) {
        if (signal?.aborted) throw new ChatClientError("aborted", `unable to ${operation}; aborted`, { cause });
        throw new ChatClientError("network", `unable to ${operation}; the request to ${url.origin} failed`, { cause });
      }
      let parsed: unknown;
      try {
        parsed = text === "" ? undefined : JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      if (response.status === 401 && attempt === 0) {
        this.tokens.invalidate(token);
        continue;
      }
      if (response.status >= 200 && response.status < 300) return { status: response.status, body: parsed };
      const error = decodeErrorBody(parsed);
      const retryAfter = retryAfterMs(response.headers.get("retry-after"));
      throw new ChatClientError(
        error?.code ?? codeOfStatus(response.status),
        `unable to ${operation}; ${error?.message ?? `the server answered HTTP ${response.status}`}`,
        { status: response.status, ...(retryAfter === undefined ? {} : { retryAfterMs: retryAfter }) },
      );
    }
  }
}
