// Configuration, read once from the Worker environment. Bad configuration is reported loudly
// (in logs, and as `internal` to callers) instead of half-working.

export interface Config {
  /** HS256 key for user tokens; undefined means the deployment is misconfigured. */
  authSecret: Uint8Array | undefined;
  devTokens: boolean;
  databaseUrl: string | undefined;
  /** Local only: `host:port/path` of a Neon-protocol WebSocket proxy in front of a plain Postgres. */
  neonWsProxy: string | undefined;
  /** A Postgres statement that has not answered by then is treated as failed with an unknown outcome. */
  statementTimeoutMs: number;
  /** Idle Postgres connections are closed after this, so an idle room can hibernate. */
  postgresIdleMs: number;
  upstash: { url: string; token: string } | undefined;
  mirrorMaxLen: number;
  /** How many recent messages a room keeps in memory to answer handshakes without Postgres. */
  windowMessages: number;
  /** The most sends in one commit. 1 turns group commit off (the benchmark's baseline). */
  maxBatchSize: number;
  /** `pooled` keeps connections open between batches; `per-batch` opens one per statement (benchmark baseline). */
  postgresConnections: "pooled" | "per-batch";
}

export interface ConfigEnv {
  AUTH_SECRET?: string;
  DEV_TOKENS?: string;
  DATABASE_URL?: string;
  NEON_WSPROXY?: string;
  PG_STATEMENT_TIMEOUT_MS?: string;
  PG_IDLE_MS?: string;
  UPSTASH_REDIS_REST_URL?: string;
  UPSTASH_REDIS_REST_TOKEN?: string;
  MIRROR_MAXLEN?: string;
  HISTORY_WINDOW?: string;
  MAX_BATCH_SIZE?: string;
  PG_CONNECTIONS?: string;
}

const positiveInt = (value: string | undefined, fallback: number): number => {
  const n = Number(value);
  return value !== undefined && value !== "" && Number.isSafeInteger(n) && n > 0 ? n : fallback;
};

const nonEmpty = (value: string | undefined): string | undefined => (value ? value : undefined);

export const readConfig = (env: ConfigEnv): Config => {
  const upstashUrl = nonEmpty(env.UPSTASH_REDIS_REST_URL);
  const upstashToken = nonEmpty(env.UPSTASH_REDIS_REST_TOKEN);
  return {
    authSecret: env.AUTH_SECRET ? new TextEncoder().encode(env.AUTH_SECRET) : undefined,
    devTokens: env.DEV_TOKENS === "true",
    databaseUrl: nonEmpty(env.DATABASE_URL),
    neonWsProxy: nonEmpty(env.NEON_WSPROXY),
    statementTimeoutMs: positiveInt(env.PG_STATEMENT_TIMEOUT_MS, 5000),
    postgresIdleMs: positiveInt(env.PG_IDLE_MS, 10_000),
    upstash: upstashUrl && upstashToken ? { url: upstashUrl, token: upstashToken } : undefined,
    mirrorMaxLen: positiveInt(env.MIRROR_MAXLEN, 1000),
    windowMessages: positiveInt(env.HISTORY_WINDOW, 1000),
    maxBatchSize: positiveInt(env.MAX_BATCH_SIZE, 500),
    postgresConnections: env.PG_CONNECTIONS === "per-batch" ? "per-batch" : "pooled",
  };
};
