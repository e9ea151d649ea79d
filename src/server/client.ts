// The server SDK: typed calls of the server API (docs/server-api.md) for the app's own backend,
// in Node 20+ and in Workers alike (it needs only `fetch`). Errors are one class carrying the
// code from the shared table (src/protocol/errors.ts), so a caller branches on `error.code`.

import { type ErrorCode, isErrorCode } from "../protocol/errors.js";
import type { Entry, SendRequest } from "../protocol/frames.js";

export type Role = "admin" | "member" | "viewer";
export type Visibility = "public" | "private";

export interface Room {
  roomId: string;
  name: string;
  visibility: Visibility;
  metadata: Record<string, unknown>;
  createdBy: string | null;
  createdAt: string;
  latestSeq: number;
}

export interface Member {
  userId: string;
  role: Role;
  joinedAt: string;
}

export interface ApiKey {
  id: string;
  name: string;
  createdAt: string;
  revokedAt: string | null;
}

export interface Restriction {
  userId: string;
  until: string | null;
  reason: string | null;
  createdBy: string;
  createdAt: string;
}

export interface Report {
  id: string;
  roomId: string;
  reporter: string;
  subject: string | null;
  seq: number | null;
  reason: string;
  createdAt: string;
}

export interface UserExport {
  userId: string;
  profile?: { userId: string; name: string | null; avatarUrl: string | null; data: Record<string, unknown>; updatedAt: string | null };
  memberships?: Array<{ roomId: string; role: Role; joinedAt: string; leftAt: string | null; readSeq: number | null }>;
  messages: Array<{ roomId: string; seq: number; kind: string; text: string; createdAt: string; deleted: boolean; editedAt: string | null }>;
  /** Pass as `after` for the next page; null on the last one. */
  next: string | null;
}

/** A refused call: `code` from the shared error table, the HTTP status, and the server's message. */
export class ServerApiError extends Error {
  override readonly name = "ServerApiError";
  constructor(
    readonly code: ErrorCode | `http_${number}`,
    readonly status: number,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export interface ChatServerOptions {
  /** Where the chat Worker runs, e.g. https://chat.example.com */
  baseUrl: string;
  /** A tenant API key (`ecsk_…`): keep it on the server, never in a browser. */
  apiKey: string;
  /** A fetch of your choice (tests, a Worker's service binding); default: the global fetch. */
  fetch?: (input: string, init?: RequestInit) => Promise<Response>;
}

type Query = Record<string, string | number | boolean | undefined>;

const path = (...parts: string[]): string => parts.map(encodeURIComponent).join("/");

/**
 * The server API of one tenant.
 *
 * @example
 *   const chat = new ChatServer({ baseUrl: "https://chat.example.com", apiKey: process.env.CHAT_API_KEY });
 *   await chat.createRoom({ roomId: "launch", name: "Launch", visibility: "private" });
 *   await chat.setMember("launch", "alice", "admin");
 *   await chat.send("launch", { clientMsgId: "welcome-1", text: "Welcome!" }); // as the system
 *   for await (const room of chat.allRooms()) console.log(room.roomId);
 */
export class ChatServer {
  private readonly baseUrl: string;
  private readonly fetchImpl: (input: string, init?: RequestInit) => Promise<Response>;

  constructor(private readonly options: ChatServerOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
  }

  /** One call: JSON in, JSON out, a ServerApiError for anything but 2xx. */
  async call<T>(method: string, route: string, body?: unknown, query?: Query): Promise<T> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, String(v));
    const qs = params.size > 0 ? `?${params}` : "";
    const headers: Record<string, string> = { authorization: `Bearer ${this.options.apiKey}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await this.fetchImpl(`${this.baseUrl}/v1/${route}${qs}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
      const retry = res.headers.get("retry-after");
      throw new ServerApiError(
        isErrorCode(error?.code) ? error.code : `http_${res.status}`,
        res.status,
        typeof error?.message === "string" ? error.message : `unable to ${method} ${route}; HTTP ${res.status}`,
        retry === null ? undefined : Number(retry) * 1000,
      );
    }
    return parsed as T;
  }

  // API keys

  /** A new key of this tenant; `secret` is shown only here. */
  createKey(name: string): Promise<{ key: ApiKey; secret: string }> {
    return this.call("POST", "server/keys", { name });
  }
  async listKeys(): Promise<ApiKey[]> {
    return (await this.call<{ keys: ApiKey[] }>("GET", "server/keys")).keys;
  }
  revokeKey(keyId: string): Promise<{ revoked: true }> {
    return this.call("DELETE", `server/keys/${path(keyId)}`);
  }

  // Rooms

