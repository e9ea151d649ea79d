// The server API (docs/server-api.md): the app's own backend, authenticated with a tenant API key,
// acts as a super-user on any room of its tenant — rooms, members, messages as the system or on
// behalf of a user, bans and mutes, tenant bans, reports, exporting and erasing a user. Plus the
// moderation routes users call with their tokens (room admins ban and mute; anyone reports).
//
// Every room change still goes through the room's object (as the actor SERVER_ACTOR, which
// Room.authorize treats as an admin), so the races argued in src/room/admin.ts and
// src/room/moderation.ts are decided in the same place whoever asks. Only cross-room reads (the
// rooms list, reports, an export) and the tenant-level rows (keys, tenant bans, profiles) are
// done here, on a Postgres connection opened for the request.

import type { Context, Hono } from "hono";
import { readConfig } from "../config.js";
import { enforceLimit, ipLimitKey } from "../limits.js";
import { type Decoded, decodeLimit, decodeRole, decodeRoomId, decodeRoomInit, decodeRoomUpdate } from "../protocol/codec.js";
import { ChatError, ErrorCode } from "../protocol/errors.js";
import { MAX_FRAME_BYTES, SERVER_ACTOR, USER_ID_PATTERN } from "../protocol/limits.js";
import { decodeKeyRequest, decodeReport, decodeRestriction, decodeServerSend } from "../protocol/moderation-codec.js";
import { roomStub } from "../room/address.js";
import type { Failure, RoomResult } from "../room/results.js";
import { type ModerationStore, type Restriction, type RestrictionKind, withModerationStore } from "../storage/moderation.js";
import { useLocalWsProxy } from "../storage/postgres.js";
import { readProfiles } from "../storage/profiles.js";
import { setBanMark, tenantBanKey, UpstashMirror } from "../storage/redis.js";
import type { RoomKey } from "../storage/types.js";
import { mintApiKey, verifyApiKey } from "./apikeys.js";
import type { AppEnv } from "./app.js";
import { bearerToken } from "./auth.js";
import { readBodyCapped } from "./body.js";

type C = Context<AppEnv>;

/** Rooms told about a tenant ban at once (each call is one RPC to a room object). */
const FANOUT_CONCURRENCY = 8;
const PAGE = 500;

const decoded = <T>(result: Decoded<T>): T => {
  if (!result.ok) throw new ChatError(result.error.code, result.error.message);
  return result.value;
};

const throwFailure = (f: Failure): never => {
  throw new ChatError(f.code, f.message, {
    ...(f.retryAfterMs === undefined ? {} : { retryAfterMs: f.retryAfterMs }),
    ...(f.reason === undefined ? {} : { reason: f.reason }),
  });
};

const unwrap = <T>(result: RoomResult<T>): T => (result.ok ? result.value : throwFailure(result));

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** The body as JSON (capped while it streams, like app.ts); an empty body is `empty` when given. */
const readJson = async (c: C, empty?: unknown): Promise<unknown> => {
  const bytes = await readBodyCapped(c.req.raw, MAX_FRAME_BYTES);
  if (bytes.length === 0 && empty !== undefined) return empty;
  try {
    return JSON.parse(utf8.decode(bytes));
  } catch {
    throw new ChatError(ErrorCode.BadRequest, "unable to read the body; it is not valid UTF-8 JSON");
  }
};

const dbOptions = (c: C) => {
  const config = readConfig(c.env);
  if (!config.databaseUrl) throw new ChatError(ErrorCode.Unavailable, "unable to reach storage; no database is configured");
  if (config.neonWsProxy) useLocalWsProxy(config.neonWsProxy);
  return { connectionString: config.databaseUrl, statementTimeoutMs: config.statementTimeoutMs };
};

/** A request's store; a storage failure is `unavailable`, like everywhere else. */
const withStore = <T>(c: C, operation: string, run: (store: ModerationStore) => Promise<T>): Promise<T> =>
  withModerationStore(dbOptions(c), run).catch((cause: unknown) => {
    if (cause instanceof ChatError) throw cause;
    throw new ChatError(ErrorCode.Unavailable, `unable to ${operation}; storage is unavailable, retry later`, { cause });
  });

const roomOf = (c: C): RoomKey => {
  const room = { tenant: c.get("principal").tenant, roomId: decoded(decodeRoomId(c.req.param("roomId"))) };
  c.set("room", room.roomId);
  return room;
};

