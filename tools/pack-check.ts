// The SDK as a user gets it: builds packages/client (failing over the size budget), packs it with
// `npm pack`, installs the tarball into two fresh apps in a temp folder — plain TypeScript
// (NodeNext resolution, the strictest reader of an `exports` map) and React (JSX, bundled with
// esbuild) — then typechecks both, imports the SDK in Node and renders the React app on the
// server. What it proves: the tarball holds what the `exports` map names, the .d.ts resolve
// without the repository around them, the package has no runtime dependencies, and React stays
// an optional peer (the plain app installs no React).
// CLI: `npm run check:package` (part of `npm run check`). KEEP_PACK_CHECK=1 keeps the temp folder.

import { execFileSync, type ExecFileSyncOptions } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");
const PACKAGE_DIR = join(ROOT, "packages/client");
const require = createRequire(import.meta.url);
const TSC = require.resolve("typescript/bin/tsc");
const ESBUILD = join(ROOT, "node_modules/.bin/esbuild");
/** The React the example app installs: the versions the repository tests with (from npm's cache when it has them). */
const rootPackage = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { devDependencies: Record<string, string> };
const dev = (name: string): string => {
  const version = rootPackage.devDependencies[name];
  if (!version) throw new Error(`pack-check: ${name} is not a devDependency of the repository`);
  return version;
};

