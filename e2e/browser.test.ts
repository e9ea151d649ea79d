// The demo page (public/) in a real browser: Debian's Chromium driven by playwright-core, against
// the same `wrangler dev` as the SDK tests (e2e/global-setup.ts). What a person would check:
// two people chat, a reload keeps the history, a server crash is survived with nothing lost or
// shown twice, the page fits a phone, and text is shown as text. Skipped with a notice when
// Chromium is not installed, except under CI=true, where that is a failure.

import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  allMessages,
  baseUrl,
  inParallel,
  killServer,
  postPatiently,
  sleep,
  startServer,
  testUser,
  uniqueRoom,
} from "./helpers.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const installed = existsSync(CHROMIUM);
const required = process.env.CI === "true";
if (!installed && !required) {
  console.warn(
    `\n[e2e] SKIPPING the browser tests: no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)\n`,
  );
}

/**
 * docs/screenshot.png (and -phone) are what the README shows. They are written when missing or
 * with E2E_SCREENSHOTS=1; other runs still take them, into a temp dir, so that running the tests
 * does not leave a changed picture (the clock in it moves) in the work tree every time.
 */
const DOCS = resolve(import.meta.dirname, "../docs");
const SHOTS =
  process.env.E2E_SCREENSHOTS === "1" || !existsSync(`${DOCS}/screenshot.png`)
    ? DOCS
    : join(tmpdir(), "edge-chat-e2e-screenshots");

interface Shown {
  seq: number;
  user: string;
  text: string;
}

/** What the page shows in its message list, top to bottom. */
const shownMessages = (page: Page): Promise<Shown[]> =>
  page.$$eval("#messages > li", (items) =>
    items.map((li) => ({
      seq: Number((li as HTMLElement).dataset.seq),
      user: (li as HTMLElement).dataset.user ?? "",
      text: li.querySelector(".text")?.textContent ?? "",
    })),
  );

const connectionOf = (page: Page): Promise<string> => page.$eval("#connection", (e) => (e as HTMLElement).dataset.state ?? "");

const waitForState = (page: Page, state: string, timeout = 30_000) =>
  page.waitForFunction((s) => document.querySelector<HTMLElement>("#connection")?.dataset.state === s, state, { timeout });

/** Waits until the page lists a message with exactly this text. */
const waitForText = (page: Page, text: string, timeout = 30_000) =>
  page.waitForFunction((t) => [...document.querySelectorAll("#messages > li .text")].some((e) => e.textContent === t), text, {
    timeout,
  });

const type = async (page: Page, text: string): Promise<void> => {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
};

const expectGapFree = (shown: Shown[]): void => {
  const seqs = shown.map((m) => m.seq);
  expect(new Set(seqs).size).toBe(seqs.length);
  expect(seqs).toEqual(seqs.map((_, i) => (seqs[0] ?? 0) + i));
};

