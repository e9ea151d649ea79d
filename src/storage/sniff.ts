// What an upload's first bytes say it is. The declared Content-Type is the client's claim; the
// magic bytes are the file's. A mismatch (HTML or a script sent as image/png, a PNG sent as PDF)
// is refused before anything is stored, so a type we serve is never a lie a browser could be
// talked into acting on. Also: image dimensions from the header bytes, where that is cheap.

/** Bytes of the head the sniffer needs to decide (the dimension parser may use more). */
export const SNIFF_BYTES = 64;
/** JPEG dimensions sit after the APPn segments (EXIF can be ~64 KiB): scan at most this far. */
export const DIMENSION_SCAN_BYTES = 256 * 1024;

const startsWith = (head: Uint8Array, bytes: readonly number[], at = 0): boolean =>
  head.length >= at + bytes.length && bytes.every((b, i) => head[at + i] === b);

const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));

const SIGNATURES: ReadonlyArray<{ type: string; test: (head: Uint8Array) => boolean }> = [
  { type: "image/png", test: (h) => startsWith(h, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) },
  { type: "image/jpeg", test: (h) => startsWith(h, [0xff, 0xd8, 0xff]) },
  { type: "image/gif", test: (h) => startsWith(h, ascii("GIF87a")) || startsWith(h, ascii("GIF89a")) },
  { type: "image/webp", test: (h) => startsWith(h, ascii("RIFF")) && startsWith(h, ascii("WEBP"), 8) },
  { type: "application/pdf", test: (h) => startsWith(h, ascii("%PDF-")) },
];

/** The type the bytes prove, if they carry a known signature. */
export const signatureOf = (head: Uint8Array): string | undefined => SIGNATURES.find((s) => s.test(head))?.type;

/** Markup a browser would render or run if it ever sniffed it: never accepted under a declared image or text type. */
const looksLikeMarkup = (head: Uint8Array): boolean => {
  const text = new TextDecoder("utf-8", { fatal: false, ignoreBOM: false }).decode(head).trimStart().slice(0, 32).toLowerCase();
  return /^(<!doctype|<html|<head|<body|<script|<svg|<\?xml|<iframe|<object|<embed)/.test(text);
};

/** Text as we accept it for text/plain: valid UTF-8 (a sequence cut at the head's end is fine), no NUL. */
const isPlainText = (head: Uint8Array, complete: boolean): boolean => {
  if (head.includes(0)) return false;
  // Cut at the last byte that starts a character, unless the head is the whole file.
  let end = head.length;
  if (!complete) {
    while (end > 0 && end > head.length - 4 && ((head[end - 1] ?? 0) & 0xc0) === 0x80) end--;
    if (end > 0 && (head[end - 1] ?? 0) >= 0xc0) end--;
  }
  try {
    new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(head.subarray(0, end));
    return true;
  } catch {
    return false;
  }
};

/**
 * Whether bytes starting with `head` may be stored as `declared`: an image or PDF type needs its
 * own signature; text/plain needs text that is not markup; application/octet-stream takes
 * anything (it is only ever served as a download). Any other allowed type must at least not carry
 * another known signature. Returns the reason for a refusal.
 */
export const sniffProblem = (declared: string, head: Uint8Array, complete: boolean): string | undefined => {
  const found = signatureOf(head);
  if (SIGNATURES.some((s) => s.type === declared)) {
    return found === declared ? undefined : `the bytes are not ${declared}${found ? ` (they are ${found})` : ""}`;
  }
  if (declared === "application/octet-stream") return undefined;
  if (found) return `the bytes are ${found}, not ${declared}`;
  if (declared.startsWith("text/")) {
    if (looksLikeMarkup(head)) return `the bytes are markup, not ${declared}`;
    if (!isPlainText(head, complete)) return `the bytes are not UTF-8 text`;
  }
  return undefined;
};

const u16be = (b: Uint8Array, at: number): number => ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);
const u16le = (b: Uint8Array, at: number): number => (b[at] ?? 0) | ((b[at + 1] ?? 0) << 8);
const u24le = (b: Uint8Array, at: number): number => u16le(b, at) | ((b[at + 2] ?? 0) << 16);
const u32be = (b: Uint8Array, at: number): number => ((u16be(b, at) << 16) >>> 0) + u16be(b, at + 2);

