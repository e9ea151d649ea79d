// Attachments from the browser (issue #17): upload a file to a room (with progress), and get a
// short-lived URL to show it in an <img> or a download link. The bytes go straight to the Worker
// (`POST /v1/rooms/{roomId}/attachments`), never over the room's socket: a message only carries
// a reference (an `attachment` part, src/protocol/parts.ts).
//
// Progress: fetch cannot report upload progress in browsers, XMLHttpRequest can, so the SDK uses
// XMLHttpRequest where it exists and the caller asked for progress, and fetch everywhere else
// (Node, workers, tests), reporting 0 and then the whole size.

import { ErrorCode, httpStatusOf } from "../protocol/errors.js";
import type { AttachmentDescriptor } from "../protocol/parts.js";
import { decodeErrorBody } from "./decode.js";
import { ChatClientError } from "./errors.js";
import type { TokenSource } from "./token.js";
import { apiUrl } from "./transport.js";

/** What an upload answers: the stored file, and a signed URL valid until `urlExpiresAt`. */
export interface Attachment extends AttachmentDescriptor {
  /** A URL that needs no token (for <img src> and download links), valid for a few minutes. */
  url: string;
  urlExpiresAt: string;
}

export interface UploadProgress {
  loaded: number;
  total: number;
}

export interface UploadOptions {
  /** The file name shown to others (default: the File's name, else "file"). */
  name?: string;
  /** The content type (default: the Blob's type, else application/octet-stream). */
  type?: string;
  onProgress?: (progress: UploadProgress) => void;
  signal?: AbortSignal;
}

/** Where uploads go and how they are authenticated (the room gives its own). */
export interface AttachmentTarget {
  baseUrl: string;
  roomId: string;
  tokens: TokenSource;
  /** Default: the global fetch. */
  fetch?: typeof fetch;
}

interface RawResponse {
  status: number;
  text: string;
  retryAfter: string | null;
}

const codeOfStatus = (status: number): ErrorCode =>
  (Object.entries(httpStatusOf).find(([, s]) => s === status)?.[0] as ErrorCode | undefined) ??
  (status >= 500 ? ErrorCode.Unavailable : ErrorCode.BadRequest);

const isAttachment = (value: unknown): value is Attachment => {
  if (typeof value !== "object" || value === null) return false;
  const a = value as Record<string, unknown>;
  return (
    typeof a.id === "string" &&
    typeof a.name === "string" &&
    typeof a.size === "number" &&
    typeof a.type === "string" &&
    typeof a.sha256 === "string" &&
    typeof a.url === "string" &&
    typeof a.urlExpiresAt === "string"
  );
};

/** The part of XMLHttpRequest the SDK uses (typed here: the SDK also builds without the DOM library). */
interface XhrLike {
  open(method: string, url: string): void;
  setRequestHeader(name: string, value: string): void;
  upload: { onprogress: ((event: { loaded: number; total: number; lengthComputable: boolean }) => void) | null };
  onload: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
  readonly status: number;
  readonly responseText: string;
  getResponseHeader(name: string): string | null;
  send(body: Blob): void;
  abort(): void;
}

const xhrConstructor = (): (new () => XhrLike) | undefined => (globalThis as { XMLHttpRequest?: new () => XhrLike }).XMLHttpRequest;

const viaXhr = (Xhr: new () => XhrLike, url: string, token: string, body: Blob, type: string, options: UploadOptions): Promise<RawResponse> =>
  new Promise((resolve, reject) => {
    const xhr = new Xhr();
    xhr.open("POST", url);
    xhr.setRequestHeader("authorization", `Bearer ${token}`);
    xhr.setRequestHeader("content-type", type);
    xhr.upload.onprogress = (event) => options.onProgress?.({ loaded: event.loaded, total: event.lengthComputable ? event.total : body.size });
    xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText, retryAfter: xhr.getResponseHeader("retry-after") });
    xhr.onerror = () => reject(new ChatClientError("network", `unable to upload; the request to ${new URL(url).origin} failed`));
    xhr.onabort = () => reject(new ChatClientError("aborted", "unable to upload; aborted"));
    options.signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(body);
  });

