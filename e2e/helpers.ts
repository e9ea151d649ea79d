// Helpers for the end-to-end tests: SDK clients pointed at the real `wrangler dev` that
// e2e/global-setup.ts started, tokens minted here, a WebSocket wrapper that lets a test cut or
// block a client's connection and read (or drop) what the server sends, and the server's switches
// (restart, Postgres faults).

import { SignJWT } from "jose";
import { inject } from "vitest";
import { WebSocket as NodeWebSocket } from "ws";
import {
  ChatClient,
  type ChatClientOptions,
  type FetchLike,
  type Message,
  type Room,
  type WebSocketConstructor,
  type WebSocketLike,
} from "../src/client/index.js";
import type { ServerFrame } from "../src/protocol/frames.js";
import type { Fault } from "../tools/local/faults.js";

export const baseUrl = (): string => inject("e2eUrl");

let counter = 0;
/** Postgres and the Durable Object state outlive a test: every test uses rooms of its own. */
export const uniqueRoom = (prefix: string): string =>
  `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 6)}`;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns something truthy; fails with `what` and the last value after `timeoutMs`. */
export async function eventually<T>(what: string, probe: () => T | Promise<T>, timeoutMs = 20_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await probe();
    if (last) return last as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${String(last)})`);
    await sleep(50);
  }
}

/** An HS256 token as the app's backend would mint it, valid for `ttlS` seconds. */
export const mintToken = (userId: string, ttlS = 600, secret = inject("authSecret")): Promise<string> =>
  new SignJWT({})
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlS)
    .sign(new TextEncoder().encode(secret));

export const expOf = (token: string): number =>
  (JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as { exp: number }).exp;

// -------------------------------------------------------------------------------------------------
// The server's switches

/** Kills wrangler (every room object dies mid-flight, as in a crash) and starts it again on the same port and state. */
export async function restartServer(downMs = 0): Promise<{ ms: number }> {
  const res = await fetch(`${inject("e2eControl")}/restart?downMs=${downMs}`, { method: "POST" });
  if (!res.ok) throw new Error(`restart failed: ${res.status} ${await res.text()}`);
  return (await res.json()) as { ms: number };
}

/** The two halves of a restart, for tests that act while the server is down. */
export async function killServer(): Promise<void> {
  const res = await fetch(`${inject("e2eControl")}/kill`, { method: "POST" });
  if (!res.ok) throw new Error(`kill failed: ${res.status} ${await res.text()}`);
}

export async function startServer(): Promise<void> {
  const res = await fetch(`${inject("e2eControl")}/start`, { method: "POST" });
  if (!res.ok) throw new Error(`start failed: ${res.status} ${await res.text()}`);
}

export async function setFault(fault: Fault): Promise<{ cuts: number }> {
  const res = await fetch(inject("faultsUrl"), { method: "POST", body: JSON.stringify(fault) });
  if (!res.ok) throw new Error(`setting fault ${JSON.stringify(fault)} failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { stats: { cuts: number } }).stats;
}

export async function faultStats(): Promise<{ cuts: number; refused: number }> {
  return ((await (await fetch(inject("faultsUrl"))).json()) as { stats: { cuts: number; refused: number } }).stats;
}

// -------------------------------------------------------------------------------------------------
// A controllable WebSocket for the SDK

/** What a test may do with a frame from the server before the SDK sees it. */
export type FrameVerdict = "deliver" | "drop" | "drop-and-kill";

/**
 * Hands the SDK `ws` sockets that a test can cut (`killAll`: an abrupt loss, close 1006), keep from
 * connecting (`blocked`: new sockets go to a closed port) and watch or filter frame by frame
 * (`inspect`, which may be async: frames wait for it in order, so a test can look at the database
 * between the server's answer and the SDK's reaction).
 */
export class SocketControl {
  blocked = false;
  inspect: ((frame: ServerFrame, socket: ControlledSocket) => FrameVerdict | Promise<FrameVerdict>) | undefined;
  readonly sockets: ControlledSocket[] = [];
  /** The token in each socket's URL, with when it was presented. */
  readonly presented: { token: string; at: number }[] = [];
  /** Every close code the sockets saw, in order (1006 for a lost connection). */
  readonly closes: number[] = [];

  readonly WebSocket: WebSocketConstructor = ((control: SocketControl) =>
    class extends ControlledSocket {
      constructor(url: string) {
        super(url, control);
      }
    })(this);

  get open(): ControlledSocket[] {
    return this.sockets.filter((s) => s.readyState === NodeWebSocket.OPEN);
  }

  killAll(): void {
    for (const socket of this.sockets) socket.kill();
  }
}

type Handler = ((event: never) => void) | null;

export class ControlledSocket implements WebSocketLike {
  onopen: Handler = null;
  onmessage: Handler = null;
  onclose: Handler = null;
  onerror: Handler = null;
  readonly url: URL;
  readonly #inner: NodeWebSocket;
  /** After kill() nothing more is handed to the SDK but the close: what was still in flight is lost. */
  #killed = false;
  /** Frames and the close are handed to the SDK in arrival order, each after `inspect` is done with it. */
  #chain: Promise<void> = Promise.resolve();

