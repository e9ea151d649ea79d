// Configuration, read once from the Worker environment. Bad configuration is reported loudly
// (in logs, and as `internal` to callers) instead of half-working.

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
}

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
  /** How many recent messages a room keeps in memory to answer handshakes without Postgres. */
  windowMessages: number;
}

export interface ConfigEnv {
  AUTH_SECRET?: string;
  TENANTS?: string;
  AUTO_CREATE_ROOMS?: string;
  SEND_RATE_PER_S?: string;
  SEND_BURST?: string;
  MAX_SOCKETS_PER_USER?: string;
  HANDSHAKE_TIMEOUT_MS?: string;
  DEV_TOKENS?: string;
  DATABASE_URL?: string;
  NEON_WSPROXY?: string;
  PG_STATEMENT_TIMEOUT_MS?: string;
  PG_IDLE_MS?: string;
  PG_MAX_CONNECTIONS?: string;
  UPSTASH_REDIS_REST_URL?: string;
  UPSTASH_REDIS_REST_TOKEN?: string;
  MIRROR_MAXLEN?: string;
  HISTORY_WINDOW?: string;
}

const positiveInt = (value: string | undefined, fallback: number): number => {
  const n = Number(value);
  return value !== undefined && value !== "" && Number.isSafeInteger(n) && n > 0 ? n : fallback;
};

const nonEmpty = (value: string | undefined): string | undefined => (value ? value : undefined);

const encoder = new TextEncoder();

/**
 * TENANTS (a secret) is JSON: {"acme": {"secret": "...", "jwksUrl": "https://…/.well-known/jwks.json",
 * "audience": "...", "issuer": "...", "autoCreateRooms": false}, …}. The `default` tenant comes from
 * AUTH_SECRET (+ AUTO_CREATE_ROOMS, default true) unless TENANTS defines it.
 */
export const parseTenants = (
  env: Pick<ConfigEnv, "TENANTS" | "AUTH_SECRET" | "AUTO_CREATE_ROOMS">,
): { tenants: Map<string, TenantConfig>; error: string | undefined } => {
  const tenants = new Map<string, TenantConfig>();
  if (env.AUTH_SECRET) {
    tenants.set(DEFAULT_TENANT, {
      id: DEFAULT_TENANT,
      hs256Secret: encoder.encode(env.AUTH_SECRET),
      jwksUrl: undefined,
      audience: undefined,
      issuer: undefined,
      autoCreateRooms: env.AUTO_CREATE_ROOMS !== "false",
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
    if (!secret && !jwksUrl) return { tenants, error: `TENANTS.${id}: give a secret (HS256) or a jwksUrl (RS256/ES256)` };
    tenants.set(id, {
      id,
      hs256Secret: secret ? encoder.encode(secret) : undefined,
      jwksUrl,
      audience: str("audience"),
      issuer: str("issuer"),
      autoCreateRooms: t.autoCreateRooms === true,
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
  return {
    tenants,
    configError: error ?? (tenants.size === 0 ? "no tenant is configured: set AUTH_SECRET or TENANTS" : undefined),
    limits: {
      sendRatePerSecond: positiveInt(env.SEND_RATE_PER_S, 10),
      sendBurst: positiveInt(env.SEND_BURST, 30),
      socketsPerUser: positiveInt(env.MAX_SOCKETS_PER_USER, 8),
      handshakeTimeoutMs: positiveInt(env.HANDSHAKE_TIMEOUT_MS, 5000),
    },
    devTokens: env.DEV_TOKENS === "true",
    databaseUrl: nonEmpty(env.DATABASE_URL),
    neonWsProxy: nonEmpty(env.NEON_WSPROXY),
    statementTimeoutMs: positiveInt(env.PG_STATEMENT_TIMEOUT_MS, 5000),
    postgresIdleMs: positiveInt(env.PG_IDLE_MS, 10_000),
    postgresMaxConnections: positiveInt(env.PG_MAX_CONNECTIONS, 2),
    upstash: upstashUrl && upstashToken ? { url: upstashUrl, token: upstashToken } : undefined,
    mirrorMaxLen: positiveInt(env.MIRROR_MAXLEN, 1000),
    windowMessages: positiveInt(env.HISTORY_WINDOW, 1000),
  };
};
