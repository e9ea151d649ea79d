// Builds the SDK package `@edge-chat/client` (packages/client) from src/client, its one source:
// two minified ESM entry points (esbuild) — the SDK, and its React bindings, which import the SDK
// from "./index.js" rather than carrying a second copy — and one .d.ts per entry: index.d.ts
// bundled (dts-bundle-generator: the SDK's and the protocol's declarations in one file, no
// imports), react.d.ts as tsc writes it (it imports its types from "./index.js", so both entries
// name the same ChatClient and Room). Prints the gzipped sizes against their budgets and copies
// the SDK to public/sdk/ for the demo page.
// CLI: `npm run build:client`; `--check` (tools/pack-check.ts, CI): a size over budget fails;
// `--js-only` (npm run dev, the e2e setup: the demo page needs only the bundle) skips the types.

import { execFileSync } from "node:child_process";
import { copyFile, mkdir, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { gzipSync } from "node:zlib";
import { build, type Plugin } from "esbuild";

const PACKAGE_DIR = "packages/client";
const OUT_DIR = `${PACKAGE_DIR}/dist`;
const PUBLIC_DIR = "public/sdk";

/**
 * Gzipped size budgets (level 9), documented in packages/client/README.md. The list, sends and
 * reconnects were about 9 kB; read cursors, typing, presence and profiles brought the SDK to
 * about 12 kB; edits, deletes, reactions, replies and system entries to 14.6 kB; uploads, multipart messages
 * and attachment URLs to 16.8 kB (budget 18 kB). A feature that
 * needs more raises the budget here, in its own commit that says why. The React entry is a few
 * hooks over the SDK's events.
 */
const GZIP_BUDGETS = { "index.js": 18 * 1024, "react.js": 1.5 * 1024 } as const;

const check = process.argv.includes("--check");
const jsOnly = process.argv.includes("--js-only");

await rm(OUT_DIR, { recursive: true, force: true });

const common = {
  bundle: true,
  format: "esm",
  // The SDK must run in browsers, Node, Deno and Workers alike: no Node built-ins may sneak in.
  platform: "neutral",
  target: "es2022",
  minify: true,
  sourcemap: "linked",
  legalComments: "none",
  logLevel: "warning",
} as const;

await build({ ...common, entryPoints: ["src/client/index.ts"], outfile: `${OUT_DIR}/index.js` });

/** The React entry imports the SDK through its public entry; in the package that is the sibling file. */
const sdkIsExternal: Plugin = {
  name: "sdk-is-external",
  setup(b) {
    b.onResolve({ filter: /^\.\/index\.js$/ }, () => ({ path: "./index.js", external: true }));
  },
};
await build({ ...common, entryPoints: ["src/client/react.ts"], outfile: `${OUT_DIR}/react.js`, external: ["react"], plugins: [sdkIsExternal] });

if (!jsOnly) {
  // tsc checks the SDK on its own (DOM and ES2024 only) and writes one .d.ts per file under
  // dist/types/, of which the package keeps react.d.ts; the bundler writes index.d.ts.
  const require = createRequire(import.meta.url);
  execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", "tsconfig.client.json"], { stdio: "inherit" });
  await copyFile(`${OUT_DIR}/types/client/react.d.ts`, `${OUT_DIR}/react.d.ts`);
  const bundler = require.resolve("dts-bundle-generator/dist/bin/dts-bundle-generator.js");
  execFileSync(process.execPath, [bundler, "--project", "tsconfig.client.json", "--no-banner", "--silent", "-o", `${OUT_DIR}/index.d.ts`, "src/client/index.ts"], {
    stdio: "inherit",
  });
  await rm(`${OUT_DIR}/types`, { recursive: true, force: true });
}

await mkdir(PUBLIC_DIR, { recursive: true });
await copyFile(`${OUT_DIR}/index.js`, `${PUBLIC_DIR}/chat-client.js`);
await copyFile(`${OUT_DIR}/index.js.map`, `${PUBLIC_DIR}/chat-client.js.map`);

const kB = (n: number) => `${(n / 1024).toFixed(1)} kB`;
let over = false;
for (const [file, budget] of Object.entries(GZIP_BUDGETS)) {
  const bytes = await readFile(`${OUT_DIR}/${file}`);
  const gzipped = gzipSync(bytes, { level: 9 }).length;
  console.log(`${OUT_DIR}/${file}  ${kB(bytes.length)}  (gzip ${kB(gzipped)}, budget ${kB(budget)})`);
  if (gzipped > budget) {
    over = true;
    console.error(`${check ? "error" : "warning"}: ${file} is over its gzip budget by ${kB(gzipped - budget)} (GZIP_BUDGETS in tools/build-client.ts)`);
  }
}
console.log(`copied to ${PUBLIC_DIR}/chat-client.js; package in ${PACKAGE_DIR} (npm pack ${PACKAGE_DIR})`);
if (over && check) process.exit(1);
