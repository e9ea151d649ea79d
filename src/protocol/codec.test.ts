import { describe, expect, it } from "vitest";
import {
  decodeClientFrame,
  decodeHistoryRequest,
  decodeLimit,
  decodeProtocolVersion,
  decodeRoomId,
  decodeSeqCursor,
  utf8Length,
} from "./codec.js";

describe("decodeClientFrame", () => {
  it("accepts exactly the two client frame types", () => {
    expect(decodeClientFrame('{"type":"ping"}')).toEqual({ ok: true, value: { type: "ping" } });
    expect(decodeClientFrame('{"type":"send","clientMsgId":"c","text":"hi","extra":1}')).toEqual({
      ok: true,
      value: { type: "send", clientMsgId: "c", text: "hi" },
    });
  });

  it.each([
    ["not json", "{", "bad_request"],
    ["array", "[]", "bad_request"],
    ["null", "null", "bad_request"],
    ["unknown type", '{"type":"subscribe"}', "bad_request"],
    ["no type", "{}", "bad_request"],
    ["id too long", JSON.stringify({ type: "send", clientMsgId: "x".repeat(65), text: "t" }), "bad_request"],
    ["id empty", JSON.stringify({ type: "send", clientMsgId: "", text: "t" }), "bad_request"],
    ["text missing", JSON.stringify({ type: "send", clientMsgId: "c" }), "bad_request"],
    ["text not string", JSON.stringify({ type: "send", clientMsgId: "c", text: ["a"] }), "bad_request"],
    ["text too long", JSON.stringify({ type: "send", clientMsgId: "c", text: "a".repeat(4001) }), "too_large"],
    ["lone surrogate", JSON.stringify({ type: "send", clientMsgId: "c", text: "\ud83d" }), "bad_request"],
    ["NUL", JSON.stringify({ type: "send", clientMsgId: "c", text: "a\u0000" }), "bad_request"],
    ["frame too big", JSON.stringify({ type: "ping", pad: "p".repeat(16 * 1024) }), "too_large"],
  ])("%s → %s", (_, raw, code) => {
    const decoded = decodeClientFrame(raw);
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) expect(decoded.error.code).toBe(code);
  });

  it("counts characters as code points: 4,000 emoji are allowed", () => {
    expect(decodeClientFrame(JSON.stringify({ type: "send", clientMsgId: "c", text: "😀".repeat(4000) })).ok).toBe(true);
  });

  it("refuses binary frames", () => {
    expect(decodeClientFrame(new ArrayBuffer(4))).toMatchObject({ ok: false, error: { code: "bad_request" } });
  });

  it("errors about a send carry its clientMsgId", () => {
    const d = decodeClientFrame(JSON.stringify({ type: "send", clientMsgId: "c9", text: "" }));
    expect(d).toMatchObject({ ok: false, error: { clientMsgId: "c9" } });
  });
});

describe("cursors and ids", () => {
  it("room ids: 1–128 of [A-Za-z0-9_-]", () => {
    expect(decodeRoomId("a-B_9").ok).toBe(true);
    expect(decodeRoomId("x".repeat(128)).ok).toBe(true);
    for (const bad of ["", "x".repeat(129), "a b", "a/b", "é", undefined]) expect(decodeRoomId(bad).ok).toBe(false);
  });

  it("seq cursors are non-negative integers; limits 1–1000", () => {
    expect(decodeSeqCursor("since", "0")).toEqual({ ok: true, value: 0 });
    expect(decodeSeqCursor("since", undefined)).toEqual({ ok: true, value: undefined });
    for (const bad of ["-1", "1.5", "1e3", "abc", " 1", "99999999999999999"]) expect(decodeSeqCursor("since", bad).ok).toBe(false);
    expect(decodeLimit("limit", "1000")).toEqual({ ok: true, value: 1000 });
    for (const bad of ["0", "1001", "-5", "x"]) expect(decodeLimit("limit", bad).ok).toBe(false);
  });

  it("since and last are exclusive; last defaults to 50", () => {
    expect(decodeHistoryRequest(undefined, undefined)).toEqual({ ok: true, value: { kind: "last", last: 50 } });
    expect(decodeHistoryRequest("4", undefined)).toEqual({ ok: true, value: { kind: "since", since: 4 } });
    expect(decodeHistoryRequest("4", "5").ok).toBe(false);
  });
});

describe("protocol version", () => {
  it("absent is 1; positive integers are accepted as they are; anything else is bad_request", () => {
    expect(decodeProtocolVersion(undefined)).toEqual({ ok: true, value: 1 });
    expect(decodeProtocolVersion("2")).toEqual({ ok: true, value: 2 });
    expect(decodeProtocolVersion("17")).toEqual({ ok: true, value: 17 });
    for (const bad of ["0", "-1", "1.5", "x", "", "99999"]) expect(decodeProtocolVersion(bad)).toMatchObject({ ok: false, error: { code: "bad_request" } });
  });
});

