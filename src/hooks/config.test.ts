// Webhook endpoint configuration: SSRF refusal, event types, secrets, ids.
import { describe, expect, it } from "vitest";
import { parseTenants } from "../config.js";
import { isPrivateHost, parseWebhooks, refuseUrl, retryDelayS } from "./config.js";

const ok = { url: "https://hooks.example.com/chat", secret: "s".repeat(16), events: ["message.created"] };

describe("webhook configuration", () => {
  it.each([
    "http://127.0.0.1/", "https://127.0.0.1/", "https://localhost:8443/", "https://api.localhost/", "https://10.1.2.3/", "https://172.16.0.1/",
    "https://192.168.1.1/", "https://169.254.169.254/latest/meta-data", "https://0.0.0.0/", "https://[::1]/", "https://[fd00::1]/",
    "https://[::ffff:127.0.0.1]/", "https://2130706433/", "https://0x7f000001/", "https://100.64.0.1/", "https://db.internal/",
  ])("refuses %s without the dev flag (SSRF)", (url) => {
    expect(refuseUrl(url, false)).toMatch(/https|loopback or private/);
  });

  it("accepts public https URLs, and loopback http only with WEBHOOKS_ALLOW_PRIVATE", () => {
    expect(refuseUrl("https://hooks.example.com/x", false)).toBeUndefined();
    expect(refuseUrl("https://8.8.8.8/x", false)).toBeUndefined();
    expect(refuseUrl("http://hooks.example.com/x", false)).toMatch(/https/);
    expect(refuseUrl("http://127.0.0.1:9999/x", true)).toBeUndefined();
    expect(refuseUrl("https://user:pw@hooks.example.com/", false)).toMatch(/credentials/);
    expect(isPrivateHost("172.32.0.1")).toBe(false);
  });

  it("refuses unknown event types, short secrets, duplicate ids; accepts *", () => {
    expect(parseWebhooks("t", [{ ...ok, events: ["message.craeted"] }], false).error).toMatch(/unknown event type "message.craeted"/);
    expect(parseWebhooks("t", [{ ...ok, events: [] }], false).error).toMatch(/non-empty/);
    expect(parseWebhooks("t", [{ ...ok, secret: "short" }], false).error).toMatch(/at least 16/);
    expect(parseWebhooks("t", [ok, ok], false).error).toMatch(/used twice/);
    expect(parseWebhooks("t", {}, false).error).toMatch(/array/);
    const all = parseWebhooks("t", [{ ...ok, id: "main", events: ["*"] }], false);
    expect(all.error).toBeUndefined();
    expect(all.endpoints[0]?.id).toBe("main");
    expect(all.endpoints[0]?.events.has("notification")).toBe(true);
  });

  it("a bad endpoint makes TENANTS a configuration error naming the tenant", () => {
    const tenants = JSON.stringify({ acme: { secret: "k".repeat(20), webhooks: [{ ...ok, url: "https://127.0.0.1/" }] } });
    expect(parseTenants({ TENANTS: tenants }).error).toMatch(/TENANTS\.acme\.webhooks\[0\]\.url .*SSRF/);
    expect(parseTenants({ TENANTS: tenants, WEBHOOKS_ALLOW_PRIVATE: "true" }).error).toBeUndefined();
  });

  it("the retry schedule doubles from the base, capped at an hour", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 20].map((n) => retryDelayS(n, 10))).toEqual([10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]);
  });
});
