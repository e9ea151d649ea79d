// Production hardening of the Worker (issue 12): where a token may travel, bodies that stream,
// token lifetime, dev tokens, production defaults, CORS and security headers, limits across
// rooms, structured logs and metrics. Each test names the guarantee; each failed on the code
// before this change.

import { env } from "cloudflare:test";
import { SignJWT } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import wranglerToml from "../wrangler.toml?raw";
import { DEMO_CSP, API_CSP } from "../src/api/cors.js";
import { clientNetwork, LIMITS, limitOf, type LimitEnv, userLimitKey, windowRemainingMs } from "../src/limits.js";
import { readConfig } from "../src/config.js";
import { MAX_FRAME_BYTES } from "../src/protocol/limits.js";
import { logLine } from "../src/observability/log.js";
import { Metrics, metrics, type MetricsWriter } from "../src/observability/metrics.js";
import {
  ACME_SECRET,
  acmeToken,
  api,
  BASE,
  signToken,
  sql,
  TestSocket,
  testEnv,
  tokenFor,
  uniqueRoom,
  untilWindowHas,
  workerFetch,
  workerFetchWith,
} from "./helpers.js";

type ErrorBody = { error: { code: string; message: string } };
const errorOf = async (res: Response): Promise<ErrorBody["error"]> => ((await res.json()) as ErrorBody).error;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const now = () => Math.floor(Date.now() / 1000);

afterEach(() => {
  vi.restoreAllMocks();
});