const userParam = (c: C): string => {
  const userId = c.req.param("userId");
  if (!userId || !USER_ID_PATTERN.test(userId)) throw new ChatError(ErrorCode.BadRequest, "userId is not a valid user id");
  return userId;
};

const limitParam = (c: C, fallback: number): number => decoded(decodeLimit("limit", c.req.query("limit"))) ?? fallback;

const mirrorOf = (c: C): UpstashMirror | undefined => {
  const config = readConfig(c.env);
  return config.upstash ? new UpstashMirror({ ...config.upstash, maxLen: config.mirrorMaxLen, timeoutMs: 2000 }) : undefined;
};

/** Runs `run` over `items`, at most `n` at a time; the first failure is thrown after all have run. */
const eachLimited = async <T>(items: readonly T[], n: number, run: (item: T) => Promise<void>): Promise<void> => {
  let next = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await run(item).catch((error: unknown) => {
        failed ??= error;
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failed !== undefined) throw failed;
};

/**
 * The server API's authentication: an API key of a configured tenant. The principal is the
 * tenant's super-user (SERVER_ACTOR); every call counts against the tenant's limit across rooms.
 */
const authenticateKey = async (c: C, next: () => Promise<void>): Promise<void> => {
  const config = readConfig(c.env);
  let tenant: string;
  try {
    ({ tenant } = await withStore(c, "authenticate", (store) => verifyApiKey(bearerToken(c.req.header("authorization")), (id) => store.findKey(id))));
    if (!config.tenants.has(tenant)) throw new ChatError(ErrorCode.Unauthorized, "unable to authenticate; the key's tenant is not configured");
  } catch (error) {
    if (error instanceof ChatError && error.code === ErrorCode.Unauthorized) {
      await enforceLimit(c.env, "unauthenticated", ipLimitKey(c.req.raw), "authenticate");
    }
    throw error;
  }
  c.set("principal", { tenant, userId: SERVER_ACTOR });
  c.set("tenant", tenant);
  await enforceLimit(c.env, "serverApi", tenant, "call the server API");
  await next();
  // Server to server: a browser never gets to read these answers.
  c.header("Access-Control-Allow-Origin", undefined);
};

/** Tells every room of the tenant about a tenant ban (or its lifting); throws if any room could not be told. */
const fanOutTenantBan = async (c: C, tenant: string, userId: string, ban: Restriction | null): Promise<number> => {
  let after: string | undefined;
  let told = 0;
  for (;;) {
    const rooms = await withStore(c, "list the tenant's rooms", (store) => store.listRooms(tenant, after, PAGE));
    await eachLimited(rooms, FANOUT_CONCURRENCY, async (room) => {
      unwrap(await roomStub(c.env, { tenant, roomId: room.roomId }).tenantBanChanged(userId, ban));
    });
    told += rooms.length;
    if (rooms.length < PAGE) return told;
    after = rooms[rooms.length - 1]?.roomId;
  }
};

const restrictionRoutes = (app: Hono<AppEnv>, base: string): void => {
  for (const [path, kind] of [
    ["bans", "ban"],
    ["mutes", "mute"],
  ] as const) {
    app.put(`${base}/:roomId/${path}/:userId`, async (c) => {
      const room = roomOf(c);
      const target = userParam(c);
      const { until, reason } = decoded(decodeRestriction(await readJson(c, {}), kind === "mute"));
      const restriction = unwrap(await roomStub(c.env, room).restrict(c.get("principal").userId, target, kind, until, reason));
      return c.json({ restriction });
    });
    app.delete(`${base}/:roomId/${path}/:userId`, async (c) => {
      const room = roomOf(c);
      const target = userParam(c);
      return c.json(unwrap(await roomStub(c.env, room).lift(c.get("principal").userId, target, kind as RestrictionKind)));
    });
  }
};

/** Registers the moderation routes (user tokens, under /v1/rooms) and the server API (API keys, under /v1/server). */
export const mountServerApi = (app: Hono<AppEnv>): void => {
  // ------------------------------------------------------------------------------------
  // Moderation with a user's token (the authenticate middleware of /v1/rooms/* ran already).

  restrictionRoutes(app, "/v1/rooms");

  app.post("/v1/rooms/:roomId/reports", async (c) => {
    const room = roomOf(c);
    const report = decoded(decodeReport(await readJson(c)));
    return c.json({ report: unwrap(await roomStub(c.env, room).report(c.get("principal").userId, report)) }, 201);
  });

  // ------------------------------------------------------------------------------------
  // The server API.

  app.use("/v1/server/*", authenticateKey);

  app.post("/v1/server/keys", async (c) => {
    const { name } = decoded(decodeKeyRequest(await readJson(c)));
    const tenant = c.get("principal").tenant;
    const minted = await mintApiKey();
    const record = await withStore(c, "create the key", (store) => store.insertKey({ id: minted.id, tenant, name, secretHash: minted.secretHash }));
    return c.json({ key: { id: record.id, name: record.name, createdAt: record.createdAt, revokedAt: null }, secret: minted.key }, 201);
  });

  app.get("/v1/server/keys", async (c) => {
    const keys = await withStore(c, "list the keys", (store) => store.listKeys(c.get("principal").tenant));
    return c.json({ keys: keys.map(({ id, name, createdAt, revokedAt }) => ({ id, name, createdAt, revokedAt })) });
  });

  app.delete("/v1/server/keys/:keyId", async (c) => {
    const keyId = c.req.param("keyId");
    if (!/^[0-9a-f]{16}$/.test(keyId)) throw new ChatError(ErrorCode.BadRequest, "keyId is not a key id");
    const revoked = await withStore(c, "revoke the key", (store) => store.revokeKey(c.get("principal").tenant, keyId));
    if (!revoked) throw new ChatError(ErrorCode.NotFound, "unable to revoke the key; no such key in this tenant");
    return c.json({ revoked: true });
  });

  app.get("/v1/server/rooms", async (c) => {
    const limit = limitParam(c, 100);
    const after = c.req.query("after");
    if (after !== undefined) decoded(decodeRoomId(after));
    const rooms = await withStore(c, "list rooms", (store) => store.listRooms(c.get("principal").tenant, after, limit));
    const last = rooms[rooms.length - 1];
    return c.json({ rooms, next: rooms.length === limit && last ? last.roomId : null });
  });

  app.post("/v1/server/rooms", async (c) => {
    const init = decoded(decodeRoomInit(await readJson(c)));
    const room = { tenant: c.get("principal").tenant, roomId: init.roomId ?? crypto.randomUUID() };
    c.set("room", room.roomId);
    const created = await roomStub(c.env, room).createRoom(SERVER_ACTOR, { visibility: init.visibility, name: init.name ?? room.roomId, metadata: init.metadata });
    return c.json({ room: unwrap(created) }, 201);
  });

  app.get("/v1/server/rooms/:roomId", async (c) => c.json({ room: unwrap(await roomStub(c.env, roomOf(c)).getRoom(SERVER_ACTOR)) }));

  app.patch("/v1/server/rooms/:roomId", async (c) => {
    const room = roomOf(c);
    const patch = decoded(decodeRoomUpdate(await readJson(c)));
    return c.json({ room: unwrap(await roomStub(c.env, room).updateRoom(SERVER_ACTOR, patch)) });
  });

  app.delete("/v1/server/rooms/:roomId", async (c) => {
    const room = roomOf(c);
    const purge = c.req.query("purge");
    if (purge !== undefined && purge !== "true" && purge !== "false") throw new ChatError(ErrorCode.BadRequest, "purge must be true or false");
    return c.json(unwrap(await roomStub(c.env, room).deleteRoom(SERVER_ACTOR, purge === "true")));
  });

  app.get("/v1/server/rooms/:roomId/members", async (c) => {
    const room = roomOf(c);
    return c.json(unwrap(await roomStub(c.env, room).members(SERVER_ACTOR, limitParam(c, 1000))));
  });

  app.put("/v1/server/rooms/:roomId/members/:userId", async (c) => {
    const room = roomOf(c);
    const target = userParam(c);
    const role = decoded(decodeRole(await readJson(c)));
    return c.json({ member: unwrap(await roomStub(c.env, room).setMember(SERVER_ACTOR, target, role)) });
  });

  app.delete("/v1/server/rooms/:roomId/members/:userId", async (c) => {
    const room = roomOf(c);
    return c.json(unwrap(await roomStub(c.env, room).removeMember(SERVER_ACTOR, userParam(c))));
  });

  app.post("/v1/server/rooms/:roomId/messages", async (c) => {
    const room = roomOf(c);
    const { userId, request } = decoded(decodeServerSend(await readJson(c)));
    const result = await roomStub(c.env, room).serverSend(userId ?? SERVER_ACTOR, request);
    if (!result.ok) return throwFailure(result);
    return c.json({ message: result.message }, result.duplicate ? 200 : 201);
  });

  restrictionRoutes(app, "/v1/server/rooms");

  // Tenant bans: Redis' mark first (the edge read path), then Postgres, then every room.
  app.put("/v1/server/bans/:userId", async (c) => {
    const tenant = c.get("principal").tenant;
    const userId = userParam(c);
    const { until, reason } = decoded(decodeRestriction(await readJson(c, {}), false));
    const mirror = mirrorOf(c);
    if (mirror) {
      await setBanMark(mirror.client, tenantBanKey(tenant, userId), until).catch((cause: unknown) => {
        throw new ChatError(ErrorCode.Unavailable, "unable to ban the user; Redis could not be told, retry", { cause });
      });
    }
    const ban = await withStore(c, "ban the user", (store) => store.banInTenant(tenant, userId, until, reason, SERVER_ACTOR));
    const rooms = await fanOutTenantBan(c, tenant, userId, ban);
    return c.json({ ban: { userId, ...ban }, rooms });
  });

  app.delete("/v1/server/bans/:userId", async (c) => {
    const tenant = c.get("principal").tenant;
    const userId = userParam(c);
    const lifted = await withStore(c, "lift the ban", (store) => store.unbanInTenant(tenant, userId));
    await fanOutTenantBan(c, tenant, userId, null);
    await mirrorOf(c)?.client.del(tenantBanKey(tenant, userId)).catch(() => {});
    return c.json({ lifted });
  });

  app.get("/v1/server/reports", async (c) => {
    const after = c.req.query("after");
    const limit = limitParam(c, 100);
    const reports = await withStore(c, "list reports", (store) => store.listReports(c.get("principal").tenant, after, limit));
    const last = reports[reports.length - 1];
    return c.json({ reports, next: reports.length === limit && last ? last.id : null });
  });

  app.get("/v1/server/users/:userId/export", async (c) => {
    const tenant = c.get("principal").tenant;
    const userId = userParam(c);
    const limit = limitParam(c, 1000);
    const afterRaw = c.req.query("after");
    let after: { roomId: string; seq: number } | undefined;
    if (afterRaw !== undefined) {
      const m = /^([A-Za-z0-9_-]{1,128}):(\d{1,15})$/.exec(afterRaw);
      if (!m?.[1] || !m[2]) throw new ChatError(ErrorCode.BadRequest, "after must be the `next` of the previous page");
      after = { roomId: m[1], seq: Number(m[2]) };
    }
    const page = await withStore(c, "export the user", (store) => store.exportUser(tenant, userId, after, limit));
    const [profile] = after ? [undefined] : await readProfiles(dbOptions(c), tenant, [userId]).catch((cause: unknown) => {
      throw new ChatError(ErrorCode.Unavailable, "unable to export the user; storage is unavailable, retry later", { cause });
    });
    const last = page.messages[page.messages.length - 1];
    return c.json({
      userId,
      ...(after ? {} : { profile, memberships: page.memberships }),
      messages: page.messages,
      next: page.messages.length === limit && last ? `${last.roomId}:${last.seq}` : null,
    });
  });

  // Erase: each room turns the user's messages into tombstones through its writer (live clients
  // get the delete entries) and drops their membership and cursor; then the profile goes.
  // Retrying after a failure is safe and finishes the job.
  app.delete("/v1/server/users/:userId", async (c) => {
    const tenant = c.get("principal").tenant;
    const userId = userParam(c);
    const rooms = await withStore(c, "find the user's rooms", (store) => store.roomsOfUser(tenant, userId));
    let deleted = 0;
    await eachLimited(rooms, 4, async (roomId) => {
      // Read after the await: `deleted +=` would read the total before it (rooms run concurrently).
      const done = unwrap(await roomStub(c.env, { tenant, roomId }).eraseUser(userId)).deleted;
      deleted += done;
    });
    await withStore(c, "delete the profile", (store) => store.deleteProfile(tenant, userId));
    return c.json({ erased: true, rooms: rooms.length, deleted });
  });
};
