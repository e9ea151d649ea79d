// The verify helper: good signatures pass; a wrong secret, a changed body, a stale or replayed
// timestamp and missing headers fail with a reason a receiver can act on.
import { describe, expect, it } from "vitest";
import { signWebhook, verifyWebhook, WebhookHeader } from "./webhooks.js";

const secret = "whsec-not-for-production";
const body = JSON.stringify({ id: "t:r:1", type: "message.created", seq: 1 });
const headersAt = async (ts: number, s = secret, b = body) => ({ [WebhookHeader.Timestamp]: String(ts), [WebhookHeader.Signature]: await signWebhook(s, ts, b) });

describe("verifyWebhook", () => {
  const now = 1_800_000_000;
  it("accepts a fresh, correctly signed delivery (also from a Headers object, and with a rotated secret's signature beside it)", async () => {
    const h = await headersAt(now);
    expect(await verifyWebhook({ secret, body, headers: h, now })).toMatchObject({ ok: true, event: { id: "t:r:1" } });
    const rotated = { ...h, [WebhookHeader.Signature]: `${await signWebhook("old-secret-xxxxxxxx", now, body)}, ${h[WebhookHeader.Signature]}` };
    expect((await verifyWebhook({ secret, body, headers: new Headers(rotated), now })).ok).toBe(true);
  });

  it("refuses a wrong secret or a changed body", async () => {
    expect(await verifyWebhook({ secret: "other-secret-xxxxxxx", body, headers: await headersAt(now), now })).toMatchObject({ ok: false, reason: "bad_signature" });
    expect(await verifyWebhook({ secret, body: body.replace("1", "2"), headers: await headersAt(now), now })).toMatchObject({ ok: false, reason: "bad_signature" });
  });

  it("refuses a replayed (old) or future timestamp outside the window, even with a valid signature; a re-stamped replay fails the signature", async () => {
    expect(await verifyWebhook({ secret, body, headers: await headersAt(now - 301), now })).toMatchObject({ ok: false, reason: "replayed_or_stale" });
    expect(await verifyWebhook({ secret, body, headers: await headersAt(now + 301), now })).toMatchObject({ ok: false, reason: "replayed_or_stale" });
    expect((await verifyWebhook({ secret, body, headers: await headersAt(now - 299), now })).ok).toBe(true);
    const old = await headersAt(now - 3600);
    expect(await verifyWebhook({ secret, body, headers: { ...old, [WebhookHeader.Timestamp]: String(now) }, now })).toMatchObject({ ok: false, reason: "bad_signature" });
  });

  it("refuses missing or malformed headers", async () => {
    expect(await verifyWebhook({ secret, body, headers: {}, now })).toMatchObject({ ok: false, reason: "missing_header" });
    expect(await verifyWebhook({ secret, body, headers: { [WebhookHeader.Timestamp]: "soon", [WebhookHeader.Signature]: "v1=00" }, now })).toMatchObject({ ok: false, reason: "bad_timestamp" });
    expect(await verifyWebhook({ secret, body, headers: { ...(await headersAt(now)), [WebhookHeader.Signature]: "v0=zz" }, now })).toMatchObject({ ok: false, reason: "bad_signature" });
  });
});
