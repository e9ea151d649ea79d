// Unit tests of the server's pure parts (the writer's state machine, the pipeline, the window,
// access, the codec): plain Node with small injected interfaces, no workerd. Room behaviour
// end to end runs in workerd against real Postgres and Redis (vitest.config.ts).
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    name: "unit",
    environment: "node",
    include: ["src/hooks/**/*.test.ts", "src/server/**/*.test.ts", "src/room/**/*.test.ts", "src/replica/**/*.test.ts", "src/protocol/**/*.test.ts", "src/storage/**/*.test.ts", "src/api/**/*.test.ts"],
  },
});