  constructor(url: string, control: SocketControl) {
    this.url = new URL(url);
    control.sockets.push(this);
    control.presented.push({ token: this.url.searchParams.get("token") ?? "", at: Date.now() });
    // A closed port: the connection is refused at once, as when the server is unreachable.
    const target = control.blocked ? url.replace(/^ws:\/\/[^/]+/, "ws://127.0.0.1:9") : url;
    const inner = new NodeWebSocket(target);
    this.#inner = inner;
    const later = (step: () => void | Promise<void>): void => {
      this.#chain = this.#chain.then(step).catch((e: unknown) => {
        console.error("e2e socket wrapper:", e);
      });
    };
    inner.on("open", () => later(() => (this.onopen as ((e: unknown) => void) | null)?.({})));
    inner.on("message", (data: Buffer, isBinary: boolean) => {
      const text = isBinary ? undefined : data.toString("utf8");
      later(async () => {
        if (this.#killed) return;
        if (text !== undefined && control.inspect) {
          const verdict = await control.inspect(JSON.parse(text) as ServerFrame, this);
          if (verdict === "drop-and-kill") this.kill();
          if (verdict !== "deliver") return;
        }
        (this.onmessage as ((e: { data: unknown }) => void) | null)?.({ data: text ?? data });
      });
    });
    inner.on("close", (code: number, reason: Buffer) => {
      control.closes.push(code);
      later(() =>
        (this.onclose as ((e: { code: number; reason: string }) => void) | null)?.({ code, reason: reason.toString() }),
      );
    });
    inner.on("error", () => later(() => (this.onerror as ((e: unknown) => void) | null)?.({})));
  }

  get readyState(): number {
    return this.#inner.readyState;
  }

  send(data: string): void {
    this.#inner.send(data);
  }

  close(code?: number, reason?: string): void {
    this.#inner.close(code, reason);
  }

  /** Drops the TCP connection without a close frame (the SDK sees 1006). */
  kill(): void {
    this.#killed = true;
    this.#inner.terminate();
  }
}

// -------------------------------------------------------------------------------------------------
// Clients

export interface HttpCall {
  method: string;
  url: URL;
  token: string;
  at: number;
  status: number;
}

/** One user's SDK client, its socket control, and a record of its HTTP calls. */
export interface TestUser {
  userId: string;
  client: ChatClient;
  control: SocketControl;
  http: HttpCall[];
}

/** Fast reconnects, so tests spend their time on behaviour, not on backoff. */
export const TEST_RECONNECT = { baseMs: 100, maxMs: 1000 };

export function testUser(userId: string, options: Partial<ChatClientOptions> & { tokenTtlS?: number } = {}): TestUser {
  const control = new SocketControl();
  const http: HttpCall[] = [];
  const recordingFetch: FetchLike = async (url, init) => {
    const at = Date.now();
    const response = await fetch(url, init);
    http.push({
      method: init.method,
      url: new URL(url),
      token: (init.headers.authorization ?? "").replace(/^Bearer /, ""),
      at,
      status: response.status,
    });
    return response;
  };
  const { tokenTtlS, ...rest } = options;
  const client = new ChatClient({
    baseUrl: baseUrl(),
    tokenProvider: () => mintToken(userId, tokenTtlS),
    WebSocket: control.WebSocket,
    fetch: recordingFetch,
    reconnect: TEST_RECONNECT,
    ...rest,
  });
  return { userId, client, control, http };
}

/**
 * Every message of a room over REST (pages of 1000 from seq 0), as a new client would read it.
 * With `through`: a seq known to be committed (an ack, a live frame), read again until the pages
 * reach it. A page after a cursor may come from the Redis mirror, which may lag the room by its
 * write delay (src/api/app.ts, "Edge read path"; commits linger MIRROR_LINGER_MS to share a
 * request), so a read right after an ack may not have it yet.
 */
export async function allMessages(client: ChatClient, roomId: string, options: { through?: number } = {}): Promise<Message[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const out: Message[] = [];
    let latest = 0;
    for (let page = 0; ; page++) {
      if (page >= 100) throw new Error("more than 100 pages of history");
      const { messages, latestSeq } = await client.fetchMessages(roomId, { after: out.at(-1)?.seq ?? 0, limit: 1000 });
      out.push(...messages);
      latest = latestSeq;
      if (messages.length === 0 || (out.at(-1)?.seq ?? 0) >= latestSeq) break;
    }
    if (options.through === undefined || latest >= options.through) return out;
    if (Date.now() > deadline) throw new Error(`REST history of ${roomId} did not reach seq ${options.through} in 10 s (latestSeq ${latest})`);
    await sleep(25);
  }
}

/** Seqs of a list, and whether they run first, first+1, … with nothing missing or repeated. */
export const seqsOf = (messages: readonly Message[]): number[] => messages.map((m) => m.seq);
export const isContiguous = (seqs: readonly number[]): boolean => seqs.every((s, i) => i === 0 || s === (seqs[i - 1] ?? 0) + 1);

/**
 * A REST send as a bot would make it: `rate_limited` is waited out (the server allows each user a
 * burst, then about 10 per second) and retried with the same clientMsgId, so it is still sent once.
 */
export async function postPatiently(client: ChatClient, roomId: string, text: string): Promise<Message> {
  const clientMsgId = crypto.randomUUID();
  for (let attempt = 0; ; attempt++) {
    try {
      return (await client.postMessage(roomId, text, { clientMsgId })).message;
    } catch (e) {
      const error = e as { code?: string; retryAfterMs?: number };
      if (error.code !== "rate_limited" || attempt >= 50) throw e;
      await sleep(Math.max(50, error.retryAfterMs ?? 1000));
    }
  }
}

/** Runs `task` over `items` with at most `limit` at a time. */
export async function inParallel<T>(items: readonly T[], limit: number, task: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const item = items[next++] as T;
        await task(item);
      }
    }),
  );
}

export type { Room };
