// End-to-end tests (e2e/): the SDK and the demo page in headless Chromium against a real
// `wrangler dev` with real Postgres and Redis, all started by e2e/global-setup.ts. Plain Node;
// the Worker's own tests run inside workerd with vitest.config.ts.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "e2e",
    environment: "node",
    include: ["e2e/**/*.test.ts"],
    globalSetup: ["e2e/global-setup.ts"],
    // One server for every file, and tests that crash it or break its database: one file at a time.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
