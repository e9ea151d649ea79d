// The one entry point every harness (vitest globalSetup, `npm run dev`, chaos and bench scripts) uses
// to get a database and Redis the Worker can reach, the same way it reaches them in production:
// Postgres through a Neon wsproxy, Redis through an Upstash REST endpoint.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { migrate } from "../migrate.js";
import { LOCAL_PG_URL, LOCAL_REDIS_URL, probePostgres, probeRedis } from "./detect.js";
import { isLocalHost } from "./neon.js";
import { redact } from "./net.js";
import { startWsProxy, type WsProxy } from "./wsproxy.js";

export interface LocalStackOptions {
  purpose: "test" | "dev" | "bench";
  /** Fail instead of falling back to PGlite or running without Redis. Default: CI === "true". */
  requireReal?: boolean;
  /** Embedded PGlite data. Default: .data/pglite for dev, a temp dir (deleted on close) otherwise. */
  dataDir?: string;
  /** Default: the repo's migrations/. */
  migrationsDir?: string;
}

export interface LocalRedis {
  kind: "env" | "local";
  /** The Upstash-REST shim in front of redisUrl. */
  restUrl: string;
  restToken: string;
  /** POST {"down": true|false} here to make the REST endpoint fail like an outage. */
  controlUrl: string;
  redisUrl: string;
}

export interface LocalStack {
  databaseUrl: string;
  databaseKind: "env" | "local-postgres" | "embedded";
  /** "127.0.0.1:PORT/v1", for neonConfig.wsProxy; "" when DATABASE_URL is remote (connect directly). */
  neonWsProxy: string;
  /** "http://127.0.0.1:PORT/__faults"; "" when there is no proxy. */
  faultsUrl: string;
  redis: LocalRedis | null;
  /** One line per service: what is used, where. */
  describe(): string;
  close(): Promise<void>;
}

const REPO_MIGRATIONS = fileURLToPath(new URL("../../migrations", import.meta.url));

function missing(service: string, tried: string, why: string, fix: string): Error {
  return new Error(
    [
      `startLocalStack: a real ${service} is required (requireReal / CI=true) but none is usable.`,
      `  tried: ${tried}`,
      `  error: ${why}`,
      `  fix:   ${fix}`,
    ].join("\n"),
  );
}

export async function startLocalStack(opts: LocalStackOptions): Promise<LocalStack> {
  const requireReal = opts.requireReal ?? process.env.CI === "true";
  const cleanup: (() => Promise<void>)[] = []; // run in reverse on close or on a failed start
  const close = async (): Promise<void> => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch((e: unknown) => console.warn("stack close:", e));
  };
  const lines: string[] = [];
  // REDIS=off: run without the mirror even when a Redis answers (dev would otherwise mirror into
  // whatever listens on 6379). Refused where a real Redis is required (CI).
  const redisOff = process.env.REDIS === "off";
  if (redisOff && requireReal) throw new Error("unable to start the local stack; REDIS=off, but this run requires a real Redis (CI=true)");
  const redisUrl = process.env.REDIS_URL ?? LOCAL_REDIS_URL;
  const redisKind = process.env.REDIS_URL ? "env" : "local";
  // Probed first so that CI fails fast, before a database is started and migrated for nothing.
  const redisFailed = redisOff ? "turned off with REDIS=off" : await probeRedis(redisUrl);
  if (redisFailed !== null && requireReal) {
    const fix = "start redis-server on 127.0.0.1:6379 (apt's redis is not started by the install), or set REDIS_URL";
    throw missing("Redis", redact(redisUrl), redisFailed, fix);
  }
  try {
    // --- Database ---------------------------------------------------------------------------
    let databaseUrl = process.env.DATABASE_URL ?? "";
    let databaseKind: LocalStack["databaseKind"] = "env";
    let proxy: WsProxy | undefined;
    const startProxy = async (): Promise<WsProxy> => {
      const p = await startWsProxy();
      cleanup.push(() => p.close());
      return p;
    };
    if (databaseUrl) {
      if (isLocalHost(new URL(databaseUrl).hostname)) proxy = await startProxy();
      lines.push(`database: DATABASE_URL ${redact(databaseUrl)}${proxy ? ` via wsproxy ${proxy.endpoint}` : " (direct)"}`);
    } else {
      let why = "DATABASE_URL is not set, and purpose dev does not look for a local PostgreSQL";
      if (opts.purpose !== "dev") {
        proxy = await startProxy();
        const failed = await probePostgres(LOCAL_PG_URL, proxy.endpoint);
        if (failed === null) {
          databaseUrl = LOCAL_PG_URL;
          databaseKind = "local-postgres";
          lines.push(`database: local PostgreSQL ${LOCAL_PG_URL} via wsproxy ${proxy.endpoint}`);
        } else why = failed;
      }
      if (!databaseUrl) {
        if (requireReal)
          throw missing(
            "PostgreSQL",
            opts.purpose === "dev" ? "DATABASE_URL" : LOCAL_PG_URL,
            why,
            "start PostgreSQL on 127.0.0.1:5432 with a database `test` that user postgres may use (trust auth), or set DATABASE_URL",
          );
        const dataDir = opts.dataDir ?? (opts.purpose === "dev" ? ".data/pglite" : await mkdtemp(join(tmpdir(), "edge-chat-pglite-")));
        if (!opts.dataDir && opts.purpose !== "dev") cleanup.push(() => rm(dataDir, { recursive: true, force: true }));
        const { startPgliteServer } = await import("./pglite-server.js");
        const pg = await startPgliteServer({ dataDir });
        cleanup.push(() => pg.close());
        proxy ??= await startProxy();
        databaseUrl = `postgres://postgres@127.0.0.1:${pg.port}/postgres`;
        databaseKind = "embedded";
        const reason = opts.purpose === "dev" ? "no DATABASE_URL" : `no PostgreSQL at ${LOCAL_PG_URL}: ${why}`;
        lines.push(`database: embedded PGlite (${dataDir}) on 127.0.0.1:${pg.port} via wsproxy ${proxy.endpoint} (${reason})`);
      }
    }
    await migrate(databaseUrl, proxy?.endpoint, opts.migrationsDir ?? REPO_MIGRATIONS);

    // --- Redis ------------------------------------------------------------------------------
    let redis: LocalRedis | null = null;
    if (redisFailed === null) {
      const { startUpstashShim } = await import("./upstash.js");
      const restToken = randomBytes(16).toString("hex");
      const shim = await startUpstashShim({ redisUrl, token: restToken });
      cleanup.push(() => shim.close());
      redis = { kind: redisKind, restUrl: shim.url, restToken, controlUrl: `${shim.url}/__control`, redisUrl };
      lines.push(`redis: ${redisKind === "env" ? "REDIS_URL" : "local Redis"} ${redact(redisUrl)} via Upstash REST shim ${shim.url}`);
    } else {
      lines.push(`redis: none, mirror off (no Redis found at ${redact(redisUrl)}: ${redisFailed})`);
    }

    return {
      databaseUrl,
      databaseKind,
      neonWsProxy: proxy?.endpoint ?? "",
      faultsUrl: proxy ? `http://127.0.0.1:${proxy.port}/__faults` : "",
      redis,
      describe: () => lines.join("\n"),
      close,
    };
  } catch (e) {
    await close();
    throw e;
  }
}