describe.skipIf(!installed && !required)("the demo page in Chromium", () => {
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const pageErrors: string[] = [];

  /** A person at their own browser (own context: own storage), on the demo page for a room. */
  const open = async (user: string, roomId: string, viewport = { width: 900, height: 640 }): Promise<Page> => {
    const context = await browser.newContext({ viewport });
    contexts.push(context);
    const page = await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(`${user}: ${e.message}`));
    await page.goto(`${baseUrl()}/?room=${roomId}&user=${user}`);
    await waitForState(page, "live");
    return page;
  };

  beforeAll(async () => {
    if (!installed)
      throw new Error(`CI=true: the browser tests need Chromium at ${CHROMIUM}; install it with apt-get install -y chromium`);
    // playwright gives every launch a fresh, temporary user-data-dir.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
      ],
    });
  });

  // A test that failed while the server was down must not take the next tests with it.
  afterEach(() => startServer());

  afterAll(async () => {
    for (const context of contexts) await context.close().catch(() => {});
    await browser?.close();
    expect(pageErrors).toEqual([]);
  });

  it("two people chat in one room: each sees both sides live, in order, their own marked sent, and markup shown as text", async () => {
    const roomId = uniqueRoom("lobby");
    const alice = await open("alice", roomId);
    const bob = await open("bob", roomId);
    const lines: [Page, string][] = [
      [alice, "Hi Bob! Is the new room working?"],
      [bob, "Hi Alice, it is. Messages show up instantly."],
      [alice, "Try some markup: <b>bold</b> <img src=x onerror=alert(1)>"],
      [bob, "Shown as text, as it should be. Grüße!"],
      [alice, "Line one\nline two"],
    ];
    for (const [page, text] of lines) {
      await type(page, text);
      await waitForText(alice, text);
      await waitForText(bob, text);
    }
    const seenByAlice = await shownMessages(alice);
    expect(seenByAlice.map((m) => m.text)).toEqual(lines.map(([, text]) => text));
    expect(seenByAlice.map((m) => m.user)).toEqual(["alice", "bob", "alice", "bob", "alice"]);
    expect(await shownMessages(bob)).toEqual(seenByAlice);
    expectGapFree(seenByAlice);
    // Nothing the users wrote became an element.
    for (const page of [alice, bob]) {
      expect(await page.$$("#messages img, #messages b")).toHaveLength(0);
      expect(await page.$$eval("#messages > li.mine .status", (s) => s.map((e) => e.textContent))).toEqual(
        page === alice ? ["✓ sent", "✓ sent", "✓ sent"] : ["✓ sent", "✓ sent"],
      );
      expect(await page.$$eval("#pending > li", (p) => p.length)).toBe(0);
    }

    await mkdir(SHOTS, { recursive: true });
    await alice.screenshot({ path: `${SHOTS}/screenshot.png` });
    // The same room on a phone: one column, nothing wider than the screen.
    const phone = await open("carol", roomId, { width: 390, height: 760 });
    await waitForText(phone, "Line one\nline two");
    expect(await phone.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await phone.screenshot({ path: `${SHOTS}/screenshot-phone.png` });
    console.log(`[e2e] screenshots: ${SHOTS}/screenshot.png, ${SHOTS}/screenshot-phone.png`);
  });

  it("reloading a page restores its history: the same messages, none twice, and older ones load on demand", async () => {
    const roomId = uniqueRoom("browser-reload");
    const seeder = testUser("seeder");
    const posters = Array.from({ length: 4 }, (_, i) => testUser(`seeder${i}`));
    await inParallel(
      Array.from({ length: 70 }, (_, i) => i),
      4,
      (i) => postPatiently((posters[i % 4] ?? seeder).client, roomId, `history ${i + 1}`),
    );
    const page = await open("dana", roomId);
    await type(page, "written before the reload");
    await waitForText(page, "written before the reload");
    const before = await shownMessages(page);
    // The newest 50 when the page joined, then the one it sent.
    expect(before.map((m) => m.seq)).toEqual(Array.from({ length: 51 }, (_, i) => i + 21));
    expectGapFree(before);

    await page.reload();
    await waitForState(page, "live");
    await waitForText(page, "written before the reload");
    const after = await shownMessages(page);
    expect(after).toEqual(before.slice(-50)); // a fresh page starts from the newest 50 again
    expectGapFree(after);

    // Paging back: everything older, in front, once; then the page says it is the beginning.
    await page.click("#older");
    await page.waitForFunction(() => document.querySelectorAll("#messages > li").length === 71);
    const all = await shownMessages(page);
    expectGapFree(all);
    expect(all[0]?.seq).toBe(1);
    expect(all.slice(20)).toEqual(before);
    expect(await page.isVisible("#beginning")).toBe(true);
    expect(await page.isVisible("#older")).toBe(false);
    expect(all.map((m) => m.text)).toEqual((await allMessages(seeder.client, roomId)).map((m) => m.text));
  });

  it("when the server crashes and restarts while two pages are open, both recover with no gap or duplicate, and a message typed meanwhile is sent once", async () => {
    const roomId = uniqueRoom("browser-restart");
    const erin = await open("erin", roomId);
    const frank = await open("frank", roomId);
    await type(erin, "before the crash");
    await waitForText(frank, "before the crash");
    // Acknowledged too (a kill between the broadcast and the ack would leave it pending, to be resent).
    await erin.waitForFunction(() => document.querySelectorAll("#pending > li").length === 0);

    await killServer();
    await Promise.all([erin, frank].map((p) => waitForState(p, "reconnecting")));
    // Typed while the server is down: shown as pending, not as sent.
    await type(erin, "typed while the server was down");
    await erin.waitForSelector("#pending > li");
    expect(await erin.$$eval("#pending > li .text", (t) => t.map((e) => e.textContent))).toEqual([
      "typed while the server was down",
    ]);
    await sleep(500);
    await startServer();

    await Promise.all([erin, frank].map((p) => waitForState(p, "live", 45_000)));
    await waitForText(frank, "typed while the server was down");
    await erin.waitForFunction(() => document.querySelectorAll("#pending > li").length === 0);
    await type(frank, "after the restart");
    await waitForText(erin, "after the restart");

    const seenByErin = await shownMessages(erin);
    expect(seenByErin.map((m) => m.text)).toEqual(["before the crash", "typed while the server was down", "after the restart"]);
    expectGapFree(seenByErin);
    expect(await shownMessages(frank)).toEqual(seenByErin);
    const server = await allMessages(testUser("auditor").client, roomId);
    expect(server.map((m) => ({ seq: m.seq, user: m.userId, text: m.text }))).toEqual(seenByErin);
    expect(await connectionOf(erin)).toBe("live");
  });
});
