// Test helpers that run inside workerd: real sockets through the Worker, real Postgres through
// the same driver and proxy the room uses, and the proxy's fault switch.

import { createExecutionContext, env } from "cloudflare:test";
import worker from "../src/index.js";
import { Pool } from "@neondatabase/serverless";
import { importJWK, type JWTPayload, SignJWT } from "jose";
import type { Fault } from "../tools/local/faults.js";
import type { Entry, Message, ReadyFrame, ServerFrame } from "../src/protocol/frames.js";
import { useLocalWsProxy } from "../src/storage/postgres.js";

export interface TestBindings {
  AUTH_SECRET: string;
  DATABASE_URL: string;
  NEON_WSPROXY: string;
  TEST_FAULTS_URL: string;
  TEST_REDIS_CONTROL_URL: string;
  UPSTASH_REDIS_REST_URL: string;
  UPSTASH_REDIS_REST_TOKEN: string;
  TEST_JWKS_PRIVATE_KEYS: string;
  TEST_HOOK_URL: string;
}

export const ACME_SECRET = "acme-secret-not-for-production";

/** Signs any token: for tenants, algorithms and claims that the default helper does not cover. */
export const signToken = async (
  claims: JWTPayload,
  key: { secret: string } | { jwk: "RS256" | "ES256"; kid?: string },
  expiresIn = "10m",
): Promise<string> => {
  const builder = new SignJWT(claims).setIssuedAt();
  if (claims.exp === undefined) builder.setExpirationTime(expiresIn);
  if ("secret" in key) return builder.setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(key.secret));
  const jwks = JSON.parse(testEnv.TEST_JWKS_PRIVATE_KEYS) as Record<string, { kid: string }>;
  const jwk = jwks[key.jwk];
  if (!jwk) throw new Error(`no ${key.jwk} key`);
  return builder.setProtectedHeader({ alg: key.jwk, kid: key.kid ?? jwk.kid }).sign(await importJWK(jwk, key.jwk));
};

/** A token of the acme tenant (HS256, audience chat-acme). */
export const acmeToken = (userId: string, extra: JWTPayload = {}): Promise<string> =>
  signToken({ sub: userId, tenant: "acme", aud: "chat-acme", ...extra }, { secret: ACME_SECRET });

export const testEnv = env as unknown as TestBindings;

export const BASE = "http://chat.test";

/**
 * Requests go straight to the Worker's fetch handler (the same Hono app, real Durable Object
 * bindings) rather than through SELF.fetch: under vitest-pool-workers 0.15 every SELF.fetch gets
 * slower as a file makes more of them (workers-sdk#15446), which made timing-sensitive tests
 * flaky. test/entry.test.ts checks the real entry point through SELF once.
 */
export const workerFetch = (input: string, init?: RequestInit): Promise<Response> =>
  Promise.resolve(worker.fetch(new Request(input, init), env, createExecutionContext()));

