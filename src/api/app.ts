// The Worker: authenticates, validates and routes. It holds no room state and opens no
// database connection; every room read and write goes through that room's object.

import { Hono } from "hono";
import type { Context } from "hono";
import { readConfig } from "../config.js";
import {
  type Decoded,
  decodeHistoryRequest,
  decodeLimit,
  decodeRoomId,
  decodeSendRequest,
  decodeSeqCursor,
} from "../protocol/codec.js";
import { ChatError, ErrorCode, errorBody } from "../protocol/errors.js";
import { DEFAULT_HISTORY_LIMIT, MAX_FRAME_BYTES } from "../protocol/limits.js";
import type { Failure } from "../room/results.js";
import { UpstashMirror } from "../storage/redis.js";
import type { RoomKey } from "../storage/types.js";
import { bearerToken, mintDevToken, type Principal, USER_ID_PATTERN, verifyToken } from "./auth.js";

type AppEnv = { Bindings: Env; Variables: { principal: Principal } };

export const app = new Hono<AppEnv>();

/** Unwraps a codec result, or throws its typed error (answered by onError). */
const decoded = <T>(result: Decoded<T>): T => {
  if (!result.ok) throw new ChatError(result.error.code, result.error.message);
  return result.value;
};

const throwFailure = (f: Failure): never => {
  throw new ChatError(f.code, f.message, f.retryAfterMs === undefined ? undefined : { retryAfterMs: f.retryAfterMs });
};

/** Reads a JSON body with a size cap, before parsing it. */
const readJson = async (c: Context<AppEnv>): Promise<unknown> => {
  const declared = Number(c.req.header("content-length") ?? "0");
  if (declared > MAX_FRAME_BYTES) throw new ChatError(ErrorCode.TooLarge, `unable to read the body; it is over ${MAX_FRAME_BYTES} bytes`);
  const text = await c.req.text();
  if (new TextEncoder().encode(text).length > MAX_FRAME_BYTES) {
    throw new ChatError(ErrorCode.TooLarge, `unable to read the body; it is over ${MAX_FRAME_BYTES} bytes`);
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

const roomStub = (env: Env, room: RoomKey) => env.ROOM.get(env.ROOM.idFromName(`${room.tenant}:${room.roomId}`));

app.get("/healthz", (c) => c.json({ ok: true }));

app.post("/v1/dev/token", async (c) => {
  const config = readConfig(c.env);
  if (!config.devTokens) throw new ChatError(ErrorCode.NotFound, "unable to find this route");
  if (!config.authSecret) throw new ChatError(ErrorCode.Internal, "unable to mint a token; the server has no AUTH_SECRET");
  const body = await readJson(c);
  const userId = typeof body === "object" && body !== null ? (body as { userId?: unknown }).userId : undefined;
  if (typeof userId !== "string" || !USER_ID_PATTERN.test(userId)) {
    throw new ChatError(ErrorCode.BadRequest, "unable to mint a token; userId must be 1–64 characters of A-Z a-z 0-9 _ . @ : -");
  }
  return c.json({ token: await mintDevToken(userId, config.authSecret) });
});

// Every room route is authenticated. WebSocket upgrades carry the token in the query string,
// because browsers cannot set headers on a WebSocket.
app.use("/v1/rooms/*", async (c, next) => {
  const isSocket = c.req.path.endsWith("/ws");
  const token = bearerToken(c.req.header("authorization")) ?? (isSocket ? c.req.query("token") : undefined);
  c.set("principal", await verifyToken(token, readConfig(c.env).authSecret));
  await next();
});

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
  const result = await roomStub(c.env, room).history(room, { after, limit });
  if (!result.ok) return throwFailure(result);
  c.header("x-chat-source", "room");
  return c.json(result.value);
});

app.get("/v1/rooms/:roomId/status", async (c) => {
  const room = roomOf(c);
  const result = await roomStub(c.env, room).status(room);
  if (!result.ok) return throwFailure(result);
  return c.json(result.value);
});

app.post("/v1/rooms/:roomId/messages", async (c) => {
  const room = roomOf(c);
  const request = decoded(decodeSendRequest(await readJson(c)));
  const result = await roomStub(c.env, room).send(room, c.get("principal").userId, request);
  if (!result.ok) return throwFailure(result);
  return c.json({ message: result.message }, result.duplicate ? 200 : 201);
});

app.get("/v1/rooms/:roomId/ws", async (c) => {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new ChatError(ErrorCode.BadRequest, "unable to connect; expected a WebSocket upgrade");
  }
  const room = roomOf(c);
  const history = decoded(decodeHistoryRequest(c.req.query("since"), c.req.query("last")));
  // Only the Worker sets these headers; the room object is not reachable from outside.
  const headers = new Headers({
    upgrade: "websocket",
    "x-chat-tenant": room.tenant,
    "x-chat-room": room.roomId,
    "x-chat-user": c.get("principal").userId,
    "x-chat-history": JSON.stringify(history),
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
