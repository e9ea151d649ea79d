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
  /**
   * Cursor cost (bench/costs.ts): reader sockets (one user each, protocol 2) that receive every
   * message; with `markRead` each answers every message frame with `{"type":"read","seq":<its seq>}`.
   */
  readers?: { users: string[]; markRead: boolean };
}

/**
 * Slow consumers (bench/costs.ts): one writer sends `count` messages (closed loop, `window` in
 * flight) into a room with `consumers` sockets. `read: false`: each consumer pauses its TCP socket
 * right after `ready` and never sends `received`; after the writer is done and `holdMs` passed, it
 * resumes and counts what it was sent before the room closed it. `read: true`: consumers read and
 * report `received` every 64 entries (as the SDK does).
 */
export interface SlowJob {
  kind: "slow";
  url: string;
  room: string;
  writer: string;
  consumers: string[];
  read: boolean;
  count: number;
  window: number;
  holdMs: number;
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

/** What a joining client wants to hold: the newest 50, or the 1,000 it missed since its cursor. */
export type JoinWant = "last50" | "missed1000";

export interface JoinVariant {
  name: string;
  /** `oneframe`: history in `ready` (ours); `twostep`: socket with nothing owed, then REST, merged by seq. */
  strategy: "oneframe" | "twostep";
  want: JoinWant;
}

/**
 * Joins one at a time while a writer in the same process sends at `rate`: connect start → the
 * client holds a contiguous, deduplicated view up to a seq ≥ the one acked when it started.
 */
export interface JoinViewJob {
  kind: "joinview";
  url: string;
  room: string;
  rate: number;
  rounds: number;
  variants: JoinVariant[];
  text: string;
}

/** `users.length` receiving sockets (one user each) in one room; part 0 also publishes. */
export interface FanoutJob {
  kind: "fanout";
  url: string;
  room: string;
  users: string[];
  /** Messages the publisher sends (every receiving socket must get each one). */
  count: number;
  intervalMs: number;
  /** Set on exactly one part: the publisher's user. */
  publisher?: string;
  text: string;
  /** Added to every socket URL (e.g. `region=weur` for a replica: bench/replicas.ts). */
  query?: string;
}

/** Opens sockets into many rooms during prepare, holds them idle for `holdMs`, then closes them. */
export interface RoomsJob {
  kind: "rooms";
  url: string;
  rooms: Array<{ room: string; users: string[] }>;
  holdMs: number;
}

export type Job = ThroughputJob | RateJob | FillJob | ConnectJob | PingJob | JoinViewJob | FanoutJob | RoomsJob | SlowJob;

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
  /** With `readers`: what the reader sockets did inside the window. */
  readers?: {
    /** `message` frames the readers received in the window. */
    frames: number;
    /** `read` frames they sent in the window. */
    reads: number;
    /** `receipt` frames they received in the window. */
    receipts: number;
    /** `error` frames, and sockets closed before the end. */
    errors: number;
    closed: number;
  };
}

export interface SlowResult {
  kind: "slow";
  sent: number;
  acked: number;
  errors: number;
  /** Epoch ms: the writer's first send, its last ack, and when the consumers resumed reading. */
  writeStartAt: number;
  writeEndAt: number;
  resumeAt: number;
  consumers: Array<{
    /** `message` frames received (after `ready`) and their bytes (UTF-8, as on the wire). */
    messages: number;
    bytes: number;
    /** The error frame's code, if the room sent one, and the close code (undefined: still open). */
    errorCode: string;
    closeCode: number | undefined;
  }>;
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

export interface JoinViewResult {
  kind: "joinview";
  variants: Array<{
    name: string;
    ms: number[];
    /** Messages the client dropped as duplicates (the overlap of REST and socket). */
    duplicates: number[];
    /** `ready` frames that came back truncated (the client then filled the hole over REST). */
    truncated: number;
    /** REST requests made (two-step: one per join; one-frame: only to fill a truncated `ready`). */
    restCalls: number;
    failures: string[];
  }>;
  /** Messages the writer had acked when the job ended. */
  written: number;
}

export interface FanoutResult {
  kind: "fanout";
  sockets: number;
  /** Time to open this part's sockets (prepare), ms. */
  openMs: number;
  /** Joins refused with "storage is unavailable" and retried while opening. */
  openRetries: number;
  /** Per published message (by index): epoch ms of the first and last receive on this part's sockets. */
  firstAt: number[];
  lastAt: number[];
  /** Per published message: how many of this part's sockets got it. */
  got: number[];
  /** Publisher part only: epoch ms each message was handed to the socket. */
  sentAt: number[];
  errors: number;
}

export interface RoomsResult {
  kind: "rooms";
  opened: number;
  openMs: number;
  /** Joins refused with "storage is unavailable" and retried while opening. */
  openRetries: number;
  /** Sockets that closed while they should have been held open. */
  droppedWhileIdle: number;
  failures: string[];
}

export type JobResult =
  | ThroughputResult
  | RateResult
  | FillResult
  | ConnectResult
  | PingResult
  | JoinViewResult
  | FanoutResult
  | RoomsResult
  | SlowResult;

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