let counter = 0;
/** Storage is isolated per test file, Postgres is not: every test uses its own room. */
export const uniqueRoom = (prefix = "r"): string =>
  `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

export const tokenFor = (userId: string, options: { expiresIn?: string; secret?: string } = {}): Promise<string> =>
  new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? "10m")
    .sign(new TextEncoder().encode(options.secret ?? testEnv.AUTH_SECRET));

export const api = async (
  path: string,
  init: { method?: string; user?: string; token?: string; body?: unknown; rawBody?: string } = {},
): Promise<{ status: number; body: unknown; headers: Headers }> => {
  const headers = new Headers();
  const token = init.token ?? (init.user ? await tokenFor(init.user) : undefined);
  if (token) headers.set("authorization", `Bearer ${token}`);
  let body: string | undefined = init.rawBody;
  if (init.body !== undefined) {
    body = JSON.stringify(init.body);
    headers.set("content-type", "application/json");
  }
  const res = await workerFetch(`${BASE}${path}`, { method: init.method ?? (body ? "POST" : "GET"), headers, body });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {}
  return { status: res.status, body: parsed, headers: res.headers };
};

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls until `check` returns a value (neither undefined nor false), or fails with `what` after
 * `timeoutMs`. An async check is awaited on every poll: a promise is never taken for the value
 * (it would be "truthy" at once, and the wait would not wait).
 */
export const eventually = async <T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
};

export class TestSocket {
  readonly frames: ServerFrame[] = [];
  readonly raw: string[] = [];
  closed: { code: number; reason: string } | undefined;

  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener("message", (event) => {
      const data = typeof event.data === "string" ? event.data : "";
      this.raw.push(data);
      this.frames.push(JSON.parse(data) as ServerFrame);
    });
    ws.addEventListener("close", (event) => {
      this.closed = { code: event.code, reason: event.reason };
    });
  }

  /** Opens a socket through the Worker; rejects with the HTTP status and body if it is refused. */
  static async open(
    roomId: string,
    options: { user: string; since?: number; last?: number; token?: string; query?: string; protocol?: number },
  ): Promise<TestSocket> {
    const token = options.token ?? (await tokenFor(options.user));
    const params = new URLSearchParams({ token });
    if (options.since !== undefined) params.set("since", String(options.since));
    if (options.last !== undefined) params.set("last", String(options.last));
    // The protocol the current SDK speaks, unless the test plays an older (or newer) client.
    const protocol = options.protocol ?? 2;
    if (protocol !== 1 && !(options.query ?? "").includes("v=")) params.set("v", String(protocol));
    const res = await workerFetch(`${BASE}/v1/rooms/${roomId}/ws?${params}${options.query ?? ""}`, {
      headers: { upgrade: "websocket" },
    });
    const ws = res.webSocket;
    if (res.status !== 101 || !ws) throw new Error(`upgrade refused: ${res.status} ${await res.text()}`);
    ws.accept();
    return new TestSocket(ws);
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  sendRaw(data: string | ArrayBuffer): void {
    this.ws.send(data);
  }

  close(code = 1000): void {
    try {
      this.ws.close(code, "test done");
    } catch {}
  }

  ready(timeoutMs?: number): Promise<ReadyFrame> {
    return eventually("ready", () => this.frames.find((f): f is ReadyFrame => f.type === "ready"), timeoutMs);
  }

  /** Everything this socket was told about, in arrival order: ready's history then live frames (entries of every kind). */
  messages(): Entry[] {
    const out: Entry[] = [];
    for (const frame of this.frames) {
      if (frame.type === "ready") out.push(...frame.messages);
      else if (frame.type === "message") out.push(frame.message);
    }
    return out;
  }

  seqs(): number[] {
    return this.messages().map((m) => m.seq);
  }

  ofType<T extends ServerFrame["type"]>(type: T): Extract<ServerFrame, { type: T }>[] {
    return this.frames.filter((f): f is Extract<ServerFrame, { type: T }> => f.type === type);
  }

  /** Waits until this socket has seen every seq up to `seq`. */
  untilSeq(seq: number, timeoutMs?: number): Promise<void> {
    return eventually(`seq ${seq}`, () => (this.messages().some((m) => m.seq >= seq) ? true : undefined), timeoutMs).then(
      () => undefined,
    );
  }
}

/** Sends over a socket and waits for its ack or error. */
export const sendAndWait = async (socket: TestSocket, clientMsgId: string, text: string, timeoutMs?: number) => {
  socket.send({ type: "send", clientMsgId, text });
  return eventually(
    `outcome of ${clientMsgId}`,
    () =>
      socket.frames.find(
        (f) => (f.type === "ack" || f.type === "error") && "clientMsgId" in f && f.clientMsgId === clientMsgId,
      ),
    timeoutMs,
  );
};

/** Asserts-free check used by tests: seqs are exactly from..to, each once, ascending. */
export const isContiguous = (seqs: number[]): boolean => seqs.every((s, i) => i === 0 || s === (seqs[i - 1] ?? 0) + 1);

let pool: Pool | undefined;
/** Direct access to the durable record, through the same driver and proxy the room uses. */
export const sql = async <T extends Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> => {
  useLocalWsProxy(testEnv.NEON_WSPROXY);
  pool ??= (() => {
    const p = new Pool({ connectionString: testEnv.DATABASE_URL, max: 2, idleTimeoutMillis: 1000 });
    p.on("error", () => {});
    p.on("connect", (c: { on(e: string, f: () => void): void }) => c.on("error", () => {}));
    return p;
  })();
  const { rows } = await pool.query<T>(text, params);
  return rows;
};

export const storedMessages = async (roomId: string, tenant = "default") =>
  (
    await sql<{ seq: string; client_msg_id: string; user_id: string; text: string; id: string }>(
      "SELECT seq, client_msg_id, user_id, text, id FROM messages WHERE tenant = $1 AND room_id = $2 ORDER BY seq",
      [tenant, roomId],
    )
  ).map((r) => ({ seq: Number(r.seq), clientMsgId: r.client_msg_id, userId: r.user_id, text: r.text, id: r.id }));

export const setFault = async (fault: Fault): Promise<void> => {
  const res = await fetch(testEnv.TEST_FAULTS_URL, { method: "POST", body: JSON.stringify(fault) });
  if (!res.ok) throw new Error(`setting fault failed: ${res.status} ${await res.text()}`);
};

/** True when the run has a Redis (always under CI=true: the global setup fails without one). */
export const hasRedis = (): boolean => Boolean(testEnv.UPSTASH_REDIS_REST_URL);

/** Makes the Upstash endpoint fail like an outage (true) or recover (false). */
export const setRedisDown = async (down: boolean): Promise<void> => {
  const res = await fetch(testEnv.TEST_REDIS_CONTROL_URL, { method: "POST", body: JSON.stringify({ down }) });
  if (!res.ok) throw new Error(`redis control failed: ${res.status}`);
};

/** The room's mirror stream as Redis holds it, read over the Upstash REST API. */
export const mirroredStream = async (roomId: string, tenant = "default"): Promise<Message[]> => {
  const { Redis } = await import("@upstash/redis/cloudflare");
  const redis = new Redis({ url: testEnv.UPSTASH_REDIS_REST_URL, token: testEnv.UPSTASH_REDIS_REST_TOKEN, enableTelemetry: false });
  const entries = await redis.xrange(`chat:{${tenant}:${roomId}}:messages`, "-", "+");
  return Object.entries(entries).map(([id, fields]) => {
    const message = fields.message as Message;
    if (`${message.seq}-0` !== id) throw new Error(`stream entry ${id} holds seq ${message.seq}`);
    return message;
  });
};

/**
 * Calls the Worker with some bindings replaced (a setting, a fake binding). Only the Worker sees
 * them: room objects keep the test bindings. The configuration is parsed per env object, so each
 * call with overrides sees exactly these settings.
 */
export const workerFetchWith = (overrides: Record<string, unknown>, input: string, init?: RequestInit): Promise<Response> =>
  Promise.resolve(worker.fetch(new Request(input, init), { ...env, ...overrides } as typeof env, createExecutionContext()));

/**
 * Waits, if needed, until at least `needMs` are left in the current fixed window of `periodS`
 * seconds (the rate limiting binding's windows are aligned to the wall clock locally), so a test
 * that counts up to a limit is not split by a window boundary.
 */
export const untilWindowHas = async (periodS: number, needMs: number): Promise<void> => {
  const periodMs = periodS * 1000;
  const left = periodMs - (Date.now() % periodMs);
  if (left < needMs) await sleep(left + 50);
};
