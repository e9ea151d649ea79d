// The parts schema (the codec's half of multipart sends) and the summary older clients read.

import { describe, expect, it } from "vitest";
import { decodeSendRequest } from "./codec.js";
import { decodeSendParts, MAX_PARTS, summaryOf } from "./parts.js";

const ID = "0b6f3c1e-8a7d-4c2b-9e1f-1234567890ab";

describe("decodeSendParts", () => {
  it("accepts text, link and attachment parts; normalises links", () => {
    expect(decodeSendParts([{ type: "text", text: "hi" }, { type: "link", url: "https://EXAMPLE.com/a b" }, { type: "attachment", id: ID }])).toEqual({
      ok: true,
      value: [{ type: "text", text: "hi" }, { type: "link", url: "https://example.com/a%20b" }, { type: "attachment", id: ID }],
    });
  });
  it.each([
    ["not a list", { type: "text", text: "x" }, "bad_request"],
    ["empty", [], "bad_request"],
    ["too many", Array.from({ length: MAX_PARTS + 1 }, () => ({ type: "text", text: "x" })), "too_large"],
    ["javascript: link", [{ type: "link", url: "javascript:alert(1)" }], "bad_request"],
    ["data: link", [{ type: "link", url: "data:text/html,<b>" }], "bad_request"],
    ["credentials in a link", [{ type: "link", url: "https://bank.example@evil.example/" }], "bad_request"],
    ["an over-long link", [{ type: "link", url: `https://e.example/${"a".repeat(2100)}` }], "bad_request"],
    ["a relative link", [{ type: "link", url: "/etc/passwd" }], "bad_request"],
    ["an id that is not an upload id", [{ type: "attachment", id: "../x" }], "bad_request"],
    ["the same attachment twice", [{ type: "attachment", id: ID }, { type: "attachment", id: ID }], "bad_request"],
    ["an unknown field", [{ type: "text", text: "x", html: "<b>" }], "bad_request"],
    ["an unknown type", [{ type: "poll" }], "bad_request"],
    ["empty text", [{ type: "text", text: "" }], "bad_request"],
    ["NUL in text", [{ type: "text", text: "a\u0000" }], "bad_request"],
    ["text over 4,000 characters in total", [{ type: "text", text: "a".repeat(2500) }, { type: "text", text: "b".repeat(1501) }], "too_large"],
  ])("refuses %s", (_, parts, code) => {
    const decoded = decodeSendParts(parts);
    expect(decoded.ok ? undefined : decoded.error.code).toBe(code);
  });
});

describe("the send schema with parts", () => {
  it("writes the summary into text; text and parts together are refused (text \"\" is allowed)", () => {
    expect(decodeSendRequest({ clientMsgId: "c", parts: [{ type: "text", text: "a" }, { type: "link", url: "https://x.example/" }] })).toEqual({
      ok: true,
      value: { clientMsgId: "c", text: "a\nhttps://x.example/", parts: [{ type: "text", text: "a" }, { type: "link", url: "https://x.example/" }] },
    });
    expect(decodeSendRequest({ clientMsgId: "c", text: "", parts: [{ type: "text", text: "a" }] }).ok).toBe(true);
    const both = decodeSendRequest({ clientMsgId: "c", text: "x", parts: [{ type: "text", text: "a" }] });
    expect(both.ok ? undefined : both.error).toEqual({ code: "bad_request", message: "give text or parts, not both", clientMsgId: "c" });
  });
  it("summarises attachments only by their names", () => {
    expect(summaryOf([{ type: "attachment", id: ID }], new Map([[ID, "plan.pdf"]]))).toBe("📎 plan.pdf");
  });
});
