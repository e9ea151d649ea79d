// Configuration, read once from the Worker environment. Bad configuration is reported loudly
// (in logs, and as `internal` to callers) instead of half-working.

import { parseWebhooks, type WebhookEndpoint, type WebhookEnv, type WebhookSettings, webhookSettings } from "./hooks/config.js";
import { outboundUrlProblem } from "./outbound.js";

/** How one tenant's tokens are verified and how its rooms behave. */
export interface TenantConfig {
  id: string;
  /** HS256 key shared with the tenant's backend. */
  hs256Secret: Uint8Array | undefined;
  /** RS256/ES256 keys published by the tenant's backend (fetched and cached). */
  jwksUrl: string | undefined;
  audience: string | undefined;
  issuer: string | undefined;
  /**
   * Open rooms: a room exists on first use (as a public room) and anyone of the tenant may send
   * in a public room, joining it as a member on the first send. Off: rooms are created through
   * the API and sending needs membership.
   */
  autoCreateRooms: boolean;
  /**
   * May `POST /v1/dev/token` (when DEV_TOKENS=true) mint this tenant's tokens? Only for tenants
   * without keys of their own: the `default` tenant from AUTH_SECRET and TENANTS entries marked
   * `"devOnly": true` (which verify with AUTH_SECRET). Never for a tenant with its own secret or
   * JWKS: a dev-token switch left on must not hand out a real tenant's identities.
   */
  devTokens: boolean;
  /** Browser origins allowed to call the REST API with this tenant's tokens (besides CORS_ORIGINS). */
  corsOrigins: string[];
  /** Sockets of this tenant's rooms go to regional replicas (docs/architecture.md), whatever REPLICATION says. */
  replication: boolean;
  /** Webhook endpoints (`webhooks` in TENANTS; src/hooks/config.ts, docs/webhooks.md). */
  webhooks: WebhookEndpoint[];
  /** The tenant's before-commit hook (docs/server-api.md), if it has one. */
  beforeCommit?: BeforeCommitConfig;
}

/**
 * A synchronous HTTP call before a message is sequenced: allow, reject or rewrite it. `failMode`
 * says what a timeout or a bad answer means: `open` lets the message through, `closed` refuses it
 * (`unavailable`, retry).
 */
export interface BeforeCommitConfig {
  url: string;
  /** HMAC-SHA256 key of the request's signature. */
  secret: string;
  timeoutMs: number;
  failMode: "open" | "closed";
}

export const BEFORE_COMMIT_DEFAULT_TIMEOUT_MS = 1000;
export const BEFORE_COMMIT_MAX_TIMEOUT_MS = 5000;

/** TENANTS.<id>.beforeCommit, checked (an SSRF-safe URL unless ALLOW_PRIVATE_URLS=true). */
export const parseBeforeCommit = (id: string, raw: unknown, allowPrivate: boolean): { value?: BeforeCommitConfig; error?: string } => {
  if (raw === undefined) return {};
  const where = `TENANTS.${id}.beforeCommit`;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return { error: `${where} must be an object {url, secret, timeoutMs?, failMode?}` };
  const h = raw as Record<string, unknown>;
  if (typeof h.url !== "string") return { error: `${where}.url must be a URL` };
  const problem = outboundUrlProblem(h.url, allowPrivate);
  if (problem) return { error: `${where}.url ${problem}` };
  if (typeof h.secret !== "string" || h.secret.length < 16) return { error: `${where}.secret must be a string of at least 16 characters` };
  const timeoutMs = h.timeoutMs ?? BEFORE_COMMIT_DEFAULT_TIMEOUT_MS;
  if (typeof timeoutMs !== "number" || !Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > BEFORE_COMMIT_MAX_TIMEOUT_MS) {
    return { error: `${where}.timeoutMs must be an integer from 1 to ${BEFORE_COMMIT_MAX_TIMEOUT_MS}` };
  }
  const failMode = h.failMode ?? "open";
  if (failMode !== "open" && failMode !== "closed") return { error: `${where}.failMode must be "open" or "closed"` };
  return { value: { url: h.url, secret: h.secret, timeoutMs, failMode } };
};

export const TENANT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const DEFAULT_TENANT = "default";

export interface Limits {
  /** Per user and room: sends refill at this rate… */
  sendRatePerSecond: number;
  /** …into a bucket this big (the burst a user may send at once). */
  sendBurst: number;
  /** Open sockets per user per room. */
  socketsPerUser: number;
  /** A join whose history is not ready by then is closed with `unavailable`. */
  handshakeTimeoutMs: number;
}

