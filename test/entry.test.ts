// The deployed entry point (default export + Room class wiring), through the runtime's own
// dispatch. Other tests call the same handler directly; see test/helpers.ts for why.
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { tokenFor, uniqueRoom } from "./helpers.js";

describe("entry point", () => {
  it("serves /healthz and a WebSocket room through the Worker's own dispatch", async () => {
    const health = await SELF.fetch("http://chat.test/healthz");
    expect(await health.json()).toEqual({ ok: true });
    const room = uniqueRoom("entry");
    const res = await SELF.fetch(`http://chat.test/v1/rooms/${room}/ws?token=${await tokenFor("a")}`, {
      headers: { upgrade: "websocket" },
    });
    expect(res.status).toBe(101);
    const ws = res.webSocket;
    if (!ws) throw new Error("no socket");
    const first = new Promise<string>((resolve) => ws.addEventListener("message", (e) => resolve(String(e.data))));
    ws.accept();
    expect(JSON.parse(await first)).toEqual({
      type: "ready",
      roomId: room,
      messages: [],
      latestSeq: 0,
      truncated: false,
      protocol: 2,
      readSeq: 0,
      unread: 0,
      presence: [{ userId: "a" }],
    });
    ws.close(1000, "done");
    const page = await SELF.fetch("http://chat.test/");
    expect(page.status).toBe(200);
  });
});
