// A minimal WebSocket client for the load generator: the SDK does more per frame (decode,
// timeline, outbox) than a load generator can afford at thousands of frames a second, so this
// one classifies frames by their first bytes and parses JSON only when it needs a field.
import { RECEIVED_EVERY } from "../src/protocol/limits.js";
import { performance } from "node:perf_hooks";
import { WebSocket, type RawData } from "ws";

/** The server encodes frames with JSON.stringify of literals whose first key is `type`: `{"type":"ack",…`. */
const PREFIX = Buffer.from('{"type":"');

export const Frame = {
  Ready: 0x72, // r
  Message: 0x6d, // m
  Ack: 0x61, // a
  Error: 0x65, // e
  Pong: 0x70, // p
  Unknown: 0,
} as const;
export type FrameKind = (typeof Frame)[keyof typeof Frame];

const KINDS: readonly number[] = [Frame.Ready, Frame.Message, Frame.Ack, Frame.Error, Frame.Pong];

export const frameKind = (data: Buffer): FrameKind => {
  if (data.length <= PREFIX.length || data.compare(PREFIX, 0, PREFIX.length, 0, PREFIX.length) !== 0) return Frame.Unknown;
  const byte = data[PREFIX.length] ?? 0;
  return KINDS.includes(byte) ? (byte as FrameKind) : Frame.Unknown;
};

const toBuffer = (raw: RawData): Buffer =>
  Buffer.isBuffer(raw) ? raw : Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw);

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** Parses a frame the caller knows the kind of; returns the fields it has as an unknown-valued record. */
export const parseFrame = (data: Buffer): Record<string, unknown> => {
  const value: unknown = JSON.parse(data.toString("utf8"));
  if (!isRecord(value)) throw new Error("frame is not a JSON object");
  return value;
};

export const wsUrl = (httpUrl: string): string => httpUrl.replace(/^http/, "ws");

