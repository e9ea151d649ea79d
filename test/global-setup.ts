// Runs in Node before the workerd tests: starts the local stack and provides its addresses.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair } from "jose";
import type { TestProject } from "vitest/node";
import { startLocalStack } from "../tools/local/stack.js";

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
  return async () => {
    await jwks.close();
    await stack.close();
  };
}