describe("tokens and bodies", () => {
  it("a query-string token is accepted only on a room's WebSocket upgrade: GET /v1/rooms/ws?token= is 401 and creates no room", async () => {
    const user = uniqueRoom("qs");
    const token = await tokenFor(user);
    const room = uniqueRoom("qs-room");
    // Before: any path ending in /ws took the query token, so this read (and created) a room named "ws".
    const wsNamed = await workerFetch(`${BASE}/v1/rooms/ws?token=${token}`);
    expect(wsNamed.status).toBe(401);
    expect(await sql("SELECT 1 FROM rooms WHERE tenant = 'default' AND room_id = 'ws' AND created_by = $1", [user])).toEqual([]);
    // The socket path without an upgrade, and other routes, do not take it either.
    expect((await workerFetch(`${BASE}/v1/rooms/${room}/ws?token=${token}`)).status).toBe(401);
    expect((await workerFetch(`${BASE}/v1/rooms/${room}/messages?token=${token}`)).status).toBe(401);
    // The real route does.
    const socket = await TestSocket.open(room, { user, token });
    expect((await socket.ready()).roomId).toBe(room);
    socket.close();
  });

  it("a chunked body without content-length is refused with 413 as soon as it passes 16 KiB; the rest of it is never read", async () => {
    const token = await tokenFor("streamer");
    const chunk = new Uint8Array(64 * 1024).fill(0x61);
    const total = 30 * 1024 * 1024;
    let pulled = 0;
    const body = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          if (pulled >= total) return controller.close();
          pulled += chunk.byteLength;
          controller.enqueue(chunk);
        },
      },
      { highWaterMark: 0 },
    );
    const res = await workerFetch(`${BASE}/v1/rooms/${uniqueRoom("big")}/messages`, {
      method: "POST",
      headers: { ...bearer(token), "content-type": "application/json" },
      body,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
    expect((await errorOf(res)).code).toBe("too_large");
    // Before: all 30 MiB were read, then measured. Now: at most the cap plus a chunk or two.
    expect(pulled).toBeLessThanOrEqual(MAX_FRAME_BYTES + 4 * chunk.byteLength);
    // A declared length over the cap is refused before a byte is read (as before).
    const declared = await workerFetch(`${BASE}/v1/rooms/${uniqueRoom("big")}/messages`, {
      method: "POST",
      headers: { ...bearer(token), "content-type": "application/json", "content-length": String(MAX_FRAME_BYTES + 1) },
      body: "x".repeat(MAX_FRAME_BYTES + 1),
    });
    expect(declared.status).toBe(413);
  });

  it("a token that lives longer than MAX_TOKEN_TTL_S (default 24 h) is refused with 401 saying so, measured exp − iat or exp − now", async () => {
    const roomsOf = (token: string, overrides: Record<string, unknown> = {}) =>
      workerFetchWith(overrides, `${BASE}/v1/rooms`, { headers: bearer(token) });
    const secret = new TextEncoder().encode(testEnv.AUTH_SECRET);
    const day = 24 * 3600;
    const longIat = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("ttl")
      .setIssuedAt()
      .setExpirationTime(now() + day + 3600)
      .sign(secret);
    const longNoIat = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("ttl")
      .setExpirationTime(now() + 30 * day)
      .sign(secret);
    // An iat set in the future would hide a long life: measured from now instead.
    const futureIat = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("ttl")
      .setIssuedAt(now() + 29 * day)
      .setExpirationTime(now() + 30 * day)
      .sign(secret);
    for (const token of [longIat, longNoIat, futureIat]) {
      const res = await roomsOf(token);
      expect(res.status).toBe(401);
      expect(await errorOf(res)).toMatchObject({
        code: "unauthorized",
        message: expect.stringMatching(/over the maximum of 86400 s/),
      });
    }
    const fine = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("ttl")
      .setIssuedAt()
      .setExpirationTime(now() + day - 60)
      .sign(secret);
    expect((await roomsOf(fine)).status).toBe(200);
    // Configurable: with MAX_TOKEN_TTL_S=600 a 15-minute token is too long, a 5-minute one is fine.
    expect((await roomsOf(await tokenFor("ttl", { expiresIn: "15m" }), { MAX_TOKEN_TTL_S: "600" })).status).toBe(401);
    expect((await roomsOf(await tokenFor("ttl", { expiresIn: "5m" }), { MAX_TOKEN_TTL_S: "600" })).status).toBe(200);
  });

  it("dev tokens are minted only for tenants without keys of their own: default and devOnly yes, acme (own secret) and globex (JWKS) 403", async () => {
    const mint = (tenant?: string) => api("/v1/dev/token", { body: { userId: "dev-user", ...(tenant ? { tenant } : {}) } });
    for (const tenant of ["acme", "globex"]) {
      const res = await mint(tenant);
      expect([tenant, res.status, (res.body as ErrorBody).error?.code]).toEqual([tenant, 403, "forbidden"]);
    }
    const own = await mint();
    expect(own.status).toBe(200);
    expect((await api("/v1/rooms", { token: (own.body as { token: string }).token })).status).toBe(200);
    const sandbox = await mint("sandbox");
    expect(sandbox.status).toBe(200);
    const sandboxToken = (sandbox.body as { token: string }).token;
    expect((await api("/v1/rooms", { token: sandboxToken })).status).toBe(200);
    // A sandbox token is its own tenant's: it is no default-tenant token (different rooms).
    const roomId = uniqueRoom("sbx");
    expect((await api("/v1/rooms", { token: sandboxToken, body: { roomId, visibility: "private" } })).status).toBe(201);
    expect((await api(`/v1/rooms/${roomId}/members`, { token: sandboxToken })).status).toBe(200);
    expect((await sql("SELECT tenant FROM rooms WHERE room_id = $1", [roomId])).map((r) => r.tenant)).toEqual(["sandbox"]);
    // A devOnly tenant cannot also have its own key, and needs AUTH_SECRET.
    expect(readConfig({ AUTH_SECRET: "s", TENANTS: JSON.stringify({ x: { devOnly: true, secret: "k" } }) }).configError).toMatch(
      /devOnly/,
    );
    expect(readConfig({ TENANTS: JSON.stringify({ x: { devOnly: true } }) }).configError).toMatch(/AUTH_SECRET/);
  });
});

