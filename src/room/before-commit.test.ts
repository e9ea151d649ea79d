// The before-commit hook's contract without a network: answers, rewrites of multipart messages,
// the signature a receiver recomputes, and what each fail mode does with a failing hook.

import { describe, expect, it } from "vitest";
import type { BeforeCommitConfig } from "../config.js";
import { parseHookAnswer, type HookRequest, reviewMessage, rewriteParts, signHookBody } from "./before-commit.js";

const request: HookRequest = { tenant: "t", roomId: "r", userId: "u", kind: "message", clientMsgId: "c", text: "hello" };
const config = (failMode: "open" | "closed"): BeforeCommitConfig => ({ url: "https://hooks.example.com/review", secret: "s".repeat(20), timeoutMs: 50, failMode });
const answering = (status: number, body: unknown): typeof fetch => async () => new Response(typeof body === "string" ? body : JSON.stringify(body), { status });
const options = (fetchImpl: typeof fetch) => ({ allowPrivate: false, warn: () => {}, fetchImpl });

describe("before-commit hook", () => {
  it("reads allow, reject (with a reason) and rewrite; refuses anything else", () => {
    expect(parseHookAnswer({ action: "allow" })).toEqual({ action: "allow" });
    expect(parseHookAnswer({ action: "reject", reason: "no" })).toEqual({ action: "reject", reason: "no" });
    expect(parseHookAnswer({ action: "rewrite", text: "hi" })).toEqual({ action: "rewrite", text: "hi" });
    for (const bad of [null, "allow", {}, { action: "maybe" }, { action: "rewrite" }, { action: "rewrite", text: "" }, { action: "rewrite", text: "x".repeat(4001) }, { action: "reject", reason: 3 }]) {
      expect(parseHookAnswer(bad), JSON.stringify(bad)).toBeUndefined();
    }
  });

  it("a rewrite of a multipart message replaces its text parts with one, keeping links and attachments", () => {
    expect(rewriteParts([{ type: "text", text: "a" }, { type: "link", url: "https://x.com/" }, { type: "text", text: "b" }], "new")).toEqual([
      { type: "text", text: "new" },
      { type: "link", url: "https://x.com/" },
    ]);
    expect(rewriteParts(undefined, "new")).toBeUndefined();
  });

  it("signs HMAC-SHA256 over `<timestamp>.<body>`, as a receiver recomputes it", async () => {
    // Recomputed the way a receiver would, with the platform's HMAC (no shared helper).
    const key = await crypto.subtle.importKey("raw", new TextEncoder().encode("k".repeat(20)), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode('1700000000.{"a":1}')));
    const expected = Array.from(mac, (b) => b.toString(16).padStart(2, "0")).join("");
    expect(await signHookBody("k".repeat(20), 1700000000, '{"a":1}')).toBe(`v1=${expected}`);
  });

  it("allow keeps the message, reject is a typed rejected, rewrite changes the text", async () => {
    expect(await reviewMessage(config("open"), request, options(answering(200, { action: "allow" })))).toEqual({ ok: true, text: "hello" });
    const rejected = await reviewMessage(config("closed"), request, options(answering(200, { action: "reject", reason: "spam" })));
    expect(rejected.ok ? undefined : [rejected.error.code, rejected.error.message]).toEqual(["rejected", "unable to send; the message was rejected: spam"]);
    expect(await reviewMessage(config("open"), request, options(answering(200, { action: "rewrite", text: "HELLO" })))).toEqual({ ok: true, text: "HELLO" });
  });

  it("a failing hook (timeout, 5xx, garbage, unreachable) lets the message through when open and refuses it (unavailable) when closed", async () => {
    const slow: typeof fetch = (_input, init) =>
      new Promise((_resolve, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal?.reason)));
    const failing: Array<typeof fetch> = [
      slow,
      answering(500, { action: "allow" }),
      answering(200, "not json"),
      answering(200, { action: "perhaps" }),
      async () => {
        throw new TypeError("fetch failed");
      },
    ];
    for (const fetchImpl of failing) {
      expect(await reviewMessage(config("open"), request, options(fetchImpl))).toEqual({ ok: true, text: "hello" });
      const closed = await reviewMessage(config("closed"), request, options(fetchImpl));
      expect(closed.ok ? "ok" : closed.error.code).toBe("unavailable");
    }
  });

  it("a private URL is never called, even if it got past the config (fails by the fail mode)", async () => {
    let called = false;
    const spy: typeof fetch = async () => {
      called = true;
      return new Response("{}");
    };
    const local = { ...config("closed"), url: "https://127.0.0.1/review" };
    const decision = await reviewMessage(local, request, options(spy));
    expect(called).toBe(false);
    expect(decision.ok).toBe(false);
  });
});
