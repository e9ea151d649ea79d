// Attachments over HTTP (issue #17): uploads streamed into R2, downloads streamed out of it, the
// signed URLs that <img> tags use (they cannot send a bearer token), and the sweep of uploads
// never sent. The room object decides who may do what and keeps the records
// (src/room/attachments.ts); the bytes go between the client and R2 through the Worker only, never
// through the room object, whose CPU sequences the room.
//
// An upload, step by step (each refusal is a typed error and leaves nothing stored):
//   1. rate limit per user (LIMIT_UPLOAD), name and type checked, Content-Length required, > 0 and
//      under the cap (413 before a byte is read);
//   2. the room admits the upload (the caller may send there, under the pending quota) and picks
//      its id;
//   3. the first bytes are read and sniffed: a declared type the bytes contradict is refused;
//   4. the rest streams to R2 through a length check and a SHA-256 (never buffered whole);
//   5. the room records it; if that fails, the object is deleted again.
// If R2 fails mid-upload, R2 keeps nothing (a put is all or nothing) and the client hears
// `unavailable`: upload again. If the object is lost after step 5, the send that names it is
// refused with `not_found` (the room checks the object), so no message references missing bytes.

import { ChatError, ErrorCode, errorBody } from "../protocol/errors.js";
import { ATTACHMENT_ID_PATTERN } from "../protocol/parts.js";
import type { Failure, RoomResult } from "../room/results.js";
import { roomStub } from "../room/address.js";
import {
  type AttachmentDescriptor,
  AttachmentStore,
  attachmentConfig,
  INLINE_TYPES,
  objectKey,
} from "../storage/attachments.js";
import { useLocalWsProxy } from "../storage/postgres.js";
import { checkFileName, contentDisposition, DIMENSION_SCAN_BYTES, imageSize, SNIFF_BYTES, sniffProblem } from "../storage/sniff.js";
import type { RoomKey, Visibility } from "../storage/types.js";
import { readConfig } from "../config.js";
import { enforceLimit, userLimitKey } from "../limits.js";
import { errorFields, logger } from "../observability/log.js";

const unwrap = <T>(result: RoomResult<T>): T => {
  if (result.ok) return result.value;
  const f: Failure = result;
  throw new ChatError(f.code, f.message, f.retryAfterMs === undefined ? undefined : { retryAfterMs: f.retryAfterMs });
};

const bucketOf = (env: Env): R2Bucket => {
  if (!env.ATTACHMENTS) throw new ChatError(ErrorCode.NotFound, "unable to use attachments; this deployment has no attachment bucket");
  return env.ATTACHMENTS;
};

/** The declared type without parameters (`text/plain; charset=utf-8` → `text/plain`). */
const mediaType = (header: string | null): string => (header ?? "").split(";")[0]?.trim().toLowerCase() ?? "";

const toHex = (buffer: ArrayBuffer): string => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");

const concat = (chunks: readonly Uint8Array[], size: number): Uint8Array => {
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c.subarray(0, Math.min(c.byteLength, size - at)), at);
    at += Math.min(c.byteLength, size - at);
    if (at >= size) break;
  }
  return out;
};

