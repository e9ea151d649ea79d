// docs/tour.md cannot rot: this reads it and runs it. Blocks fenced as `tour` run in document
// order (`sh` with bash in the app folder, or in the repository with cwd=repo; other languages
// with file=<path> are written into the app folder when reached), against the stack the e2e
// global setup started (the same one `npm run dev` starts). The `tour-env` block is what the
// reader exports; the test provides exactly those names itself. `skip-in-ci` blocks are shown,
// not run; every shell block must be one of the three.

import { spawnSync } from "node:child_process";
import { mkdtemp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { describe, expect, inject, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "..");

interface Block {
  lang: string;
  kind: "tour" | "tour-env" | "skip-in-ci" | "plain";
  attrs: Record<string, string>;
  body: string;
  line: number;
}

const parseTour = (markdown: string): Block[] => {
  const blocks: Block[] = [];
  const fence = /^```(\S*)([^\n]*)\n([\s\S]*?)^```[ \t]*$/gm;
  for (const m of markdown.matchAll(fence)) {
    const [, lang = "", info = "", body = ""] = m;
    const words = info.trim().split(/\s+/).filter(Boolean);
    const kind = (["tour", "tour-env", "skip-in-ci"].find((k) => words.includes(k)) ?? "plain") as Block["kind"];
    const attrs = Object.fromEntries(words.filter((w) => w.includes("=")).map((w) => w.split("=", 2) as [string, string]));
    blocks.push({ lang, kind, attrs, body, line: markdown.slice(0, m.index).split("\n").length });
  }
  return blocks;
};

describe("docs/tour.md", () => {
  it("every command in the tour runs against the local stack, in order, from a fresh app folder", async () => {
    const markdown = await readFile(join(ROOT, "docs/tour.md"), "utf8");
    const blocks = parseTour(markdown);
    const shell = blocks.filter((b) => b.lang === "sh");
    expect(
      shell.filter((b) => b.kind === "plain").map((b) => `line ${b.line}`),
      "a shell block in docs/tour.md is marked neither `tour` (run by this test) nor `skip-in-ci` (with its reason)",
    ).toEqual([]);
    expect(blocks.filter((b) => b.kind === "tour").length).toBeGreaterThan(8);

    const app = await mkdtemp(join(tmpdir(), "edge-chat-tour-"));
    const env: Record<string, string> = {
      EDGE_CHAT: ROOT,
      APP: app,
      CHAT_URL: inject("e2eUrl"),
      AUTH_SECRET: inject("authSecret"),
      ROOM: `tour-${Date.now().toString(36)}`,
    };
    // The tour-env block names what a reader exports; the test gives exactly those.
    const envBlock = blocks.find((b) => b.kind === "tour-env");
    const exported = [...(envBlock?.body ?? "").matchAll(/^export (\w+)=/gm)].map((m) => m[1]);
    expect(exported.sort()).toEqual(Object.keys(env).sort());

    const runEnv = {
      ...process.env,
      ...env,
      // Installs come from npm's cache when it has the packages (CI has the registry too).
      npm_config_prefer_offline: "true",
      npm_config_audit: "false",
      npm_config_fund: "false",
      npm_config_update_notifier: "false",
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      WRANGLER_SEND_METRICS: "false",
      WRANGLER_HIDE_BANNER: "true",
    };
    const outputs: { body: string; output: string }[] = [];
    try {
      for (const block of blocks) {
        if (block.kind !== "tour") continue;
        if (block.attrs.file) {
          const path = join(app, block.attrs.file);
          await mkdir(dirname(path), { recursive: true });
          await writeFile(path, block.body);
          continue;
        }
        if (block.lang !== "sh") throw new Error(`docs/tour.md line ${block.line}: a tour block that is neither sh nor a file=`);
        const started = Date.now();
        const run = spawnSync("bash", ["-euo", "pipefail", "-c", block.body], {
          cwd: block.attrs.cwd === "repo" ? ROOT : app,
          env: runEnv,
          encoding: "utf8",
          timeout: 180_000,
          stdio: ["ignore", "pipe", "pipe"],
        });
        const output = `${run.stdout}${run.stderr}`;
        if (run.status !== 0) {
          throw new Error(`docs/tour.md line ${block.line} failed (exit ${run.status ?? run.signal} after ${Date.now() - started} ms):\n${block.body}\n--- output ---\n${output}`);
        }
        outputs.push({ body: block.body, output });
      }
    } finally {
      await rm(app, { recursive: true, force: true });
    }
    const of = (command: string) => outputs.filter((o) => o.body.includes(command)).map((o) => o.output).join("\n");
    // What the reader is told to expect: the message was committed, the React component rendered
    // its first frame, the mirror caught up, and the consumer read the message from the stream.
    expect(of("npx tsx client.ts")).toMatch(/sent as #1; the room holds 1 message\(s\), 0 unread/);
    expect(of("npx tsx src/render.tsx")).toContain("joining");
    expect(of("/status")).toMatch(/"mirroredSeq":1\b/);
    expect(of("npm run consume")).toMatch(/^\[1\] alice: hello from the tour$/m);
  });
});