/** Width and height from an image's header bytes, for PNG, GIF, WebP and JPEG; undefined if not found in `head`. */
export const imageSize = (type: string, head: Uint8Array): { width: number; height: number } | undefined => {
  const sane = (width: number, height: number) => (width > 0 && height > 0 && width <= 65535 * 4 && height <= 65535 * 4 ? { width, height } : undefined);
  switch (type) {
    case "image/png":
      // Signature, then the IHDR chunk: length (4), "IHDR" (4), width (4), height (4).
      return head.length >= 24 && startsWith(head, ascii("IHDR"), 12) ? sane(u32be(head, 16), u32be(head, 20)) : undefined;
    case "image/gif":
      return head.length >= 10 ? sane(u16le(head, 6), u16le(head, 8)) : undefined;
    case "image/webp": {
      if (head.length < 30) return undefined;
      if (startsWith(head, ascii("VP8X"), 12)) return sane(u24le(head, 24) + 1, u24le(head, 27) + 1);
      if (startsWith(head, ascii("VP8L"), 12) && head[20] === 0x2f) {
        const bits = (head[21] ?? 0) | ((head[22] ?? 0) << 8) | ((head[23] ?? 0) << 16) | ((head[24] ?? 0) << 24);
        return sane((bits & 0x3fff) + 1, ((bits >>> 14) & 0x3fff) + 1);
      }
      if (startsWith(head, ascii("VP8 "), 12)) return sane(u16le(head, 26) & 0x3fff, u16le(head, 28) & 0x3fff);
      return undefined;
    }
    case "image/jpeg": {
      // Walk the segments to the first start-of-frame marker (SOF0–SOF15 but DHT, JPG and DAC).
      let at = 2;
      while (at + 9 < head.length) {
        if (head[at] !== 0xff) return undefined;
        const marker = head[at + 1] ?? 0;
        if (marker === 0xff) {
          at += 1;
          continue;
        }
        if (marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) {
          at += 2;
          continue;
        }
        if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
          return sane(u16be(head, at + 7), u16be(head, at + 5));
        }
        if (marker === 0xda || marker === 0xd9) return undefined; // image data before any frame header
        at += 2 + u16be(head, at + 2);
      }
      return undefined;
    }
    default:
      return undefined;
  }
};

/**
 * A file name as the user gave it, checked: path tricks and invisible characters are refused
 * (not silently repaired: the user should see what we will show), the rest normalised (NFC,
 * surrounding spaces trimmed). The name is only ever shown and put in Content-Disposition; keys
 * never contain it.
 */
export const MAX_NAME_BYTES = 255;

const isInvisibleControl = (c: string): boolean => {
  const code = c.codePointAt(0) ?? 0;
  return code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x200e || code === 0x200f || (code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069);
};

export const checkFileName = (raw: string): { ok: true; name: string } | { ok: false; reason: string } => {
  const name = raw.normalize("NFC").trim();
  if (name === "") return { ok: false, reason: "the name is empty" };
  if (!name.isWellFormed()) return { ok: false, reason: "the name is not valid text" };
  if (/[/\\]/.test(name)) return { ok: false, reason: "the name contains a path separator" };
  if (name === "." || name === ".." || name.startsWith("..")) return { ok: false, reason: "the name is a path" };
  // C0 and C1 controls, and the bidi overrides that make "gpj.exe" read as "exe.jpg".
  if ([...name].some(isInvisibleControl)) {
    return { ok: false, reason: "the name contains control or direction characters" };
  }
  if (new TextEncoder().encode(name).length > MAX_NAME_BYTES) return { ok: false, reason: `the name is over ${MAX_NAME_BYTES} bytes` };
  return { ok: true, name };
};

/** `Content-Disposition` for a name (RFC 6266: an ASCII fallback and the UTF-8 form). */
export const contentDisposition = (kind: "inline" | "attachment", name: string): string => {
  const fallback = name.replace(/[^\x20-\x7e]/g, "_").replace(/["\\%;]/g, "_");
  return `${kind}; filename="${fallback}"; filename*=UTF-8''${encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
};
