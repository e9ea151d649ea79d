// Multipart messages (issue #17): the schema of `parts` in a send and in a committed message, and
// the readable summary every message still carries in `text`, so a client that knows nothing of
// parts (protocol 1, or an old SDK) shows something sensible. Imported by server and SDK.

import type { Decoded } from "./codec.js";
import { ErrorCode } from "./errors.js";
import { isRecord } from "./json.js";
import { MAX_TEXT_CHARS } from "./limits.js";

export const PartType = {
  Text: "text",
  Link: "link",
  Attachment: "attachment",
} as const;

export type PartType = (typeof PartType)[keyof typeof PartType];

/** Parts in one message (any type). */
export const MAX_PARTS = 10;
/** Attachment parts in one message. */
export const MAX_ATTACHMENT_PARTS = 10;
/** A link's URL, in characters. */
export const MAX_LINK_CHARS = 2048;
/** The parts of one send as JSON, in UTF-8 bytes (the frame itself is capped at 16 KiB). */
export const MAX_PARTS_BYTES = 8 * 1024;
/** Attachment ids are the server's UUIDs; anything else cannot name an upload. */
export const ATTACHMENT_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface TextPart {
  type: typeof PartType.Text;
  text: string;
}

export interface LinkPart {
  type: typeof PartType.Link;
  /** An absolute http(s) URL, as the server normalised it (`new URL(...).href`). */
  url: string;
}

/** What a sender writes: a reference to one of their own uploads in this room. */
export interface AttachmentRef {
  type: typeof PartType.Attachment;
  id: string;
}

/** What a committed message carries: the reference, resolved by the room from the upload's record. */
export interface AttachmentPart extends AttachmentRef {
  name: string;
  size: number;
  contentType: string;
  width?: number;
  height?: number;
}

/** The descriptor an upload is answered with (and that `GET …/attachments/{id}/url` returns with a URL). */
/* On the wire: the storage record keeps more (storage/attachments.ts), the SDK adds its signed URL (client/attachments.ts). */
export interface AttachmentDescriptor {
  id: string;
  name: string;
  size: number;
  /** The content type as stored and served (from the allowlist). */
  type: string;
  /** Hex SHA-256 of the bytes, computed while they streamed in. */
  sha256: string;
  width?: number;
  height?: number;
  createdAt: string;
}

/** A part of a send. */
export type SendPart = TextPart | LinkPart | AttachmentRef;
/** A part of a committed message. */
export type Part = TextPart | LinkPart | AttachmentPart;

const ok = <T>(value: T): Decoded<T> => ({ ok: true, value });
const fail = <T>(code: ErrorCode, message: string): Decoded<T> => ({ ok: false, error: { code, message } });

const encoder = new TextEncoder();

const codePoints = (text: string): number => {
  let n = 0;
  for (const _ of text) n++;
  return n;
};

/** An absolute http(s) URL without credentials, or undefined. */
export const parseLinkUrl = (value: string): string | undefined => {
  try {
    const url = new URL(value);
    if (url.protocol !== "https:" && url.protocol !== "http:") return undefined;
    // user:password@ in a chat link is a phishing trick (https://bank.com@evil.example/), never useful.
    if (url.username !== "" || url.password !== "") return undefined;
    return url.href;
  } catch {
    return undefined;
  }
};

/**
 * Schema of `parts` in a send. Refuses: not a list, empty, over MAX_PARTS, an unknown part type,
 * unknown fields, empty or unstorable text, a non-http(s) or over-long link, an attachment id
 * that is not an upload id, the same attachment twice, text over MAX_TEXT_CHARS in total, and
 * more than MAX_PARTS_BYTES of JSON.
 */
