// Limits across rooms. A room's own limits (its send bucket, its socket cap) only see that room;
// a user spread over many rooms, or a client hammering routes without a valid token, is only
// visible from outside any one room. These limits go through Cloudflare's rate limiting binding
// (`[[ratelimits]]` in wrangler.toml): a counter per key, kept by the platform, shared by every
// isolate of a location, and the same binding inside the room object.
//
// The binding is a fixed window (period 10 or 60 s; locally aligned to the wall clock, so a burst
// straddling a boundary may get up to twice the limit) and answers only "over or not". The hint
// we give back is the end of the current window, which is never later than one period.

import { type ConfigEnv, readConfig } from "./config.js";
import { ChatError, ErrorCode } from "./protocol/errors.js";
import { errorFields, logger } from "./observability/log.js";

/** Every limit, its binding, how it is keyed, and its window (kept in step with wrangler.toml). */
export const LIMITS = {
  /** Room creations per user (tenant + user), across the tenant's rooms. */
  roomCreate: { binding: "LIMIT_ROOM_CREATE", periodS: 60, what: "room creations" },
  /** WebSocket opens per user (tenant + user), across the tenant's rooms. */
  socketOpen: { binding: "LIMIT_SOCKET_OPEN", periodS: 60, what: "socket opens" },
  /** Sends per user (tenant + user), across the tenant's rooms (called by the room object). */
  send: { binding: "LIMIT_SEND", periodS: 10, what: "sends" },
  /** Attachment uploads per user (tenant + user), across the tenant's rooms. */
  upload: { binding: "LIMIT_UPLOAD", periodS: 60, what: "uploads" },
  /** Per client IP: dev-token mints and requests whose authentication failed. */
  unauthenticated: { binding: "LIMIT_UNAUTHENTICATED", periodS: 60, what: "unauthenticated requests" },
  /** Server API calls per tenant (an API key's tenant), across the tenant's rooms. */
  serverApi: { binding: "LIMIT_SERVER_API", periodS: 10, what: "server API calls" },
} as const;

export type LimitName = keyof typeof LIMITS;

export type LimitOutcome = { ok: true } | { ok: false; retryAfterMs: number };

/** The part of the Worker's (or the room object's) env this module reads. */
export type LimitEnv = ConfigEnv & { LOG_LEVEL?: string } & { [K in (typeof LIMITS)[LimitName]["binding"]]?: RateLimit };

/** The key of a per-user limit: the same user id in two tenants is two users. */
export const userLimitKey = (tenant: string, userId: string): string => `${tenant}:${userId}`;

/**
 * The key of a per-IP limit. Cloudflare always sets cf-connecting-ip; without it (tests) all
 * callers share one key. An IPv6 client usually holds a whole /64 and can pick a fresh address
 * per request, so IPv6 addresses are keyed by their /64.
 */
export const ipLimitKey = (request: Request): string =>
  `ip:${clientNetwork(request.headers.get("cf-connecting-ip") ?? "unknown")}`;

/** An IPv4 address as it is; an IPv6 address as its first four groups (its /64). */
export const clientNetwork = (ip: string): string => {
  if (!ip.includes(":")) return ip;
  // An IPv4-mapped address (::ffff:192.0.2.1) is its IPv4 address.
  if (ip.includes(".")) return ip.slice(ip.lastIndexOf(":") + 1);
  const [head = "", tail] = ip.toLowerCase().split("::", 2);
  const groups = head === "" ? [] : head.split(":");
  if (tail !== undefined) {
    const rest = tail === "" ? [] : tail.split(":");
    groups.push(...Array(Math.max(0, 8 - groups.length - rest.length)).fill("0"), ...rest);
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
};

const warned = new Set<string>();

/**
 * Counts one event against a limit and says whether it is allowed. Never throws: a missing
 * binding or a failing limiter lets the event through (and logs once), because a limiter outage
 * must not take the chat down with it.
 *
 * @example
 *   const outcome = await limitOf(this.env, "send", userLimitKey(tenant, userId));
 *   if (!outcome.ok) return rateLimited(outcome.retryAfterMs);
 */
export const limitOf = async (env: LimitEnv, name: LimitName, key: string): Promise<LimitOutcome> => {
  const limit = LIMITS[name];
  if (!readConfig(env).rateLimits) return { ok: true };
  const binding = env[limit.binding];
  if (!binding) {
    if (!warned.has(limit.binding)) {
      warned.add(limit.binding);
      logger(env).warn({ event: "limit_binding_missing", op: name, binding: limit.binding });
    }
    return { ok: true };
  }
  try {
    const { success } = await binding.limit({ key });
    return success ? { ok: true } : { ok: false, retryAfterMs: windowRemainingMs(limit.periodS) };
  } catch (error) {
    logger(env).warn({ event: "limit_failed", op: name, ...errorFields(error) });
    return { ok: true };
  }
};

/** Time to the end of the current fixed window (at least 1 s, so Retry-After is never 0). */
export const windowRemainingMs = (periodS: number, now = Date.now()): number => {
  const periodMs = periodS * 1000;
  return Math.max(1000, periodMs - (now % periodMs));
};

/** The Worker's form: throws `rate_limited` (429 + Retry-After) when over the limit. */
export const enforceLimit = async (env: LimitEnv, name: LimitName, key: string, operation: string): Promise<void> => {
  const outcome = await limitOf(env, name, key);
  if (outcome.ok) return;
  throw new ChatError(
    ErrorCode.RateLimited,
    `unable to ${operation}; too many ${LIMITS[name].what}, retry in ${Math.ceil(outcome.retryAfterMs / 1000)} s`,
    { retryAfterMs: outcome.retryAfterMs },
  );
};
