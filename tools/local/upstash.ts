// An Upstash-REST-compatible endpoint in front of a real Redis, so the Worker's @upstash/redis client
// runs unmodified locally: POST / (one command), /pipeline, /multi-exec, bearer token, and the
// `Upstash-Encoding: base64` replies the client asks for by default. No such server exists on npm.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import IORedis from "ioredis";
// Default import: vitest loads this file through Vite, which does not see ioredis' CJS named exports.
const { Redis } = IORedis;
type Redis = InstanceType<typeof Redis>;
import { listen, readBody, sendJson } from "./net.js";

export interface UpstashShim {
  port: number;
  /** "http://127.0.0.1:PORT": the UPSTASH_REDIS_REST_URL. */
  url: string;
  /** While down, every request except /__control gets HTTP 503, like an outage. */
  setDown(down: boolean): void;
  close(): Promise<void>;
}

type Arg = string | number;
type Reply = { result: unknown } | { error: string };

/** Commands that may block their connection; they get a connection of their own. */
const BLOCKING = new Set(["BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP", "WAIT"]);

/** Need a connection in subscriber mode (Upstash serves them over SSE, which this shim does not). */
const UNSUPPORTED = new Set(["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR"]);

function parseCommand(input: unknown): [string, ...Arg[]] | null {
  if (!Array.isArray(input) || input.length === 0) return null;
  if (!input.every((a): a is Arg => typeof a === "string" || typeof a === "number")) return null;
  const [name, ...args] = input;
  // Upper case on purpose: ioredis keys its reply transformers by the lower-case name (HGETALL would
  // come back as an object, not the flat array Upstash returns), so this keeps replies raw.
  return typeof name === "string" ? [name.toUpperCase(), ...args] : null;
}

/**
 * ioredis replies (Buffers with callBuffer) as Upstash JSON. With base64 every string is encoded,
 * status replies included: the client's decoder leaves a top-level "OK" alone but would mangle any
 * other plain string (an array element "OK", "PONG", ...), while "T0s=" decodes back to "OK".
 */
function toJson(value: unknown, base64: boolean): unknown {
  if (Buffer.isBuffer(value)) return base64 ? value.toString("base64") : value.toString("utf8");
  if (typeof value === "string") return base64 ? Buffer.from(value).toString("base64") : value;
  if (Array.isArray(value)) return value.map((v) => toJson(v, base64));
  return value; // numbers and null
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export async function startUpstashShim(opts: { redisUrl: string; token: string; port?: number }): Promise<UpstashShim> {
  // If Redis itself goes away, fail requests quickly (as an unreachable Upstash would) instead of
  // queueing them through ioredis's 20 reconnect attempts.
  const redis = new Redis(opts.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on("error", () => {}); // surfaced per command; ioredis reconnects on its own
  await redis.connect();
  let down = false;

  const isBlocking = ([name, ...args]: [string, ...Arg[]]): boolean =>
    BLOCKING.has(name) || (name.startsWith("XREAD") && args.some((a) => String(a).toUpperCase() === "BLOCK"));

  /** A blocking command would stall every other request on the shared connection: give it its own. */
  const withConnection = async <T>(cmds: [string, ...Arg[]][], fn: (conn: Redis) => Promise<T>): Promise<T> => {
    if (!cmds.some(isBlocking)) return fn(redis);
    const conn = redis.duplicate();
    conn.on("error", () => {}); // as on the shared connection: the command's rejection reports it
    try {
      return await fn(conn);
    } finally {
      conn.disconnect();
    }
  };

  const single = (cmd: [string, ...Arg[]]): Promise<unknown> =>
    withConnection([cmd], (conn) => conn.callBuffer(cmd[0], cmd.slice(1)));

  /** /pipeline runs commands in order, each on its own (not atomic); /multi-exec wraps them in MULTI/EXEC. */
  const batch = (cmds: [string, ...Arg[]][], atomic: boolean): Promise<[Error | null, unknown][]> =>
    withConnection(cmds, async (conn) => {
      const p = atomic ? conn.multi() : conn.pipeline();
      for (const [name, ...args] of cmds) p.callBuffer(name, args);
      const out = await p.exec(); // with MULTI, a command rejected while queueing throws EXECABORT here
      if (out === null) throw new Error("EXECABORT Transaction discarded");
      return out;
    });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const body = await readBody(req);
    if (path === "/__control") {
      const b = body as { down?: unknown } | undefined;
      if (req.method === "POST" && typeof b?.down === "boolean") down = b.down;
      return sendJson(res, 200, { down });
    }
    if (down) return sendJson(res, 503, { error: "Service Unavailable: Upstash shim is down (fault injection)" });
    if (req.headers.authorization !== `Bearer ${opts.token}`) return sendJson(res, 401, { error: "Unauthorized" });
    if (req.method !== "POST") return sendJson(res, 405, { error: "only POST with a JSON command is supported" });
    const base64 = String(req.headers["upstash-encoding"]).toLowerCase() === "base64";

    if (path === "/") {
      const cmd = parseCommand(body);
      if (!cmd) return sendJson(res, 400, { error: "ERR body must be a JSON array [command, ...args]" });
      if (UNSUPPORTED.has(cmd[0])) return sendJson(res, 400, { error: `ERR ${cmd[0]} is not supported by the local shim` });
      try {
        return sendJson(res, 200, { result: toJson(await single(cmd), base64) });
      } catch (e) {
        return sendJson(res, 400, { error: errorText(e) });
      }
    }
    if (path === "/pipeline" || path === "/multi-exec") {
      const cmds = Array.isArray(body) ? body.map(parseCommand) : [null];
      if (cmds.length === 0 || cmds.some((c) => c === null || UNSUPPORTED.has(c[0])))
        return sendJson(res, 400, { error: "ERR body must be a JSON array of supported command arrays" });
      try {
        const out = await batch(cmds as [string, ...Arg[]][], path === "/multi-exec");
        const replies: Reply[] = out.map(([err, v]) => (err ? { error: err.message } : { result: toJson(v, base64) }));
        return sendJson(res, 200, replies);
      } catch (e) {
        return sendJson(res, 400, { error: errorText(e) });
      }
    }
    sendJson(res, 404, { error: `unknown path ${path}` });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => sendJson(res, 500, { error: errorText(e) }));
  });
  const port = await listen(server, opts.port ?? 0);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    setDown: (d) => {
      down = d;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      redis.disconnect();
    },
  };
}
