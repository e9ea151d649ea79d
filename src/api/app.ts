// The Worker: authenticates, validates and routes. It holds no room state and opens no
// database connection; every room read and write goes through that room's object.

import { Hono } from "hono";
import type { Context } from "hono";
import { routePath } from "hono/route";
import { DEFAULT_TENANT, readConfig } from "../config.js";
import {
  type Decoded,
  decodeHistoryRequest,
  decodeLimit,
  decodeProfileUpdate,
  decodeProtocolVersion,
  decodeReadRequest,
  decodeUserIds,
  decodeRole,
  decodeRoomId,
  decodeRoomInit,
  decodeRoomUpdate,
  decodeDeleteRequest,
  decodeEditRequest,
  decodeReactRequest,
  decodeSendRequest,
  decodeSeqCursor,
} from "../protocol/codec.js";
import { ChatError, ErrorCode, errorBody, httpStatusOf, isErrorCode } from "../protocol/errors.js";
import { PROTOCOL_VERSION } from "../protocol/frames.js";
import { DEFAULT_HISTORY_LIMIT, MAX_FRAME_BYTES, MAX_HISTORY_LIMIT, USER_ID_PATTERN } from "../protocol/limits.js";
import type { Failure, RoomResult } from "../room/results.js";
import { listRoomsOf, useLocalWsProxy } from "../storage/postgres.js";
import { UpstashMirror } from "../storage/redis.js";
import { roomStub } from "../room/address.js";
import { replicaName, routeSocket } from "../replica/address.js";
import { readProfiles, rememberClaimedName, writeProfile } from "../storage/profiles.js";
import type { RoomKey } from "../storage/types.js";
import { errorFields, logger } from "../observability/log.js";
import { metrics } from "../observability/metrics.js";
import { bearerToken, mintDevToken, type Principal, verifyToken } from "./auth.js";
import { readBodyCapped } from "./body.js";
import * as attachments from "./attachments.js";
import { openApiDocument } from "./openapi.js";
import { mountServerApi } from "./server.js";
import { apiCors, securityHeaders, tenantCors } from "./cors.js";
import { enforceLimit, ipLimitKey, userLimitKey } from "../limits.js";

export type AppEnv = {
  Bindings: Env;
  Variables: {
    principal: Principal;
    /** For the request log and metrics: what the request was about, and how it ended. */
    tenant: string;
    room: string;
    errorCode: string;
    route: string;
  };
};

export const app = new Hono<AppEnv>();

const codeOfStatus = (status: number): string => {
  if (status < 400) return "ok";
  const code = Object.entries(httpStatusOf).find(([, s]) => s === status)?.[0];
  return code && isErrorCode(code) ? code : `http_${status}`;
};

// One structured log line and one metric data point per request: tenant, room, route, status,
// code, duration. Never the token, the query string or a body (see src/observability/log.ts).
app.use("*", async (c, next) => {
  const started = Date.now();
  await next();
  const durationMs = Date.now() - started;
  const status = c.res.status;
  const code = c.get("errorCode") ?? codeOfStatus(status);
  const route = `${c.req.method} ${c.get("route") ?? routePath(c)}`;
  const tenant = c.get("tenant");
  const room = c.get("room");
  logger(c.env)[status >= 500 ? "error" : "info"]({
    event: "request",
    tenant,
    room,
    op: route,
    status,
    code,
    durationMs,
    source: c.res.headers.get("x-chat-source") ?? undefined,
  });
  metrics(c.env).request({ tenant, room, route, status, code }, durationMs);
});
app.use("*", securityHeaders);
// Preflights are answered here, before any route authenticates: OPTIONS never gets a 401.
app.use("/v1/*", apiCors);

/** Unwraps a codec result, or throws its typed error (answered by onError). */
const decoded = <T>(result: Decoded<T>): T => {
  if (!result.ok) throw new ChatError(result.error.code, result.error.message);
  return result.value;
};

/** The value of a room call, or its failure thrown as the typed error (answered by onError). */
const unwrap = <T>(result: RoomResult<T>): T => (result.ok ? result.value : throwFailure(result));

