// Tenant API keys for the server API: `ecsk_<id>_<secret>`. The id (16 hex characters) is public
// and finds the row; the secret (32 random bytes, base64url) is shown once, at creation, and only
// its SHA-256 is stored. A fast hash is enough for 256 random bits (nothing to brute-force; a
// password hash is for low-entropy secrets), and the comparison is constant-time.

import { ChatError, ErrorCode } from "../protocol/errors.js";
import type { ApiKeyRecord } from "../storage/moderation.js";

export const API_KEY_PREFIX = "ecsk_";
const KEY_PATTERN = /^ecsk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

const base64url = (bytes: Uint8Array): string => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const hex = (bytes: Uint8Array): string => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");

export const hashSecret = async (secret: string): Promise<string> =>
  hex(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret))));

/** A new key: the full key (give it to the caller once) and what is stored. */
export const mintApiKey = async (): Promise<{ key: string; id: string; secretHash: string }> => {
  const id = hex(crypto.getRandomValues(new Uint8Array(8)));
  const secret = base64url(crypto.getRandomValues(new Uint8Array(32)));
  return { key: `${API_KEY_PREFIX}${id}_${secret}`, id, secretHash: await hashSecret(secret) };
};

/** The id and secret of a well-formed key; undefined for anything else (a JWT, garbage). */
export const parseApiKey = (value: string | undefined): { id: string; secret: string } | undefined => {
  const m = value === undefined ? null : KEY_PATTERN.exec(value);
  return m?.[1] && m[2] ? { id: m[1], secret: m[2] } : undefined;
};

const sameHex = (a: string, b: string): boolean => {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
};

const refused = (): ChatError => new ChatError(ErrorCode.Unauthorized, "unable to authenticate; the API key is invalid or revoked");

/**
 * The tenant a presented key acts for. Unknown, revoked and wrong secrets all answer the same,
 * so a caller learns nothing about which key ids exist.
 */
export const verifyApiKey = async (
  presented: string | undefined,
  find: (id: string) => Promise<ApiKeyRecord | undefined>,
): Promise<{ tenant: string; keyId: string }> => {
  const parsed = parseApiKey(presented);
  if (!parsed) throw new ChatError(ErrorCode.Unauthorized, "unable to authenticate; the server API takes an API key (Authorization: Bearer ecsk_…)");
  const record = await find(parsed.id);
  const hash = await hashSecret(parsed.secret);
  if (!record || record.revokedAt !== null || !sameHex(hash, record.secretHash)) throw refused();
  return { tenant: record.tenant, keyId: record.id };
};
