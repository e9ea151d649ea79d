// Runs in Node before the workerd tests: starts the local stack and provides its addresses.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair } from "jose";
import type { TestProject } from "vitest/node";
import { startLocalStack } from "../tools/local/stack.js";
import { startWebhookReceiver } from "./webhook-receiver.js";
import { startHookServer } from "./hook-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string;
    neonWsProxy: string;
    faultsUrl: string;
    redisRestUrl: string;
    redisRestToken: string;
    redisControlUrl: string;
    redisUrl: string;
    /** A tenant's identity provider for the JWKS tests: its published keys' URL and its private keys. */
    jwksUrl: string;
    jwksPrivateKeys: string;
    /** The local webhook receiver (test/webhook-receiver.ts): endpoints at /hook/<name>, control at /control/<name>. */
    webhookReceiverUrl: string;
    /** The before-commit hook receiver (test/hook-server.ts). */
    hookUrl: string;
  }
}

/**
 * A local identity provider: RS256 and ES256 key pairs, the public halves served as a JWKS on
 * loopback (what a tenant's backend publishes), the private halves handed to the tests.
 */
const startJwksServer = async (): Promise<{ url: string; privateKeys: string; close: () => Promise<void> }> => {
  const keys = [];
  const privateKeys: Record<string, unknown> = {};
  for (const [alg, kid] of [
    ["RS256", "rsa-1"],
    ["ES256", "ec-1"],
  ] as const) {
    const pair = await generateKeyPair(alg, { extractable: true });
    keys.push({ ...(await exportJWK(pair.publicKey)), kid, alg, use: "sig" });
    privateKeys[alg] = { ...(await exportJWK(pair.privateKey)), kid, alg };
  }
  const body = JSON.stringify({ keys });
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    privateKeys: JSON.stringify(privateKeys),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
};

/**
 * Lines workerd logs for sockets whose peer went away without a close frame: the tests cut
 * connections on purpose (fault injection, killed clients) and workerd tears every socket of a test
 * file down when it ends. vitest-pool-workers writes workerd's logs straight to stdout/stderr (not
 * through console, so `onConsoleLog` never sees them), one line per write, and its own ignore list
 * cannot be extended. Only these exact lines are dropped; anything else workerd says, and every
 * test's own output, passes through. SHOW_WORKERD_TEARDOWN_LOGS=1 keeps them.
 */
const EXPECTED_WORKERD_LINES = [/^exception = workerd\/api\/web-socket\.c\+\+:\d+: disconnected: WebSocket peer disconnected$/];

/** Drops the expected lines from process.stdout/stderr; returns a function that restores both and says how many were dropped. */
function hideExpectedWorkerdLines(): () => number {
  if (process.env.SHOW_WORKERD_TEARDOWN_LOGS === "1") return () => 0;
  let hidden = 0;
  const restores = [process.stdout, process.stderr].map((stream) => {
    const original = stream.write;
    const write = original.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]): boolean => {
      const text = typeof chunk === "string" ? chunk : chunk instanceof Uint8Array ? Buffer.from(chunk).toString("utf8") : null;
      if (text === null || !text.includes("WebSocket peer disconnected")) return write(chunk, ...rest);
      const lines = text.split("\n");
      const kept = lines.filter((line) => !EXPECTED_WORKERD_LINES.some((re) => re.test(line)));
      hidden += lines.length - kept.length;
      const remaining = kept.join("\n");
      if (remaining !== "") return write(remaining, ...rest);
      const callback = rest.find((a) => typeof a === "function") as (() => void) | undefined;
      if (callback) process.nextTick(callback);
      return true;
    }) as typeof stream.write;
    return () => {
      stream.write = original;
    };
  });
  return () => {
    for (const restore of restores) restore();
    return hidden;
  };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const stack = await startLocalStack({ purpose: "test" });
  console.log(`\n[test stack]\n${stack.describe()}\n`);
  if (!stack.faultsUrl) throw new Error("tests need a local wsproxy (fault injection); DATABASE_URL must point at a local Postgres");
  project.provide("databaseUrl", stack.databaseUrl);
  project.provide("neonWsProxy", stack.neonWsProxy);
  project.provide("faultsUrl", stack.faultsUrl);
  project.provide("redisRestUrl", stack.redis?.restUrl ?? "");
  project.provide("redisRestToken", stack.redis?.restToken ?? "");
  project.provide("redisControlUrl", stack.redis?.controlUrl ?? "");
  project.provide("redisUrl", stack.redis?.redisUrl ?? "");
  const jwks = await startJwksServer();
  project.provide("jwksUrl", jwks.url);
  project.provide("jwksPrivateKeys", jwks.privateKeys);
  const receiver = await startWebhookReceiver();
  project.provide("webhookReceiverUrl", receiver.url);
  const hook = await startHookServer();
  project.provide("hookUrl", hook.url);
  // Installed last: workerd starts after the global setup, and a failed setup leaves output alone.
  const restoreOutput = hideExpectedWorkerdLines();
  return async () => {
    await jwks.close();
    await receiver.close();
    await hook.close();
    await stack.close();
    const hidden = restoreOutput();
    if (hidden > 0)
      console.log(
        `[test stack] hid ${hidden} expected workerd line(s) "WebSocket peer disconnected" (sockets cut by the tests or at teardown; SHOW_WORKERD_TEARDOWN_LOGS=1 shows them)`,
      );
  };
}
