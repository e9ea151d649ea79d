import { describe, expect, it } from "vitest";
import type { Role, RoomKey } from "../storage/types.js";
import { can, isRevocation, RoomAccess, TokenBucket } from "./access.js";

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

describe("RoomAccess", () => {
  const deferredStore = () => {
    const calls: Array<{ userId: string; resolve: (role: Role | null) => void }> = [];
    return {
      calls,
      store: {
        roleOf: (_room: RoomKey, userId: string) => new Promise<Role | null>((resolve) => calls.push({ userId, resolve })),
      },
    };
  };
  const room = { tenant: "t", roomId: "r" };

  it("a role read that started before a removal and answers after it never brings the old role back", async () => {
    const { calls, store } = deferredStore();
    const access = new RoomAccess(room, () => store);
    const reading = access.roleOf("bob"); // goes to Postgres
    access.set("bob", null); // bob is removed while that read is in flight
    calls[0]?.resolve("member"); // the slow read answers with what was true before
    expect(await reading).toBeNull();
    expect(access.known("bob")).toBeNull();
  });

  it("a clear() while a read is in flight makes that read re-read rather than fill the cache", async () => {
    const { calls, store } = deferredStore();
    const access = new RoomAccess(room, () => store);
    const reading = access.roleOf("ann");
    access.clear();
    calls[0]?.resolve("admin"); // stale: from before the clear
    await Promise.resolve();
    expect(calls.length).toBe(2); // read again
    calls[1]?.resolve("viewer");
    expect(await reading).toBe("viewer");
  });

  it("revocations are recognised: lower or no role", () => {
    expect(isRevocation("admin", "member")).toBe(true);
    expect(isRevocation("member", null)).toBe(true);
    expect(isRevocation("viewer", "member")).toBe(false);
    expect(isRevocation(null, "viewer")).toBe(false);
  });
});
