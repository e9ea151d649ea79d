// Finds the real services on this machine. Each probe does real work (a query, a PING), because an
// open port alone does not mean the database `test` exists or that the thing on 6379 is Redis.
import IORedis from "ioredis";
// Default import: vitest loads this file through Vite, which does not see ioredis' CJS named exports.
const { Redis } = IORedis;
import { neonPool } from "./neon.js";
import { probe } from "./net.js";

export const LOCAL_PG_URL = "postgres://postgres@127.0.0.1:5432/test";
export const LOCAL_REDIS_URL = "redis://127.0.0.1:6379";

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Runs `select 1` on databaseUrl through the wsproxy; resolves to null if it works, else why not. */
export async function probePostgres(databaseUrl: string, wsProxyEndpoint: string): Promise<string | null> {
  const url = new URL(databaseUrl);
  if (!(await probe(url.hostname, Number(url.port || 5432)))) return `nothing listening on ${url.host}`;
  const pool = neonPool(databaseUrl, wsProxyEndpoint, 1);
  try {
    await withTimeout(pool.query("select 1"), 3000, "Postgres");
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  } finally {
    // A connection stuck in its handshake (not Postgres on that port) would keep end() waiting.
    await withTimeout(pool.end(), 1000, "pool.end").catch(() => {});
  }
}

/** Sends PING to redisUrl; resolves to null if it answers PONG, else why not. */
export async function probeRedis(redisUrl: string): Promise<string | null> {
  const url = new URL(redisUrl);
  if (!(await probe(url.hostname, Number(url.port || 6379)))) return `nothing listening on ${url.host}`;
  const redis = new Redis(redisUrl, {
    lazyConnect: true,
    connectTimeout: 1000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null, // one attempt: this is a probe, not a client
  });
  redis.on("error", () => {}); // the rejected connect() carries the same error
  try {
    await withTimeout(redis.connect(), 2000, "Redis");
    const pong = await withTimeout(redis.ping(), 2000, "Redis");
    return pong === "PONG" ? null : `unexpected PING reply ${JSON.stringify(pong)}`;
  } catch (e) {
    return `no answer to PING, is it Redis? (${e instanceof Error ? e.message : String(e)})`;
  } finally {
    redis.disconnect();
  }
}
