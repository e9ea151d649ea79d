// The wsproxy must survive peers that vanish abruptly (an RST, as from a SIGKILLed workerd) while it
// refuses or rejects their upgrade: Node removes its own 'error' listener from a socket before it
// emits 'upgrade', so an unhandled ECONNRESET there killed `npm run chaos` (scenario mixed, a restart
// during "pg refuse"). Runs in plain Node (vitest.client.config.ts); fails on any uncaught error.
import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startWsProxy, type WsProxy } from "./wsproxy.js";

const upgrade = (path: string): string =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/** Sends `request`, then resets the connection after `afterMs` (0: at once) without reading the answer. */
const resetAfter = (port: number, request: string, afterMs: number): Promise<void> =>
  new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.on("error", () => {});
    socket.on("connect", () => {
      socket.write(request);
      setTimeout(() => {
        socket.resetAndDestroy();
        resolve();
      }, afterMs);
    });
  });

describe("wsproxy: peers that reset during an upgrade", () => {
  let proxy: WsProxy | undefined;
  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
  });

  it("a refused upgrade (fault refuse, HTTP 503) whose peer resets does not crash the proxy", async () => {
    const p = await startWsProxy();
    proxy = p;
    p.setFault({ mode: "refuse" });
    for (let i = 0; i < 20; i++) await resetAfter(p.port, upgrade("/v1?address=127.0.0.1:5432"), i % 3 === 0 ? 0 : 5);
    await new Promise((r) => setTimeout(r, 100)); // let late 'error' events arrive
    expect(p.stats().refused).toBe(20);
  });

  it("a rejected upgrade (bad path, HTTP 400) whose peer resets does not crash the proxy", async () => {
    const p = await startWsProxy();
    proxy = p;
    for (let i = 0; i < 20; i++) await resetAfter(p.port, upgrade("/elsewhere"), i % 3 === 0 ? 0 : 5);
    await new Promise((r) => setTimeout(r, 100));
    const res = await fetch(`http://127.0.0.1:${p.port}/__faults`);
    expect(res.status).toBe(200); // still serving
  });
});