/** Mints a dev token (`POST /v1/dev/token`; the server runs with DEV_TOKENS=true). */
export async function devToken(url: string, userId: string): Promise<string> {
  const res = await fetch(`${url}/v1/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ userId }),
    signal: AbortSignal.timeout(10_000),
  });
  const body: unknown = await res.json();
  if (!res.ok || !isRecord(body) || typeof body.token !== "string") {
    throw new Error(`unable to mint a dev token for ${userId}; HTTP ${res.status}: ${JSON.stringify(body).slice(0, 200)}`);
  }
  return body.token;
}

/** The room's latest seq, read over REST (a check that acks and commits agree). */
export async function latestSeq(url: string, room: string, token: string): Promise<number> {
  const res = await fetch(`${url}/v1/rooms/${room}/messages?limit=1`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(10_000),
  });
  const body: unknown = await res.json();
  if (!res.ok || !isRecord(body) || typeof body.latestSeq !== "number") {
    throw new Error(`unable to read room ${room}; HTTP ${res.status}: ${JSON.stringify(body).slice(0, 200)}`);
  }
  return body.latestSeq;
}

export interface Opened {
  socket: BenchSocket;
  /** new WebSocket() → `ready` frame received, ms. */
  readyMs: number;
  readyBytes: number;
  readyMessages: number;
  latestSeq: number;
  /** The parsed `ready` frame (its `messages`, `truncated`, …). */
  ready: Record<string, unknown>;
}

export class BenchSocket {
  /** Every frame after `ready`, with its arrival time (performance.now()). */
  onFrame: (kind: FrameKind, data: Buffer, at: number) => void = () => {};
  /**
   * False: the socket never sends `received` (a client that does not read, for the slow-consumer
   * measurement); the room then closes it once it has sent it MAX_UNCONFIRMED_BYTES.
   */
  reportReceived = true;
  /** The close code and reason, once the socket closed. */
  closeCode: number | undefined;
  closeReason = "";
  private closed: Promise<void>;
  private sinceReport = 0;

  /**
   * Flow control, as the SDK does it: every RECEIVED_EVERY entries the client tells the room
   * what it has processed, or the room closes it as a slow consumer (src/room/sockets.ts).
   */
  noteFrame(kind: FrameKind, data: Buffer): void {
    if (!this.reportReceived || kind !== Frame.Message || ++this.sinceReport < RECEIVED_EVERY) return;
    this.sinceReport = 0;
    const seq = /"seq":(\d+)/.exec(data.toString("latin1", 0, Math.min(data.length, 400)))?.[1] ?? "0";
    this.ws.send(`{"type":"received","seq":${seq}}`);
  }

  private constructor(private readonly ws: WebSocket) {
    this.closed = new Promise((resolve) =>
      ws.once("close", (code: number, reason: Buffer) => {
        this.closeCode = code;
        this.closeReason = reason.toString("utf8");
        resolve();
      }),
    );
  }

  /**
   * Connects and waits for `ready` (the first frame), within timeoutMs. `onFrame`, when given, is
   * installed before `ready` resolves: frames that arrive in the same TCP read as `ready` would
   * otherwise reach the default no-op handler before the caller could install its own.
   */
  static open(
    url: string,
    room: string,
    token: string,
    query: string,
    timeoutMs = 10_000,
    onFrame?: (kind: FrameKind, data: Buffer, at: number) => void,
  ): Promise<Opened> {
    return new Promise((resolve, reject) => {
      const started = performance.now();
      const ws = new WebSocket(`${wsUrl(url)}/v1/rooms/${room}/ws?token=${encodeURIComponent(token)}&${query}`, {
        perMessageDeflate: false,
      });
      const socket = new BenchSocket(ws);
      if (onFrame) socket.onFrame = onFrame;
      let ready = false;
      const timer = setTimeout(() => fail(new Error(`no ready frame within ${timeoutMs} ms (${room}?${query})`)), timeoutMs);
      const fail = (error: Error): void => {
        clearTimeout(timer);
        ws.terminate();
        reject(error);
      };
      ws.on("message", (raw: RawData) => {
        const at = performance.now();
        const data = toBuffer(raw);
        if (ready) {
          const kind = frameKind(data);
          socket.noteFrame(kind, data);
          socket.onFrame(kind, data, at);
          return;
        }
        clearTimeout(timer);
        ready = true;
        if (frameKind(data) !== Frame.Ready) {
          fail(new Error(`first frame was not ready: ${data.toString("utf8").slice(0, 200)}`));
          return;
        }
        const frame = parseFrame(data);
        const messages = Array.isArray(frame.messages) ? frame.messages.length : -1;
        const seq = typeof frame.latestSeq === "number" ? frame.latestSeq : -1;
        resolve({
          socket,
          readyMs: at - started,
          readyBytes: data.length,
          readyMessages: messages,
          latestSeq: seq,
          ready: frame,
        });
      });
      ws.on("unexpected-response", (_req, res) => {
        fail(new Error(`upgrade refused: HTTP ${res.statusCode} (${room}?${query})`));
      });
      ws.on("error", (error: Error) => fail(error));
      ws.on("close", (code: number, reason: Buffer) => {
        if (!ready) fail(new Error(`closed before ready: ${code} ${reason.toString("utf8")}`));
      });
    });
  }

  send(frame: string): void {
    this.ws.send(frame);
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Stops reading from the TCP socket (ws.pause(): the kernel buffers fill, then the server's). */
  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  /**
   * The code of the close frame the server sent, as soon as it arrived (ws keeps it in
   * `_closeCode` before the TCP connection ends), else the code of the finished close.
   */
  get serverCloseCode(): number | undefined {
    const code = (this.ws as unknown as { _closeFrameReceived?: boolean; _closeCode?: number })._closeFrameReceived
      ? (this.ws as unknown as { _closeCode?: number })._closeCode
      : undefined;
    return code ?? this.closeCode;
  }

  /** Resolves when the socket has closed (by either side), or after timeoutMs. */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const closed = await Promise.race([
      this.closed.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    return closed;
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  /** Closes cleanly, or terminates if the server does not answer the close within 2 s. */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    this.ws.close(1000, "bench done");
    const timer = setTimeout(() => this.ws.terminate(), 2000);
    await this.closed;
    clearTimeout(timer);
  }
}

const SEQ_KEY = Buffer.from('"seq":');

/** The seq of a `message` frame (its entry's, the first `"seq":` in the frame), without parsing it. */
export const messageSeq = (data: Buffer): number => {
  const at = data.indexOf(SEQ_KEY);
  if (at < 0) return Number.NaN;
  let n = 0;
  let digits = 0;
  for (let i = at + SEQ_KEY.length; i < data.length && digits < 16; i++) {
    const c = data[i] ?? 0;
    if (c < 0x30 || c > 0x39) break;
    n = n * 10 + (c - 0x30);
    digits++;
  }
  return digits ? n : Number.NaN;
};

export const sendFrame = (clientMsgId: string, text: string): string => JSON.stringify({ type: "send", clientMsgId, text });