/** `POST /v1/rooms/{roomId}/attachments?name=<file name>`, the bytes as the body. */
export const upload = async (env: Env, request: Request, room: RoomKey, userId: string): Promise<Response> => {
  const config = attachmentConfig(env);
  const bucket = bucketOf(env);
  await enforceLimit(env, "upload", userLimitKey(room.tenant, userId), "upload");
  const name = checkFileName(new URL(request.url).searchParams.get("name") ?? "");
  if (!name.ok) throw new ChatError(ErrorCode.BadRequest, `unable to upload; ${name.reason}`);
  const type = mediaType(request.headers.get("content-type"));
  if (!config.types.has(type)) {
    throw new ChatError(ErrorCode.BadRequest, `unable to upload; content type ${JSON.stringify(type.slice(0, 100))} is not accepted (${[...config.types].join(", ")})`);
  }
  const declared = request.headers.get("content-length");
  // R2 stores a stream only of known length; a chunked body would have to be buffered whole.
  if (declared === null || !/^\d{1,15}$/.test(declared)) {
    throw new ChatError(ErrorCode.BadRequest, "unable to upload; send the file with a Content-Length (not chunked)");
  }
  const size = Number(declared);
  if (size === 0) throw new ChatError(ErrorCode.BadRequest, "unable to upload; the file is empty (zero bytes)");
  if (size > config.maxBytes) throw new ChatError(ErrorCode.TooLarge, `unable to upload; the file is over ${config.maxBytes} bytes`);
  if (!request.body) throw new ChatError(ErrorCode.BadRequest, "unable to upload; the body is missing");

  const stub = roomStub(env, room);
  const { id, key, visibility } = unwrap(await stub.admitUpload(userId));

  // The head: enough bytes to sniff, read before anything is stored.
  const reader = request.body.getReader();
  const head: Uint8Array[] = [];
  let headSize = 0;
  let ended = false;
  while (headSize < Math.min(SNIFF_BYTES, size)) {
    const { done, value } = await reader.read();
    if (done) {
      ended = true;
      break;
    }
    head.push(value);
    headSize += value.byteLength;
  }
  const problem = sniffProblem(type, concat(head, Math.min(headSize, SNIFF_BYTES)), ended || headSize >= size);
  if (problem) {
    reader.cancel().catch(() => {});
    throw new ChatError(ErrorCode.BadRequest, `unable to upload; ${problem}`);
  }

  // The rest streams through: counted (never more than declared), hashed, and for images the
  // first DIMENSION_SCAN_BYTES kept to read the dimensions. R2 needs the length up front.
  const digest = new crypto.DigestStream("SHA-256");
  // Rejects when the upload is aborted: handled here, awaited only after a complete upload.
  digest.digest.catch(() => {});
  const digestWriter = digest.getWriter();
  const fixed = new FixedLengthStream(size);
  const writer = fixed.writable.getWriter();
  // An aborted upload rejects these too; the outcome is read from `pump` and `put` below.
  writer.closed.catch(() => {});
  digestWriter.closed.catch(() => {});
  const scan: Uint8Array[] = [];
  let scanned = 0;
  const isImage = INLINE_TYPES.has(type);
  let written = 0;
  const pump = async (): Promise<void> => {
    const pass = async (chunk: Uint8Array): Promise<void> => {
      written += chunk.byteLength;
      if (written > size) throw new ChatError(ErrorCode.TooLarge, `unable to upload; the body is longer than its Content-Length`);
      if (isImage && scanned < DIMENSION_SCAN_BYTES) {
        scan.push(chunk);
        scanned += chunk.byteLength;
      }
      await Promise.all([writer.write(chunk), digestWriter.write(chunk)]);
    };
    try {
      for (const chunk of head) await pass(chunk);
      while (!ended) {
        const { done, value } = await reader.read();
        if (done) break;
        await pass(value);
      }
      if (written !== size) throw new ChatError(ErrorCode.BadRequest, "unable to upload; the body ended before its Content-Length");
      await writer.close();
      await digestWriter.close();
    } catch (error) {
      // R2 sees the stream fail and stores nothing.
      writer.abort(error).catch(() => {});
      digestWriter.abort(error).catch(() => {});
      reader.cancel().catch(() => {});
      throw error;
    }
  };
  const put = bucket.put(key, fixed.readable, {
    httpMetadata: { contentType: type },
    customMetadata: { tenant: room.tenant, room: room.roomId, user: userId },
  });
  const [pumped, stored] = await Promise.allSettled([pump(), put]);
  if (pumped.status === "rejected") {
    void put.catch(() => {});
    if (pumped.reason instanceof ChatError) throw pumped.reason;
    // The client went away or the stream broke: nothing was stored.
    throw new ChatError(ErrorCode.BadRequest, "unable to upload; the body could not be read to its end", { cause: pumped.reason });
  }
  if (stored.status === "rejected") {
    throw new ChatError(ErrorCode.Unavailable, "unable to upload; storage failed, nothing was stored, retry", { cause: stored.reason });
  }
  const sha256 = toHex(await digest.digest);
  const dims = isImage ? imageSize(type, concat(scan, Math.min(scanned, DIMENSION_SCAN_BYTES))) : undefined;
  const recorded = await stub.recordUpload(userId, { id, name: name.name, size, type, sha256, ...(dims ?? {}) });
  if (!recorded.ok) {
    // No record, no upload: the object must not outlive the refusal (best effort; the sweep
    // cannot see an object without a row, so this delete is the only chance, and it is retried once).
    await bucket.delete(key).catch(() => bucket.delete(key)).catch((error: unknown) => {
      logger(env).warn({ event: "attachment_orphan", tenant: room.tenant, room: room.roomId, op: "upload", ...errorFields(error) });
    });
    unwrap(recorded);
  }
  const attachment = unwrap(recorded);
  return Response.json({ attachment: { ...attachment, ...(await signedUrl(env, request, room, attachment, visibility)) } }, { status: 201 });
};

// ---------------------------------------------------------------------------------------------
// Downloads

const encoder = new TextEncoder();

const hmacKey = async (secret: string): Promise<CryptoKey> =>
  crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);

const base64url = (bytes: ArrayBuffer): string =>
  btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");

