// Applies migrations/NNN_name.sql once each, in number order, one transaction per file, through the
// same Neon driver the Worker uses (so a migration that the driver cannot run fails here, not in prod).
// CLI: `npm run migrate` targets DATABASE_URL, else the embedded PGlite in .data/pglite.
import { readdir, readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { PoolClient } from "@neondatabase/serverless";
import { isLocalHost, neonPool } from "./local/neon.js";
import { redact } from "./local/net.js";
import { startWsProxy } from "./local/wsproxy.js";

/** Any constant works; it only has to be the same for every migrator of this schema. */
const LOCK_KEY = 0x6564_6765; // "edge"

interface Migration {
  version: string;
  file: string;
}

async function listMigrations(dir: string): Promise<Migration[]> {
  const files = await readdir(dir).catch((e: unknown) => {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  });
  const found = files.flatMap((file) => {
    const m = /^(\d+)_[\w.-]+\.sql$/.exec(file);
    return m?.[1] ? [{ version: m[1], file }] : [];
  });
  found.sort((a, b) => Number(a.version) - Number(b.version));
  found.forEach((m, i) => {
    // "001" and "1" sort the same but would be tracked as two versions: refuse the ambiguity.
    const prev = found[i - 1];
    if (prev && Number(prev.version) === Number(m.version))
      throw new Error(`unable to migrate; ${prev.file} and ${m.file} have the same number`);
  });
  return found;
}

/** Session-level advisory lock so two migrators (CI, parallel test setups) never interleave. */
async function lock(client: PoolClient): Promise<boolean> {
  try {
    await client.query("select pg_advisory_lock($1)", [LOCK_KEY]);
    return true;
  } catch (e) {
    // A database without advisory locks relies on the per-file re-check below.
    console.warn(`migrate: pg_advisory_lock unavailable (${String(e)}); continuing without it`);
    return false;
  }
}

/**
 * Applies pending migrations from dir (default ./migrations) and returns the versions it applied.
 * A version is the file's number prefix as written ("001"), so renaming a file does not re-run it.
 * For a local database without neonWsProxyEndpoint, a temporary wsproxy is started.
 */
export async function migrate(databaseUrl: string, neonWsProxyEndpoint?: string, dir = "migrations"): Promise<string[]> {
  const migrations = await listMigrations(resolve(dir));
  const host = new URL(databaseUrl).hostname;
  const tmpProxy = neonWsProxyEndpoint === undefined && isLocalHost(host) ? await startWsProxy() : undefined;
  const pool = neonPool(databaseUrl, neonWsProxyEndpoint ?? tmpProxy?.endpoint, 1);
  const applied: string[] = [];
  try {
    const client = await pool.connect().catch((e: unknown) => {
      const via = neonWsProxyEndpoint ?? tmpProxy?.endpoint;
      const target = `${redact(databaseUrl)}${via ? ` via wsproxy ${via}` : ""}`;
      throw new Error(`unable to migrate; cannot connect to ${target}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    });
    client.on("error", () => {}); // a socket error also rejects the pending query; that is what we report
    try {
      const locked = await lock(client); // first: concurrent CREATE TABLE IF NOT EXISTS can still collide
      await client.query(
        "create table if not exists schema_migrations (version text primary key, applied_at timestamptz default now())",
      );
      for (const m of migrations) {
        const sql = await readFile(join(resolve(dir), m.file), "utf8");
        await client.query("begin");
        try {
          // Checked inside the transaction: another migrator may have applied it while we waited.
          const done = await client.query("select 1 from schema_migrations where version = $1", [m.version]);
          if (done.rowCount) {
            await client.query("rollback");
            continue;
          }
          await client.query(sql); // no parameters: simple protocol, so a file may hold many statements
          await client.query("insert into schema_migrations (version) values ($1)", [m.version]);
          await client.query("commit");
          applied.push(m.version);
        } catch (e) {
          await client.query("rollback").catch(() => {});
          throw new Error(`unable to migrate; ${m.file} failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
        }
      }
      if (locked) await client.query("select pg_advisory_unlock($1)", [LOCK_KEY]);
    } finally {
      client.release();
    }
  } finally {
    await pool.end();
    await tmpProxy?.close();
  }
  return applied;
}

async function main(): Promise<void> {
  let url = process.env.DATABASE_URL;
  let stop = async (): Promise<void> => {};
  if (!url) {
    // Without a database of their own, users get the same embedded one `npm run dev` uses.
    const { startPgliteServer } = await import("./local/pglite-server.js");
    const pg = await startPgliteServer({ dataDir: ".data/pglite" });
    url = `postgres://postgres@127.0.0.1:${pg.port}/postgres`;
    stop = pg.close;
    console.log("migrate: no DATABASE_URL; using the embedded PGlite in .data/pglite");
  }
  try {
    const applied = await migrate(url);
    console.log(applied.length ? `migrate: applied ${applied.join(", ")}` : "migrate: up to date");
  } finally {
    await stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
