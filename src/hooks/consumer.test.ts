// The consumer's delivery of one job: signed, in order, stopping at the first failure (later
// events must not overtake it), never following redirects.
import { describe, expect, it } from "vitest";
import { verifyWebhook } from "../server/webhooks.js";
import { parseWebhooks } from "./config.js";
import { runJob } from "./consumer.js";
import type { HookJob, SeqEvent } from "./dispatcher.js";

const secret = "s".repeat(16);
const [endpoint] = parseWebhooks("t", [{ id: "a", url: "https://a.example/h", secret, events: ["*"] }], false).endpoints;
if (!endpoint) throw new Error("the endpoint did not parse");
const ev = (seq: number, type: SeqEvent["type"] = "message.created", suffix = ""): SeqEvent => ({ id: `t:r:${seq}${suffix}`, type, tenant: "t", roomId: "r", seq, prevSeq: seq - 1, createdAt: "2026-01-01T00:00:00.000Z", data: {} });
const job = (events: SeqEvent[]): HookJob => ({ kind: "seq", tenant: "t", roomId: "r", endpointId: "a", token: "k", upto: events.at(-1)?.seq ?? 0, attempt: 1, events });

describe("runJob", () => {
  it("posts each event signed, in order, and reports success", async () => {
    const seen: string[] = [];
    const report = await runJob(job([ev(1), ev(2)]), endpoint, 1000, async (_url, init) => {
      const headers = new Headers(init.headers);
      const verified = await verifyWebhook({ secret, body: String(init.body), headers });
      expect(verified.ok).toBe(true);
      expect(init.redirect).toBe("manual");
      seen.push(headers.get("x-edge-chat-event-id") ?? "");
      return new Response("ok");
    }, false);
    expect(seen).toEqual(["t:r:1", "t:r:2"]);
    expect(report).toEqual({ endpointId: "a", token: "k" });
  });

  it("stops at the first failure and reports the failing seq's undelivered events; a redirect is a failure", async () => {
    const seen: string[] = [];
    const events = [ev(1), ev(2), ev(2, "notification", ":notification:bob"), ev(3)];
    const report = await runJob(job(events), endpoint, 1000, async (_url, init) => {
      const id = new Headers(init.headers).get("x-edge-chat-event-id") ?? "";
      seen.push(id);
      return id.endsWith(":notification:bob") ? new Response(null, { status: 302, headers: { location: "http://127.0.0.1/" } }) : new Response("ok");
    }, false);
    expect(seen).toEqual(["t:r:1", "t:r:2", "t:r:2:notification:bob"]);
    expect(report.failure?.seq).toBe(2);
    expect(report.failure?.error).toBe("HTTP 302");
    expect(report.failure?.events.map((e) => e.id)).toEqual(["t:r:2:notification:bob"]);
  });
});
