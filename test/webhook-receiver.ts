// A real local HTTP receiver for the webhook tests (runs in Node, started by the global setup):
// the example receiver's checks (signature, replay window, dedup by event id, prevSeq gaps per
// room) on every endpoint path `/hook/<name>`, plus what the tests look at: every arrival in
// order (duplicates included), bad signatures, and a switch that makes an endpoint fail.

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { readBody, type ReceiverState, receive } from "../examples/webhook-receiver.js";

/** Every endpoint of the test tenants signs with this (vitest.config.ts). */
export const TEST_WEBHOOK_SECRET = "webhook-secret-not-for-production";

interface Arrival {
  id: string;
  type: string;
  roomId: string;
  seq: number | null;
  prevSeq: number | undefined;
  duplicate: boolean;
  at: number;
  data: Record<string, unknown>;
}

interface Endpoint {
  state: ReceiverState;
  arrivals: Arrival[];
  /** Requests answered with `failStatus` while down (they count as attempts, not arrivals). */
  refused: Array<{ id: string; at: number }>;
  badSignatures: number;
  gaps: Array<{ roomId: string; expected: number; got: number }>;
  failStatus: number | undefined;
}

export const startWebhookReceiver = async (): Promise<{ url: string; close: () => Promise<void> }> => {
  const endpoints = new Map<string, Endpoint>();
  const endpoint = (name: string): Endpoint => {
    let e = endpoints.get(name);
    if (!e) {
      e = { state: { seen: new Set(), lastSeq: new Map() }, arrivals: [], refused: [], badSignatures: 0, gaps: [], failStatus: undefined };
      endpoints.set(name, e);
    }
    return e;
  };
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const body = await readBody(req);
    const [, kind, name = ""] = url.pathname.split("/");
    if (kind === "control") {
      // POST /control/<name> {"failStatus": 503 | null}; GET /control/<name>?room=… → what arrived.
      const e = endpoint(name);
      if (req.method === "POST") {
        const { failStatus } = JSON.parse(body) as { failStatus: number | null };
        e.failStatus = failStatus ?? undefined;
        res.writeHead(204).end();
        return;
      }
      const room = url.searchParams.get("room");
      const of = <T extends { roomId: string }>(xs: T[]) => (room ? xs.filter((x) => x.roomId === room) : xs);
      res.writeHead(200, { "content-type": "application/json" }).end(
        JSON.stringify({
          arrivals: of(e.arrivals),
          refused: e.refused,
          badSignatures: e.badSignatures,
          gaps: of(e.gaps),
        }),
      );
      return;
    }
    if (kind !== "hook") {
      res.writeHead(404).end();
      return;
    }
    const e = endpoint(name);
    if (e.failStatus !== undefined) {
      e.refused.push({ id: String(req.headers["x-edge-chat-event-id"]), at: Date.now() });
      res.writeHead(e.failStatus).end("down for the test");
      return;
    }
    const outcome = await receive(e.state, TEST_WEBHOOK_SECRET, req.headers, body);
    if (outcome.status !== 200) {
      e.badSignatures++;
      res.writeHead(outcome.status).end(outcome.error);
      return;
    }
    const ev = outcome.event;
    e.arrivals.push({ id: ev.id, type: ev.type, roomId: ev.roomId, seq: ev.seq, prevSeq: ev.prevSeq, duplicate: outcome.duplicate, at: Date.now(), data: ev.data });
    if (outcome.gap) e.gaps.push({ roomId: ev.roomId, ...outcome.gap });
    res.writeHead(200).end("ok");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
};