const viaFetch = async (target: AttachmentTarget, url: string, token: string, body: Blob, type: string, options: UploadOptions): Promise<RawResponse> => {
  options.onProgress?.({ loaded: 0, total: body.size });
  const fetchFn = target.fetch ?? fetch;
  let response: Response;
  try {
    response = await fetchFn(url, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": type },
      body,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (cause) {
    if (options.signal?.aborted) throw new ChatClientError("aborted", "unable to upload; aborted", { cause });
    throw new ChatClientError("network", `unable to upload; the request to ${new URL(url).origin} failed`, { cause });
  }
  const text = await response.text();
  if (response.ok) options.onProgress?.({ loaded: body.size, total: body.size });
  return { status: response.status, text, retryAfter: response.headers.get("retry-after") };
};

const parse = (text: string): unknown => {
  try {
    return text === "" ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
};

const failed = (operation: string, raw: RawResponse): ChatClientError => {
  const error = decodeErrorBody(parse(raw.text));
  const retry = raw.retryAfter !== null && /^\d+$/.test(raw.retryAfter) ? Number(raw.retryAfter) * 1000 : undefined;
  return new ChatClientError(error?.code ?? codeOfStatus(raw.status), `unable to ${operation}; ${error?.message ?? `the server answered HTTP ${raw.status}`}`, {
    status: raw.status,
    ...(retry === undefined ? {} : { retryAfterMs: retry }),
  });
};

/**
 * Uploads a file to the room. Resolves with the stored attachment; put its id in an
 * `attachment` part to send it. Rejects with `too_large`, `bad_request` (an empty file, a type
 * that is not accepted or that the bytes contradict, a bad name), `forbidden`, `rate_limited`,
 * `unavailable` (nothing was stored: upload again), `network` or `aborted`.
 *
 * @example
 * const file = input.files[0];
 * const attachment = await uploadAttachment(target, file, { onProgress: ({ loaded, total }) => bar.value = loaded / total });
 */
export const uploadAttachment = async (target: AttachmentTarget, file: Blob, options: UploadOptions = {}): Promise<Attachment> => {
  const fileName = (file as Blob & { name?: unknown }).name;
  const name = options.name ?? (typeof fileName === "string" && fileName !== "" ? fileName : "file");
  const type = options.type ?? (file.type !== "" ? file.type : "application/octet-stream");
  const url = apiUrl(target.baseUrl, `v1/rooms/${encodeURIComponent(target.roomId)}/attachments`);
  url.searchParams.set("name", name);
  const Xhr = options.onProgress !== undefined ? xhrConstructor() : undefined;
  for (let attempt = 0; ; attempt++) {
    const token = await target.tokens.get();
    const raw = Xhr ? await viaXhr(Xhr, url.href, token, file, type, options) : await viaFetch(target, url.href, token, file, type, options);
    // A token can expire between the check and the request: once with a fresh one.
    if (raw.status === 401 && attempt === 0) {
      target.tokens.invalidate(token);
      continue;
    }
    if (raw.status !== 201) throw failed("upload", raw);
    const body = parse(raw.text);
    const attachment = typeof body === "object" && body !== null ? (body as { attachment?: unknown }).attachment : undefined;
    if (!isAttachment(attachment)) throw new ChatClientError("protocol", "unable to upload; the response has no attachment");
    return attachment;
  }
};

/** A fresh signed URL for an attachment of the room (they expire after a few minutes). */
export const attachmentUrl = async (target: AttachmentTarget, id: string, signal?: AbortSignal): Promise<Attachment> => {
  const url = apiUrl(target.baseUrl, `v1/rooms/${encodeURIComponent(target.roomId)}/attachments/${encodeURIComponent(id)}/url`);
  const fetchFn = target.fetch ?? fetch;
  for (let attempt = 0; ; attempt++) {
    const token = await target.tokens.get();
    let response: Response;
    try {
      response = await fetchFn(url.href, { headers: { authorization: `Bearer ${token}` }, ...(signal ? { signal } : {}) });
    } catch (cause) {
      throw new ChatClientError("network", `unable to get the attachment's URL; the request to ${url.origin} failed`, { cause });
    }
    const raw = { status: response.status, text: await response.text(), retryAfter: response.headers.get("retry-after") };
    if (raw.status === 401 && attempt === 0) {
      target.tokens.invalidate(token);
      continue;
    }
    if (raw.status !== 200) throw failed("get the attachment's URL", raw);
    const body = parse(raw.text);
    const attachment = typeof body === "object" && body !== null ? (body as { attachment?: unknown }).attachment : undefined;
    if (!isAttachment(attachment)) throw new ChatClientError("protocol", "unable to get the attachment's URL; the response has no attachment");
    return attachment;
  }
};
