// `npm run dev` on a port that is taken says so and names PORT=, at once (before it builds or
// starts a database), instead of wrangler's workerd stack trace advising --port.

import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";

const dev = (port: string) =>
  spawnSync(process.execPath, ["--import", "tsx", "tools/dev.ts"], {
    encoding: "utf8",
    timeout: 20_000,
    env: { ...process.env, PORT: port },
    stdio: ["ignore", "pipe", "pipe"],
  });

describe("npm run dev on a busy port", () => {
  it("exits 1 with a message naming the port and PORT=, and no stack trace", async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as { port: number };
    try {
      const run = dev(String(port));
      expect(run.status).toBe(1);
      expect(run.stderr).toContain(`dev: port ${port} is already in use on 127.0.0.1`);
      expect(run.stderr).toContain(`PORT=${port + 1} npm run dev`);
      expect(run.stderr + run.stdout).not.toMatch(/workerd|--port|\n\s+at /);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("PORT that is not a port is refused with an example", () => {
    const run = dev("eighty");
    expect(run.status).toBe(1);
    expect(run.stderr).toContain("PORT=eighty is not a port (1–65535), e.g. PORT=8788 npm run dev");
  });
});
