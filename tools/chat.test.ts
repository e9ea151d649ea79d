// The terminal client's first-hour behaviour: typed commands never reach the room by mistake, and
// a server that is not running is named as such, with the --url hint.

import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { parseLine, serverProblem, unknownCommand } from "./chat-lib.js";

/** A port nothing listens on: bound, then released. */
const closedPort = async (): Promise<number> => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
};

describe("terminal client commands", () => {
  it("a line is sent; /quit, /pending, /help, /older [n] are commands; //text sends /text", () => {
    expect(parseLine("hello")).toEqual({ kind: "send", text: "hello" });
    expect(parseLine("  ")).toEqual({ kind: "empty" });
    expect(parseLine("/quit")).toEqual({ kind: "quit" });
    expect(parseLine("/pending")).toEqual({ kind: "pending" });
    expect(parseLine("/help")).toEqual({ kind: "help" });
    expect(parseLine("/older")).toEqual({ kind: "older", count: 50 });
    expect(parseLine("/older 20")).toEqual({ kind: "older", count: 20 });
    expect(parseLine("//shrug")).toEqual({ kind: "send", text: "/shrug" });
  });

  it("an unknown /command, or a known one with a bad argument, is refused with the help line and never sent", () => {
    for (const line of ["/qiut", "/nick bob", "/older lots", "/older 0", "/quit now", "/"]) {
      expect(parseLine(line).kind, line).toBe("unknown");
    }
    expect(parseLine("/nick bob")).toEqual({ kind: "unknown", name: "/nick" });
    expect(unknownCommand("/nick")).toMatch(/^! unknown command \/nick \(not sent\); commands: \/older .*\/help · \/quit/);
  });
});

describe("a server that is not running", () => {
  it("serverProblem names it, with npm run dev and the --url hint; a bad --url is named too", async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const problem = await serverProblem(url);
    expect(problem).toContain(`the chat server is not running at ${url} (ECONNREFUSED)`);
    expect(problem).toContain("npm run dev");
    expect(problem).toContain("--url <url>");
    expect(await serverProblem("localhost:8787")).toMatch(/is not a URL|not running/);
  });

  it("npm run chat against it exits 1 with that message, not `tokenProvider failed (fetch failed)`", async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const run = spawnSync(process.execPath, ["--import", "tsx", "tools/chat.ts", "--room", "lobby", "--user", "carol", "--url", url], {
      encoding: "utf8",
      timeout: 20_000,
      stdio: ["ignore", "pipe", "pipe"],
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`! the chat server is not running at ${url} (ECONNREFUSED)`);
    expect(run.stderr).toContain("--url <url>");
    expect(run.stderr).not.toContain("tokenProvider");
  });
});
