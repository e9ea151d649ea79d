// The demo page (public/) in a real browser: Debian's Chromium driven by playwright-core, against
// the same `wrangler dev` as the SDK tests (e2e/global-setup.ts). What a person would check:
// two people chat, a reload keeps the history, a server crash is survived with nothing lost or
// shown twice, the page fits a phone, text is shown as text, and the people features work between
// two browsers (online, typing, read receipts, unread badges), and a message's lifecycle seen from
// the other page (edit, reactions, a reply in its thread, delete; join lines) and after a reload.
// Skipped with a notice when Chromium is not installed, except under CI=true, where that is a failure.

import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  allMessages,
  baseUrl,
  eventually,
  inParallel,
  killServer,
  mintToken,
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

/** What the page shows in its message list (messages only), top to bottom. */
const shownMessages = (page: Page): Promise<Shown[]> =>
  page.$$eval("#messages > li.message", (items) =>
    items.map((li) => ({
      seq: Number((li as HTMLElement).dataset.seq),
      user: (li as HTMLElement).dataset.user ?? "",
      text: li.querySelector(".text")?.textContent ?? "",
    })),
  );

/**
 * Every line of the timeline: messages and system lines ("alice joined"), which take seqs of the
 * same stream, so the lines (not the messages alone) are gap-free.
 */
const shownLines = (page: Page): Promise<(Shown & { kind: string })[]> =>
  page.$$eval("#messages > li", (items) =>
    items.map((li) => ({
      seq: Number((li as HTMLElement).dataset.seq),
      kind: li.classList.contains("system-line") ? "system" : "message",
      user: (li as HTMLElement).dataset.user ?? "",
      // A system line's sentence has display names, which arrive with profiles: compare its event.
      text: li.classList.contains("system-line") ? ((li as HTMLElement).dataset.event ?? "") : (li.querySelector(".text")?.textContent ?? ""),
    })),
  );

/** A message line's current form as the page shows it: text, edited mark, tombstone, reactions, reply count. */
const lineState = (page: Page, seq: number) =>
  page.$eval(`#messages > li[data-seq="${seq}"]`, (li) => ({
    text: li.querySelector(".text")?.textContent ?? "",
    edited: li.querySelector(".edited") !== null,
    deleted: (li as HTMLElement).dataset.deleted === "true",
    reactions: [...li.querySelectorAll<HTMLElement>(".reaction")].map((r) => [r.dataset.emoji, Number(r.dataset.count), r.dataset.mine === "true"]),
    replies: Number(li.querySelector<HTMLElement>(".replies")?.dataset.count ?? 0),
  }));

type LineState = Awaited<ReturnType<typeof lineState>>;