export const decodeSendParts = (input: unknown): Decoded<SendPart[]> => {
  if (!Array.isArray(input) || input.length === 0) return fail(ErrorCode.BadRequest, "parts must be a non-empty list");
  if (input.length > MAX_PARTS) return fail(ErrorCode.TooLarge, `parts holds at most ${MAX_PARTS} parts`);
  if (encoder.encode(JSON.stringify(input)).length > MAX_PARTS_BYTES) {
    return fail(ErrorCode.TooLarge, `parts is over ${MAX_PARTS_BYTES} bytes of JSON`);
  }
  const out: SendPart[] = [];
  const ids = new Set<string>();
  let textChars = 0;
  for (const [index, raw] of input.entries()) {
    const at = `parts[${index}]`;
    if (!isRecord(raw)) return fail(ErrorCode.BadRequest, `${at} must be an object`);
    const keys = Object.keys(raw);
    switch (raw.type) {
      case PartType.Text: {
        if (!keys.every((k) => k === "type" || k === "text")) return fail(ErrorCode.BadRequest, `${at}: a text part takes only text`);
        const text = raw.text;
        if (typeof text !== "string" || text.length === 0) return fail(ErrorCode.BadRequest, `${at}.text must be a non-empty string`);
        // Postgres text cannot hold NUL, and a lone surrogate would not round-trip (codec.ts).
        if (!text.isWellFormed() || text.includes("\u0000")) return fail(ErrorCode.BadRequest, `${at}.text is not storable text`);
        textChars += codePoints(text);
        out.push({ type: PartType.Text, text });
        break;
      }
      case PartType.Link: {
        if (!keys.every((k) => k === "type" || k === "url")) return fail(ErrorCode.BadRequest, `${at}: a link part takes only url`);
        const url = typeof raw.url === "string" && raw.url.length <= MAX_LINK_CHARS ? parseLinkUrl(raw.url) : undefined;
        if (url === undefined || url.length > MAX_LINK_CHARS) {
          return fail(ErrorCode.BadRequest, `${at}.url must be an http(s) URL of at most ${MAX_LINK_CHARS} characters, without credentials`);
        }
        textChars += codePoints(url);
        out.push({ type: PartType.Link, url });
        break;
      }
      case PartType.Attachment: {
        if (!keys.every((k) => k === "type" || k === "id")) return fail(ErrorCode.BadRequest, `${at}: an attachment part takes only id`);
        if (typeof raw.id !== "string" || !ATTACHMENT_ID_PATTERN.test(raw.id)) {
          return fail(ErrorCode.BadRequest, `${at}.id must be the id of an upload`);
        }
        if (ids.has(raw.id)) return fail(ErrorCode.BadRequest, `${at}: attachment ${raw.id} is named twice`);
        ids.add(raw.id);
        out.push({ type: PartType.Attachment, id: raw.id });
        break;
      }
      default:
        return fail(ErrorCode.BadRequest, `${at}.type must be "text", "link" or "attachment"`);
    }
  }
  if (ids.size > MAX_ATTACHMENT_PARTS) return fail(ErrorCode.TooLarge, `parts holds at most ${MAX_ATTACHMENT_PARTS} attachments`);
  if (textChars > MAX_TEXT_CHARS) return fail(ErrorCode.TooLarge, `the text and links of parts are over ${MAX_TEXT_CHARS} characters`);
  return ok(out);
};

/**
 * The `text` of a multipart message: its text and links, one per line; a message of attachments
 * only reads as their file names. Older clients show this; newer ones render the parts.
 */
export const summaryOf = (parts: readonly (SendPart | Part)[], names: ReadonlyMap<string, string> = new Map()): string => {
  const lines = parts.flatMap((p) => (p.type === PartType.Text ? [p.text] : p.type === PartType.Link ? [p.url] : []));
  if (lines.length > 0) return lines.join("\n");
  const files = parts.flatMap((p) => (p.type === PartType.Attachment ? [names.get(p.id) ?? ("name" in p ? p.name : "attachment")] : []));
  return files.map((name) => `📎 ${name}`).join(", ");
};

/** The ids of the attachments a send names, in order. */
export const attachmentIdsOf = (parts: readonly SendPart[] | undefined): string[] =>
  (parts ?? []).flatMap((p) => (p.type === PartType.Attachment ? [p.id] : []));