const throwFailure = (f: Failure): never => {
  throw new ChatError(f.code, f.message, {
    ...(f.retryAfterMs === undefined ? {} : { retryAfterMs: f.retryAfterMs }),
    ...(f.reason === undefined ? {} : { reason: f.reason }),
  });
};

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** Reads a JSON body with a size cap that holds while it streams in (src/api/body.ts), then parses it. */
/** The body as JSON; `empty` is what an empty body stands for (absent: an empty body is refused). */
const readJson = async (c: Context<AppEnv>, empty?: unknown): Promise<unknown> => {
  const bytes = await readBodyCapped(c.req.raw, MAX_FRAME_BYTES);
  if (bytes.length === 0 && empty !== undefined) return empty;
  let text: string;
  try {
    // Invalid UTF-8 is refused, not silently replaced: what we store must be what was sent.
    text = utf8.decode(bytes);
  } catch {
    throw new ChatError(ErrorCode.BadRequest, "unable to read the body; it is not valid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new ChatError(ErrorCode.BadRequest, "unable to read the body; it is not valid JSON");
  }
};

const mirrorOf = (env: Env): UpstashMirror | undefined => {
  const config = readConfig(env);
  return config.upstash ? new UpstashMirror({ ...config.upstash, maxLen: config.mirrorMaxLen, timeoutMs: 2000 }) : undefined;
};

app.get("/healthz", (c) => c.json({ ok: true }));
// The REST API as OpenAPI 3.1 (src/api/openapi.ts); public, like the routes' shapes in docs/protocol.md.
app.get("/openapi.json", (c) => c.json(openApiDocument(new URL(c.req.url).origin)));

app.post("/v1/dev/token", async (c) => {
  const config = readConfig(c.env);
  if (!config.devTokens) throw new ChatError(ErrorCode.NotFound, "unable to find this route");
  // Anyone may call this route: it is limited per client IP, like failed authentications.
  await enforceLimit(c.env, "unauthenticated", ipLimitKey(c.req.raw), "mint a token");
  const body = await readJson(c);
  const fields = (typeof body === "object" && body !== null ? body : {}) as { userId?: unknown; tenant?: unknown };
  if (typeof fields.userId !== "string" || !USER_ID_PATTERN.test(fields.userId)) {
    throw new ChatError(ErrorCode.BadRequest, "unable to mint a token; userId must be 1–64 characters of A-Z a-z 0-9 _ . @ : -");
  }
  const tenant = config.tenants.get(typeof fields.tenant === "string" ? fields.tenant : DEFAULT_TENANT);
  if (!tenant) throw new ChatError(ErrorCode.BadRequest, "unable to mint a token; unknown tenant");
  return c.json({ token: await mintDevToken(fields.userId, tenant) });
});

/** The one route that takes its token from the query string: a WebSocket upgrade of a room. */
const SOCKET_PATH = /^\/v1\/rooms\/[^/]+\/ws$/;
const isSocketUpgrade = (c: Context<AppEnv>): boolean =>
  c.req.method === "GET" && SOCKET_PATH.test(c.req.path) && c.req.header("upgrade")?.toLowerCase() === "websocket";

// Every room route is authenticated. WebSocket upgrades carry the token in the query string,
// because browsers cannot set headers on a WebSocket; nothing else does (a token in a URL ends
// up in logs and histories, so it is accepted only where there is no other way).
const authenticate = async (c: Context<AppEnv>, next: () => Promise<void>): Promise<void> => {
  const config = readConfig(c.env);
  const token = bearerToken(c.req.header("authorization")) ?? (isSocketUpgrade(c) ? c.req.query("token") : undefined);
  let principal: Principal;
  try {
    principal = await verifyToken(token, config);
  } catch (error) {
    // Failed authentications are limited per client IP: past the limit the answer is 429.
    if (error instanceof ChatError && error.code === ErrorCode.Unauthorized) {
      await enforceLimit(c.env, "unauthenticated", ipLimitKey(c.req.raw), "authenticate");
    }
    throw error;
  }
  c.set("principal", principal);
  c.set("tenant", principal.tenant);
  await next();
  tenantCors(c, principal.tenant);
};
app.use("/v1/rooms", authenticate);
app.use("/v1/rooms/*", authenticate);
app.use("/v1/users", authenticate);
app.use("/v1/users/*", authenticate);

const roomOf = (c: Context<AppEnv>): RoomKey => {
  const room = { tenant: c.get("principal").tenant, roomId: decoded(decodeRoomId(c.req.param("roomId"))) };
  c.set("room", room.roomId);
  return room;
};

app.get("/v1/rooms/:roomId/messages", async (c) => {
  const room = roomOf(c);
  const after = decoded(decodeSeqCursor("after", c.req.query("after")));
  const limit = decoded(decodeLimit("limit", c.req.query("limit"))) ?? DEFAULT_HISTORY_LIMIT;
  const thread = decoded(decodeSeqCursor("thread", c.req.query("thread")));
  if (thread === 0) throw new ChatError(ErrorCode.BadRequest, "thread must be the seq of a message (a positive integer)");
  // Edge read path: a full page after a cursor is answered from the Redis mirror when its trimmed
  // window still holds after+1 (then, written in order, it is contiguous), without waking the
  // room. The stream holds
  // messages only while they are unchanged (storage/redis.ts), so a page with an edited, deleted
  // or reacted-to message has a hole and is served by the room, in current form.
  const mirror = mirrorOf(c.env);
  if (after !== undefined && thread === undefined && mirror) {
    const fromRedis = await mirror.readAfter(room, after, limit, c.get("principal").userId).catch((error: unknown) => {
      logger(c.env).warn({ event: "edge_read_fallback", tenant: room.tenant, room: room.roomId, op: "edge_read", ...errorFields(error) });
      return undefined;
    });
    // Only a full page: one that ends before the stream's top cannot be missing anything the
    // stream lags by. A page that reaches the top (the tip of the room, which a client reads right
    // after its own sends) goes to the room, so REST reads never trail the acks (read your writes),
    // whatever the mirror's lag or linger.
    if (fromRedis && fromRedis.messages.length === limit) {
      c.header("x-chat-source", "redis");
      return c.json({ messages: fromRedis.messages, latestSeq: fromRedis.topSeq });
    }
  }
  const result = await roomStub(c.env, room).history(c.get("principal").userId, {
    after,
    limit,
    ...(thread === undefined ? {} : { thread }),
  });
  if (!result.ok) return throwFailure(result);
  c.header("x-chat-source", "room");
  return c.json(result.value);
});

app.get("/v1/rooms/:roomId/status", async (c) => {
  const room = roomOf(c);
  const result = await roomStub(c.env, room).status(c.get("principal").userId);
  if (!result.ok) return throwFailure(result);
  return c.json(result.value);
});

app.post("/v1/rooms/:roomId/messages", async (c) => {
  const room = roomOf(c);
  const request = decoded(decodeSendRequest(await readJson(c)));
  const result = await roomStub(c.env, room).send(c.get("principal").userId, request);
  if (!result.ok) return throwFailure(result);
  return c.json({ message: result.message }, result.duplicate ? 200 : 201);
});

/** `{seq}` in a message route: a positive integer. */
const targetOf = (c: Context<AppEnv>): number => {
  const seq = decoded(decodeSeqCursor("seq", c.req.param("seq")));
  if (!seq) throw new ChatError(ErrorCode.BadRequest, "seq must be the seq of a message (a positive integer)");
  return seq;
};

// Changes to a message: the same way in as their frames (exactly once per clientMsgId, in the
// author's order, through the send rate limit). 201 with the change entry; 200 for a resend.

app.patch("/v1/rooms/:roomId/messages/:seq", async (c) => {
  const room = roomOf(c);
  const target = targetOf(c);
  const request = decoded(decodeEditRequest(await readJson(c)));
  const result = await roomStub(c.env, room).edit(c.get("principal").userId, target, request);
  if (!result.ok) return throwFailure(result);
  return c.json({ message: result.message }, result.duplicate ? 200 : 201);
});

app.delete("/v1/rooms/:roomId/messages/:seq", async (c) => {
  const room = roomOf(c);
  const target = targetOf(c);
  // Without a body, the clientMsgId is derived from the target: a retried DELETE is still one delete.
  const request = decoded(decodeDeleteRequest(await readJson(c, { clientMsgId: `delete:${target}` })));
  const result = await roomStub(c.env, room).deleteMessage(c.get("principal").userId, target, request);
  if (!result.ok) return throwFailure(result);
  return c.json({ message: result.message }, result.duplicate ? 200 : 201);
});

app.post("/v1/rooms/:roomId/messages/:seq/reactions", async (c) => {
  const room = roomOf(c);
  const target = targetOf(c);
  const request = decoded(decodeReactRequest(await readJson(c)));
  const result = await roomStub(c.env, room).react(c.get("principal").userId, target, request);
  if (!result.ok) return throwFailure(result);
  return c.json({ message: result.message }, result.duplicate ? 200 : 201);
});

// Attachments (src/api/attachments.ts; docs/protocol.md, "Attachments").

app.post("/v1/rooms/:roomId/attachments", async (c) => attachments.upload(c.env, c.req.raw, roomOf(c), c.get("principal").userId));

app.get("/v1/rooms/:roomId/attachments/:id", async (c) =>
  attachments.download(c.env, c.req.raw, roomOf(c), c.get("principal").userId, attachments.checkAttachmentId(c.req.param("id"))),
);

app.get("/v1/rooms/:roomId/attachments/:id/url", async (c) =>
  attachments.issueUrl(c.env, c.req.raw, roomOf(c), c.get("principal").userId, attachments.checkAttachmentId(c.req.param("id"))),
);

// Signed URLs: no token (an <img> cannot send one), so this path is outside the authenticated
// prefixes; the signature names the tenant, the room and the attachment.
app.get("/v1/attachments/:tenant/:roomId/:id", async (c) => {
  const tenant = c.req.param("tenant");
  if (!readConfig(c.env).tenants.has(tenant)) throw new ChatError(ErrorCode.Forbidden, "unable to serve the attachment; the link is not valid");
  const room = { tenant, roomId: decoded(decodeRoomId(c.req.param("roomId"))) };
  c.set("tenant", tenant);
  c.set("room", room.roomId);
  return attachments.signedDownload(c.env, c.req.raw, room, attachments.checkAttachmentId(c.req.param("id")));
});

// Rooms and members. Every change goes through the room's object (see Room, "Rooms and members").

app.post("/v1/rooms", async (c) => {
  const { userId, tenant } = c.get("principal");
  const init = decoded(decodeRoomInit(await readJson(c)));
  await enforceLimit(c.env, "roomCreate", userLimitKey(tenant, userId), "create the room");
  const room = { tenant, roomId: init.roomId ?? crypto.randomUUID() };
  c.set("room", room.roomId);
  const result = await roomStub(c.env, room).createRoom(userId, {
    visibility: init.visibility,
    name: init.name ?? room.roomId,
    metadata: init.metadata,
  });
  return c.json({ room: unwrap(result) }, 201);
});

app.get("/v1/rooms", async (c) => {
  const { userId, tenant } = c.get("principal");
  const config = readConfig(c.env);
  if (!config.databaseUrl) throw new ChatError(ErrorCode.Unavailable, "unable to list rooms; no database is configured");
  if (config.neonWsProxy) useLocalWsProxy(config.neonWsProxy);
  const limit = decoded(decodeLimit("limit", c.req.query("limit"))) ?? MAX_HISTORY_LIMIT;
  try {
    const rooms = await listRoomsOf(
      { connectionString: config.databaseUrl, statementTimeoutMs: config.statementTimeoutMs },
      tenant,
      userId,
      limit,
    );
    return c.json({ rooms });
  } catch (cause) {
    throw new ChatError(ErrorCode.Unavailable, "unable to list rooms; storage is unavailable, retry later", { cause });
  }
});

app.get("/v1/rooms/:roomId", async (c) => {
  const room = roomOf(c);
  return c.json({ room: unwrap(await roomStub(c.env, room).getRoom(c.get("principal").userId)) });
});

app.patch("/v1/rooms/:roomId", async (c) => {
  const room = roomOf(c);
  const patch = decoded(decodeRoomUpdate(await readJson(c)));
  return c.json({ room: unwrap(await roomStub(c.env, room).updateRoom(c.get("principal").userId, patch)) });
});

app.delete("/v1/rooms/:roomId", async (c) => {
  const room = roomOf(c);
  const purge = c.req.query("purge");
  if (purge !== undefined && purge !== "true" && purge !== "false") {
    throw new ChatError(ErrorCode.BadRequest, "unable to delete the room; purge must be true or false");
  }
  return c.json(unwrap(await roomStub(c.env, room).deleteRoom(c.get("principal").userId, purge === "true")));
});

app.post("/v1/rooms/:roomId/join", async (c) => {
  const room = roomOf(c);
  return c.json({ member: unwrap(await roomStub(c.env, room).join(c.get("principal").userId)) });
});

app.post("/v1/rooms/:roomId/leave", async (c) => {
  const room = roomOf(c);
  const { userId } = c.get("principal");
  return c.json(unwrap(await roomStub(c.env, room).removeMember(userId, userId)));
});

app.get("/v1/rooms/:roomId/members", async (c) => {
  const room = roomOf(c);
  const limit = decoded(decodeLimit("limit", c.req.query("limit"))) ?? MAX_HISTORY_LIMIT;
  return c.json(unwrap(await roomStub(c.env, room).members(c.get("principal").userId, limit)));
});

const memberOf = (c: Context<AppEnv>): string => {
  const userId = c.req.param("userId");
  if (!userId || !USER_ID_PATTERN.test(userId)) throw new ChatError(ErrorCode.BadRequest, "userId is not a valid user id");
  return userId;
};

app.put("/v1/rooms/:roomId/members/:userId", async (c) => {
  const room = roomOf(c);
  const target = memberOf(c);
  const role = decoded(decodeRole(await readJson(c)));
  return c.json({ member: unwrap(await roomStub(c.env, room).setMember(c.get("principal").userId, target, role)) });
});

app.delete("/v1/rooms/:roomId/members/:userId", async (c) => {
  const room = roomOf(c);
  const target = memberOf(c);
  return c.json(unwrap(await roomStub(c.env, room).removeMember(c.get("principal").userId, target)));
});

app.get("/v1/rooms/:roomId/ws", async (c) => {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new ChatError(ErrorCode.BadRequest, "unable to connect; expected a WebSocket upgrade");
  }
  const room = roomOf(c);
  const history = decoded(decodeHistoryRequest(c.req.query("since"), c.req.query("last")));
  const protocol = decoded(decodeProtocolVersion(c.req.query("v")));
  const { tenant, userId } = c.get("principal");
  await enforceLimit(c.env, "socketOpen", userLimitKey(tenant, userId), "connect");
  // Only the Worker sets these headers; the room object is not reachable from outside. The room
  // itself is the object's name (ctx.id.name).
  const headers = new Headers({
    upgrade: "websocket",
    "x-chat-user": userId,
    "x-chat-history": JSON.stringify(history),
    "x-chat-protocol": String(Math.min(protocol, PROTOCOL_VERSION)),
  });
  const { name } = c.get("principal");
  if (name !== undefined) {
    // The token's display name stands until the user sets a profile; once per connection, off
    // the join's path.
    const config = readConfig(c.env);
    if (config.databaseUrl) {
      if (config.neonWsProxy) useLocalWsProxy(config.neonWsProxy);
      c.executionCtx.waitUntil(
        rememberClaimedName({ connectionString: config.databaseUrl, statementTimeoutMs: config.statementTimeoutMs }, tenant, userId, name).catch(
          () => {},
        ),
      );
    }
  }
  // Regional replicas (docs/architecture.md): when replication is on for the tenant, the socket
  // goes to the replica of the client's region (from the edge's continent; `?region=` only where
  // REPLICA_REGION_OVERRIDE allows it), which asks the primary for every access decision.
  const config = readConfig(c.env);
  const route = routeSocket({
    enabled: config.replication.all || config.tenants.get(tenant)?.replication === true,
    continent: (c.req.raw as { cf?: { continent?: unknown } }).cf?.continent as string | undefined,
    override: c.req.query("region"),
    overrideAllowed: config.replication.regionOverride,
    shards: config.replication.shards,
    userId,
  });
  const upgrade = new Request("https://room.internal/ws", { headers });
  if (route.to === "replica") {
    const name = replicaName({ room, region: route.region, shard: route.shard });
    return c.env.REPLICA.get(c.env.REPLICA.idFromName(name), { locationHint: route.region }).fetch(upgrade);
  }
  return roomStub(c.env, room).fetch(upgrade);
});