export interface Config {
  /** Every tenant that may authenticate, by id. Empty means the deployment is misconfigured. */
  tenants: Map<string, TenantConfig>;
  /** Set when TENANTS could not be parsed: every request is refused with `internal`. */
  configError: string | undefined;
  limits: Limits;
  devTokens: boolean;
  /** Tokens whose lifetime (exp − iat, or exp − now) is longer than this are refused. */
  maxTokenTtlS: number;
  /** CORS for the whole deployment: `any` (dev) or a list of origins (default: none). */
  corsOrigins: "any" | string[];
  /** Serve the demo page and the SDK bundle from public/ (default: off). */
  demoPage: boolean;
  /** Cross-room limits through the rate limiting bindings (default: on; `RATE_LIMITS=off` for load tests only). */
  rateLimits: boolean;
  databaseUrl: string | undefined;
  /** Local only: `host:port/path` of a Neon-protocol WebSocket proxy in front of a plain Postgres. */
  neonWsProxy: string | undefined;
  /** A Postgres statement that has not answered by then is treated as failed with an unknown outcome. */
  statementTimeoutMs: number;
  /** Idle Postgres connections are closed after this, so an idle room can hibernate. */
  postgresIdleMs: number;
  /**
   * Connections one room object may hold (commits are serial; the rest serve history reads and
   * role lookups). Every active room holds up to this many: point DATABASE_URL at Neon's pooled
   * endpoint when many rooms are active at once.
   */
  postgresMaxConnections: number;
  upstash: { url: string; token: string } | undefined;
  mirrorMaxLen: number;
  /**
   * How long the mirror waits after a commit before it writes, so that the commits of that window
   * go to Redis in one request (0: write at once). Lag for fewer requests: docs/benchmarks.md.
   */
  mirrorLingerMs: number;
  /** How many recent messages a room keeps in memory to answer handshakes without Postgres. */
  windowMessages: number;
  /** Regional replicas (src/replica/, docs/architecture.md "Regional replicas"). */
  replication: ReplicationConfig;
  /** Webhook delivery settings (WEBHOOK_*; the endpoints are per tenant). */
  webhooks: WebhookSettings;
}

export interface ReplicationConfig {
  /** REPLICATION=on: every tenant's sockets go to the replica of their region (else per tenant). */
  all: boolean;
  /** Replica objects per region and room (REPLICA_SHARDS); a user's sockets stay on one shard. */
  shards: number;
  /** REPLICA_REGION_OVERRIDE=true (dev and tests only): `?region=<hint>|primary` on the socket URL picks the route. */
  regionOverride: boolean;
  /** How often a replica with sockets checks in with the primary (REPLICA_SYNC_MS): re-registers, catches up, re-checks access. */
  syncMs: number;
}

export interface ConfigEnv extends WebhookEnv {
  AUTH_SECRET?: string;
  TENANTS?: string;
  AUTO_CREATE_ROOMS?: string;
  SEND_RATE_PER_S?: string;
  SEND_BURST?: string;
  MAX_SOCKETS_PER_USER?: string;
  HANDSHAKE_TIMEOUT_MS?: string;
  DEV_TOKENS?: string;
  MAX_TOKEN_TTL_S?: string;
  CORS_ORIGINS?: string;
  DEMO_PAGE?: string;
  RATE_LIMITS?: string;
  DATABASE_URL?: string;
  NEON_WSPROXY?: string;
  PG_STATEMENT_TIMEOUT_MS?: string;
  PG_IDLE_MS?: string;
  PG_MAX_CONNECTIONS?: string;
  UPSTASH_REDIS_REST_URL?: string;
  UPSTASH_REDIS_REST_TOKEN?: string;
  MIRROR_MAXLEN?: string;
  MIRROR_LINGER_MS?: string;
  HISTORY_WINDOW?: string;
  REPLICATION?: string;
  REPLICA_SHARDS?: string;
  REPLICA_REGION_OVERRIDE?: string;
  REPLICA_SYNC_MS?: string;
  /** Dev only: outbound URLs (before-commit hooks) may point at private and loopback addresses. */
  ALLOW_PRIVATE_URLS?: string;
}

const positiveInt = (value: string | undefined, fallback: number): number => {
  const n = Number(value);
  return value !== undefined && value !== "" && Number.isSafeInteger(n) && n > 0 ? n : fallback;
};

