// A real local HTTP server playing a tenant's before-commit hook (started by the global setup, in
// Node). It verifies every call's signature the way docs/server-api.md tells a receiver to, and
// answers by what the message says, so a test picks the behaviour with its text:
//   contains "reject"   → {"action":"reject","reason":"not allowed here"}
//   contains "darn"     → {"action":"rewrite","text": the text with "darn" → "d**n"}
//   contains "slow"     → answers "allow" after 1.5 s (past the tenants' 300 ms timeout)
//   contains "garbage"  → 200 with a body that is not an answer
//   anything else       → {"action":"allow"}
// GET /calls answers {"calls":N,"badSignatures":M} since the last POST /reset.

import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export const HOOK_SECRET = "hook-secret-not-for-production";

export const startHookServer = async (): Promise<{ url: string; close: () => Promise<void> }> => {
  let calls = 0;
  let badSignatures = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const answer = (status: number, value: unknown): void => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(typeof value === "string" ? value : JSON.stringify(value));
      };
      if (req.method === "GET" && req.url === "/calls") return answer(200, { calls, badSignatures });
      if (req.method === "POST" && req.url === "/reset") {
        calls = 0;
        badSignatures = 0;
        return answer(200, { ok: true });
      }
      calls++;
      const timestamp = String(req.headers["x-chat-timestamp"] ?? "");
      const expected = `v1=${createHmac("sha256", HOOK_SECRET).update(`${timestamp}.${body}`).digest("hex")}`;
      const given = String(req.headers["x-chat-signature"] ?? "");
      const fresh = Math.abs(Date.now() / 1000 - Number(timestamp)) < 300;
      if (!fresh || given.length !== expected.length || !timingSafeEqual(Buffer.from(given), Buffer.from(expected))) {
        badSignatures++;
        return answer(401, { error: "bad signature" });
      }
      const text = String((JSON.parse(body) as { text?: unknown }).text ?? "");
      if (text.includes("reject")) return answer(200, { action: "reject", reason: "not allowed here" });
      if (text.includes("darn")) return answer(200, { action: "rewrite", text: text.replaceAll("darn", "d**n") });
      if (text.includes("garbage")) return answer(200, "this is not an answer");
      if (text.includes("slow")) {
        setTimeout(() => answer(200, { action: "allow" }), 1500);
        return;
      }
      answer(200, { action: "allow" });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};
