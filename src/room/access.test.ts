import { describe, expect, it } from "vitest";
import { can, TokenBucket } from "./access.js";

describe("can", () => {
  it("public rooms are readable by anyone; private ones only by members", () => {
    expect(can("read", "public", null)).toBe(true);
    expect(can("read", "private", null)).toBe(false);
    for (const role of ["viewer", "member", "admin"] as const) expect(can("read", "private", role)).toBe(true);
  });
  it("viewers and non-members cannot send; only admins manage", () => {
    expect(can("send", "public", null)).toBe(false);
    expect(can("send", "public", "viewer")).toBe(false);
    expect(can("send", "private", "member")).toBe(true);
    expect(can("manage", "public", "member")).toBe(false);
    expect(can("manage", "private", "admin")).toBe(true);
  });
});

describe("TokenBucket", () => {
  it("allows the burst, then refills at the rate, with a retry hint", () => {
    const bucket = new TokenBucket(3, 2, 0);
    expect([bucket.take(0), bucket.take(0), bucket.take(0)].every((r) => r.ok)).toBe(true);
    expect(bucket.take(0)).toEqual({ ok: false, retryAfterMs: 500 });
    expect(bucket.take(499).ok).toBe(false);
    expect(bucket.take(1000).ok).toBe(true);
    expect(bucket.isIdle(1000)).toBe(false);
    expect(bucket.isIdle(3000)).toBe(true);
  });
});