const nonNegativeInt = (value: string | undefined, fallback: number): number => {
  const n = Number(value);
  return value !== undefined && value !== "" && Number.isSafeInteger(n) && n >= 0 ? n : fallback;
};

/** The mirror's default linger (MIRROR_LINGER_MS), chosen by measurement (docs/benchmarks.md). */
export const MIRROR_LINGER_DEFAULT_MS = 10;

const nonEmpty = (value: string | undefined): string | undefined => (value ? value : undefined);

const encoder = new TextEncoder();

/**
 * An origin as browsers send it: `scheme://host[:port]`, nothing else. A typo ("https://app.example.com/")
 * is reported as a configuration error instead of silently never matching.
 */
export const parseOrigin = (value: string): string | undefined => {
  const trimmed = value.trim();
  try {
    const url = new URL(trimmed);
    return (url.protocol === "https:" || url.protocol === "http:") && url.origin === trimmed ? trimmed : undefined;
  } catch {
    return undefined;
  }
};

/** CORS_ORIGINS: `*` (any origin: dev only), a comma-separated list of origins, or empty (none). */
export const parseCorsOrigins = (value: string | undefined): { origins: "any" | string[]; error: string | undefined } => {
  const items = (value ?? "")
    .split(",")
    .map((o) => o.trim())
    .filter((o) => o !== "");
  if (items.length === 1 && items[0] === "*") return { origins: "any", error: undefined };
  const origins: string[] = [];
  for (const item of items) {
    const origin = parseOrigin(item);
    if (!origin) return { origins: [], error: `CORS_ORIGINS: ${JSON.stringify(item)} is not an origin like https://app.example.com` };
    origins.push(origin);
  }
  return { origins, error: undefined };
};

/**
 * TENANTS (a secret) is JSON: {"acme": {"secret": "...", "jwksUrl": "https://…/.well-known/jwks.json",
 * "audience": "...", "issuer": "...", "autoCreateRooms": false, "corsOrigins": ["https://app.acme.com"]}, …}.
 * A dev-only tenant, `{"sandbox": {"devOnly": true}}`, has no key of its own: its tokens are HS256
 * with AUTH_SECRET, and dev tokens may be minted for it. The `default` tenant comes from
 * AUTH_SECRET (+ AUTO_CREATE_ROOMS, default false) unless TENANTS defines it.
 */
export const parseTenants = (
  env: Pick<ConfigEnv, "TENANTS" | "AUTH_SECRET" | "AUTO_CREATE_ROOMS" | "WEBHOOKS_ALLOW_PRIVATE" | "ALLOW_PRIVATE_URLS">,
): { tenants: Map<string, TenantConfig>; error: string | undefined } => {
  const tenants = new Map<string, TenantConfig>();
  const devSecret = env.AUTH_SECRET ? encoder.encode(env.AUTH_SECRET) : undefined;
  if (devSecret) {
    tenants.set(DEFAULT_TENANT, {
      id: DEFAULT_TENANT,
      hs256Secret: devSecret,
      jwksUrl: undefined,
      audience: undefined,
      issuer: undefined,
      // Open rooms let any reader create a room and become its admin: opt in, never by default.
      autoCreateRooms: env.AUTO_CREATE_ROOMS === "true",
      devTokens: true,
      corsOrigins: [],
      replication: false,
      webhooks: [],
    });
  }
  if (!env.TENANTS) return { tenants, error: undefined };
  let parsed: unknown;
  try {
    parsed = JSON.parse(env.TENANTS);
  } catch {
    return { tenants, error: "TENANTS is not valid JSON" };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return { tenants, error: "TENANTS must be a JSON object of tenant id → settings" };
  }
  for (const [id, raw] of Object.entries(parsed)) {
    if (!TENANT_ID_PATTERN.test(id)) return { tenants, error: `TENANTS: tenant id ${JSON.stringify(id)} is not 1–64 of [A-Za-z0-9_-]` };
    const t = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
    const str = (key: string): string | undefined => (typeof t[key] === "string" && t[key] !== "" ? (t[key] as string) : undefined);
    const secret = str("secret");
    const jwksUrl = str("jwksUrl");
    const devOnly = t.devOnly === true;
    if (devOnly && (secret || jwksUrl)) {
      return { tenants, error: `TENANTS.${id}: a devOnly tenant verifies with AUTH_SECRET; remove its secret / jwksUrl` };
    }
    if (devOnly && !devSecret) return { tenants, error: `TENANTS.${id}: a devOnly tenant needs AUTH_SECRET` };
    if (!devOnly && !secret && !jwksUrl) {
      return { tenants, error: `TENANTS.${id}: give a secret (HS256) or a jwksUrl (RS256/ES256), or "devOnly": true` };
    }
    const corsOrigins: string[] = [];
    const rawOrigins = t.corsOrigins ?? [];
    if (!Array.isArray(rawOrigins)) return { tenants, error: `TENANTS.${id}.corsOrigins must be an array of origins` };
    for (const item of rawOrigins) {
      const origin = typeof item === "string" ? parseOrigin(item) : undefined;
      if (!origin) return { tenants, error: `TENANTS.${id}.corsOrigins: ${JSON.stringify(item)} is not an origin like https://app.example.com` };
      corsOrigins.push(origin);
    }
    const hooks = parseWebhooks(id, t.webhooks, env.WEBHOOKS_ALLOW_PRIVATE === "true");
    if (hooks.error) return { tenants, error: hooks.error };
    const hook = parseBeforeCommit(id, t.beforeCommit, env.ALLOW_PRIVATE_URLS === "true");
    if (hook.error) return { tenants, error: hook.error };
    tenants.set(id, {
      id,
      hs256Secret: devOnly ? devSecret : secret ? encoder.encode(secret) : undefined,
      jwksUrl,
      audience: str("audience"),
      issuer: str("issuer"),
      autoCreateRooms: t.autoCreateRooms === true,
      devTokens: devOnly,
      corsOrigins,
      replication: t.replication === true,
      webhooks: hooks.endpoints,
      ...(hook.value ? { beforeCommit: hook.value } : {}),
    });
  }
  return { tenants, error: undefined };
};

