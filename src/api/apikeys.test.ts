// API keys without a database: the format, the hash at rest, and that every way of being wrong
// answers the same.

import { describe, expect, it } from "vitest";
import type { ApiKeyRecord } from "../storage/moderation.js";
import { hashSecret, mintApiKey, parseApiKey, verifyApiKey } from "./apikeys.js";

describe("API keys", () => {
  it("mints ecsk_<id>_<secret> whose stored hash is the SHA-256 of the secret, never the secret", async () => {
    const minted = await mintApiKey();
    const parsed = parseApiKey(minted.key);
    expect(parsed?.id).toBe(minted.id);
    expect(minted.secretHash).toBe(await hashSecret(parsed?.secret ?? ""));
    expect(minted.secretHash).not.toContain(parsed?.secret ?? "?");
    expect(parseApiKey("eyJhbGciOi.x.y")).toBeUndefined();
    expect(parseApiKey(`${minted.key}x`)).toBeUndefined();
  });

  it("verifies a good key and refuses unknown, revoked and wrong-secret keys with the same answer", async () => {
    const minted = await mintApiKey();
    const row: ApiKeyRecord = { id: minted.id, tenant: "acme", name: "k", secretHash: minted.secretHash, createdAt: "", revokedAt: null };
    expect(await verifyApiKey(minted.key, async () => row)).toEqual({ tenant: "acme", keyId: minted.id });
    const other = await mintApiKey();
    const messages = new Set<string>();
    for (const [key, found] of [
      [minted.key, undefined],
      [minted.key, { ...row, revokedAt: "2026-12-03T00:00:00.000Z" }],
      [`ecsk_${minted.id}_${(other.key.split("_")[2] ?? "").padEnd(43, "A")}`, row],
    ] as const) {
      await verifyApiKey(key, async () => found).then(
        () => expect.unreachable(),
        (error: { code: string; message: string }) => {
          expect(error.code).toBe("unauthorized");
          messages.add(error.message);
        },
      );
    }
    expect(messages.size).toBe(1);
  });
});
