// Unit tests of the browser SDK (src/client) and of the local tools (tools/local): plain Node, no
// workerd. The Worker's tests use vitest.config.ts.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "client",
    environment: "node",
    include: ["src/client/**/*.test.ts", "tools/*.test.ts", "tools/local/**/*.test.ts"],
  },
});