/** Polls the line with `seq` until `ok` holds for what the page shows; fails with the last state seen. */
const waitForLine = async (page: Page, seq: number, what: string, ok: (line: LineState) => boolean, timeoutMs = 30_000) => {
  const deadline = Date.now() + timeoutMs;
  let last: LineState | undefined;
  for (;;) {
    last = await lineState(page, seq).catch(() => undefined);
    if (last && ok(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for line ${seq} to show ${what} (last: ${JSON.stringify(last)})`);
    await sleep(50);
  }
};

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

  /** A person at their own browser (own context: own storage), on the demo page for a room; `name` is saved to their profile. */
  const open = async (user: string, roomId: string, viewport = { width: 900, height: 640 }, name?: string): Promise<Page> => {
    const context = await browser.newContext({ viewport });
    contexts.push(context);
    const page = await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(`${user}: ${e.message}`));
    const named = name === undefined ? "" : `&name=${encodeURIComponent(name)}`;
    await page.goto(`${baseUrl()}/?room=${roomId}&user=${user}${named}`);
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
    expectGapFree(await shownLines(alice));
    // Nothing the users wrote became an element.
    for (const page of [alice, bob]) {
      expect(await page.$$("#messages img, #messages b")).toHaveLength(0);
      expect(await page.$$eval("#messages > li.mine .status", (s) => s.map((e) => e.textContent))).toEqual(
        page === alice ? ["✓ sent", "✓ sent", "✓ sent"] : ["✓ sent", "✓ sent"],
      );
      expect(await page.$$eval("#pending > li", (p) => p.length)).toBe(0);
    }

    // Names and times on messages; the seq only with the debug toggle.
    expect(await alice.isVisible("#messages > li .seq")).toBe(false);
    await alice.check("#debug");
    expect(await alice.isVisible("#messages > li .seq")).toBe(true);
    await alice.uncheck("#debug");

    // The same room on a phone: one column, nothing wider than the screen. (The desktop
    // screenshot is taken by the people test below.)
    await mkdir(SHOTS, { recursive: true });
    const phone = await open("carol", roomId, { width: 390, height: 760 });
    await waitForText(phone, "Line one\nline two");
    expect(await phone.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await phone.screenshot({ path: `${SHOTS}/screenshot-phone.png` });
    console.log(`[e2e] screenshot: ${SHOTS}/screenshot-phone.png`);
  });

  it("two people in two browsers: bob sees alice online and typing, alice sees 'seen by Bob', and bob's unread badge for another room goes up and back to 0", async () => {
    const lobby = uniqueRoom("lobby");
    const side = uniqueRoom("side");
    // Users of their own (the ids are as unique as room names), so bob's rooms are this test's two.
    const aliceId = uniqueRoom("alice");
    const bobId = uniqueRoom("bob");
    const alice = await open(aliceId, lobby, undefined, "Alice");
    // Bob opens the side room first (it becomes one of his rooms, everything in it read), then the lobby.
    const bob = await open(bobId, side, undefined, "Bob");
    await bob.fill("#goto-room", lobby);
    await bob.press("#goto-room", "Enter");
    await bob.waitForFunction((room) => document.querySelector("#room-label")?.textContent?.includes(room), lobby);
    await waitForState(bob, "live");

    // Online, with names from the profiles.
    const online = (page: Page) => page.$$eval("#online > li .name", (names) => names.map((n) => n.textContent));
    const waitOnline = (page: Page, user: string, name: string) =>
      page.waitForFunction(
        ([u, n]) =>
          [...document.querySelectorAll<HTMLElement>("#online > li")].some(
            (li) => li.dataset.user === u && li.querySelector(".name")?.textContent === n,
          ),
        [user, name],
      );
    await waitOnline(bob, aliceId, "Alice");
    expect((await online(bob)).sort()).toEqual(["Alice", "Bob"]);
    await waitOnline(alice, bobId, "Bob");

    // Typing, then the message; sending ends the indicator.
    await alice.click("#text");
    await alice.keyboard.type("Hi Bob, are you there?", { delay: 40 });
    await bob.waitForFunction(() => document.querySelector("#typing")?.textContent === "Alice is typing…");
    await alice.press("#text", "Enter");
    await waitForText(bob, "Hi Bob, are you there?");
    await bob.waitForFunction(() => document.querySelector("#typing")?.textContent === "");
    const shown = await bob.$eval("#messages > li:last-child", (li) => ({
      name: li.querySelector(".user")?.textContent,
      time: li.querySelector("time")?.textContent,
    }));
    expect(shown.name).toBe("Alice");
    expect(shown.time).toMatch(/\d/);

    // Bob's page is visible, so it marks the message read: alice sees the receipt under it.
    await alice.waitForFunction(
      () => document.querySelector("#messages > li:last-child .seen")?.textContent === "seen by Bob",
      undefined,
      { timeout: 15_000 },
    );

    // A message in the side room (alice, over REST): bob's badge for it goes up, his lobby stays 0.
    const badge = (page: Page, room: string) =>
      page.$eval(`#rooms > li[data-room="${room}"] .badge`, (b) => Number((b as HTMLElement).dataset.unread));
    await bob.waitForSelector(`#rooms > li[data-room="${side}"]`);
    expect(await badge(bob, side)).toBe(0);
    await postPatiently(testUser(aliceId).client, side, "Over here, in the side room");
    await bob.waitForFunction(
      (room) => document.querySelector<HTMLElement>(`#rooms > li[data-room="${room}"] .badge`)?.dataset.unread === "1",
      side,
      { timeout: 20_000 },
    );
    expect(await badge(bob, lobby)).toBe(0);

    // The picture for the README: bob's page, alice typing again, a receipt, a badge, a reaction.
    await bob.click('#messages > li.message:last-child .react-add[data-emoji="👍"]');
    await alice.waitForFunction(() => document.querySelector('#messages > li.message:last-child .reaction[data-emoji="👍"]')?.textContent === "👍 1");
    await type(bob, "Yes! Reading you live.");
    await bob.waitForFunction(() => document.querySelector("#messages > li:last-child .seen")?.textContent === "seen by Alice");
    await alice.click("#text");
    await alice.keyboard.type("Great, the badge works too", { delay: 40 });
    await bob.waitForFunction(() => document.querySelector("#typing")?.textContent === "Alice is typing…");
    await mkdir(SHOTS, { recursive: true });
    await bob.screenshot({ path: `${SHOTS}/screenshot.png` });
    console.log(`[e2e] screenshot: ${SHOTS}/screenshot.png`);

    // Bob opens the side room: it is read, the badge goes back to 0, and stays 0 from the server.
    await bob.click(`#rooms > li[data-room="${side}"] button`);
    await waitForText(bob, "Over here, in the side room");
    await bob.waitForFunction(
      (room) => document.querySelector<HTMLElement>(`#rooms > li[data-room="${room}"] .badge`)?.dataset.unread === "0",
      side,
    );
    await sleep(600); // past the SDK's and the room's 250 ms coalescing: the cursor is durable
    await bob.click(`#rooms > li[data-room="${lobby}"] button`);
    await waitForState(bob, "live");
    await bob.waitForFunction(
      (room) => document.querySelector<HTMLElement>(`#rooms > li[data-room="${room}"] .badge`)?.dataset.unread === "0",
      side,
    );
    const listed = await testUser(bobId).client.rooms();
    expect(listed.map((r) => r.roomId).sort()).toEqual([lobby, side].sort());
    expect(listed.find((r) => r.roomId === side)).toMatchObject({ unread: 0 });
    expect(listed.find((r) => r.roomId === lobby)).toMatchObject({ unread: 0 });
  });

  it("a message's lifecycle between two pages: alice sends, edits, reacts, replies in a thread and deletes; bob sees each change in place, and the same current state after a reload", async () => {
    const roomId = uniqueRoom("lifecycle");
    const aliceId = uniqueRoom("alice");
    const bobId = uniqueRoom("bob");
    const alice = await open(aliceId, roomId, undefined, "Alice");
    const bob = await open(bobId, roomId, undefined, "Bob");
    // Bob's arrival is a line of alice's timeline, in its place.
    await alice.waitForFunction(
      ([id, name]) =>
        [...document.querySelectorAll("#messages > li.system-line")].some(
          (li) => li.textContent?.includes(name) || li.textContent?.includes(id),
        ),
      [bobId, "Bob"] as const,
    );

    await type(alice, "first draft of the plan");
    await waitForText(bob, "first draft of the plan");
    const seq = (await shownMessages(bob)).find((m) => m.text === "first draft of the plan")?.seq ?? 0;
    expect(seq).toBeGreaterThan(0);
    // Only the author may edit; only the author (or an admin) may delete.
    expect(await alice.$$(`#messages > li[data-seq="${seq}"] button.edit`)).toHaveLength(1);
    expect(await bob.$$(`#messages > li[data-seq="${seq}"] button.edit`)).toHaveLength(0);
    expect(await bob.$$(`#messages > li[data-seq="${seq}"] button.delete`)).toHaveLength(0);

    // Edit, inline: bob sees the new text in place, marked edited.
    await alice.click(`#messages > li[data-seq="${seq}"] button.edit`);
    await alice.fill(`#messages > li[data-seq="${seq}"] .edit-text`, "the final plan");
    await alice.press(`#messages > li[data-seq="${seq}"] .edit-text`, "Enter");
    await waitForLine(bob, seq, "the edit", (l) => l.text === "the final plan" && l.edited);
    await waitForLine(alice, seq, "the edit", (l) => l.text === "the final plan" && l.edited);

    // Reactions: alice's 👍, then bob's; each page highlights its own.
    await alice.click(`#messages > li[data-seq="${seq}"] .react-add[data-emoji="👍"]`);
    await waitForLine(bob, seq, "alice's reaction", (l) => JSON.stringify(l.reactions) === JSON.stringify([["👍", 1, false]]));
    await bob.click(`#messages > li[data-seq="${seq}"] .reaction[data-emoji="👍"]`);
    await waitForLine(alice, seq, "both reactions", (l) => JSON.stringify(l.reactions) === JSON.stringify([["👍", 2, true]]));
    await waitForLine(bob, seq, "both reactions", (l) => JSON.stringify(l.reactions) === JSON.stringify([["👍", 2, true]]));
    // Alice takes hers back and adds 🎉 (clicking her own chip toggles it). Emoji are in code point order.
    await alice.click(`#messages > li[data-seq="${seq}"] .reaction[data-emoji="👍"]`);
    await alice.click(`#messages > li[data-seq="${seq}"] .react-add[data-emoji="🎉"]`);
    await waitForLine(bob, seq, "the changed reactions", (l) => JSON.stringify(l.reactions) === JSON.stringify([["🎉", 1, false], ["👍", 1, true]]));

    // A reply in the thread: bob sees the count on the message, and the reply in the thread, not in the timeline.
    await alice.click(`#messages > li[data-seq="${seq}"] button.reply`);
    await alice.waitForSelector("#thread:not([hidden])");
    await alice.fill("#thread-text", "a reply in the thread");
    await alice.press("#thread-text", "Enter");
    await alice.waitForFunction(() => [...document.querySelectorAll("#thread-replies > li .text")].some((e) => e.textContent === "a reply in the thread"));
    await waitForLine(bob, seq, "the reply count", (l) => l.replies === 1);
    expect((await shownMessages(bob)).map((m) => m.text)).not.toContain("a reply in the thread");
    await bob.click(`#messages > li[data-seq="${seq}"] button.replies`);
    await bob.waitForFunction(() => [...document.querySelectorAll("#thread-replies > li .text")].map((e) => e.textContent).join("|") === "a reply in the thread");
    expect(await bob.$eval(`#messages > li[data-seq="${seq}"] button.replies`, (b) => b.textContent)).toBe("1 reply");

    // Delete: bob sees a tombstone in place, with no text, no reactions, no actions.
    await type(alice, "this one is a mistake");
    await waitForText(bob, "this one is a mistake");
    const doomed = (await shownMessages(bob)).find((m) => m.text === "this one is a mistake")?.seq ?? 0;
    await alice.click(`#messages > li[data-seq="${doomed}"] button.delete`);
    await waitForLine(bob, doomed, "the tombstone", (l) => l.deleted && l.text === "message deleted" && l.reactions.length === 0);
    await waitForLine(alice, doomed, "the tombstone", (l) => l.deleted);
    expect(await bob.$$(`#messages > li[data-seq="${doomed}"] button`)).toHaveLength(0);

    // Bob reloads: the same current state, from the server's current forms.
    const lines = await shownLines(bob);
    const states = await Promise.all([seq, doomed].map((n) => lineState(bob, n)));
    await bob.reload();
    await waitForState(bob, "live");
    await waitForText(bob, "the final plan");
    expect(await shownLines(bob)).toEqual(lines);
    expect(await Promise.all([seq, doomed].map((n) => lineState(bob, n)))).toEqual(states);
    expect(states[0]).toEqual({ text: "the final plan", edited: true, deleted: false, reactions: [["🎉", 1, false], ["👍", 1, true]], replies: 1 });
    // Nothing of the old or deleted text is anywhere on the page.
    const body = await bob.evaluate(() => document.body.textContent ?? "");
    expect(body).not.toContain("first draft");
    expect(body).not.toContain("this one is a mistake");
    // The server agrees: current forms over REST.
    const server = await allMessages(testUser(bobId).client, roomId, { through: doomed + 1 });
    expect(server.find((m) => m.seq === seq)).toMatchObject({ text: "the final plan", version: 1, replyCount: 1 });
    expect(server.find((m) => m.seq === doomed)).toMatchObject({ deleted: true, text: "" });
  });

  it("a room's admin may delete anyone's message from the page (a member only their own), and both pages show the tombstone", async () => {
    const roomId = uniqueRoom("admin-delete");
    const adminId = uniqueRoom("admin");
    const memberId = uniqueRoom("member");
    // Whoever creates a room is its admin.
    const created = await fetch(`${baseUrl()}/v1/rooms`, {
      method: "POST",
      headers: { authorization: `Bearer ${await mintToken(adminId)}`, "content-type": "application/json" },
      body: JSON.stringify({ roomId, visibility: "public" }),
    });
    expect(created.status).toBe(201);
    const admin = await open(adminId, roomId);
    const member = await open(memberId, roomId);
    await type(member, "please remove this");
    await waitForText(admin, "please remove this");
    await type(admin, "the admin's own");
    await waitForText(member, "the admin's own");
    // The admin's own line shows before its ack (seq 0 until then): wait for both seqs.
    const shown = await eventually("both seqs on the admin's page", async () => {
      const seqs = (await shownMessages(admin)).map((m) => m.seq);
      return seqs.length >= 2 && seqs.every((q) => q > 0) ? seqs : undefined;
    });
    const [theirs, own] = shown;
    // The admin's page learns its role from the rooms list (refreshed every few seconds).
    await admin.waitForSelector(`#messages > li[data-seq="${theirs}"] button.delete`, { timeout: 15_000 });
    expect(await member.$$(`#messages > li[data-seq="${own}"] button.delete`)).toHaveLength(0);
    await admin.click(`#messages > li[data-seq="${theirs}"] button.delete`);
    await waitForLine(member, theirs ?? 0, "the tombstone", (l) => l.deleted && l.text === "message deleted");
    await waitForLine(admin, theirs ?? 0, "the tombstone", (l) => l.deleted);
    expect(await lineState(member, own ?? 0)).toMatchObject({ deleted: false, text: "the admin's own" });
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
    // Opening the room makes dana a member: a system line ("dana joined") takes the next seq.
    await page.waitForSelector('#messages > li.system-line[data-event="member_joined"]');
    await type(page, "written before the reload");
    await waitForText(page, "written before the reload");
    const before = await shownLines(page);
    // The newest 50 when the page joined, then dana's join line and the message she sent.
    expect(before.map((m) => m.seq)).toEqual(Array.from({ length: 52 }, (_, i) => i + 21));
    expect(before.map((m) => m.kind).slice(-2)).toEqual(["system", "message"]);
    expectGapFree(before);

    await page.reload();
    await waitForState(page, "live");
    await waitForText(page, "written before the reload");
    const after = await shownLines(page);
    expect(after).toEqual(before.slice(-50)); // a fresh page starts from the newest 50 again
    expectGapFree(after);

    // Paging back: everything older, in front, once; then the page says it is the beginning.
    await page.click("#older");
    await page.waitForFunction(() => document.querySelectorAll("#messages > li").length === 72);
    const all = await shownLines(page);
    expectGapFree(all);
    expect(all[0]?.seq).toBe(1);
    expect(all.slice(20)).toEqual(before);
    expect(await page.isVisible("#beginning")).toBe(true);
    expect(await page.isVisible("#older")).toBe(false);
    const messages = await shownMessages(page);
    const through = messages.at(-1)?.seq ?? 0;
    expect(messages.map((m) => m.text)).toEqual((await allMessages(seeder.client, roomId, { through })).map((m) => m.text));
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
    expectGapFree(await shownLines(erin));
    expect(await shownMessages(frank)).toEqual(seenByErin);
    const server = await allMessages(testUser("auditor").client, roomId, { through: seenByErin.at(-1)?.seq ?? 0 });
    expect(server.map((m) => ({ seq: m.seq, user: m.userId, text: m.text }))).toEqual(seenByErin);
    expect(await connectionOf(erin)).toBe("live");
  });
});