describe("change frames (edit, delete, react) and replies", () => {
  const frame = (f: Record<string, unknown>) => decodeClientFrame(JSON.stringify(f));

  it("decode to exactly their fields", () => {
    expect(frame({ type: "edit", clientMsgId: "e", target: 3, text: "new" })).toEqual({
      ok: true,
      value: { type: "edit", clientMsgId: "e", target: 3, text: "new" },
    });
    expect(frame({ type: "delete", clientMsgId: "d", target: 3 })).toEqual({ ok: true, value: { type: "delete", clientMsgId: "d", target: 3 } });
    expect(frame({ type: "react", clientMsgId: "r", target: 3, emoji: "👍", remove: true })).toEqual({
      ok: true,
      value: { type: "react", clientMsgId: "r", target: 3, emoji: "👍", remove: true },
    });
    expect(frame({ type: "send", clientMsgId: "s", text: "re", replyTo: 2 })).toEqual({
      ok: true,
      value: { type: "send", clientMsgId: "s", text: "re", replyTo: 2 },
    });
  });

  it("a send's mentions: golden frames (distinct user ids kept in order; an empty list is left out)", () => {
    expect(frame({ type: "send", clientMsgId: "s", text: "hi @bob", mentions: ["carol", "dan@acme"], replyTo: 2 })).toEqual({
      ok: true,
      value: { type: "send", clientMsgId: "s", text: "hi @bob", mentions: ["carol", "dan@acme"], replyTo: 2 },
    });
    expect(frame({ type: "send", clientMsgId: "s", text: "t", mentions: [] })).toEqual({ ok: true, value: { type: "send", clientMsgId: "s", text: "t" } });
  });

  it.each([
    ["edit without target", { type: "edit", clientMsgId: "c", text: "t" }, "bad_request"],
    ["edit target 0", { type: "edit", clientMsgId: "c", target: 0, text: "t" }, "bad_request"],
    ["edit target -1", { type: "edit", clientMsgId: "c", target: -1, text: "t" }, "bad_request"],
    ["edit target 1.5", { type: "edit", clientMsgId: "c", target: 1.5, text: "t" }, "bad_request"],
    ["edit target string", { type: "edit", clientMsgId: "c", target: "1", text: "t" }, "bad_request"],
    ["edit empty text", { type: "edit", clientMsgId: "c", target: 1, text: "" }, "bad_request"],
    ["edit too long", { type: "edit", clientMsgId: "c", target: 1, text: "a".repeat(4001) }, "too_large"],
    ["edit unknown field", { type: "edit", clientMsgId: "c", target: 1, text: "t", x: 1 }, "bad_request"],
    ["delete unknown field", { type: "delete", clientMsgId: "c", target: 1, text: "t" }, "bad_request"],
    ["react remove false", { type: "react", clientMsgId: "c", target: 1, emoji: "👍", remove: false }, "bad_request"],
    ["react two emoji", { type: "react", clientMsgId: "c", target: 1, emoji: "👍👍" }, "bad_request"],
    ["react letters", { type: "react", clientMsgId: "c", target: 1, emoji: "ok" }, "bad_request"],
    ["react bad shortcode", { type: "react", clientMsgId: "c", target: 1, emoji: ":Bad Code:" }, "bad_request"],
    ["react long shortcode", { type: "react", clientMsgId: "c", target: 1, emoji: `:${"a".repeat(33)}:` }, "bad_request"],
    ["react lone surrogate", { type: "react", clientMsgId: "c", target: 1, emoji: "\ud83d" }, "bad_request"],
    ["reply to 0", { type: "send", clientMsgId: "c", text: "t", replyTo: 0 }, "bad_request"],
    ["reply to string", { type: "send", clientMsgId: "c", text: "t", replyTo: "3" }, "bad_request"],
    ["mentions not an array", { type: "send", clientMsgId: "c", text: "t", mentions: "bob" }, "bad_request"],
    ["mentions a bad user id", { type: "send", clientMsgId: "c", text: "t", mentions: ["bob smith"] }, "bad_request"],
    ["mentions a number", { type: "send", clientMsgId: "c", text: "t", mentions: [1] }, "bad_request"],
    ["mentions twice", { type: "send", clientMsgId: "c", text: "t", mentions: ["bob", "bob"] }, "bad_request"],
    ["mentions 21 users", { type: "send", clientMsgId: "c", text: "t", mentions: Array.from({ length: 21 }, (_, i) => `u${i}`) }, "bad_request"],
  ])("%s → %s, naming the clientMsgId", (_, f, code) => {
    const decoded = frame(f);
    expect(decoded).toMatchObject({ ok: false, error: { code, clientMsgId: "c" } });
  });

  it.each(["👍", "❤️", "👍🏽", "👨‍👩‍👧", "🇫🇷", "1️⃣", ":tada:", ":+1:"])("accepts the emoji %s", (emoji) => {
    expect(frame({ type: "react", clientMsgId: "c", target: 1, emoji }).ok).toBe(true);
  });
});

describe("utf8Length", () => {
  it.each(["", "ascii", "é", "€", "😀", "a😀b€é", "\ud83d", "x\udc00y", "😀".repeat(100), "ab\ud83d"])("equals TextEncoder's byte count for %j", (text) => {
    expect(utf8Length(text)).toBe(new TextEncoder().encode(text).length);
  });
});
