// Tests run inside workerd (the Workers runtime) through @cloudflare/vitest-pool-workers.
// The global setup (Node) starts the local stack — real Postgres behind a Neon wsproxy, real
// Redis behind an Upstash REST shim — and hands its addresses to the Worker as bindings.
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { TEST_WEBHOOK_SECRET } from "./test/webhook-receiver.js";

export const TEST_AUTH_SECRET = "test-secret-not-for-production";

export default defineConfig({
  plugins: [
    cloudflareTest(({ inject }) => ({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        // The tests lift the per-room send bucket (SEND_BURST, SEND_RATE_PER_S below) to load rooms
        // quickly; the limit across rooms is lifted to match, and test/room.access.test.ts checks
        // that it still holds across 20 rooms.
        // Uploads likewise: the attachment tests upload a few hundred small files as a handful of users.
        ratelimits: { LIMIT_SEND: { simple: { limit: 400, period: 10 } }, LIMIT_UPLOAD: { simple: { limit: 1000, period: 60 } } },
        bindings: {
          AUTH_SECRET: TEST_AUTH_SECRET,
          DEV_TOKENS: "true",
          // wrangler.toml keeps these off for production; the tests use open rooms in the default
          // tenant and load the demo page (test/api.hardening.test.ts checks the production values).
          AUTO_CREATE_ROOMS: "true",
          DEMO_PAGE: "true",
          // One JSON line per request would bury the test output; warnings and errors still show.
          LOG_LEVEL: "warn",
          DATABASE_URL: inject("databaseUrl"),
          NEON_WSPROXY: inject("neonWsProxy"),
          // A short timeout so "Postgres paused" tests do not wait long; still far above a commit.
          PG_STATEMENT_TIMEOUT_MS: "2000",
          // Idle pools close after 1 s: each room object holds its own connections, and the many
          // rooms of earlier test files must not run the local Postgres out of them.
          PG_IDLE_MS: "1000",
          // A small in-memory window, so most handshakes read Postgres while commits race them.
          HISTORY_WINDOW: "16",
          // A short stream, so trimming is exercised.
          MIRROR_MAXLEN: "50",
          // Flood limits low enough for a test to hit, high enough for the load tests not to.
          SEND_BURST: "200",
          SEND_RATE_PER_S: "100",
          MAX_SOCKETS_PER_USER: "4",
          // More tenants, with rooms closed by default: acme (HS256, audience check, a CORS origin),
          // globex (RS256/ES256 through a JWKS served by the global setup, issuer check) and sandbox.
          TENANTS: JSON.stringify({
            acme: {
              secret: "acme-secret-not-for-production",
              audience: "chat-acme",
              autoCreateRooms: false,
              corsOrigins: ["https://app.acme.example"],
            },
            globex: { jwksUrl: inject("jwksUrl"), issuer: "https://id.globex.test", autoCreateRooms: false },
            // A dev-only tenant (verified with AUTH_SECRET, dev tokens allowed) with its own CORS origin.
            sandbox: { devOnly: true, corsOrigins: ["https://sandbox.example"] },
            // Regional replicas on for this tenant only (test/replica.test.ts), with open rooms.
            replicated: { devOnly: true, autoCreateRooms: true, replication: true },
            // Webhooks (test/webhooks.test.ts) to the local receiver: every event, only
            // message.created, and one the tests switch off and on (outages, dead letters).
            hooks: {
              secret: "hooks-secret-not-for-production",
              autoCreateRooms: true,
              webhooks: [
                { id: "all", url: `${inject("webhookReceiverUrl")}/hook/all`, secret: TEST_WEBHOOK_SECRET, events: ["*"] },
                { id: "created", url: `${inject("webhookReceiverUrl")}/hook/created`, secret: TEST_WEBHOOK_SECRET, events: ["message.created"] },
                { id: "flaky", url: `${inject("webhookReceiverUrl")}/hook/flaky`, secret: TEST_WEBHOOK_SECRET, events: ["message.created"] },
              ],
            },
            // Moderation (test/moderation.test.ts): a tenant for tenant bans (its own, so a ban's
            // fan-out visits few rooms), and two with a before-commit hook on the local receiver
            // (test/hook-server.ts), failing open and failing closed.
            modt: { secret: "modt-secret-not-for-production", autoCreateRooms: true },
            hooked: {
              secret: "hooked-secret-not-for-production",
              autoCreateRooms: true,
              beforeCommit: { url: `${inject("hookUrl")}/review`, secret: "hook-secret-not-for-production", timeoutMs: 300, failMode: "open" },
            },
            hookedc: {
              secret: "hookedc-secret-not-for-production",
              autoCreateRooms: true,
              beforeCommit: { url: `${inject("hookUrl")}/review`, secret: "hook-secret-not-for-production", timeoutMs: 300, failMode: "closed" },
            },
          }),
          // `?region=` picks a replica (or the primary) in tests; production ignores it.
          REPLICA_REGION_OVERRIDE: "true",
          TEST_JWKS_PRIVATE_KEYS: inject("jwksPrivateKeys"),
          // The receiver is on loopback: allowed only with the dev flag (production refuses it: SSRF).
          WEBHOOKS_ALLOW_PRIVATE: "true",
          // Fast retries so outage tests finish: 1 s, 2 s, then the dead letter after 3 failures.
          WEBHOOK_RETRY_BASE_S: "1",
          WEBHOOK_MAX_ATTEMPTS: "3",
          WEBHOOK_TIMEOUT_MS: "2000",
          TEST_WEBHOOK_URL: inject("webhookReceiverUrl"),
          // The hook receiver listens on loopback: allowed here only (test/moderation.test.ts
          // checks that the production value refuses it).
          ALLOW_PRIVATE_URLS: "true",
          TEST_HOOK_URL: inject("hookUrl"),
          UPSTASH_REDIS_REST_URL: inject("redisRestUrl"),
          UPSTASH_REDIS_REST_TOKEN: inject("redisRestToken"),
          // Test-only bindings: where to inject faults.
          TEST_FAULTS_URL: inject("faultsUrl"),
          TEST_REDIS_CONTROL_URL: inject("redisControlUrl"),
        },
      },
    })),
  ],
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    // Fault tests flip a proxy that every test file shares: run files one at a time.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