const fromBase64url = (text: string): Uint8Array | undefined => {
  if (!/^[A-Za-z0-9_-]{1,100}$/.test(text)) return undefined;
  const bin = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
};

/** What a signed URL vouches for: tenant, room, attachment, expiry, and how it may be cached. */
const signedPayload = (room: RoomKey, id: string, exp: number, scope: "public" | "private"): string =>
  `v1\n${room.tenant}\n${room.roomId}\n${id}\n${exp}\n${scope}`;

/**
 * A short-lived URL for the attachment that needs no token (for <img src>). Anyone holding it can
 * fetch the bytes until it expires: it is handed only to callers who may read the room, and it
 * lives ATTACHMENT_URL_TTL_S (default 5 minutes).
 */
export const signedUrl = async (
  env: Env,
  request: Request,
  room: RoomKey,
  attachment: Pick<AttachmentDescriptor, "id">,
  visibility: Visibility,
): Promise<{ url: string; urlExpiresAt: string }> => {
  const config = attachmentConfig(env);
  if (!config.urlSecret) throw new ChatError(ErrorCode.Internal, "unable to sign the URL; no secret is configured");
  // Rounded up to the minute, so the URLs handed out within a minute are one URL to a cache.
  const exp = Math.ceil((Date.now() / 1000 + config.urlTtlS) / 60) * 60;
  const scope = visibility === "public" ? "public" : "private";
  const sig = base64url(await crypto.subtle.sign("HMAC", await hmacKey(config.urlSecret), encoder.encode(signedPayload(room, attachment.id, exp, scope))));
  const path = `/v1/attachments/${encodeURIComponent(room.tenant)}/${encodeURIComponent(room.roomId)}/${attachment.id}`;
  const url = new URL(`${path}?exp=${exp}&scope=${scope}&sig=${sig}`, request.url);
  return { url: url.href, urlExpiresAt: new Date(exp * 1000).toISOString() };
};

export const checkAttachmentId = (id: string | undefined): string => {
  if (id === undefined || !ATTACHMENT_ID_PATTERN.test(id)) throw new ChatError(ErrorCode.NotFound, "unable to find the attachment");
  return id;
};

/** `GET /v1/rooms/{roomId}/attachments/{id}`: the bytes, to a reader of the room (bearer token). */
export const download = async (env: Env, request: Request, room: RoomKey, userId: string, id: string): Promise<Response> => {
  const bucket = bucketOf(env);
  const grant = unwrap(await roomStub(env, room).attachment(userId, id));
  // Behind a bearer token: only the browser may keep it, never a shared cache.
  return serveObject(bucket, request, grant.key, grant.attachment, "private, max-age=3600");
};

/** `GET /v1/rooms/{roomId}/attachments/{id}/url`: a signed URL for <img> (and the descriptor). */
export const issueUrl = async (env: Env, request: Request, room: RoomKey, userId: string, id: string): Promise<Response> => {
  const grant = unwrap(await roomStub(env, room).attachment(userId, id));
  return Response.json({ attachment: { ...grant.attachment, ...(await signedUrl(env, request, room, grant.attachment, grant.visibility)) } });
};

/** `GET /v1/attachments/{tenant}/{roomId}/{id}?exp=&scope=&sig=`: the bytes, to whoever holds a valid signed URL. */
export const signedDownload = async (env: Env, request: Request, room: RoomKey, id: string): Promise<Response> => {
  const bucket = bucketOf(env);
  const config = attachmentConfig(env);
  const params = new URL(request.url).searchParams;
  const exp = Number(params.get("exp"));
  const scope = params.get("scope");
  const sig = fromBase64url(params.get("sig") ?? "");
  if (!config.urlSecret || !sig || !Number.isSafeInteger(exp) || (scope !== "public" && scope !== "private")) {
    throw new ChatError(ErrorCode.Forbidden, "unable to serve the attachment; the link is not valid");
  }
  // crypto.subtle.verify compares in constant time.
  const valid = await crypto.subtle.verify("HMAC", await hmacKey(config.urlSecret), sig, encoder.encode(signedPayload(room, id, exp, scope)));
  if (!valid) throw new ChatError(ErrorCode.Forbidden, "unable to serve the attachment; the link is not valid");
  const left = exp - Math.floor(Date.now() / 1000);
  if (left <= 0) throw new ChatError(ErrorCode.Forbidden, "unable to serve the attachment; the link has expired, ask for a new one");
  // A public room's link may sit in a CDN until it expires (the URL is the key, and it is
  // unguessable); a private room's only in the browser.
  const cache = `${scope}, max-age=${left}, immutable`;
  return serveObject(bucket, request, objectKey(room, id), undefined, cache);
};

