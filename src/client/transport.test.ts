import { describe, expect, expectTypeOf, it } from "vitest";
import { apiUrl, type FetchLike, roomSocketUrl, type WebSocketConstructor } from "./transport.js";

describe("transport", () => {
  it("the platform's WebSocket and fetch fit the SDK's injection types (browsers, Node 22+)", () => {
    expectTypeOf<typeof WebSocket>().toExtend<WebSocketConstructor>();
    expectTypeOf<typeof fetch>().toExtend<FetchLike>();
  });

  it("builds ws:// and wss:// room URLs with the token, the history cursor and the protocol version, keeping a path prefix", () => {
    expect(roomSocketUrl("http://127.0.0.1:8787", "lobby", "t.o.k", { last: 50 }).href).toBe(
      "ws://127.0.0.1:8787/v1/rooms/lobby/ws?token=t.o.k&last=50&v=2",
    );
    expect(roomSocketUrl("https://example.com/chat", "a-b_C", "x", { since: 0 }).href).toBe(
      "wss://example.com/chat/v1/rooms/a-b_C/ws?token=x&since=0&v=2",
    );
    expect(apiUrl("https://example.com/chat/", "/v1/rooms/r/messages").href).toBe("https://example.com/chat/v1/rooms/r/messages");
  });
});
