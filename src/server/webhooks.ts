// Webhook signatures: how the Worker signs a delivery and how a receiver checks it. Web Crypto
// only, so the same file runs in Workers, Node 20+ and browsers; the server SDK re-exports it.
//
//   signature = hex(HMAC-SHA256(secret, `${timestamp}.${rawBody}`)), header `v1=<signature>`
//
// The timestamp is inside the signed text, so an attacker who captured a delivery cannot change
// it; a receiver that refuses timestamps older than its window (default 5 minutes) refuses a
// replay after that, and one that remembers event ids (which it needs anyway: delivery is at
// least once) refuses a replay inside it. docs/webhooks.md, "Verifying a delivery".

/** Header names of a delivery (lower case, as `Headers` reports them). */
export const WebhookHeader = {
  /** The event id (`tenant:room:seq`…): the deduplication key. */
  Id: "x-edge-chat-event-id",
  /** The event type. */
  Type: "x-edge-chat-event-type",
  /** Unix seconds when this attempt was signed (a retry is signed anew). */
  Timestamp: "x-edge-chat-timestamp",
  /** `v1=<hex HMAC-SHA256>`; several comma-separated values while a secret is being rotated. */
  Signature: "x-edge-chat-signature",
} as const;

/** Default replay window: deliveries signed longer ago than this (or this far in the future) are refused. */
export const DEFAULT_TOLERANCE_S = 300;

const encoder = new TextEncoder();

const keyOf = (secret: string, usage: "sign" | "verify"): ReturnType<typeof crypto.subtle.importKey> =>
  crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [usage]);

const hex = (bytes: ArrayBuffer): string => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");

const unhex = (text: string): Uint8Array | undefined => {
  if (!/^(?:[0-9a-f]{2})+$/.test(text)) return undefined;
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return out;
};

/** The signature header's value for `body` signed at `timestamp` (Unix seconds). */
export const signWebhook = async (secret: string, timestamp: number, body: string): Promise<string> => {
  const mac = await crypto.subtle.sign("HMAC", await keyOf(secret, "sign"), encoder.encode(`${timestamp}.${body}`));
  return `v1=${hex(mac)}`;
};

export type VerifyFailure = "missing_header" | "bad_timestamp" | "replayed_or_stale" | "bad_signature" | "bad_body";

export type VerifyResult<T> = { ok: true; event: T } | { ok: false; reason: VerifyFailure; message: string };

export interface VerifyOptions {
  secret: string;
  /** The raw request body, exactly as received (re-serialised JSON does not verify). */
  body: string;
  /** The request's headers (a `Headers` or a plain object with lower-case names, as Node gives them). */
  headers: Headers | Record<string, string | string[] | undefined>;
  /** Replay window in seconds (default 300). */
  toleranceS?: number;
  /** Now, in Unix seconds (tests). */
  now?: number;
}

const header = (headers: VerifyOptions["headers"], name: string): string | undefined => {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
};

/**
 * Checks a delivery: the timestamp is inside the replay window and one of the `v1=` signatures
 * is the HMAC of `timestamp.body` under `secret` (compared in constant time by Web Crypto).
 * Then parse and deduplicate by `event.id`: a retry or a replay inside the window carries an id
 * you have seen.
 *
 * @example
 * const result = await verifyWebhook({ secret: process.env.CHAT_WEBHOOK_SECRET!, body: rawBody, headers: req.headers });
 * if (!result.ok) return res.writeHead(400).end(result.message);
 * if (await seen(result.event.id)) return res.writeHead(200).end(); // a duplicate: already handled
 */
export const verifyWebhook = async <T = WebhookDelivery>(options: VerifyOptions): Promise<VerifyResult<T>> => {
  const fail = (reason: VerifyFailure, message: string): VerifyResult<T> => ({ ok: false, reason, message });
  const stamp = header(options.headers, WebhookHeader.Timestamp);
  const signature = header(options.headers, WebhookHeader.Signature);
  if (!stamp || !signature) return fail("missing_header", `unable to verify the webhook; ${WebhookHeader.Timestamp} and ${WebhookHeader.Signature} are required`);
  if (!/^\d{1,12}$/.test(stamp)) return fail("bad_timestamp", `unable to verify the webhook; ${WebhookHeader.Timestamp} is not Unix seconds`);
  const timestamp = Number(stamp);
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const tolerance = options.toleranceS ?? DEFAULT_TOLERANCE_S;
  if (Math.abs(now - timestamp) > tolerance) {
    return fail("replayed_or_stale", `unable to verify the webhook; it was signed ${now - timestamp} s ago, outside the ${tolerance} s window (a replay, or a clock off)`);
  }
  const key = await keyOf(options.secret, "verify");
  const signed = encoder.encode(`${timestamp}.${options.body}`);
  let valid = false;
  for (const part of signature.split(",")) {
    const [version, value] = part.trim().split("=", 2);
    const mac = version === "v1" && value ? unhex(value) : undefined;
    if (mac && (await crypto.subtle.verify("HMAC", key, mac, signed))) valid = true;
  }
  if (!valid) return fail("bad_signature", "unable to verify the webhook; no signature matches (wrong secret, or the body was changed)");
  try {
    return { ok: true, event: JSON.parse(options.body) as T };
  } catch {
    return fail("bad_body", "unable to verify the webhook; the body is not JSON");
  }
};

/** The body of a delivery (docs/webhooks.md, "Event catalogue"). */
export interface WebhookDelivery {
  id: string;
  type: string;
  tenant: string;
  roomId: string;
  seq: number | null;
  /** For seq events: the seq of the previous event this endpoint was sent in this room (0: none). A receiver that has `prevSeq` knows it missed nothing. */
  prevSeq?: number;
  createdAt: string;
  data: Record<string, unknown>;
}
