// Node-side Neon driver (WebSocket mode), configured per client instead of through the global
// neonConfig: one process may talk to a local database through our wsproxy and to a remote Neon
// database directly, and a global setting would silently send one of them the wrong way.
import { Client, type ClientConfig, Pool } from "@neondatabase/serverless";
import ws from "ws";

/** True for hosts that only a local wsproxy can reach (Neon's own proxy cannot). */
export function isLocalHost(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || host.startsWith("127.");
}

/**
 * A Pool for databaseUrl. With wsProxyEndpoint ("127.0.0.1:PORT/v1"), connections go through that
 * proxy in plain text, as the Worker does locally; without it, straight to Neon over TLS.
 */
export function neonPool(databaseUrl: string, wsProxyEndpoint?: string, max = 2): Pool {
  class NodeClient extends Client {
    constructor(config?: string | ClientConfig) {
      super(config);
      const c = this.neonConfig;
      // Node 20 has no global WebSocket.
      c.webSocketConstructor = ws as unknown as typeof c.webSocketConstructor;
      // In Node the driver otherwise delays every write by setTimeout(0) (>= 1 ms) to coalesce it.
      c.coalesceWrites = false;
      if (wsProxyEndpoint === undefined) return;
      c.wsProxy = (host, port) => `${wsProxyEndpoint}?address=${host}:${port}`;
      // A local Postgres speaks neither TLS nor Neon's pipelined password exchange.
      c.useSecureWebSocket = false;
      c.pipelineTLS = false;
      c.pipelineConnect = false;
      c.forceDisablePgSSL = true;
    }
  }
  class NodePool extends Pool {
    // Neon's Pool assigns its own Client as a class field, so options.Client would be ignored.
    override Client = NodeClient;
  }
  const pool = new NodePool({ connectionString: databaseUrl, max });
  // An idle client whose socket dies emits 'error' on the pool; unhandled, it would crash the process.
  pool.on("error", () => {});
  return pool;
}