// Read cursors and presence (docs/protocol.md, "Read cursors, typing, presence").

app.put("/v1/rooms/:roomId/read", async (c) => {
  const room = roomOf(c);
  const { seq } = decoded(decodeReadRequest(await readJson(c)));
  return c.json(unwrap(await roomStub(c.env, room).markRead(c.get("principal").userId, seq)));
});

app.get("/v1/rooms/:roomId/presence", async (c) => {
  const room = roomOf(c);
  return c.json(unwrap(await roomStub(c.env, room).presence(c.get("principal").userId)));
});

// Profiles, per tenant: a token only ever reads and writes profiles of its own tenant.

const profileStore = (c: Context<AppEnv>) => {
  const config = readConfig(c.env);
  if (!config.databaseUrl) throw new ChatError(ErrorCode.Unavailable, "unable to reach profiles; no database is configured");
  if (config.neonWsProxy) useLocalWsProxy(config.neonWsProxy);
  return { connectionString: config.databaseUrl, statementTimeoutMs: config.statementTimeoutMs };
};

const storageFailure = (operation: string) => (cause: unknown): never => {
  throw new ChatError(ErrorCode.Unavailable, `unable to ${operation}; storage is unavailable, retry later`, { cause });
};

app.put("/v1/users/me", async (c) => {
  const { tenant, userId } = c.get("principal");
  const patch = decoded(decodeProfileUpdate(await readJson(c)));
  const profile = await writeProfile(profileStore(c), tenant, userId, patch).catch(storageFailure("save the profile"));
  return c.json({ profile });
});

