// The before-commit hook's cost on the ack path (issue #18): send→ack in a tenant without a hook
// and in a tenant whose hook answers "allow" from a local HTTP receiver, on the same server,
// interleaved message by message in one run, so load and drift hit both alike.
//
//   flock /tmp/edge-chat-cpu.lock npm run bench -- --only hook
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { WebSocket } from "ws";
import type { Context } from "./context.js";
import { type Table, tableToMarkdown } from "./report.js";
import { ms, type Summary, summarize } from "./stats.js";
import { wsUrl } from "./wsclient.js";

export const HOOK_TITLE = "Before-commit hook";
/** The dev-only tenant whose messages the hook reviews (verified with AUTH_SECRET, dev tokens allowed). */
export const HOOK_TENANT = "bhook";

export interface HookRecord {
  tenant: "no hook" | "hook (local receiver, allow)";
  sendToAck: Summary;
}

/** A receiver that allows everything at once: what remains is the call itself. */
export const startHookReceiver = async (): Promise<{ url: string; calls: () => number; close: () => Promise<void> }> => {
  let calls = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      calls++;
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"action":"allow"}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/review`,
    calls: () => calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};

/** Worker vars that add the hook tenant (dev only: the receiver is on loopback). */
export const hookVars = (receiverUrl: string): Record<string, string> => ({
  ALLOW_PRIVATE_URLS: "true",
  TENANTS: JSON.stringify({
    [HOOK_TENANT]: { devOnly: true, autoCreateRooms: true, beforeCommit: { url: receiverUrl, secret: "bench-hook-secret-0123456789", timeoutMs: 1000, failMode: "closed" } },
  }),
});

const token = async (url: string, userId: string, tenant?: string): Promise<string> => {
  const res = await fetch(`${url}/v1/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(tenant ? { userId, tenant } : { userId }),
  });
  const body = (await res.json()) as { token?: string };
  if (!body.token) throw new Error(`no dev token for ${userId}@${tenant ?? "default"}: HTTP ${res.status}`);
  return body.token;
};

const open = (url: string, room: string, tok: string, onFrame: (frame: Record<string, unknown>) => void): Promise<WebSocket> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`${wsUrl(url)}/v1/rooms/${room}/ws?token=${encodeURIComponent(tok)}&v=2&last=1`);
    ws.on("message", (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as Record<string, unknown>;
      if (frame.type === "ready") resolve(ws);
      else onFrame(frame);
    });
    ws.on("error", reject);
  });

export async function hookBench(ctx: Context, quick: boolean, receiverCalls: () => number): Promise<HookRecord[]> {
  const url = ctx.url("hook");
  const room = ctx.room("hook");
  const sides = await Promise.all(
    ([undefined, HOOK_TENANT] as const).map(async (tenant) => {
      const waiting = new Map<string, (frame: Record<string, unknown>) => void>();
      const ws = await open(url, room, await token(url, `${room}-s`.slice(0, 64), tenant), (frame) => {
        const id = typeof frame.clientMsgId === "string" ? frame.clientMsgId : undefined;
        if (id && (frame.type === "ack" || frame.type === "error")) waiting.get(id)?.(frame);
      });
      const send = (clientMsgId: string): Promise<number> =>
        new Promise((resolve, reject) => {
          const t0 = performance.now();
          waiting.set(clientMsgId, (frame) => {
            waiting.delete(clientMsgId);
            if (frame.type === "ack") resolve(performance.now() - t0);
            else reject(new Error(`send refused: ${JSON.stringify(frame)}`));
          });
          ws.send(JSON.stringify({ type: "send", clientMsgId, text: "benchmark message: the quick brown fox" }));
        });
      return { ws, send, samples: [] as number[] };
    }),
  );
  const n = quick ? 100 : 500;
  const callsBefore = receiverCalls();
  for (let i = -20; i < n; i++) {
    // Alternate which goes first, so neither always runs on a warmer path.
    for (const side of i % 2 === 0 ? sides : [...sides].reverse()) {
      const took = await side.send(`h-${i}-${sides.indexOf(side)}`);
      if (i >= 0) side.samples.push(took);
    }
  }
  for (const side of sides) side.ws.close();
  const hookCalls = receiverCalls() - callsBefore;
  if (hookCalls !== n + 20) throw new Error(`the hook saw ${hookCalls} calls for ${n + 20} messages`);
  const records: HookRecord[] = [
    { tenant: "no hook", sendToAck: summarize(sides[0]?.samples ?? []) },
    { tenant: "hook (local receiver, allow)", sendToAck: summarize(sides[1]?.samples ?? []) },
  ];
  for (const r of records) ctx.log("hook", `${r.tenant}: send→ack p50 ${ms(r.sendToAck.p50)} ms, p99 ${ms(r.sendToAck.p99)} ms`);
  return records;
}

export const hookTable = (records: HookRecord[]): string => {
  const table: Table = {
    title: HOOK_TITLE,
    headers: ["tenant", "send→ack p50 ms", "p99 ms", "samples"],
    rows: records.map((r) => [r.tenant, ms(r.sendToAck.p50), ms(r.sendToAck.p99), String(r.sendToAck.n)]),
  };
  return tableToMarkdown(table);
};
