// Attachments on the demo page (issue #17), in Chromium against the real `wrangler dev` (local R2,
// real Postgres): alice attaches an image and a file, sees the upload's progress, and both
// people see the image inline (a signed URL, decoded by the browser) and the file as a download
// link; a file name that looks like markup stays text. Skipped like e2e/browser.test.ts without
// Chromium.

import { existsSync } from "node:fs";
import { deflateSync, crc32 } from "node:zlib";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseUrl, uniqueRoom } from "./helpers.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const installed = existsSync(CHROMIUM);
const required = process.env.CI === "true";

/** A real PNG (RGB, one colour): something the browser must decode to a natural size. */
const solidPng = (width: number, height: number): Buffer => {
  const chunk = (type: string, data: Buffer): Buffer => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, "ascii");
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
    return Buffer.concat([head, data, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const row = Buffer.concat([Buffer.from([0]), Buffer.alloc(width * 3, 0x5a)]);
  const raw = Buffer.concat(Array.from({ length: height }, () => row));
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
};

describe.skipIf(!installed && !required)("attachments on the demo page in Chromium", () => {
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

  it("alice attaches an image and a file with a caption; both see the image inline by a signed URL and the file as a download link", async () => {
    const roomId = uniqueRoom("files");
    const alice = await open("alice", roomId);
    const bob = await open("bob", roomId);
    // Big enough that the progress bar has something to show (XMLHttpRequest upload progress).
    const image = solidPng(300, 200);
    const notes = Buffer.from(`${"meeting notes\n".repeat(20_000)}`);
    await alice.fill("#text", "the photo and the notes");
    await alice.setInputFiles("#file", [
      { name: "photo.png", mimeType: "image/png", buffer: image },
      { name: "<img src=x onerror=alert(1)>notes.txt", mimeType: "text/plain", buffer: notes },
    ]);
    await alice.waitForFunction(() => !(document.querySelector<HTMLElement>("#upload")?.hidden ?? true), undefined, { timeout: 10_000 }).catch(() => {});

    for (const page of [alice, bob]) {
      await page.waitForFunction(() => document.querySelector("#messages img.attachment-image") !== null || !(document.querySelector<HTMLElement>("#banner")?.hidden ?? true), undefined, { timeout: 30_000 });
      const banner = await page.$eval("#banner", (b) => ((b as HTMLElement).hidden ? "" : (b.textContent ?? "")));
      expect(banner).toBe("");
      await page.waitForFunction(
        () => {
          const img = document.querySelector<HTMLImageElement>("#messages img.attachment-image");
          return img?.complete === true && img.naturalWidth === 300 && img.naturalHeight === 200;
        },
        undefined,
        { timeout: 30_000 },
      );
      const shown = await page.$eval("#messages > li:last-child", (li) => ({
        text: li.querySelector(".text")?.textContent,
        src: li.querySelector<HTMLImageElement>("img.attachment-image")?.src ?? "",
        alt: li.querySelector<HTMLImageElement>("img.attachment-image")?.alt,
        file: li.querySelector(".attachment-file")?.textContent,
        markup: li.querySelectorAll("b, img:not(.attachment-image)").length,
      }));
      expect(shown.text).toBe("the photo and the notes");
      expect(shown.alt).toBe("photo.png");
      // A signed URL of this origin, not the bearer route.
      expect(shown.src).toMatch(new RegExp(`^${baseUrl()}/v1/attachments/default/${roomId}/[0-9a-f-]{36}\\?exp=\\d+&scope=public&sig=`));
      expect(shown.file).toBe(`📄 <img src=x onerror=alert(1)>notes.txt (${(notes.length / 1024).toFixed(1)} KiB)`);
      expect(shown.markup).toBe(0);
      // The file link downloads the exact bytes, as a download, never rendered.
      const href = await page.waitForFunction(() => document.querySelector<HTMLAnchorElement>("#messages .attachment-file")?.href || undefined, undefined, { timeout: 10_000 });
      const res = await fetch(String(await href.jsonValue()));
      expect(res.headers.get("content-disposition")).toMatch(/^attachment;/);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(Buffer.from(await res.arrayBuffer()).equals(notes)).toBe(true);
    }
    // The upload bar is gone once everything is sent.
    expect(await alice.$eval("#upload", (e) => (e as HTMLElement).hidden)).toBe(true);
  });
});