type ByteRange = { offset: number; length: number };

/** One `bytes=` range against `size` (a list of ranges is served whole: allowed by RFC 9110). */
const parseRange = (header: string | null, size: number): ByteRange | "unsatisfiable" | undefined => {
  if (header === null) return undefined;
  const m = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (!m) return undefined;
  const [, a = "", b = ""] = m;
  if (a === "" && b === "") return undefined;
  if (a === "") {
    const n = Number(b);
    if (n === 0) return "unsatisfiable";
    return { offset: Math.max(0, size - n), length: Math.min(n, size) };
  }
  const start = Number(a);
  if (start >= size) return "unsatisfiable";
  const end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
  if (end < start) return undefined;
  return { offset: start, length: end - start + 1 };
};

/**
 * Streams an object with the headers that keep it inert: its stored type, `nosniff`, a sandboxing
 * CSP, and `Content-Disposition: attachment` for everything but the four image types (so HTML,
 * SVG or a PDF is never rendered in our origin). Supports one byte range and If-None-Match.
 */
const serveObject = async (
  bucket: R2Bucket,
  request: Request,
  key: string,
  known: AttachmentDescriptor | undefined,
  cacheControl: string,
): Promise<Response> => {
  const meta = await bucket.head(key);
  if (!meta) throw new ChatError(ErrorCode.NotFound, "unable to find the attachment; it was deleted");
  const size = meta.size;
  const etag = meta.httpEtag;
  const type = meta.httpMetadata?.contentType ?? "application/octet-stream";
  const inline = INLINE_TYPES.has(type);
  const headers = new Headers({
    "content-type": type === "text/plain" ? "text/plain; charset=utf-8" : type,
    "content-disposition": contentDisposition(inline ? "inline" : "attachment", known?.name ?? `${key.slice(key.lastIndexOf("/") + 1)}`),
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; sandbox",
    "cache-control": cacheControl,
    "accept-ranges": "bytes",
    etag,
  });
  const inm = request.headers.get("if-none-match");
  if (inm?.split(",").some((t) => t.trim() === etag || t.trim() === "*")) return new Response(null, { status: 304, headers });
  const range = parseRange(request.headers.get("range"), size);
  if (range === "unsatisfiable") {
    headers.set("content-range", `bytes */${size}`);
    headers.set("content-type", "application/json");
    headers.delete("content-disposition");
    // 416 is HTTP's own answer to a range past the end; the body still carries a code of the table.
    return new Response(JSON.stringify(errorBody(ErrorCode.BadRequest, "unable to serve the range; it starts past the end")), { status: 416, headers });
  }
  const object = await bucket.get(key, range ? { range } : {});
  if (!object) throw new ChatError(ErrorCode.NotFound, "unable to find the attachment; it was deleted");
  if (range) {
    headers.set("content-range", `bytes ${range.offset}-${range.offset + range.length - 1}/${size}`);
    headers.set("content-length", String(range.length));
    return new Response(object.body, { status: 206, headers });
  }
  headers.set("content-length", String(size));
  return new Response(object.body, { status: 200, headers });
};

// ---------------------------------------------------------------------------------------------
// The sweep

/**
 * Deletes uploads never bound to a message and older than ATTACHMENT_UNBOUND_TTL_S, across
 * tenants, oldest first: objects first, then their rows (re-checked in the statement), so a
 * failure in between leaves rows the next run finds again, never an object without a row.
 * Runs from the cron trigger (wrangler.toml); returns how many uploads it removed.
 */
export const sweepUnbound = async (env: Env, options: { batch?: number; rounds?: number } = {}): Promise<number> => {
  const config = readConfig(env);
  const bucket = env.ATTACHMENTS;
  if (!bucket || !config.databaseUrl) return 0;
  if (config.neonWsProxy) useLocalWsProxy(config.neonWsProxy);
  const { unboundTtlS } = attachmentConfig(env);
  const store = new AttachmentStore({ connectionString: config.databaseUrl, statementTimeoutMs: config.statementTimeoutMs, idleTimeoutMs: 1000 });
  const batch = options.batch ?? 500;
  let removed = 0;
  try {
    for (let round = 0; round < (options.rounds ?? 10); round++) {
      const items = await store.expired(unboundTtlS, batch);
      if (items.length === 0) break;
      await bucket.delete(items.map((i) => objectKey(i, i.id)));
      removed += await store.removeExpired(items, unboundTtlS);
      if (items.length < batch) break;
    }
  } finally {
    await store.close();
  }
  if (removed > 0) logger(env).info({ event: "attachments_swept", op: "sweep", count: removed });
  return removed;
};
