// The terminal client's pure parts (tools/chat.ts): what a typed line means, and what to say when
// the server cannot be reached. Kept apart so they are unit-tested (tools/chat.test.ts).

export const COMMANDS_HELP = "commands: /older [n] load older messages · /pending list unacked sends · /help · /quit (start a line with // to send one beginning with /)";

export type Command =
  | { kind: "empty" }
  | { kind: "send"; text: string }
  | { kind: "quit" }
  | { kind: "pending" }
  | { kind: "help" }
  | { kind: "older"; count: number }
  | { kind: "unknown"; name: string };

/**
 * A typed line. Anything starting with "/" is a command and never reaches the room: a typo such
 * as "/qiut" must not be sent to everyone as a message. "//text" sends "/text".
 */
export const parseLine = (line: string): Command => {
  const text = line.trimEnd();
  if (text.trim() === "") return { kind: "empty" };
  if (text.startsWith("//")) return { kind: "send", text: text.slice(1) };
  if (!text.startsWith("/")) return { kind: "send", text };
  const [name = "", arg, ...rest] = text.slice(1).split(/\s+/);
  switch (name) {
    case "quit":
    case "exit":
      return rest.length === 0 && arg === undefined ? { kind: "quit" } : { kind: "unknown", name: text };
    case "pending":
      return arg === undefined ? { kind: "pending" } : { kind: "unknown", name: text };
    case "help":
    case "?":
      return { kind: "help" };
    case "older":
      if (arg === undefined) return { kind: "older", count: 50 };
      return /^\d{1,4}$/.test(arg) && rest.length === 0 && Number(arg) >= 1 && Number(arg) <= 1000
        ? { kind: "older", count: Number(arg) }
        : { kind: "unknown", name: text };
    default:
      return { kind: "unknown", name: `/${name}` };
  }
};

/** The line printed for a command it does not know. */
export const unknownCommand = (name: string): string => `! unknown command ${name} (not sent); ${COMMANDS_HELP}`;

/**
 * Why the server at `baseUrl` cannot be used, in words a newcomer can act on, or undefined when
 * it answers. A refused or failed connection is the usual first-hour case: nothing runs there yet.
 */
export const serverProblem = async (baseUrl: string, fetchImpl: typeof fetch = fetch, timeoutMs = 3000): Promise<string | undefined> => {
  let url: URL;
  try {
    url = new URL("/healthz", baseUrl);
  } catch {
    return `--url ${baseUrl} is not a URL (for example --url http://127.0.0.1:8787)`;
  }
  try {
    const response = await fetchImpl(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (response.ok) return undefined;
    return `the server at ${baseUrl} answered GET /healthz with ${response.status}: is it an edge-chat server? Point at another one with --url <url>`;
  } catch (error) {
    const cause = (error as { cause?: { code?: unknown } }).cause;
    const code = typeof cause?.code === "string" ? cause.code : error instanceof Error && error.name === "TimeoutError" ? "timeout" : "unreachable";
    return `the chat server is not running at ${baseUrl} (${code}). Start it in another terminal with \`npm run dev\`, or point at a running one with --url <url>`;
  }
};
