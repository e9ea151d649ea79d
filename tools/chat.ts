// A terminal chat client built on the SDK (src/client), for trying a room by hand and for scripted
// runs (`printf 'hi\nbye\n' | npm run chat -- …` sends both lines and exits once they are committed).
// CLI: npm run chat -- --room <room> --user <name> [--url http://127.0.0.1:8787] [--last 20]
// Tokens come from the dev-only `POST /v1/dev/token`, so the server must run with DEV_TOKENS=true.

import { clearLine, createInterface, cursorTo, type Interface } from "node:readline";
import { parseArgs } from "node:util";
import { WebSocket as NodeWebSocket } from "ws";
import { ChatClient, ChatClientError, type Message, type Room, type WebSocketConstructor } from "../src/client/index.js";
import { COMMANDS_HELP, parseLine, serverProblem, unknownCommand } from "./chat-lib.js";

const USAGE = `usage: npm run chat -- --room <room> --user <name> [--url http://127.0.0.1:8787] [--last 20]

Type a line to send it; ${COMMANDS_HELP}`;

const { values } = parseArgs({
  options: {
    room: { type: "string" },
    user: { type: "string" },
    url: { type: "string", default: "http://127.0.0.1:8787" },
    last: { type: "string", default: "20" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help || !values.room || !values.user) {
  console.error(USAGE);
  process.exit(values.help ? 0 : 2);
}
const roomId = values.room;
const userId = values.user;
const baseUrl = values.url;

/** The dev server mints a token for any user id; a real app would ask its own backend. */
const devToken = async (): Promise<string> => {
  const response = await fetch(new URL("/v1/dev/token", baseUrl), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId }),
  });
  const body = (await response.json().catch(() => undefined)) as { token?: unknown; error?: { message?: string } } | undefined;
  if (!response.ok || typeof body?.token !== "string") {
    const hint = response.status === 404 ? " (dev tokens are off: start the server with `npm run dev`, DEV_TOKENS=true)" : "";
    throw new Error(`POST /v1/dev/token answered ${response.status}: ${body?.error?.message ?? "no token"}${hint}`);
  }
  return body.token;
};

const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true;
/** Created once joined: readline starts reading at once, and lines read before then would be lost. */
let rl: Interface | undefined;

/** Prints above the prompt without mangling what the user is typing. */
const print = (line: string): void => {
  if (!interactive || !rl) {
    console.log(line);
    return;
  }
  clearLine(process.stdout, 0);
  cursorTo(process.stdout, 0);
  console.log(line);
  rl.prompt(true);
};

const show = (m: Message): string => `[${m.seq}] ${m.userId}: ${m.text}`;
const short = (clientMsgId: string): string => clientMsgId.slice(0, 8);

const client = new ChatClient({
  baseUrl,
  tokenProvider: devToken,
  // Node 22+ has a global WebSocket; Node 20 needs the `ws` package.
  WebSocket: (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket ?? NodeWebSocket,
});

// Before anything else: a server that is not running is the usual first-hour mistake, and the
// SDK would only report it as a failed token request.
const problem = await serverProblem(baseUrl);
if (problem) {
  console.error(`! ${problem}`);
  process.exit(1);
}

let room: Room;
try {
  print(`* joining ${roomId} at ${baseUrl} as ${userId}…`);
  room = await client.join(roomId, { last: Number(values.last), signal: AbortSignal.timeout(30_000) });
} catch (error) {
  console.error(`! ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}

for (const m of room.messages) print(show(m));
print(`* ${room.state}: ${room.messages.length} messages of history${room.hasOlder ? " (/older for more)" : ""}`);
room.on("message", (m) => print(show(m)));
/** Set when we leave on purpose, so only an offline room we did not ask for ends the program with an error. */
let leaving = false;
room.on("state", (state, previous) => {
  if (leaving) return;
  print(`* connection: ${previous} → ${state}`);
  // Offline is final (4400/4403/4404, or a token the server keeps refusing): the error event said why.
  if (state === "offline") {
    print("* the room is offline; exiting");
    process.exit(1);
  }
});
room.on("error", (e) => print(`! ${e.code}: ${e.message}`));
room.on("pending", (pending) => {
  for (const p of pending) {
    if (p.status === "retrying")
      print(`  … ${short(p.clientMsgId)} retrying (${p.lastError?.code ?? "?"}), attempt ${p.attempts + 1}`);
  }
});

const input = createInterface({ input: process.stdin, output: interactive ? process.stdout : undefined, terminal: interactive });
rl = input;
input.setPrompt(`${userId}> `);

const inFlight = new Set<Promise<unknown>>();

const send = (text: string): void => {
  const sending = room.send(text).then(
    (m) => print(`  ✓ ${short(m.clientMsgId)} committed as [${m.seq}]`),
    (e: unknown) => print(`  ✗ not sent: ${e instanceof ChatClientError ? `${e.code}: ${e.message}` : String(e)}`),
  );
  inFlight.add(sending);
  void sending.finally(() => inFlight.delete(sending));
  const queued = room.pending.at(-1);
  if (queued) print(`  → ${short(queued.clientMsgId)} sending (${room.pending.length} pending)`);
};

const quit = async (code = 0): Promise<never> => {
  leaving = true;
  input.close();
  room.leave();
  process.exit(code);
};

input.on("line", (line) => {
  const command = parseLine(line);
  switch (command.kind) {
    case "empty":
      break;
    case "quit":
      return void quit();
    case "help":
      print(`  ${COMMANDS_HELP}`);
      break;
    case "unknown":
      print(unknownCommand(command.name));
      break;
    case "pending":
      if (room.pending.length === 0) print("  (nothing pending)");
      for (const p of room.pending) print(`  ${short(p.clientMsgId)} ${p.status} ×${p.attempts}: ${p.text}`);
      break;
    case "older":
      room.loadOlder(command.count).then(
        (added) => {
          for (const m of added) print(show(m));
          print(`* loaded ${added.length} older messages${room.hasOlder ? "" : " (that is the beginning)"}`);
        },
        (e: unknown) => print(`! ${e instanceof Error ? e.message : String(e)}`),
      );
      break;
    case "send":
      send(command.text);
      break;
  }
  input.prompt();
});

// End of input (a pipe, or Ctrl-D): wait until every send is committed or refused, then leave.
input.on("close", () => {
  void (async () => {
    while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    leaving = true;
    room.leave();
    process.exit(0);
  })();
});
process.on("SIGINT", () => void quit(130));

input.prompt();
