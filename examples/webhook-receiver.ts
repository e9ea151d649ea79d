// An example webhook receiver (docs/webhooks.md): verifies the signature and the replay window,
// drops duplicates by event id, and checks per room that no event is missing (`prevSeq`).
//
//   CHAT_WEBHOOK_SECRET=… npx tsx examples/webhook-receiver.ts     # listens on :8790
//
// Delivery is at least once, so a receiver must be idempotent: remember event ids (here in
// memory; in production a UNIQUE column in the table your handler writes to, in the same
// transaction as its effect). Answer 2xx only once the event is handled: anything else, or no
// answer within 10 s, is retried later with backoff, and later events of that room wait for it.

import { createServer, type IncomingMessage } from "node:http";
import { pathToFileURL } from "node:url";
import { verifyWebhook, type WebhookDelivery } from "../src/server/webhooks.js";

export interface ReceiverState {
  /** Event ids already handled. */
  seen: Set<string>;
  /** Per room: the seq of the last event handled (what the next one's `prevSeq` must be). */
  lastSeq: Map<string, number>;
}

export type Outcome =
  | { status: 200; event: WebhookDelivery; duplicate: boolean; gap?: { expected: number; got: number } }
  | { status: 400 | 401; error: string };

/**
 * Handles one delivery: verify, then dedup, then the gap check, then your code (`handle`).
 * A gap (prevSeq is not the last seq you handled) means events were dead-lettered in between:
 * read them from `webhook_dead_letters` or from the room's history (GET …/messages?after=N).
 */
export const receive = async (
  state: ReceiverState,
  secret: string,
  headers: IncomingMessage["headers"],
  body: string,
  handle: (event: WebhookDelivery) => void | Promise<void> = () => {},
): Promise<Outcome> => {
  const verified = await verifyWebhook({ secret, body, headers });
  if (!verified.ok) return { status: verified.reason === "bad_body" ? 400 : 401, error: verified.message };
  const event = verified.event;
  if (state.seen.has(event.id)) return { status: 200, event, duplicate: true };
  let gap: { expected: number; got: number } | undefined;
  if (event.seq !== null && event.prevSeq !== undefined) {
    const room = `${event.tenant}:${event.roomId}`;
    const last = state.lastSeq.get(room);
    if (last !== undefined && event.prevSeq !== last) gap = { expected: last, got: event.prevSeq };
    state.lastSeq.set(room, event.seq);
  }
  await handle(event);
  state.seen.add(event.id);
  return gap ? { status: 200, event, duplicate: false, gap } : { status: 200, event, duplicate: false };
};

export const readBody = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const secret = process.env.CHAT_WEBHOOK_SECRET;
  if (!secret) throw new Error("set CHAT_WEBHOOK_SECRET to the endpoint's secret (TENANTS.<tenant>.webhooks[].secret)");
  const state: ReceiverState = { seen: new Set(), lastSeq: new Map() };
  const port = Number(process.env.PORT ?? 8790);
  createServer(async (req, res) => {
    const outcome = await receive(state, secret, req.headers, await readBody(req), (event) => {
      console.log(`${event.id} ${event.type}`, event.type === "notification" ? event.data : "");
    });
    if (outcome.status === 200 && outcome.gap) console.warn(`gap in ${outcome.event.roomId}: expected prevSeq ${outcome.gap.expected}, got ${outcome.gap.got}`);
    res.writeHead(outcome.status, { "content-type": "text/plain" }).end(outcome.status === 200 ? "ok" : outcome.error);
  }).listen(port, "127.0.0.1", () => console.log(`webhook receiver on http://127.0.0.1:${port}/`));
}
