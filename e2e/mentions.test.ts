// Mentions on the demo page (issue #18), in Chromium against the real `wrangler dev`: alice writes
// "@bob …"; the page sends it with `mentions: ["bob"]` through the SDK, the message carries it,
// and bob's page highlights the message that mentions him (alice's does not; a message that
// names someone else is not highlighted for bob). Skipped like e2e/browser.test.ts without Chromium.

import { existsSync } from "node:fs";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseUrl, uniqueRoom } from "./helpers.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const installed = existsSync(CHROMIUM);
const required = process.env.CI === "true";

describe.skipIf(!installed && !required)("mentions on the demo page in Chromium", () => {
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const pageErrors: string[] = [];

  const open = async (user: string, roomId: string): Promise<Page> => {
    const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
    contexts.push(context);
    const page = await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(`${user}: ${e.message}`));
    await page.goto(`${baseUrl()}/?room=${roomId}&user=${user}`);
    await page.waitForFunction(() => document.querySelector<HTMLElement>("#connection")?.dataset.state === "live", undefined, { timeout: 30_000 });
    return page;
  };

  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
  });

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => {});
    await browser?.close();
    expect(pageErrors).toEqual([]);
  });

  it("alice mentions bob: the message carries mentions and only bob's page highlights it", async () => {
    const room = uniqueRoom("mention");
    const alice = await open("alice", room);
    const bob = await open("bob", room);
    for (const text of ["@carol not you", "@bob can you look?"]) {
      await alice.fill("#text", text);
      await alice.press("#text", "Enter");
    }
    const lines = async (page: Page) => {
      await page.waitForFunction(() => document.querySelectorAll("#messages > li.message[data-seq]").length >= 2, undefined, { timeout: 15_000 });
      return page.$$eval("#messages > li.message[data-seq]", (items) => items.map((li) => ({ text: li.querySelector(".text")?.textContent ?? "", mentioned: li.classList.contains("mentioned") })));
    };
    expect(await lines(bob)).toEqual([
      { text: "@carol not you", mentioned: false },
      { text: "@bob can you look?", mentioned: true },
    ]);
    expect((await lines(alice)).map((l) => l.mentioned)).toEqual([false, false]);
    // The explicit mentions reached the server: the history says so.
    const mentions = await bob.evaluate(async (roomId) => {
      const token = await (await fetch("/v1/dev/token", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ userId: "bob" }) })).json();
      const res = await fetch(`/v1/rooms/${roomId}/messages?after=0`, { headers: { authorization: `Bearer ${token.token}` } });
      // Messages only: the history also holds the joins (system entries) of both pages.
      return ((await res.json()) as { messages: Array<{ kind: string; mentions?: string[] }> }).messages.filter((m) => m.kind === "message").map((m) => m.mentions ?? null);
    }, room);
    expect(mentions).toEqual([["carol"], ["bob"]]);
  });
});
