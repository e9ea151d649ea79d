// Creates a tenant's first server API key (later keys: POST /v1/server/keys with a key). Writes
// only the SHA-256 of the secret and prints the key once.
// CLI: `DATABASE_URL=… npm run api-key -- <tenant> [name]`
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { mintApiKey } from "../src/api/apikeys.js";
import { isLocalHost, neonPool } from "./local/neon.js";
import { startWsProxy } from "./local/wsproxy.js";

export async function createApiKey(databaseUrl: string, tenant: string, name: string): Promise<string> {
  const tmpProxy = isLocalHost(new URL(databaseUrl).hostname) ? await startWsProxy() : undefined;
  const pool = neonPool(databaseUrl, tmpProxy?.endpoint, 1);
  try {
    const minted = await mintApiKey();
    await pool.query("INSERT INTO api_keys (id, tenant, name, secret_hash) VALUES ($1, $2, $3, $4)", [minted.id, tenant, name, minted.secretHash]);
    return minted.key;
  } finally {
    await pool.end();
    await tmpProxy?.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const [tenant, name = "server"] = process.argv.slice(2);
  const url = process.env.DATABASE_URL;
  if (!tenant || !url || !/^[A-Za-z0-9_-]{1,64}$/.test(tenant)) {
    console.error("usage: DATABASE_URL=postgres://… npm run api-key -- <tenant> [name]");
    process.exit(2);
  }
  createApiKey(url, tenant, name)
    .then((key) => console.log(key))
    .catch((e: unknown) => {
      console.error(e instanceof Error ? e.message : e);
      process.exit(1);
    });
}
