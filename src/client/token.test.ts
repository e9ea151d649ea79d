import { describe, expect, it } from "vitest";
import { ChatClientError } from "./errors.js";
import { fakeJwt } from "./testing/jwt.js";
import { decodeJwtClaims, MIN_TOKEN_USE_MS, TokenSource, tokenRefreshAt } from "./token.js";

/** A provider that hands out numbered tokens valid for `lifetimeS` from the (fake) clock's now. */
const numberedProvider = (clock: { now: number }, lifetimeS: number, withIat = true) => {
  let calls = 0;
  const provider = async (): Promise<string> => {
    calls++;
    const iat = Math.floor(clock.now / 1000);
    return fakeJwt({ sub: `user-${calls}`, exp: iat + lifetimeS, ...(withIat ? { iat } : {}) });
  };
  return { provider, calls: () => calls };
};

describe("decodeJwtClaims", () => {
  it("reads exp, iat and sub (including non-ASCII) without verifying the signature", () => {
    expect(decodeJwtClaims(fakeJwt({ sub: "zoë", exp: 2000, iat: 1000, other: true }))).toEqual({
      sub: "zoë",
      exp: 2000,
      iat: 1000,
    });
  });

  it("treats an opaque or malformed token as having no claims", () => {
    expect(decodeJwtClaims("opaque-token")).toBeUndefined();
    expect(decodeJwtClaims("a.!!!.c")).toBeUndefined();
    expect(decodeJwtClaims(fakeJwt({ exp: "soon" }))).toEqual({});
  });
});

describe("tokenRefreshAt", () => {
  it("refreshes a minute before expiry, counting the lifetime from when the token was fetched", () => {
    // iat/exp far in the past relative to the local clock (a clock that is hours off) do not matter.
    expect(tokenRefreshAt({ iat: 100, exp: 100 + 3600 }, 1_000_000)).toBe(1_000_000 + 3_600_000 - 60_000);
  });

  it("refreshes short-lived tokens after 80% of their lifetime", () => {
    expect(tokenRefreshAt({ iat: 0, exp: 60 }, 0)).toBe(48_000);
  });

  it("falls back to exp on the local clock without iat, and never for a token without exp", () => {
    expect(tokenRefreshAt({ exp: 2000 }, 0)).toBe(2_000_000 - 60_000);
    expect(tokenRefreshAt({}, 0)).toBeUndefined();
    expect(tokenRefreshAt(undefined, 0)).toBeUndefined();
  });
});

describe("TokenSource", () => {
  it("reuses a token until shortly before it expires, then asks the provider for a new one", async () => {
    const clock = { now: 1_000_000 };
    const { provider, calls } = numberedProvider(clock, 600);
    const tokens = new TokenSource(provider, () => clock.now);
    const first = await tokens.get();
    clock.now += 539_000; // 8 min 59 s into a 10 min token
    expect(await tokens.get()).toBe(first);
    expect(calls()).toBe(1);
    clock.now += 1_000; // 9 min: inside the one-minute margin
    const second = await tokens.get();
    expect(second).not.toBe(first);
    expect(calls()).toBe(2);
    expect(tokens.claims?.sub).toBe("user-2");
  });

  it("shares one provider call between concurrent callers", async () => {
    const clock = { now: 0 };
    const { provider, calls } = numberedProvider(clock, 600);
    const tokens = new TokenSource(provider, () => clock.now);
    const all = await Promise.all([tokens.get(), tokens.get(), tokens.get()]);
    expect(new Set(all).size).toBe(1);
    expect(calls()).toBe(1);
  });

  it("after a refusal, fetches a new token, but only if the refused one is still the current one", async () => {
    const clock = { now: 0 };
    const { provider, calls } = numberedProvider(clock, 600);
    const tokens = new TokenSource(provider, () => clock.now);
    const first = await tokens.get();
    tokens.invalidate(first);
    const second = await tokens.get();
    expect(second).not.toBe(first);
    tokens.invalidate(first); // a late 401 for the old token must not discard the new one
    expect(await tokens.get()).toBe(second);
    expect(calls()).toBe(2);
  });

  it("does not loop when the local clock says a fresh token without iat is already expired", async () => {
    const clock = { now: 10_000_000 };
    let calls = 0;
    const tokens = new TokenSource(
      async () => {
        calls++;
        return fakeJwt({ exp: 1 }); // expired a long time ago by our (wrong) clock
      },
      () => clock.now,
    );
    await tokens.get();
    await tokens.get();
    expect(calls).toBe(1);
    clock.now += MIN_TOKEN_USE_MS;
    await tokens.get();
    expect(calls).toBe(2);
  });

  it("keeps an opaque token until it is refused", async () => {
    let calls = 0;
    const tokens = new TokenSource(
      async () => `opaque-${++calls}`,
      () => 0,
    );
    expect(await tokens.get()).toBe("opaque-1");
    expect(await tokens.get()).toBe("opaque-1");
    tokens.invalidate("opaque-1");
    expect(await tokens.get()).toBe("opaque-2");
  });

  it("reports a failing or empty provider as unauthorized, and tries again next time", async () => {
    let attempt = 0;
    const tokens = new TokenSource(async () => {
      attempt++;
      if (attempt === 1) throw new Error("backend down");
      return attempt === 2 ? "" : "ok";
    });
    await expect(tokens.get()).rejects.toMatchObject({ code: "unauthorized", cause: new Error("backend down") });
    await expect(tokens.get()).rejects.toBeInstanceOf(ChatClientError);
    expect(await tokens.get()).toBe("ok");
  });
});