app.get("/v1/users/:userId", async (c) => {
  const { tenant } = c.get("principal");
  const userId = c.req.param("userId");
  if (!USER_ID_PATTERN.test(userId)) throw new ChatError(ErrorCode.BadRequest, "userId is not a valid user id");
  const [profile] = await readProfiles(profileStore(c), tenant, [userId]).catch(storageFailure("read the profile"));
  return c.json({ profile });
});

app.get("/v1/users", async (c) => {
  const { tenant } = c.get("principal");
  const ids = decoded(decodeUserIds(c.req.query("ids"), USER_ID_PATTERN));
  const profiles = await readProfiles(profileStore(c), tenant, ids).catch(storageFailure("read profiles"));
  return c.json({ profiles });
});

// Moderation routes and the server API (API keys): src/api/server.ts, docs/server-api.md.
mountServerApi(app);

// The demo page and the SDK bundle (public/), only where DEMO_PAGE=true. wrangler.toml routes
// every request to the Worker first (run_worker_first = true), so the assets layer cannot serve
// the page behind this switch's back.
app.get("*", async (c, next) => {
  if (c.req.path.startsWith("/v1/")) return next();
  if (!readConfig(c.env).demoPage) return next();
  c.set("route", "assets");
  return c.env.ASSETS.fetch(c.req.raw);
});

app.notFound((c) => {
  c.set("route", "unmatched");
  c.set("errorCode", ErrorCode.NotFound);
  return c.json(errorBody(ErrorCode.NotFound, "unable to find this route"), 404);
});

app.onError((error, c) => {
  if (error instanceof ChatError) {
    c.set("errorCode", error.code);
    const headers: Record<string, string> = {};
    if (error.retryAfterMs !== undefined) headers["retry-after"] = String(Math.ceil(error.retryAfterMs / 1000));
    return c.json(errorBody(error.code, error.message, error.reason), error.status as 400, headers);
  }
  // Never leak internals: the client gets a code, the log gets the error's class (no message:
  // it could quote a statement or a command, and with them what users wrote).
  c.set("errorCode", ErrorCode.Internal);
  logger(c.env).error({ event: "unhandled_error", op: `${c.req.method} ${routePath(c)}`, ...errorFields(error) });
  return c.json(errorBody(ErrorCode.Internal, "unable to complete the request; internal error"), 500);
});
