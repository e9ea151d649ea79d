// The Worker: authenticates, validates and routes. It holds no room state and opens no
// database connection; every room read and write goes through that room's object.

import { Hono } from "hono";
import type { Context } from "hono";
import { DEFAULT_TENANT, readConfig } from "../config.js";
import {
  type Decoded,
  decodeHistoryRequest,
  decodeLimit,
  decodeProtocolVersion,
  decodeRole,
  decodeRoomId,
  decodeRoomInit,
  decodeRoomUpdate,
  decodeSendRequest,
  decodeSeqCursor,
} from "../protocol/codec.js";
import { ChatError, ErrorCode, errorBody } from "../protocol/errors.js";
import { PROTOCOL_VERSION } from "../protocol/frames.js";
import { DEFAULT_HISTORY_LIMIT, MAX_FRAME_BYTES, MAX_HISTORY_LIMIT } from "../protocol/limits.js";
import type { Failure, RoomResult } from "../room/results.js";
import { listRoomsOf, useLocalWsProxy } from "../storage/postgres.js";
import { UpstashMirror } from "../storage/redis.js";
import { roomStub } from "../room/address.js";
import type { RoomKey } from "../storage/types.js";
import { bearerToken, mintDevToken, type Principal, USER_ID_PATTERN, verifyToken } from "./auth.js";

type AppEnv = { Bindings: Env; Variables: { principal: Principal } };

export const app = new Hono<AppEnv>();

/** Unwraps a codec result, or throws its typed error (answered by onError). */
const decoded = <T>(result: Decoded<T>): T => {
  if (!result.ok) throw new ChatError(result.error.code, result.error.message);
  return result.value;
};

/** The value of a room call, or its failure thrown as the typed error (answered by onError). */
const unwrap = <T>(result: RoomResult<T>): T => (result.ok ? result.value : throwFailure(result));

const throwFailure = (f: Failure): never => {
  throw new ChatError(f.code, f.message, f.retryAfterMs === undefined ? undefined : { retryAfterMs: f.retryAfterMs });
};

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** Reads a JSON body with a size cap, before parsing it. */
const readJson = async (c: Context<AppEnv>): Promise<unknown> => {
  const declared = Number(c.req.header("content-length") ?? "0");
  if (declared > MAX_FRAME_BYTES) throw new ChatError(ErrorCode.TooLarge, `unable to read the body; it is over ${MAX_FRAME_BYTES} bytes`);
  const bytes = await c.req.arrayBuffer();
  if (bytes.byteLength > MAX_FRAME_BYTES) {
    throw new ChatError(ErrorCode.TooLarge, `unable to read the body; it is over ${MAX_FRAME_BYTES} bytes`);
  }
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

app.post("/v1/dev/token", async (c) => {
  const config = readConfig(c.env);
  if (!config.devTokens) throw new ChatError(ErrorCode.NotFound, "unable to find this route");
  const body = await readJson(c);
  const fields = (typeof body === "object" && body !== null ? body : {}) as { userId?: unknown; tenant?: unknown };
  if (typeof fields.userId !== "string" || !USER_ID_PATTERN.test(fields.userId)) {
    throw new ChatError(ErrorCode.BadRequest, "unable to mint a token; userId must be 1–64 characters of A-Z a-z 0-9 _ . @ : -");
  }
  const tenant = config.tenants.get(typeof fields.tenant === "string" ? fields.tenant : DEFAULT_TENANT);
  if (!tenant) throw new ChatError(ErrorCode.BadRequest, "unable to mint a token; unknown tenant");
  return c.json({ token: await mintDevToken(fields.userId, tenant) });
});

// Every room route is authenticated. WebSocket upgrades carry the token in the query string,
// because browsers cannot set headers on a WebSocket.
const authenticate = async (c: Context<AppEnv>, next: () => Promise<void>): Promise<void> => {
  const isSocket = c.req.path.endsWith("/ws");
  const token = bearerToken(c.req.header("authorization")) ?? (isSocket ? c.req.query("token") : undefined);
  c.set("principal", await verifyToken(token, readConfig(c.env)));
  await next();
};
app.use("/v1/rooms", authenticate);
app.use("/v1/rooms/*", authenticate);

const roomOf = (c: Context<AppEnv>): RoomKey => ({
  tenant: c.get("principal").tenant,
  roomId: decoded(decodeRoomId(c.req.param("roomId"))),
});

app.get("/v1/rooms/:roomId/messages", async (c) => {
  const room = roomOf(c);
  const after = decoded(decodeSeqCursor("after", c.req.query("after")));
  const limit = decoded(decodeLimit("limit", c.req.query("limit"))) ?? DEFAULT_HISTORY_LIMIT;
  // Edge read path: a page after a cursor is answered from the Redis mirror when its trimmed
  // window still holds after+1 (then, written in order, it is contiguous), without waking the
  // room. It may end before the newest message by at most the mirror's lag.
  const mirror = mirrorOf(c.env);
  if (after !== undefined && mirror) {
    const fromRedis = await mirror.readAfter(room, after, limit).catch((error: unknown) => {
      console.warn(`edge read of ${room.tenant}:${room.roomId} fell back to the room: ${(error as Error).message}`);
      return undefined;
    });
    if (fromRedis) {
      c.header("x-chat-source", "redis");
      return c.json({ messages: fromRedis.messages, latestSeq: fromRedis.topSeq });
    }
  }
  const result = await roomStub(c.env, room).history(c.get("principal").userId, { after, limit });
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

// Rooms and members. Every change goes through the room's object (see Room, "Rooms and members").

app.post("/v1/rooms", async (c) => {
  const { userId, tenant } = c.get("principal");
  const init = decoded(decodeRoomInit(await readJson(c)));
  const room = { tenant, roomId: init.roomId ?? crypto.randomUUID() };
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
  // Only the Worker sets these headers; the room object is not reachable from outside. The room
  // itself is the object's name (ctx.id.name).
  const headers = new Headers({
    upgrade: "websocket",
    "x-chat-user": c.get("principal").userId,
    "x-chat-history": JSON.stringify(history),
    "x-chat-protocol": String(Math.min(protocol, PROTOCOL_VERSION)),
  });
  return roomStub(c.env, room).fetch(new Request("https://room.internal/ws", { headers }));
});

// The demo page and SDK bundle. In production the assets layer answers these before the
// Worker runs; this keeps them reachable where it does not (tests, other routers).
app.get("*", async (c, next) => {
  if (c.req.path.startsWith("/v1/")) return next();
  return c.env.ASSETS.fetch(c.req.raw);
});

app.notFound(() => Response.json(errorBody(ErrorCode.NotFound, "unable to find this route"), { status: 404 }));

app.onError((error, c) => {
  if (error instanceof ChatError) {
    const headers: Record<string, string> = {};
    if (error.retryAfterMs !== undefined) headers["retry-after"] = String(Math.ceil(error.retryAfterMs / 1000));
    return c.json(errorBody(error.code, error.message), error.status as 400, headers);
  }
  // Never leak internals: the client gets a code, the log gets the error (no secrets in it).
  console.error(`unhandled error on ${c.req.method} ${c.req.path}:`, error instanceof Error ? error.name : typeof error);
  return c.json(errorBody(ErrorCode.Internal, "unable to complete the request; internal error"), 500);
});
