// The messages between the benchmark's main process (bench/run.ts) and its load-generator child
// processes (bench/loadgen.ts). Children run in their own processes so that their CPU can be
// measured apart from the main process, which also hosts the local stack's wsproxy and Redis shim.

/** N writers, each with `window` sends in flight, for `durationMs`: how many commits per second. */
export interface ThroughputJob {
  kind: "throughput";
  url: string;
  room: string;
  users: string[];
  window: number;
  durationMs: number;
  text: string;
}

/** One sender at a fixed rate, one receiver in the same room (same process, so one clock). */
export interface RateJob {
  kind: "rate";
  url: string;
  room: string;
  rate: number;
  durationMs: number;
  text: string;
  /** When set, also watch the room's Redis stream and time when each seq becomes visible there. */
  mirror?: { redisUrl: string; streamKey: string };
}

/** Sends `count` messages as fast as a window of 64 allows, so later handshakes have history to read. */
export interface FillJob {
  kind: "fill";
  url: string;
  room: string;
  count: number;
  text: string;
}

export interface ConnectVariant {
  name: string;
  /** Query string after the token, e.g. `last=50` or `since=1234`. */
  query: string;
  /** How many messages `ready` must carry (checked, so a variant cannot silently measure something else). */
  expectMessages: number;
}

/** Sequential connect→ready handshakes, variants interleaved round-robin. */
export interface ConnectJob {
  kind: "connect";
  url: string;
  room: string;
  variants: ConnectVariant[];
  rounds: number;
}

/** Ping→pong round trips on one open socket (answered by the runtime's auto-response). */
export interface PingJob {
  kind: "ping";
  url: string;
  room: string;
  count: number;
}

export type Job = ThroughputJob | RateJob | FillJob | ConnectJob | PingJob;

export interface ThroughputResult {
  kind: "throughput";
  /** Acks received inside the measured window. */
  ackedInWindow: number;
  sent: number;
  acked: number;
  errors: number;
  /** `message` frames received by all sockets (every socket gets every message of the room). */
  framesReceived: number;
  /** send→ack of every ack inside the window, ms. */
  ackMs: number[];
  windowMs: number;
  /** Messages sent (one per writer) and acked before the window: the room holds acked + warmup. */
  warmup: number;
}

export interface RateResult {
  kind: "rate";
  sent: number;
  acked: number;
  received: number;
  errors: number;
  ackedInWindow: number;
  ackMs: number[];
  recvMs: number[];
  /** How late the sender's timer fired at worst: a loaded load generator shows up here. */
  maxScheduleLagMs: number;
  windowMs: number;
  mirror?: {
    /** Stream entries seen for the seqs of this run. */
    visible: number;
    /** ack → entry visible in the stream (negative: the mirror was faster than the ack). */
    afterAckMs: number[];
    /** send → entry visible in the stream. */
    afterSendMs: number[];
  };
}

export interface FillResult {
  kind: "fill";
  latestSeq: number;
  errors: number;
}

export interface ConnectResult {
  kind: "connect";
  variants: Array<{ name: string; ms: number[]; readyBytes: number; failures: string[] }>;
}

export interface PingResult {
  kind: "ping";
  ms: number[];
}

export type JobResult = ThroughputResult | RateResult | FillResult | ConnectResult | PingResult;

/** CPU the child used inside its measured window. */
export interface CpuUse {
  userUs: number;
  systemUs: number;
  wallMs: number;
}

export type ToChild =
  | { type: "prepare"; id: number; job: Job }
  /** `startAt` is a Date.now() value: children of one measurement start together. */
  | { type: "start"; id: number; startAt: number }
  | { type: "exit" };

export type FromChild =
  | { type: "prepared"; id: number }
  | { type: "result"; id: number; result: JobResult; cpu: CpuUse }
  | { type: "failed"; id: number; error: string };
