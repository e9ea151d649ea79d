// The sniffer and the dimension parser on real file headers (hand-built, byte for byte), and the
// file-name check: pure functions, so every format and trick is cheap to cover here.

import { describe, expect, it } from "vitest";
import { checkFileName, contentDisposition, imageSize, signatureOf, sniffProblem } from "./sniff.js";

const bytes = (...parts: Array<number[] | string>): Uint8Array =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === "string" ? [...p].map((c) => c.charCodeAt(0)) : p)));
const u32be = (n: number) => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
const u16le = (n: number) => [n & 255, (n >>> 8) & 255];
const u24le = (n: number) => [n & 255, (n >>> 8) & 255, (n >>> 16) & 255];

const PNG = bytes([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], u32be(13), "IHDR", u32be(1920), u32be(1080), [8, 6, 0, 0, 0]);
const GIF = bytes("GIF89a", u16le(320), u16le(240), [0xf7, 0, 0]);
const WEBP_VP8X = bytes("RIFF", u32be(0), "WEBP", "VP8X", u32be(10), [0, 0, 0, 0], u24le(799), u24le(599));
// VP8L: signature 0x2f, then 14 bits width-1, 14 bits height-1.
const vp8lBits = (w: number, h: number) => {
  const v = (w - 1) | ((h - 1) << 14);
  return [v & 255, (v >>> 8) & 255, (v >>> 16) & 255, (v >>> 24) & 255];
};
const WEBP_VP8L = bytes("RIFF", u32be(0), "WEBP", "VP8L", u32be(10), [0x2f], vp8lBits(100, 50), [0, 0, 0, 0, 0]);
// JPEG: SOI, an APP0 segment of 16 bytes, then SOF0 with height 480, width 640.
const JPEG = bytes([0xff, 0xd8, 0xff, 0xe0, 0, 16], "JFIF", [0, 1, 1, 0, 0, 1, 0, 1, 0, 0], [0xff, 0xc0, 0, 17, 8, 0x01, 0xe0, 0x02, 0x80, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);

describe("signatures and dimensions", () => {
  it.each([
    ["image/png", PNG, { width: 1920, height: 1080 }],
    ["image/gif", GIF, { width: 320, height: 240 }],
    ["image/webp", WEBP_VP8X, { width: 800, height: 600 }],
    ["image/webp", WEBP_VP8L, { width: 100, height: 50 }],
    ["image/jpeg", JPEG, { width: 640, height: 480 }],
  ] as const)("%s: recognised and measured from its header", (type, head, size) => {
    expect(signatureOf(head)).toBe(type);
    expect(sniffProblem(type, head, false)).toBeUndefined();
    expect(imageSize(type, head)).toEqual(size);
  });

  it("a truncated header gives no dimensions rather than wrong ones", () => {
    expect(imageSize("image/png", PNG.subarray(0, 20))).toBeUndefined();
    expect(imageSize("image/jpeg", JPEG.subarray(0, 22))).toBeUndefined();
  });
});

describe("sniffProblem", () => {
  const html = bytes("<!DOCTYPE html><script>alert(1)</script>");
  it("refuses bytes that contradict the declared type", () => {
    expect(sniffProblem("image/png", html, true)).toMatch(/not image\/png/);
    expect(sniffProblem("image/png", JPEG, true)).toMatch(/they are image\/jpeg/);
    expect(sniffProblem("application/pdf", PNG, true)).toMatch(/not application\/pdf/);
    expect(sniffProblem("text/plain", html, true)).toMatch(/markup/);
    expect(sniffProblem("text/plain", bytes("  <svg onload=x>"), true)).toMatch(/markup/);
    expect(sniffProblem("text/plain", PNG, true)).toMatch(/image\/png/);
    expect(sniffProblem("text/plain", bytes("a", [0], "b"), true)).toMatch(/UTF-8/);
    expect(sniffProblem("text/plain", bytes([0xc3, 0x28]), true)).toMatch(/UTF-8/);
  });
  it("accepts what matches, text cut inside a character, and anything as octet-stream", () => {
    expect(sniffProblem("application/pdf", bytes("%PDF-1.7\n"), true)).toBeUndefined();
    expect(sniffProblem("text/plain", new TextEncoder().encode("héllo ✓"), true)).toBeUndefined();
    expect(sniffProblem("text/plain", bytes("h", [0xc3]), false)).toBeUndefined();
    expect(sniffProblem("application/octet-stream", html, true)).toBeUndefined();
  });
});

describe("checkFileName", () => {
  it.each(["../../etc/passwd", "a/b", "a\\b", "..", ".", "..hidden", "x\u0000y", "tab\there", "evil\u202Egpj.exe", "a\u2066b", "", "   ", `${"é".repeat(128)}.txt`])(
    "refuses %j",
    (name) => expect(checkFileName(name).ok).toBe(false),
  );
  it("keeps ordinary names, trimmed and NFC-normalised", () => {
    expect(checkFileName("  Report (final) v2.pdf ")).toEqual({ ok: true, name: "Report (final) v2.pdf" });
    expect(checkFileName("cafe\u0301.txt")).toEqual({ ok: true, name: "café.txt" });
    expect(checkFileName(".bashrc")).toEqual({ ok: true, name: ".bashrc" });
  });
  it("Content-Disposition carries an ASCII fallback and the UTF-8 name, with quotes escaped away", () => {
    expect(contentDisposition("attachment", 'a"b;é.txt')).toBe(`attachment; filename="a_b__.txt"; filename*=UTF-8''a%22b%3B%C3%A9.txt`);
  });
});
