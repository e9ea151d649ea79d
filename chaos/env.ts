// The real stack under the chaos run: Postgres and Redis behind the local proxies
// (startLocalStack), and `wrangler dev` as a child process this harness kills and restarts.
// Fault switches are the proxies' own HTTP endpoints, exactly what a test inside workerd uses.

import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT } from "jose";
import type { Fault } from "../tools/local/faults.js";
import { type LocalStack, startLocalStack } from "../tools/local/stack.js";
import { stackVars, startWrangler, type WranglerServer } from "../tools/local/wrangler.js";

/** Replica shards per region on the chaos server (REPLICA_SHARDS). */
export const REPLICA_SHARDS = 2;

export interface EnvOptions {
  /** PG_STATEMENT_TIMEOUT_MS for the Worker: how long a held Postgres waits before `unavailable`. */
  statementTimeoutMs: number;
  /** Redis stream trim length (MIRROR_MAXLEN). */
  mirrorMaxLen: number;
  /** HISTORY_WINDOW: messages a room keeps in memory; small values send handshakes to Postgres. Unset: the product default. */
  historyWindow?: number;
}

/**
 * The dev server's own output: hidden, unless CHAOS_SERVER_OUTPUT=inherit (to read the Worker's
 * logs, e.g. the error behind an `internal`, interleaved with the run's lines).
 */
const serverOutput = (): "inherit" | "ignore" => (process.env.CHAOS_SERVER_OUTPUT === "inherit" ? "inherit" : "ignore");

/** A free loopback port, so a restarted wrangler can come back on the same one. */
const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const addr = server.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      server.close(() => resolve(port));
    });
  });

const postJson = async (url: string, body: unknown): Promise<unknown> => {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const parsed = (await res.json()) as unknown;
  if (!res.ok) throw new Error(`POST ${url} → ${res.status} ${JSON.stringify(parsed)}`);
  return parsed;
};

export class ChaosEnv {
  /** What is broken right now (shown in progress lines). */
  readonly broken = new Set<string>();
  restarts = 0;
  private server: WranglerServer | undefined;
  private restarting: Promise<void> | undefined;

  private constructor(
    readonly stack: LocalStack,
    readonly port: number,
    private readonly persistTo: string,
    private readonly vars: Record<string, string>,
  ) {}

  static async start(options: EnvOptions): Promise<ChaosEnv> {
    const stack = await startLocalStack({ purpose: "bench" });
    try {
      if (!stack.faultsUrl)
        throw new Error("chaos needs a local database behind the wsproxy (DATABASE_URL points at a remote one)");
      const persistTo = await mkdtemp(join(tmpdir(), "edge-chat-chaos-"));
      const vars = stackVars(stack, {
        PG_STATEMENT_TIMEOUT_MS: String(options.statementTimeoutMs),
        MIRROR_MAXLEN: String(options.mirrorMaxLen),
        // Regional replicas on for this server only (never wrangler.toml's defaults): every
        // socket names its route with `?region=` (`primary` for the room object), two shards per region.
        REPLICATION: "on",
        REPLICA_REGION_OVERRIDE: "true",
        REPLICA_SHARDS: String(REPLICA_SHARDS),
        // Each replica checks in with the primary every 400 ms (product default 30 s): syncs land
        // mid-stream, and a replica may learn of seqs its pushes have not brought yet (a gap to fill).
        REPLICA_SYNC_MS: "400",
        ...(options.historyWindow ? { HISTORY_WINDOW: String(options.historyWindow) } : {}),
      });
      const env = new ChaosEnv(stack, await freePort(), persistTo, vars);
      await env.startServer();
      return env;
    } catch (e) {
      await stack.close();
      throw e;
    }
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  get serverUp(): boolean {
    return this.server !== undefined && !this.restarting;
  }

  private async startServer(): Promise<void> {
    this.server = await startWrangler({ port: this.port, vars: this.vars, persistTo: this.persistTo, output: serverOutput() });
  }

  /** Kills the dev server (every room object dies with it, as in a crash) and starts it again on the same port and state. */
  restartServer(): Promise<void> {
    this.restarting ??= (async () => {
      this.broken.add("server down");
      try {
        await this.server?.kill();
        this.server = undefined;
        this.restarts++;
        // A port can linger for a moment after workerd dies; a second try covers that.
        try {
          await this.startServer();
        } catch {
          await new Promise((r) => setTimeout(r, 500));
          await this.startServer();
        }
      } finally {
        this.broken.delete("server down");
        this.restarting = undefined;
      }
    })();
    return this.restarting;
  }

  /** Sets the Postgres proxy's fault (`none` heals). */
  async pg(fault: Fault): Promise<void> {
    await postJson(this.stack.faultsUrl, fault);
    this.broken.delete("pg refuse");
    this.broken.delete("pg pause");
    this.broken.delete("pg cut-after");
    if (fault.mode === "refuse" || fault.mode === "pause" || fault.mode === "cut-after") this.broken.add(`pg ${fault.mode}`);
  }

  /** The proxy's counters: open, total, cuts, refused. */
  async pgStats(): Promise<{ fault: Fault; stats: { open: number; total: number; cuts: number; refused: number } }> {
    const res = await fetch(this.stack.faultsUrl, { signal: AbortSignal.timeout(5000) });
    return (await res.json()) as { fault: Fault; stats: { open: number; total: number; cuts: number; refused: number } };
  }

  get hasRedis(): boolean {
    return this.stack.redis !== null;
  }

  async redisDown(down: boolean): Promise<void> {
    if (!this.stack.redis) return;
    await postJson(this.stack.redis.controlUrl, { down });
    if (down) this.broken.add("redis down");
    else this.broken.delete("redis down");
  }

  /** Every fault off and the server running: the state the checks are made in. */
  async heal(): Promise<void> {
    await this.pg({ mode: "none" });
    await this.redisDown(false);
    if (this.restarting) await this.restarting;
    if (!this.server || this.server.child.exitCode !== null || this.server.child.signalCode !== null) await this.restartServer();
  }

  /**
   * A token for userId, signed here with the AUTH_SECRET this harness gave the Worker (as the
   * tenant's own backend would), so the run does not depend on the dev-token route.
   */
  async token(userId: string): Promise<string> {
    const secret = this.vars.AUTH_SECRET;
    if (!secret) throw new Error("no AUTH_SECRET in the Worker's vars");
    return new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(userId)
      .setIssuedAt()
      .setExpirationTime("2h")
      .sign(new TextEncoder().encode(secret));
  }

  async close(): Promise<void> {
    if (this.restarting) await this.restarting.catch(() => {});
    await this.server?.stop();
    this.server = undefined;
    await this.stack.close();
    await rm(this.persistTo, { recursive: true, force: true });
  }
}