/**
 * The environment of an isolate does not change between requests, but the Worker reads its
 * configuration on every request (auth is the first thing each one does): parse it once per env.
 */
const configs = new WeakMap<object, Config>();

export const readConfig = (env: ConfigEnv): Config => {
  let config = configs.get(env);
  if (!config) {
    config = parseConfig(env);
    configs.set(env, config);
  }
  return config;
};

const parseConfig = (env: ConfigEnv): Config => {
  const upstashUrl = nonEmpty(env.UPSTASH_REDIS_REST_URL);
  const upstashToken = nonEmpty(env.UPSTASH_REDIS_REST_TOKEN);
  const { tenants, error } = parseTenants(env);
  const cors = parseCorsOrigins(env.CORS_ORIGINS);
  return {
    tenants,
    configError: error ?? cors.error ?? (tenants.size === 0 ? "no tenant is configured: set AUTH_SECRET or TENANTS" : undefined),
    limits: {
      sendRatePerSecond: positiveInt(env.SEND_RATE_PER_S, 10),
      sendBurst: positiveInt(env.SEND_BURST, 30),
      socketsPerUser: positiveInt(env.MAX_SOCKETS_PER_USER, 8),
      handshakeTimeoutMs: positiveInt(env.HANDSHAKE_TIMEOUT_MS, 5000),
    },
    devTokens: env.DEV_TOKENS === "true",
    maxTokenTtlS: positiveInt(env.MAX_TOKEN_TTL_S, 24 * 60 * 60),
    corsOrigins: cors.origins,
    demoPage: env.DEMO_PAGE === "true",
    rateLimits: env.RATE_LIMITS !== "off",
    databaseUrl: nonEmpty(env.DATABASE_URL),
    neonWsProxy: nonEmpty(env.NEON_WSPROXY),
    statementTimeoutMs: positiveInt(env.PG_STATEMENT_TIMEOUT_MS, 5000),
    postgresIdleMs: positiveInt(env.PG_IDLE_MS, 10_000),
    postgresMaxConnections: positiveInt(env.PG_MAX_CONNECTIONS, 2),
    upstash: upstashUrl && upstashToken ? { url: upstashUrl, token: upstashToken } : undefined,
    mirrorMaxLen: positiveInt(env.MIRROR_MAXLEN, 1000),
    mirrorLingerMs: nonNegativeInt(env.MIRROR_LINGER_MS, MIRROR_LINGER_DEFAULT_MS),
    windowMessages: positiveInt(env.HISTORY_WINDOW, 1000),
    replication: {
      all: env.REPLICATION === "on",
      shards: Math.min(64, positiveInt(env.REPLICA_SHARDS, 1)),
      regionOverride: env.REPLICA_REGION_OVERRIDE === "true",
      syncMs: positiveInt(env.REPLICA_SYNC_MS, 30_000),
    },
    webhooks: webhookSettings(env),
  };
};
