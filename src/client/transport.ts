// The SDK has no runtime dependencies: it talks through whatever WebSocket and fetch the platform
// has (browsers, Node 22+, Deno, Workers) or the app injects (the `ws` package on Node 20). These
// are the few members it uses, typed loosely enough that both the DOM's and `ws`'s classes fit.

import { PROTOCOL_VERSION } from "../protocol/frames.js";

/**
 * The part of a WebSocket the SDK uses. Handler parameters are typed `never` so that the DOM's
 * (`MessageEvent`, `CloseEvent`) and `ws`'s event types are both assignable; the SDK reads only
 * `data`, `code` and `reason` from them.
 */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: never) => void) | null;
  onclose: ((event: never) => void) | null;
  onerror: ((event: never) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** `globalThis.WebSocket` in browsers and Node 22+, or `WebSocket` from the `ws` package. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** `WebSocket.OPEN`; a constant so an injected class need not carry the static. */
export const WS_OPEN = 1;

export interface ResponseLike {
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  text(): Promise<string>;
}

/** `globalThis.fetch`, or any function with its shape (tests, proxies, auth wrappers). */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal },
) => Promise<ResponseLike>;

/** Joins an API path to the base URL, keeping a path prefix (`https://host/chat/` + `v1/...`). */
export const apiUrl = (baseUrl: string, path: string): URL => {
  const base = new URL(baseUrl);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  return new URL(path.replace(/^\/+/, ""), base);
};

/** What a socket asks for on connect: everything after `since`, or the newest `last`. */
export type HistoryCursor = { since: number } | { last: number };

/**
 * The room socket's URL: `ws(s)://…/v1/rooms/{roomId}/ws?token=…&since=…` (or `&last=…`), and
 * `v=` the protocol version this SDK speaks, so the server can answer in a shape it can read.
 *
 * @example
 * roomSocketUrl("https://chat.example.com", "lobby", token, { since: 41 }).href;
 * // "wss://chat.example.com/v1/rooms/lobby/ws?token=…&since=41&v=2"
 */
export const roomSocketUrl = (baseUrl: string, roomId: string, token: string, history: HistoryCursor): URL => {
  const url = apiUrl(baseUrl, `v1/rooms/${encodeURIComponent(roomId)}/ws`);
  url.protocol = url.protocol === "https:" ? "wss:" : url.protocol === "http:" ? "ws:" : url.protocol;
  url.searchParams.set("token", token);
  if ("since" in history) url.searchParams.set("since", String(history.since));
  else url.searchParams.set("last", String(history.last));
  url.searchParams.set("v", String(PROTOCOL_VERSION));
  return url;
};
