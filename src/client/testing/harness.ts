// A ChatClient on the FakeServer, for tests of one room's features through the public API (with
// vitest's fake timers: reconnects, throttles and batches run in virtual time).

import { vi } from "vitest";
import { ChatClient, type ChatClientOptions } from "../client.js";
import type { Room } from "../room.js";
import { FakeServer } from "./fake-server.js";
import { fakeJwt } from "./jwt.js";

export const BASE_URL = "http://chat.test";
/** Longer than any reconnect delay (cap 10 s). */
export const MAX_BACKOFF_MS = 10_000;

export const flush = () => vi.advanceTimersByTimeAsync(0);

export interface Harness {
  server: FakeServer;
  client: ChatClient;
}

/** A client for `userId` (the FakeServer's user) on a fresh FakeServer for room r1. */
export const harness = (options: Partial<ChatClientOptions> = {}, userId = "alice"): Harness => {
  const server = new FakeServer("r1");
  server.userId = userId;
  const client = new ChatClient({
    baseUrl: BASE_URL,
    tokenProvider: async () => {
      const iat = Math.floor(Date.now() / 1000);
      return fakeJwt({ sub: userId, iat, exp: iat + 3600 });
    },
    WebSocket: server.WebSocket,
    fetch: server.fetch,
    ...options,
  });
  return { server, client };
};

/** Joins r1 and lets the fake server answer with its ready. */
export const joinRoom = async (h: Harness, options: { last?: number; since?: number } = {}): Promise<Room> => {
  const joining = h.client.join("r1", options);
  await flush();
  h.server.latest.ready();
  await flush();
  return joining;
};

/** Drops the current socket (1006) and lets the room reconnect; the new socket is open but has no ready yet. */
export const dropAndReconnect = async (h: Harness): Promise<void> => {
  h.server.latest.serverClose(1006);
  await vi.advanceTimersByTimeAsync(MAX_BACKOFF_MS);
};

/** Drops the socket, reconnects and answers the new socket's ready. */
export const reconnect = async (h: Harness): Promise<void> => {
  await dropAndReconnect(h);
  h.server.latest.ready();
  await flush();
};

/** A message from someone else, committed and delivered live. */
export const deliverFrom = (h: Harness, userId: string, text = `from ${userId}`) => {
  const { message } = h.server.commit(text, userId);
  h.server.latest.deliver({ type: "message", message });
  return message;
};
