// Helpers for the moderation and server API tests: API keys made the way the CLI makes them
// (minted, only the hash stored), and calls with a key.

import { mintApiKey } from "../src/api/apikeys.js";
import { api, signToken, sql } from "./helpers.js";

/** A fresh API key of `tenant`, stored as the server stores it (hash only); returns the full key. */
export const serverKey = async (tenant: string, name = "test"): Promise<{ key: string; id: string }> => {
  const minted = await mintApiKey();
  await sql("INSERT INTO api_keys (id, tenant, name, secret_hash) VALUES ($1, $2, $3, $4)", [minted.id, tenant, name, minted.secretHash]);
  return { key: minted.key, id: minted.id };
};

/** A call to the server API with `key`. */
export const serverApi = (key: string, path: string, init: { method?: string; body?: unknown } = {}) =>
  api(path, { ...init, token: key });

export const TENANT_SECRETS: Record<string, string> = {
  modt: "modt-secret-not-for-production",
  hooked: "hooked-secret-not-for-production",
  hookedc: "hookedc-secret-not-for-production",
};

/** A user token of one of the moderation tests' tenants. */
export const tenantToken = (tenant: string, userId: string): Promise<string> => {
  const secret = TENANT_SECRETS[tenant];
  if (!secret) throw new Error(`no secret for ${tenant}`);
  return signToken({ sub: userId, tenant }, { secret });
};