/** `[section]` or `[[section]]` bodies of wrangler.toml, by header. */
const tomlSections = (header: string): string[] => {
  const out: string[] = [];
  const parts = wranglerToml.split(/^(?=\[)/m);
  for (const part of parts) if (part.startsWith(`${header}\n`)) out.push(part.slice(header.length + 1));
  return out;
};
const tomlVar = (name: string): string | undefined =>
  tomlSections("[vars]")[0]?.match(new RegExp(`^${name}\\s*=\\s*"([^"]*)"`, "m"))?.[1];

describe("production defaults", () => {
  it("open rooms are off unless AUTO_CREATE_ROOMS=true, and wrangler.toml sets it, dev tokens, the demo page and CORS to off explicitly", () => {
    const openRooms = (value: string | undefined) =>
      readConfig({ AUTH_SECRET: "s", AUTO_CREATE_ROOMS: value }).tenants.get("default")?.autoCreateRooms;
    expect([openRooms(undefined), openRooms(""), openRooms("yes"), openRooms("false"), openRooms("true")]).toEqual([
      false,
      false,
      false,
      false,
      true,
    ]);
    expect(readConfig({ AUTH_SECRET: "s" })).toMatchObject({
      devTokens: false,
      demoPage: false,
      corsOrigins: [],
      rateLimits: true,
      maxTokenTtlS: 86400,
    });
    expect(tomlVar("AUTO_CREATE_ROOMS")).toBe("false");
    expect(tomlVar("DEV_TOKENS")).toBe("false");
    expect(tomlVar("DEMO_PAGE")).toBe("false");
    expect(tomlVar("CORS_ORIGINS")).toBe("");
    expect(tomlVar("RATE_LIMITS")).toBe("on");
    expect(tomlVar("MAX_TOKEN_TTL_S")).toBe("86400");
    // The Worker runs before the assets layer, or it could not keep the demo page off.
    expect(tomlSections("[assets]")[0]).toMatch(/^run_worker_first = true$/m);
    expect(tomlSections("[observability]")[0]).toMatch(/^enabled = true$/m);
    expect(tomlSections("[[analytics_engine_datasets]]")[0]).toMatch(/^binding = "METRICS"$/m);
    // Every limit has its binding, with the period LIMITS uses for Retry-After.
    const limits = tomlSections("[[ratelimits]]").map((s) => ({
      name: s.match(/^name = "(\w+)"/m)?.[1],
      period: Number(s.match(/period = (\d+)/)?.[1]),
    }));
    expect(limits).toEqual(Object.values(LIMITS).map((l) => ({ name: l.binding, period: l.periodS })));
  });
});

describe("CORS and security headers", () => {
  const preflight = (origin: string, overrides: Record<string, unknown> = {}) =>
    workerFetchWith(overrides, `${BASE}/v1/rooms/${uniqueRoom("cors")}/messages`, {
      method: "OPTIONS",
      headers: {
        origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });

  it("preflights are answered before authentication (never 401): allowed origins get Authorization and Content-Type, others get no grant", async () => {
    const acme = await preflight("https://app.acme.example");
    expect(acme.status).toBe(204);
    expect(acme.headers.get("access-control-allow-origin")).toBe("https://app.acme.example");
    expect(acme.headers.get("access-control-allow-headers")?.toLowerCase().split(",")).toEqual(["authorization", "content-type"]);
    expect(acme.headers.get("access-control-allow-methods")).toMatch(/POST/);
    // Production default: no deployment-wide origin, so a stranger's preflight gets no grant (and no 401).
    const stranger = await preflight("https://evil.example");
    expect(stranger.status).toBe(204);
    expect(stranger.headers.get("access-control-allow-origin")).toBeNull();
    // On an unknown /v1 route too.
    const unknown = await workerFetch(`${BASE}/v1/nothing-here`, {
      method: "OPTIONS",
      headers: { origin: "https://app.acme.example" },
    });
    expect(unknown.status).toBe(204);
    // CORS_ORIGINS lists origins for the deployment; "*" (dev) allows any.
    expect(
      (await preflight("https://chat.example.com", { CORS_ORIGINS: "https://chat.example.com" })).headers.get(
        "access-control-allow-origin",
      ),
    ).toBe("https://chat.example.com");
    expect((await preflight("http://localhost:5173", { CORS_ORIGINS: "*" })).headers.get("access-control-allow-origin")).toBe(
      "http://localhost:5173",
    );
    // A malformed origin list is a configuration error, not a silent "none".
    expect(readConfig({ AUTH_SECRET: "s", CORS_ORIGINS: "https://app.example.com/" }).configError).toMatch(/CORS_ORIGINS/);
  });

  it("a request's CORS grant is its tenant's: acme's origin reads acme's answers, errors included, and not another tenant's; Retry-After and x-chat-source are exposed", async () => {
    const origin = "https://app.acme.example";
    const roomId = uniqueRoom("cors");
    const created = await workerFetch(`${BASE}/v1/rooms`, {
      method: "POST",
      headers: { ...bearer(await acmeToken("cors-admin")), origin, "content-type": "application/json" },
      body: JSON.stringify({ roomId, visibility: "public" }),
    });
    expect(created.status).toBe(201);
    expect(created.headers.get("access-control-allow-origin")).toBe(origin);
    const read = await workerFetch(`${BASE}/v1/rooms/${roomId}/messages?after=0`, {
      headers: { ...bearer(await acmeToken("cors-admin")), origin },
    });
    expect(read.status).toBe(200);
    expect(read.headers.get("access-control-allow-origin")).toBe(origin);
    expect(read.headers.get("access-control-expose-headers")?.toLowerCase().split(",")).toEqual(["retry-after", "x-chat-source"]);
    // An error is readable too, so the app can show it.
    const refused = await workerFetch(`${BASE}/v1/rooms/${roomId}/messages`, { headers: { ...bearer("not.a.jwt"), origin } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("access-control-allow-origin")).toBe(origin);
    // The same origin with a default-tenant token: not acme's tenant, no grant.
    const other = await workerFetch(`${BASE}/v1/rooms`, { headers: { ...bearer(await tokenFor("cors-other")), origin } });
    expect(other.status).toBe(200);
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    // And sandbox's origin is sandbox's only.
    const sandboxOrigin = await workerFetch(`${BASE}/v1/rooms`, {
      headers: { ...bearer(await acmeToken("cors-admin")), origin: "https://sandbox.example" },
    });
    expect(sandboxOrigin.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("every response carries nosniff, no-referrer and a CSP; the demo page gets the page CSP and no inline script or style", async () => {
    for (const res of [
      await workerFetch(`${BASE}/healthz`),
      await workerFetch(`${BASE}/v1/rooms`),
      await workerFetch(`${BASE}/v1/nothing-here`),
    ]) {
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("referrer-policy")).toBe("no-referrer");
      expect(res.headers.get("content-security-policy")).toBe(API_CSP);
    }
    const page = await workerFetch(`${BASE}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.headers.get("content-security-policy")).toBe(DEMO_CSP);
    expect(page.headers.get("x-content-type-options")).toBe("nosniff");
    // The page's CSP has no 'unsafe-inline' because the page needs none.
    const html = await page.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>|<style|\sstyle=|\son[a-z]+=/i);
    expect(DEMO_CSP).not.toMatch(/unsafe-inline|unsafe-eval/);
    const script = await workerFetch(`${BASE}/app.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get("x-content-type-options")).toBe("nosniff");
  });

  it("the demo page links its favicon, which is served as SVG (the CSP's img-src 'self' allows it)", async () => {
    const html = await (await workerFetch(`${BASE}/`)).text();
    expect(html).toContain('<link rel="icon" href="/favicon.svg" type="image/svg+xml" />');
    const icon = await workerFetch(`${BASE}/favicon.svg`);
    expect(icon.status).toBe(200);
    expect(icon.headers.get("content-type")).toMatch(/^image\/svg\+xml/);
    expect(await icon.text()).toMatch(/^<svg /);
  });

  it("the demo page and its files are not served unless DEMO_PAGE=true: / and /app.js answer 404 JSON", async () => {
    for (const path of ["/", "/index.html", "/app.js", "/style.css", "/sdk/chat-client.js"]) {
      const res = await workerFetchWith({ DEMO_PAGE: "false" }, `${BASE}${path}`);
      expect([path, res.status]).toEqual([path, 404]);
      expect(await errorOf(res)).toMatchObject({ code: "not_found" });
    }
    expect((await workerFetchWith({ DEMO_PAGE: "false" }, `${BASE}/healthz`)).status).toBe(200);
  });
});

describe("limits across rooms", () => {
  const retryAfterOf = (res: { headers: Headers }) => Number(res.headers.get("retry-after"));

  it("room creations are limited per user across rooms: the 21st in a minute is 429 rate_limited with Retry-After; other users are unaffected", async () => {
    await untilWindowHas(60, 10_000);
    const user = uniqueRoom("creator");
    const token = await acmeToken(user);
    const statuses: number[] = [];
    for (let i = 0; i < 21; i++) {
      statuses.push((await api("/v1/rooms", { token, body: { roomId: uniqueRoom("lim"), visibility: "private" } })).status);
    }
    expect(statuses).toEqual([...Array(20).fill(201), 429]);
    const refused = await api("/v1/rooms", { token, body: { roomId: uniqueRoom("lim") } });
    expect(refused.status).toBe(429);
    expect((refused.body as ErrorBody).error.code).toBe("rate_limited");
    expect(retryAfterOf(refused)).toBeGreaterThanOrEqual(1);
    expect(retryAfterOf(refused)).toBeLessThanOrEqual(60);
    // Per user and tenant: the same user id in the default tenant is another user.
    expect((await api("/v1/rooms", { user, body: { roomId: uniqueRoom("lim") } })).status).toBe(201);
    expect((await api("/v1/rooms", { token: await acmeToken(`${user}-2`), body: { roomId: uniqueRoom("lim") } })).status).toBe(
      201,
    );
  });

  it("socket opens are limited per user across rooms: 60 in a minute over 15 rooms, the 61st is refused with 429 before the upgrade", async () => {
    await untilWindowHas(60, 12_000);
    const owner = await tokenFor(uniqueRoom("owner"));
    const rooms: string[] = [];
    for (let i = 0; i < 16; i++) {
      const roomId = uniqueRoom("sock");
      expect((await api("/v1/rooms", { token: owner, body: { roomId, visibility: "public" } })).status).toBe(201);
      rooms.push(roomId);
    }
    const user = uniqueRoom("opener");
    const token = await tokenFor(user);
    const sockets: TestSocket[] = [];
    for (const roomId of rooms.slice(0, 15)) {
      sockets.push(...(await Promise.all(Array.from({ length: 4 }, () => TestSocket.open(roomId, { user, token })))));
    }
    await Promise.all(sockets.map((s) => s.ready()));
    // The per-room cap (4) was never reached; the 61st open, in a 16th room, is refused.
    const res = await workerFetch(`${BASE}/v1/rooms/${rooms[15]}/ws?token=${token}`, { headers: { upgrade: "websocket" } });
    expect(res.status).toBe(429);
    expect(res.webSocket).toBeNull();
    expect(await errorOf(res)).toMatchObject({ code: "rate_limited" });
    expect(retryAfterOf(res)).toBeGreaterThanOrEqual(1);
    // Another user still connects there.
    const other = await TestSocket.open(rooms[15] ?? "", { user: `${user}-other` });
    await other.ready();
    for (const s of [...sockets, other]) s.close();
  });

  it("failed authentications and dev-token mints are limited per client IP: past 60 a minute, 429 with Retry-After; valid tokens and other IPs are unaffected", async () => {
    await untilWindowHas(60, 10_000);
    const ip = `198.51.100.${Math.floor(Math.random() * 250) + 1}-${uniqueRoom("ip")}`;
    const from = (address: string, headers: Record<string, string> = {}) => ({
      headers: { "cf-connecting-ip": address, ...headers },
    });
    const statuses: number[] = [];
    for (let i = 0; i < 61; i++)
      statuses.push((await workerFetch(`${BASE}/v1/rooms`, from(ip, bearer("bad.token.here")))).status);
    expect(statuses).toEqual([...Array(60).fill(401), 429]);
    const limited = await workerFetch(`${BASE}/v1/rooms`, from(ip));
    expect(limited.status).toBe(429);
    expect(retryAfterOf(limited)).toBeGreaterThanOrEqual(1);
    // A valid token from the same address still works; another address still gets its 401.
    expect((await workerFetch(`${BASE}/v1/rooms`, from(ip, bearer(await tokenFor("ip-user"))))).status).toBe(200);
    expect((await workerFetch(`${BASE}/v1/rooms`, from(`${ip}-b`, bearer("bad.token.here")))).status).toBe(401);
    // Dev-token mints count against the same per-IP limit.
    const mint = (address: string) =>
      workerFetch(`${BASE}/v1/dev/token`, {
        method: "POST",
        ...from(address, { "content-type": "application/json" }),
        body: JSON.stringify({ userId: "m" }),
      });
    expect((await mint(ip)).status).toBe(429);
    const minter = `${ip}-minter`;
    const mints: number[] = [];
    for (let i = 0; i < 61; i++) mints.push((await mint(minter)).status);
    expect(mints).toEqual([...Array(60).fill(200), 429]);
  });

  it("limitOf (the room's cross-room send limit) counts per user through the binding and answers retryAfterMs; RATE_LIMITS=off and a missing binding let everything through", async () => {
    await untilWindowHas(10, 5_000);
    const key = userLimitKey("default", uniqueRoom("sender"));
    const real = env as unknown as LimitEnv;
    // vitest.config.ts lifts LIMIT_SEND to 400 per 10 s for the tests (wrangler.toml: 150).
    const limit = 400;
    const outcomes = [];
    for (let i = 0; i < limit + 1; i++) outcomes.push(await limitOf(real, "send", key));
    expect(outcomes.slice(0, limit).every((o) => o.ok)).toBe(true);
    const over = outcomes[limit];
    expect(over?.ok).toBe(false);
    if (over && !over.ok) {
      expect(over.retryAfterMs).toBeGreaterThan(0);
      expect(over.retryAfterMs).toBeLessThanOrEqual(10_000);
    }
    // Another user of the same id in another tenant is counted apart.
    expect((await limitOf(real, "send", userLimitKey("acme", key))).ok).toBe(true);
    expect(await limitOf({ ...real, RATE_LIMITS: "off" }, "send", key)).toEqual({ ok: true });
    expect(await limitOf({ AUTH_SECRET: "s" }, "send", key)).toEqual({ ok: true });
    vi.spyOn(console, "warn").mockImplementation(() => {});
    const failing = { AUTH_SECRET: "s", LIMIT_SEND: { limit: () => Promise.reject(new Error("limiter down")) } } as LimitEnv;
    expect(await limitOf(failing, "send", key)).toEqual({ ok: true });
    expect(windowRemainingMs(10, 1_000_000_123)).toBe(9_877);
    // An IPv6 client is one key per /64, whatever address of it it picks.
    expect(["2001:db8:1:2:aaaa::1", "2001:0db8:0001:0002:ffff:1:2:3", "2001:db8:1:2::"].map(clientNetwork)).toEqual(
      Array(3).fill("2001:db8:1:2::/64"),
    );
    expect(["::1", "2001:db8::5", "203.0.113.9", "::ffff:203.0.113.9"].map(clientNetwork)).toEqual([
      "0:0:0:0::/64",
      "2001:db8:0:0::/64",
      "203.0.113.9",
      "203.0.113.9",
    ]);
    expect(windowRemainingMs(60, 60_000 * 5 - 10)).toBe(1000);
  });
});

describe("observability", () => {
  const captureLines = () => {
    const lines: Record<string, unknown>[] = [];
    const raw: string[] = [];
    for (const method of ["log", "warn", "error"] as const) {
      vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
        const text = args.map(String).join(" ");
        raw.push(text);
        try {
          lines.push(JSON.parse(text) as Record<string, unknown>);
        } catch {}
      });
    }
    return { lines, raw };
  };

  it("one JSON log line per request with tenant, room, route, status, code and duration, never the token or the message text", async () => {
    const { lines, raw } = captureLines();
    const roomId = uniqueRoom("logged");
    const token = await tokenFor("logger");
    const text = "words-that-must-never-be-logged";
    const post = (body: unknown) =>
      workerFetchWith({ LOG_LEVEL: "info" }, `${BASE}/v1/rooms/${roomId}/messages`, {
        method: "POST",
        headers: { ...bearer(token), "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    expect((await post({ clientMsgId: "c1", text })).status).toBe(201);
    expect((await post({ clientMsgId: "c2", text: "x".repeat(5000) })).status).toBe(413);
    await workerFetchWith({ LOG_LEVEL: "info" }, `${BASE}/v1/rooms/${roomId}/ws?token=${token}`);
    await workerFetchWith({ LOG_LEVEL: "info" }, `${BASE}/nope`, { method: "POST" });
    const requests = lines.filter((l) => l.event === "request");
    expect(requests).toEqual([
      {
        level: "info",
        event: "request",
        tenant: "default",
        room: roomId,
        op: "POST /v1/rooms/:roomId/messages",
        status: 201,
        code: "ok",
        durationMs: expect.any(Number),
      },
      {
        level: "info",
        event: "request",
        tenant: "default",
        room: roomId,
        op: "POST /v1/rooms/:roomId/messages",
        status: 413,
        code: "too_large",
        durationMs: expect.any(Number),
      },
      // A query token off the socket route is not accepted (and not logged).
      {
        level: "info",
        event: "request",
        op: "GET /v1/rooms/*",
        status: 401,
        code: "unauthorized",
        durationMs: expect.any(Number),
      },
      { level: "info", event: "request", op: "POST unmatched", status: 404, code: "not_found", durationMs: expect.any(Number) },
    ]);
    const all = raw.join("\n");
    expect(all).not.toContain(text);
    expect(all).not.toContain(token);
    expect(all).not.toContain(token.split(".")[1]);
    // Below LOG_LEVEL nothing is written (the tests run with warn).
    const before = requests.length;
    await workerFetch(`${BASE}/healthz`);
    expect(lines.filter((l) => l.event === "request")).toHaveLength(before);
  });

  it("one metric data point per request through the METRICS binding (an injected writer): tenant index, route, code, status, duration", async () => {
    const points: AnalyticsEngineDataPoint[] = [];
    const METRICS: MetricsWriter = { writeDataPoint: (p) => points.push(p) };
    const token = await acmeToken("metered");
    const roomId = uniqueRoom("metered");
    const post = (body: unknown) =>
      workerFetchWith({ METRICS }, `${BASE}/v1/rooms`, {
        method: "POST",
        headers: { ...bearer(token), "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    expect((await post({ roomId, visibility: "public" })).status).toBe(201);
    expect((await post({ roomId, visibility: "public" })).status).toBe(409);
    expect((await workerFetchWith({ METRICS }, `${BASE}/v1/rooms`)).status).toBe(401);
    expect(points).toEqual([
      { indexes: ["acme"], blobs: ["request", "acme", roomId, "POST /v1/rooms", "ok", "201"], doubles: [1, expect.any(Number)] },
      {
        indexes: ["acme"],
        blobs: ["request", "acme", roomId, "POST /v1/rooms", "conflict", "409"],
        doubles: [1, expect.any(Number)],
      },
      { indexes: ["-"], blobs: ["request", "", "", "GET /v1/rooms", "unauthorized", "401"], doubles: [1, expect.any(Number)] },
    ]);
    // The room's helpers write the same layout.
    const room = new Metrics(METRICS);
    room.commit("acme", roomId, 12, 3);
    room.sends("acme", roomId, "rate_limited", 2);
    room.mirrorLag("acme", roomId, 7);
    room.socket("acme", roomId, "open", 5);
    expect(
      points.slice(3).map((p) => [p.blobs?.[0], p.blobs?.[3], p.blobs?.[4], p.blobs?.[5], p.doubles?.[0], p.doubles?.[1]]),
    ).toEqual([
      ["commit", "commit", "ok", "", 12, 3],
      ["send", "send", "rate_limited", "ws", 2, 0],
      ["mirror_lag", "mirror", "ok", "", 7, 0],
      ["socket", "socket", "ok", "open", 5, 0],
    ]);
  });

  it("without the METRICS binding metrics are a no-op, a failing writer never fails a request, and log lines drop secret keys and blank JWT-like values", async () => {
    metrics({}).count("request", { tenant: "t" });
    let attempts = 0;
    const METRICS: MetricsWriter = {
      writeDataPoint: () => {
        attempts++;
        throw new Error("analytics engine down");
      },
    };
    expect((await workerFetchWith({ METRICS }, `${BASE}/healthz`)).status).toBe(200);
    expect((await workerFetchWith({ METRICS }, `${BASE}/v1/rooms`, { headers: bearer(await tokenFor("metered")) })).status).toBe(
      200,
    );
    expect(attempts).toBe(2);
    const jwt = await signToken({ sub: "x", tenant: "acme", aud: "chat-acme" }, { secret: ACME_SECRET });
    const line = JSON.parse(
      logLine("info", {
        event: "e",
        text: "hello",
        token: jwt,
        authorization: "Bearer abc",
        note: `got ${jwt}`,
        hint: "Bearer abc",
      }),
    );
    expect(line).toEqual({
      level: "info",
      event: "e",
      note: "[redacted]",
      hint: "[redacted]",
      redacted: "text,token,authorization",
    });
  });
});