const run = (command: string, args: string[], options: ExecFileSyncOptions = {}): string => {
  const started = Date.now();
  try {
    const out = execFileSync(command, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], ...options });
    return String(out);
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    throw new Error(`pack-check: \`${[command, ...args].join(" ")}\` failed after ${Date.now() - started} ms\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
};
const step = (what: string) => console.log(`pack-check: ${what}`);
const npmInstall = (cwd: string) =>
  run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], { cwd });

const started = Date.now();
step("building packages/client (npm run build:client -- --check)");
run(process.execPath, ["--import", "tsx", "tools/build-client.ts", "--check"], { cwd: ROOT, stdio: "inherit" });

const work = await mkdtemp(join(tmpdir(), "edge-chat-pack-"));
try {
  step(`npm pack into ${work}`);
  const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", work, PACKAGE_DIR], { cwd: ROOT })) as Array<{
    filename: string;
    size: number;
    files: Array<{ path: string }>;
  }>;
  const tarball = packed[0];
  if (!tarball) throw new Error("pack-check: npm pack listed no tarball");
  const files = tarball.files.map((f) => f.path);
  for (const required of ["package.json", "README.md", "dist/index.js", "dist/index.d.ts", "dist/react.js", "dist/react.d.ts"]) {
    if (!files.includes(required)) throw new Error(`pack-check: the tarball lacks ${required} (it has: ${files.join(", ")})`);
  }
  // The declarations are bundled: index.d.ts imports nothing, react.d.ts only "./index.js" and react.
  const imports = (text: string) => [...text.matchAll(/from "([^"]+)"/g)].map((m) => m[1]);
  const indexImports = imports(await readFile(join(PACKAGE_DIR, "dist/index.d.ts"), "utf8"));
  const reactImports = imports(await readFile(join(PACKAGE_DIR, "dist/react.d.ts"), "utf8"));
  if (indexImports.length > 0 || reactImports.some((i) => i !== "./index.js" && i !== "react")) {
    throw new Error(`pack-check: the .d.ts are not bundled: index.d.ts imports ${indexImports.join(", ") || "nothing"}, react.d.ts ${reactImports.join(", ")}`);
  }
  const leaked = files.filter((f) => /\.test\.|\/testing\//.test(f));
  if (leaked.length > 0) throw new Error(`pack-check: tests are in the tarball: ${leaked.join(", ")}`);
  const manifest = JSON.parse(await readFile(join(PACKAGE_DIR, "package.json"), "utf8")) as { dependencies?: Record<string, string> };
  if (manifest.dependencies && Object.keys(manifest.dependencies).length > 0) {
    throw new Error(`pack-check: @edge-chat/client must have no runtime dependencies; it lists ${Object.keys(manifest.dependencies).join(", ")}`);
  }
  const tgz = join(work, tarball.filename);
  console.log(`pack-check: ${tarball.filename}, ${(tarball.size / 1024).toFixed(1)} kB packed, ${files.length} files`);

  // --- a plain TypeScript app ------------------------------------------------------------------
  const plain = join(work, "plain");
  await mkdir(join(plain, "src"), { recursive: true });
  await writeFile(join(plain, "package.json"), JSON.stringify({ name: "plain-app", private: true, type: "module", dependencies: { "@edge-chat/client": `file:${tgz}` } }, null, 2));
  await writeFile(
    join(plain, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, exactOptionalPropertyTypes: true, noEmit: true, lib: ["ES2022", "DOM"], types: [] },
      include: ["src"],
    }),
  );
  await writeFile(
    join(plain, "src/main.ts"),
    `import { ChatClient, ChatClientError, type Message, type Room } from "@edge-chat/client";

const client = new ChatClient({
  baseUrl: "https://chat.example.com",
  tokenProvider: async () => (await fetch("/api/chat-token")).text(),
});
export async function open(): Promise<Room> {
  const room = await client.join("lobby", { last: 50 });
  room.on("message", (m: Message) => console.log(m.seq, m.userId, m.text));
  room.on("unread", (unread: number) => console.log("unread", unread));
  try {
    await room.send("hello");
  } catch (e) {
    if (e instanceof ChatClientError && e.code === "too_large") console.log("too long");
  }
  return room;
}
// @ts-expect-error a room id is a string: the .d.ts must carry the real signatures, not any
void client.join(42);
`,
  );
  step("installing the tarball into a plain TypeScript app");
  npmInstall(plain);
  if (existsSync(join(plain, "node_modules/react"))) throw new Error("pack-check: installing the SDK brought React (it must be an optional peer)");
  step("typechecking it (NodeNext)");
  run(process.execPath, [TSC, "-p", "tsconfig.json"], { cwd: plain });
  step("importing it in Node");
  const exported = run(process.execPath, ["--input-type=module", "-e", 'const m = await import("@edge-chat/client"); console.log(Object.keys(m).sort().join(","))'], { cwd: plain }).trim();
  for (const name of ["ChatClient", "ChatClientError", "ErrorCode", "PROTOCOL_VERSION"]) {
    if (!exported.split(",").includes(name)) throw new Error(`pack-check: the package does not export ${name} (it exports ${exported})`);
  }

  // --- a React app -------------------------------------------------------------------------------
  const app = join(work, "react");
  await mkdir(join(app, "src"), { recursive: true });
  await writeFile(
    join(app, "package.json"),
    JSON.stringify(
      {
        name: "react-app",
        private: true,
        type: "module",
        dependencies: { "@edge-chat/client": `file:${tgz}`, react: dev("react"), "react-dom": dev("react-dom") },
        devDependencies: { "@types/react": dev("@types/react"), "@types/react-dom": dev("@types/react-dom") },
      },
      null,
      2,
    ),
  );
  await writeFile(
    join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { target: "ES2022", module: "ESNext", moduleResolution: "Bundler", jsx: "react-jsx", strict: true, noEmit: true, lib: ["ES2022", "DOM"], types: [] },
      include: ["src"],
    }),
  );
  await writeFile(
    join(app, "src/App.tsx"),
    `import { ChatClient } from "@edge-chat/client";
import { useMessages, usePresence, useRoom, useTimeline, useTyping, useUnread } from "@edge-chat/client/react";

export function App({ client, roomId }: { client: ChatClient | undefined; roomId: string | undefined }) {
  const { room, state, error } = useRoom(client, roomId, { last: 50 });
  const messages = useMessages(room);
  const { unread } = useUnread(room);
  const typists = useTyping(room);
  const online = usePresence(room);
  const lines = useTimeline(room);
  return (
    <main>
      <ol>{lines.map((l) => <li key={l.seq}>{l.text}</li>)}</ol>
      <p>{state}{error ? \` (\${error.code})\` : ""}</p>
      <p>{online.size} online, {unread} unread{typists.length > 0 ? \`, \${typists.join(", ")} typing\` : ""}</p>
      <ul>{messages.map((m) => <li key={m.seq}>{m.userId}: {m.text}</li>)}</ul>
      <button type="button" onClick={() => void room?.send("hi")}>send</button>
    </main>
  );
}
`,
  );
  await writeFile(
    join(app, "src/server.tsx"),
    `import { renderToString } from "react-dom/server";
import { App } from "./App.js";

console.log(renderToString(<App client={undefined} roomId={undefined} />));
`,
  );
  step(`installing the tarball into a React app (react ${dev("react")})`);
  npmInstall(app);
  step("typechecking it (Bundler, react-jsx)");
  run(process.execPath, [TSC, "-p", "tsconfig.json"], { cwd: app });
  step("building it with esbuild: a browser bundle (the SDK inside), and a server render in Node");
  // The server build keeps packages external, so Node itself resolves @edge-chat/client/react
  // through the exports map at run time (and react-dom/server stays CommonJS, as it ships).
  run(ESBUILD, ["src/server.tsx", "--bundle", "--packages=external", "--platform=node", "--format=esm", "--jsx=automatic", "--outfile=dist/server.js", "--log-level=warning"], { cwd: app });
  const html = run(process.execPath, ["dist/server.js"], { cwd: app });
  if (!html.includes("<p>idle</p>")) throw new Error(`pack-check: the React app rendered something unexpected: ${html}`);
  run(ESBUILD, ["src/App.tsx", "--bundle", "--format=esm", "--jsx=automatic", "--external:react", "--external:react-dom", "--outfile=dist/app.js", "--log-level=warning"], { cwd: app });

  console.log(`pack-check: ok in ${((Date.now() - started) / 1000).toFixed(1)} s (plain and React apps installed the tarball, typechecked, ran)`);
} finally {
  if (process.env.KEEP_PACK_CHECK === "1") console.log(`pack-check: kept ${work}`);
  else await rm(work, { recursive: true, force: true });
}
