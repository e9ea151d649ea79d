// Embedded Postgres (PGlite, WebAssembly) behind a Postgres wire-protocol TCP server, for users who
// have no Postgres of their own. PGlite is one single-user backend; @electric-sql/pglite-socket
// interleaves several clients' messages on it ("portal does not exist", stale reads). Here each
// client's protocol unit (up to Sync or Query) runs atomically, and a client inside a transaction
// keeps the database until it leaves it: correct for any number of connections, at the price of
// serialising them. Session state (SET, named statements) is still shared by all connections.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { resolve } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { listen } from "./net.js";

export interface PgliteServer {
  port: number;
  close(): Promise<void>;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const PROTOCOL_3_0 = 196608;

/** A backend message: type byte, int32 length (counting itself), body. */
function message(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, "latin1");
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

const cstr = (s: string): Buffer => Buffer.from(`${s}\0`, "utf8");
const int32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
};

function errorResponse(code: string, text: string): Buffer {
  return message("E", Buffer.concat([cstr("SFATAL"), cstr(`C${code}`), cstr(`M${text}`), Buffer.from([0])]));
}

/** Status of the last ReadyForQuery in a response: "I" idle, "T" in transaction, "E" failed one. */
function lastReadyStatus(out: Uint8Array): string | null {
  let status: string | null = null;
  const view = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i + 5 <= view.length; i += 1 + view.readInt32BE(i + 1)) {
    if (view[i] === 0x5a /* Z */) status = String.fromCharCode(view[i + 5] ?? 0);
  }
  return status;
}

/** FIFO lock over the single PGlite backend. acquire() resolves with the matching release. */
class Mutex {
  private tail: Promise<void> = Promise.resolve();
  acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const acquired = this.tail.then(() => release);
    this.tail = this.tail.then(() => next);
    return acquired;
  }
}

/**
 * PGlite has no lock of its own: two processes on one data dir (`npm run dev` and `npm run migrate`)
 * would corrupt it. A pid file beside the dir refuses the second one; a stale file is taken over.
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const lockPath = `${resolve(dataDir)}.lock`;
  for (;;) {
    try {
      await writeFile(lockPath, String(process.pid), { flag: "wx" });
      return () => rm(lockPath, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const pid = Number(await readFile(lockPath, "utf8").catch(() => "0"));
      if (pid > 0 && pid !== process.pid && isAlive(pid))
        throw new Error(`unable to start the embedded PGlite; ${dataDir} is in use by process ${pid} (npm run dev?). Stop it first.`);
      await rm(lockPath, { force: true });
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export async function startPgliteServer(opts: { dataDir: string; port?: number }): Promise<PgliteServer> {
  await mkdir(opts.dataDir, { recursive: true });
  const unlock = await lockDataDir(opts.dataDir);
  const db = await PGlite.create({ dataDir: opts.dataDir }).catch(async (e: unknown) => {
    await unlock();
    throw e;
  });
  const version = (await db.query<{ server_version: string }>("show server_version")).rows[0]?.server_version ?? "17";
  const mutex = new Mutex();
  const sockets = new Set<Socket>();
  const closing = new Set<Promise<void>>(); // disconnect clean-ups still using the database
  let nextPid = 1000;

  const greeting = (pid: number): Buffer => {
    const params: [string, string][] = [
      ["server_version", version],
      ["server_encoding", "UTF8"],
      ["client_encoding", "UTF8"],
      ["DateStyle", "ISO, MDY"],
      ["integer_datetimes", "on"],
      ["standard_conforming_strings", "on"],
      ["TimeZone", "UTC"],
    ];
    return Buffer.concat([
      message("R", int32(0)), // AuthenticationOk: trust, like the local Postgres
      ...params.map(([k, v]) => message("S", Buffer.concat([cstr(k), cstr(v)]))),
      message("K", Buffer.concat([int32(pid), int32(0)])),
      message("Z", Buffer.from("I")),
    ]);
  };

  const serve = (socket: Socket): void => {
    sockets.add(socket);
    let buf = Buffer.alloc(0);
    let started = false;
    let unit: Buffer[] = []; // this client's messages since its last Sync/Query
    let release: (() => void) | null = null; // set while this client owns the database
    let chain = Promise.resolve(); // this client's units, strictly in order
    let closed = false;

    const run = async (bytes: Buffer): Promise<void> => {
      release ??= await mutex.acquire();
      if (closed) return;
      const out = await db.execProtocolRaw(bytes);
      if (!socket.destroyed) socket.write(out);
      // Keep the database while in a transaction ("T"/"E"), or after a Flush with no Sync yet (null).
      if (lastReadyStatus(out) === "I") {
        release();
        release = null;
      }
    };

    const onClose = async (): Promise<void> => {
      closed = true;
      sockets.delete(socket);
      await chain;
      if (!release) return;
      // Gone mid-transaction: end it, or the next client would inherit it.
      await db.execProtocolRaw(Buffer.concat([message("S"), message("Q", cstr("ROLLBACK"))])).catch(() => {});
      release();
      release = null;
    };

    const onMessage = (type: string, msg: Buffer): void => {
      if (type === "X") {
        // Terminate: close TCP (which the wsproxy turns into a WebSocket close) after pending answers.
        chain = chain.then(() => void socket.end());
        return;
      }
      unit.push(msg);
      if (type === "S" || type === "Q" || type === "H") {
        const bytes = Buffer.concat(unit);
        unit = [];
        chain = chain.then(() => run(bytes)).catch(() => {
          socket.destroy(); // the database failed underneath us; onClose rolls back and releases
        });
      }
    };

    const onStartup = (code: number, msg: Buffer): void => {
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) socket.write("N");
      else if (code === PROTOCOL_3_0) {
        started = true;
        socket.write(greeting(nextPid++));
      } else if (code === CANCEL_REQUEST) socket.end();
      else socket.end(errorResponse("08P01", `unsupported startup code ${code} (${msg.length} bytes)`));
    };

    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const headLen = started ? 5 : 8;
        if (buf.length < headLen) return;
        const len = started ? 1 + buf.readInt32BE(1) : buf.readInt32BE(0);
        if (buf.length < len) return;
        const msg = buf.subarray(0, len);
        buf = buf.subarray(len);
        if (started) onMessage(String.fromCharCode(msg[0] ?? 0), msg);
        else onStartup(msg.readInt32BE(4), msg);
      }
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      const done = onClose();
      closing.add(done);
      void done.finally(() => closing.delete(done));
    });
  };

  const server = createServer(serve);
  const port = await listen(server, opts.port ?? 0);
  return {
    port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all(closing);
      await db.close();
      await unlock();
    },
  };
}
