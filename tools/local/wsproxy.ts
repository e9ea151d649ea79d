// Neon's wsproxy protocol for local Postgres: the Neon driver (WebSocket mode) connects to
// ws://HOST:PORT/v1?address=PGHOST:PGPORT and we relay raw wire-protocol bytes to TCP.
// It doubles as a fault injector, driven from Node (setFault) or from workerd over HTTP (/__faults).
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import { type WebSocket, WebSocketServer, type RawData } from "ws";
import { type Fault, parseFault } from "./faults.js";
import { Lane } from "./lane.js";
import { listen, readBody, sendJson } from "./net.js";

export type { Fault } from "./faults.js";

export interface WsProxyStats {
  open: number;
  total: number;
  cuts: number;
  refused: number;
}

export interface WsProxy {
  port: number;
  /** "127.0.0.1:PORT/v1": what the Worker passes to neonConfig.wsProxy. */
  endpoint: string;
  setFault(f: Fault): void;
  stats(): WsProxyStats;
  close(): Promise<void>;
}

/** How long after an ambiguous frame the cut comes: long enough for Postgres to execute and commit it. */
const CUT_DELAY_MS = 150;

interface Conn {
  kill(): void;
  pump(): void;
}

export async function startWsProxy(opts: { port?: number; host?: string } = {}): Promise<WsProxy> {
  const host = opts.host ?? "127.0.0.1";
  let fault: Fault = { mode: "none" };
  const conns = new Set<Conn>();
  const counts = { total: 0, cuts: 0, refused: 0 };
  const stats = (): WsProxyStats => ({ open: conns.size, ...counts });

  const setFault = (f: Fault): void => {
    fault = f;
    // refuse and drop both start by cutting every live connection, abruptly like a network loss.
    if (f.mode === "refuse" || f.mode === "drop") for (const c of conns) c.kill();
    if (f.mode === "drop") fault = { mode: "none" };
    for (const c of conns) c.pump(); // leaving pause flushes the held frames
  };

  const wss = new WebSocketServer({ noServer: true });

  const relay = (ws: WebSocket, address: string): void => {
    const sep = address.lastIndexOf(":");
    const tcp: Socket = connect(Number(address.slice(sep + 1)), address.slice(0, sep));
    // Postgres answers a parameterised query only after the client's last message arrives;
    // Nagle would hold that small message back for ~40 ms waiting for an ACK.
    tcp.setNoDelay(true);
    let cutting = false; // set once an ambiguous frame went out: nothing more may come back
    const conn: Conn = {
      kill() {
        conns.delete(conn); // now, not on the async close events, so stats() is exact right after a fault
        toServer.clear();
        toClient.clear();
        tcp.destroy();
        ws.terminate();
      },
      pump() {
        toServer.pump();
        toClient.pump();
      },
    };
    const toServer = new Lane((d) => (d ? tcp.write(d) : tcp.end()), () => fault);
    const toClient = new Lane(
      (d) => (d ? ws.send(d) : ws.close()),
      () => fault,
    );
    conns.add(conn);
    counts.total++;

    ws.on("message", (raw: RawData) => {
      if (cutting) return;
      const data = Buffer.isBuffer(raw) ? raw : Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw);
      toServer.push(data);
      if (fault.mode === "cut-after" && data.includes(fault.pattern, 0, "utf8")) {
        cutting = true;
        counts.cuts++;
        if (fault.once !== false) fault = { mode: "none" };
        setTimeout(() => conn.kill(), CUT_DELAY_MS);
      }
    });
    // The Neon driver never closes its socket after Terminate, so Postgres closing TCP must close
    // the WebSocket (queued behind any held data), or the client waits forever.
    tcp.on("data", (d: Buffer) => cutting || toClient.push(d));
    tcp.on("end", () => cutting || toClient.push(null));
    tcp.on("error", () => conn.kill());
    // Forget the connection only when both ends are closed: a paused lane may still hold the other
    // end's data and close, and setFault must be able to find it to flush them.
    let ends = 2;
    const ended = (): void => {
      if (--ends === 0) conns.delete(conn);
    };
    tcp.on("close", ended);
    ws.on("close", () => {
      ended();
      if (!cutting) toServer.push(null);
    });
    ws.on("error", () => conn.kill());
  };

  const control = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (new URL(req.url ?? "/", "http://x").pathname !== "/__faults") return sendJson(res, 404, { error: "not found" });
    if (req.method === "POST") {
      const parsed = parseFault(await readBody(req));
      if (typeof parsed === "string") return sendJson(res, 400, { error: parsed });
      setFault(parsed);
    }
    sendJson(res, 200, { fault, stats: stats() });
  };

  const server = createServer((req, res) => {
    control(req, res).catch((e: unknown) => sendJson(res, 500, { error: String(e) }));
  });
  server.on("upgrade", (req, socket, head) => {
    // Node takes its own 'error' listener off the socket before it emits 'upgrade'. A peer that
    // resets the connection (workerd SIGKILLed by a restart, a client killed mid-handshake) while
    // we answer 503/400 below would otherwise be an unhandled ECONNRESET/EPIPE that kills the
    // process. ws adds its own listener in handleUpgrade; this one covers every path.
    socket.on("error", () => socket.destroy());
    const url = new URL(req.url ?? "/", "http://x");
    const address = url.searchParams.get("address");
    const reject = fault.mode === "refuse" ? "503 Service Unavailable" : !address || url.pathname !== "/v1" ? "400 Bad Request" : null;
    if (reject || !address) {
      if (fault.mode === "refuse") counts.refused++;
      socket.end(`HTTP/1.1 ${reject}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => relay(ws, address));
  });

  const port = await listen(server, opts.port ?? 0, host);
  return {
    port,
    endpoint: `${host}:${port}/v1`,
    setFault,
    stats,
    async close() {
      for (const c of conns) c.kill();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