  listRooms(page: { limit?: number; after?: string } = {}): Promise<{ rooms: Room[]; next: string | null }> {
    return this.call("GET", "server/rooms", undefined, page);
  }
  /** Every room of the tenant, page by page. */
  async *allRooms(pageSize = 100): AsyncGenerator<Room> {
    let after: string | undefined;
    for (;;) {
      const page = await this.listRooms({ limit: pageSize, ...(after === undefined ? {} : { after }) });
      yield* page.rooms;
      if (!page.next) return;
      after = page.next;
    }
  }
  async createRoom(init: { roomId?: string; name?: string; visibility?: Visibility; metadata?: Record<string, unknown> }): Promise<Room> {
    return (await this.call<{ room: Room }>("POST", "server/rooms", init)).room;
  }
  async getRoom(roomId: string): Promise<Room> {
    return (await this.call<{ room: Room }>("GET", `server/rooms/${path(roomId)}`)).room;
  }
  async updateRoom(roomId: string, patch: { name?: string; visibility?: Visibility; metadata?: Record<string, unknown> }): Promise<Room> {
    return (await this.call<{ room: Room }>("PATCH", `server/rooms/${path(roomId)}`, patch)).room;
  }
  deleteRoom(roomId: string, options: { purge?: boolean } = {}): Promise<{ deleted: true; purged: boolean }> {
    return this.call("DELETE", `server/rooms/${path(roomId)}`, undefined, { purge: options.purge });
  }

  // Members

  async members(roomId: string): Promise<Member[]> {
    return (await this.call<{ members: Member[] }>("GET", `server/rooms/${path(roomId)}/members`)).members;
  }
  async setMember(roomId: string, userId: string, role: Role): Promise<Member> {
    return (await this.call<{ member: Member }>("PUT", `server/rooms/${path(roomId, "members", userId)}`, { role })).member;
  }
  removeMember(roomId: string, userId: string): Promise<{ removed: boolean }> {
    return this.call("DELETE", `server/rooms/${path(roomId, "members", userId)}`);
  }

  // Messages

  /**
   * Sends as the system (no `userId`) or on behalf of a user (who needs no membership; their bans
   * and mutes hold). Resending the same clientMsgId is answered with the original message.
   */
  async send(roomId: string, message: SendRequest & { userId?: string }): Promise<Entry> {
    return (await this.call<{ message: Entry }>("POST", `server/rooms/${path(roomId)}/messages`, message)).message;
  }

  // Moderation

  /** Bans a user from the room (closes their sockets at once); `durationS` for a timed ban. */
  async ban(roomId: string, userId: string, options: { durationS?: number; reason?: string } = {}): Promise<Restriction> {
    return (await this.call<{ restriction: Restriction }>("PUT", `server/rooms/${path(roomId, "bans", userId)}`, options)).restriction;
  }
  unban(roomId: string, userId: string): Promise<{ lifted: boolean }> {
    return this.call("DELETE", `server/rooms/${path(roomId, "bans", userId)}`);
  }
  /** Mutes a user in the room for `durationS` seconds: they read, they cannot send. */
  async mute(roomId: string, userId: string, options: { durationS: number; reason?: string }): Promise<Restriction> {
    return (await this.call<{ restriction: Restriction }>("PUT", `server/rooms/${path(roomId, "mutes", userId)}`, options)).restriction;
  }
  unmute(roomId: string, userId: string): Promise<{ lifted: boolean }> {
    return this.call("DELETE", `server/rooms/${path(roomId, "mutes", userId)}`);
  }
  /** Bans a user from every room of the tenant; resolves once every room has closed their sockets. */
  banFromTenant(userId: string, options: { durationS?: number; reason?: string } = {}): Promise<{ ban: Restriction; rooms: number }> {
    return this.call("PUT", `server/bans/${path(userId)}`, options);
  }
  liftTenantBan(userId: string): Promise<{ lifted: boolean }> {
    return this.call("DELETE", `server/bans/${path(userId)}`);
  }
  listReports(page: { limit?: number; after?: string } = {}): Promise<{ reports: Report[]; next: string | null }> {
    return this.call("GET", "server/reports", undefined, page);
  }

  // Users

  /** One page of what the tenant holds about a user (the first page also has the profile and memberships). */
  exportUser(userId: string, page: { limit?: number; after?: string } = {}): Promise<UserExport> {
    return this.call("GET", `server/users/${path(userId)}/export`, undefined, page);
  }
  /** Erases a user: their messages become tombstones in every room (live clients see the deletes); profile, cursors and memberships go. Safe to retry. */
  eraseUser(userId: string): Promise<{ erased: true; rooms: number; deleted: number }> {
    return this.call("DELETE", `server/users/${path(userId)}`);
  }
}
