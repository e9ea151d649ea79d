// Runs in Node before the workerd tests: starts the local stack and provides its addresses.
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
  }
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
  return () => stack.close();
}
