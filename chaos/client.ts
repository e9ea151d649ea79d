// A chat client as the chaos run plays it: one user in one room, over a real WebSocket (`ws`) and
// real HTTP (`fetch`). It behaves like a careful real client: it resumes with `since` after every
// disconnect, fills a truncated `ready` over REST, and keeps every unacked send in an outbox that
// it retries with the same clientMsgId until it is acked. Unlike the SDK it pipelines sends (several
// on the wire at once) and mixes HTTP and WebSocket, to load the room's group commit harder.
// Besides messages it edits and deletes its own acked messages, reacts to any message it was shown
// and replies to them: those requests go through the same outbox, retried the same way.
//
// Everything it is told goes into its ClientRecord; every answer to a send goes into that send's
// SendRecord. The checker judges those records afterwards; the client itself judges nothing.

import type { Socket } from "node:net";
import WebSocket from "ws";
import { closeCodeOf } from "../src/protocol/errors.js";
import type { Entry, ServerFrame } from "../src/protocol/frames.js";
import { type Ack, bump, type ClientRecord, type ErrorTally, type SendRecord, type Via } from "./model.js";
import type { Rng } from "./rng.js";

/** What a client shares with the rest of the run. */
export interface ClientContext {
  baseUrl: string;
  wsUrl: string;
  errors: ErrorTally;
  /** Milliseconds since the scenario started. */
  now: () => number;
  /** True while the dev server is being restarted (answers from a half-started server are expected then). */
  serverRestarting: () => boolean;
  /** A WebSocket send with no ack after this long counts as an unknown outcome and is resent. */
  ackTimeoutMs: number;
  httpTimeoutMs: number;
}

interface Pending {
  send: SendRecord;
  state: "queued" | "ws" | "http";
  /** The session a WebSocket attempt went out on. */
  session: number;
  sentAt: number;
  retryAt: number;
  backoff: number;
}

/** Application close codes back to error codes (4503 → unavailable). */
const codeOfClose = new Map<number, string>(Object.entries(closeCodeOf).map(([code, close]) => [close, code]));

const LOG_LINES = 12;

/** The reactions clients pick from: few, so users meet on the same emoji (adds, removes, counts). */
export const EMOJI = ["👍", "🎉", "😀", ":ship:"] as const;

/** Codes after which a request is never retried (as the SDK treats them). */
const TERMINAL = ["bad_request", "too_large", "forbidden", "not_found", "conflict"];

/** What a client knows about a message it was shown (to pick targets for its changes). */
interface Known {
  userId: string;
  deleted: boolean;
  replyTo: number | undefined;
}

export class ChaosClient {
  /** `online`: keep a socket open; `offline`: left for a while; `gone`: left for good. */
  desired: "online" | "offline" | "gone" = "online";
  private ws: WebSocket | undefined;
  private session = 0;
  /** The session whose `ready` has been applied (sends go over the socket only then). */
  private readySession = -1;
  /** A session whose frames must be ignored (its `ready` hole could not be filled). */
  private discardSession = -1;
  private chain: Promise<void> = Promise.resolve();
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectAttempt = 0;
  private readonly outbox = new Map<string, Pending>();
  private counter = 0;
  private readonly mine = new Map<string, SendRecord>();
  private readonly mineList: SendRecord[] = [];
  /** Messages shown to this client, by seq, in the order shown. */
  private readonly known = new Map<number, Known>();
  /** Targets of my changes still in the outbox: one change per target at a time, so they commit in order. */
  private readonly busy = new Set<number>();
  /** My messages I asked to delete: never changed again. */
  private readonly deleting = new Set<number>();
  /** `${seq} ${emoji}` of my committed reactions. */
  private readonly reacted = new Set<string>();
  /** Ignores reconnect backoff while set (the reconnect storm). */
  stormMode = false;
  /** The socket and the rank on it of each request's last WebSocket write (per-socket order). */
  private readonly wire = new WeakMap<SendRecord, { session: number; n: number }>();
  private wireN = 0;
  /** Per session: the requests written once and acked on it, by wire rank, with their seq. */
  private readonly orderedAcks = new Map<number, Array<{ n: number; seq: number; id: string }>>();

  constructor(
    readonly record: ClientRecord,
    private readonly token: string,
    private readonly ctx: ClientContext,
    private readonly rng: Rng,
    private readonly register: (send: SendRecord) => void,
    /** How the first connection asks for history. */
    private readonly firstJoin: { since: number } | { last: number },
  ) {}

  get userId(): string {
    return this.record.userId;
  }

  get pending(): number {
    return this.outbox.size;
  }

  /** HTTP requests still waiting for an answer (repeats and REST fills included). */
  inFlight = 0;

  get connected(): boolean {
    return this.readySession === this.session && this.ws !== undefined;
  }

  get lastSeq(): number | undefined {
    return this.record.view.at(-1)?.seq;
  }

  private log(line: string): void {
    this.record.log.push(`${(this.ctx.now() / 1000).toFixed(2)}s ${line}`);
    if (this.record.log.length > LOG_LINES) this.record.log.shift();
  }

  // ---------------------------------------------------------------------------------------
  // Connection

  /** Opens a socket if the client wants one and has none. Waits for earlier frames to be applied first. */
  connect(): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    if (this.desired !== "online" || this.ws) return;
    const session = ++this.session;
    // The cursor is read after every earlier frame is applied, or a late frame would be resent.
    this.chain = this.chain.then(() => this.open(session));
  }

  private open(session: number): void {
    if (session !== this.session || this.desired !== "online" || this.ws) return;
    this.record.sessions++;
    const params = new URLSearchParams({ token: this.token, region: this.record.region });
    const last = this.lastSeq;
    const ask = last !== undefined ? { since: last } : this.firstJoin;
    if ("since" in ask) params.set("since", String(ask.since));
    else params.set("last", String(ask.last));
    const ws = new WebSocket(`${this.ctx.wsUrl}/v1/rooms/${this.record.room}/ws?${params}`, { handshakeTimeout: 5000 });
    this.ws = ws;
    this.log(`connect #${session} ${this.record.region} ${"since" in ask ? `since=${ask.since}` : `last=${ask.last}`}`);
    ws.on("unexpected-response", (req, res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        this.answerError(`upgrade ${res.statusCode}`, res.statusCode ?? 0, text);
        this.log(`upgrade refused ${res.statusCode} ${text.slice(0, 80)}`);
        req.destroy();
        this.enqueue(() => this.ended(session, "refused"));
      });
      res.on("error", () => this.enqueue(() => this.ended(session, "refused")));
    });
    ws.on("message", (data: WebSocket.RawData) => {
      const text = Array.isArray(data) ? Buffer.concat(data).toString("utf8") : Buffer.from(data as Buffer).toString("utf8");
      this.enqueue(() => this.onFrame(session, text));
    });
    ws.on("error", (e: Error & { code?: string }) => {
      bump(this.ctx.errors.transport, e.code ?? (e.message.includes("handshake") ? "ws handshake timeout" : "ws error"));
    });
    ws.on("close", (code: number, reason: Buffer) => {
      this.enqueue(() => this.ended(session, `close ${code} ${reason.toString("utf8").slice(0, 60)}`, code));
    });
  }

  /** Frames and closes are applied one at a time, in arrival order (a `ready` may await REST). */
  private enqueue(step: () => void | Promise<void>): void {
    this.chain = this.chain.then(step).catch((e: unknown) => {
      this.log(`harness error: ${e instanceof Error ? e.message : String(e)}`);
      bump(this.ctx.errors.transport, "harness error");
    });
  }

  /** A session is over (closed, refused, killed): unacked WebSocket sends have an unknown outcome. */
  private ended(session: number, how: string, closeCode?: number): void {
    if (session !== this.session || !this.ws) return;
    this.ws = undefined;
    this.readySession = -1;
    this.log(`session #${session} ended: ${how}`);
    if (closeCode !== undefined) {
      const code = codeOfClose.get(closeCode);
      if (code) bump(this.ctx.errors.codes, code);
      else if (closeCode >= 4000) {
        bump(this.ctx.errors.codes, `close ${closeCode}`);
        this.ctx.errors.samples.push(`${this.userId}: undocumented close code ${closeCode} (${how})`);
      } else if (closeCode !== 1000) bump(this.ctx.errors.transport, `ws closed ${closeCode}`);
    }
    for (const p of this.outbox.values()) {
      if (p.state === "ws" && p.session === session) {
        p.send.uncertain++;
        p.state = "queued";
        p.retryAt = this.ctx.now(); // first on the next socket, as a real client resends
      }
    }
    if (this.desired !== "online") return;
    const delay = this.stormMode ? 0 : this.rng.int(10, Math.min(1000, 40 * 2 ** this.reconnectAttempt));
    this.reconnectAttempt = Math.min(this.reconnectAttempt + 1, 6);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private async onFrame(session: number, raw: string): Promise<void> {
    if (session === this.discardSession) return;
    let frame: ServerFrame;
    try {
      frame = JSON.parse(raw) as ServerFrame;
    } catch {
      this.breach(`a frame that is not JSON: ${raw.slice(0, 80)}`);
      return;
    }
    switch (frame.type) {
      case "ready": {
        const ask = this.lastSeq;
        const messages = frame.messages;
        if (this.readySession === session) this.breach(`a second ready on session ${session}`);
        // What was owed: everything after our cursor (or the first join's since/last) up to latestSeq.
        const owedAfter =
          ask ?? ("since" in this.firstJoin ? this.firstJoin.since : Math.max(0, frame.latestSeq - this.firstJoin.last));
        const owed = Math.max(0, frame.latestSeq - owedAfter);
        const lastGiven = messages.at(-1)?.seq;
        if (messages.length > 0 && lastGiven !== frame.latestSeq) {
          this.breach(`ready on session ${session} ends at seq ${lastGiven}, but its latestSeq is ${frame.latestSeq}`);
        }
        if (!frame.truncated && messages.length !== owed) {
          this.breach(
            `ready on session ${session} (after ${owedAfter}, latestSeq ${frame.latestSeq}) has ${messages.length} messages, owed ${owed}, and is not truncated`,
          );
        }
        if (frame.truncated) {
          // The owed range starts after our cursor (or, on a first join, where `last`/`since` put it).
          const after = owedAfter;
          const upto = (messages[0]?.seq ?? frame.latestSeq + 1) - 1;
          const fill = await this.fillHole(after, upto);
          if (!fill) {
            // Cannot show a contiguous list: drop this session and resume from the old cursor.
            this.discardSession = session;
            this.log(`ready #${session} truncated; REST fill ${after}..${upto} failed, reconnecting`);
            this.ws?.terminate();
            return;
          }
          for (const { entry, asOf } of fill) this.deliver(entry, session, "rest", asOf);
          this.record.truncated.readies++;
          this.record.truncated.filled += fill.length;
          this.log(`ready #${session} truncated, filled ${fill.length} over REST`);
        }
        for (const message of messages) this.deliver(message, session, "ready", frame.latestSeq);
        this.readySession = session;
        this.reconnectAttempt = 0;
        this.log(`ready #${session} latest=${frame.latestSeq} +${messages.length}`);
        return;
      }
      case "message":
        if (this.readySession !== session)
          this.breach(`a message frame (seq ${frame.message.seq}) before ready on session ${session}`);
        this.deliver(frame.message, session, "live");
        return;
      case "ack": {
        const p = this.outbox.get(frame.clientMsgId);
        const send = p?.send ?? this.mine.get(frame.clientMsgId);
        if (!send) {
          this.ctx.errors.samples.push(`${this.userId}: an ack for ${frame.clientMsgId}, which it never sent`);
          return;
        }
        if (p) this.observeOrder(session, send, frame.seq);
        this.acked(send, {
          seq: frame.seq,
          via: "ws",
          id: frame.id,
          createdAt: frame.createdAt,
          repeat: p === undefined,
          atMs: this.ctx.now(),
        });
        return;
      }
      case "error": {
        bump(this.ctx.errors.codes, String(frame.code));
        if (!frame.clientMsgId) {
          this.log(`error ${frame.code}: ${frame.message}`);
          return;
        }
        const p = this.outbox.get(frame.clientMsgId);
        const about = p?.send ?? this.mine.get(frame.clientMsgId);
        if (about) this.sample(about, "ws", String(frame.code), frame.message);
        if (!p) {
          // An answer to a repeat of something already answered.
          const send = this.mine.get(frame.clientMsgId);
          if (send && frame.code === "conflict") this.judged(send, "conflict");
          return;
        }
        this.failed(p, String(frame.code), frame.retryAfterMs);
        return;
      }
      case "pong":
      // Ephemeral frames (protocol 2): not part of the stream this checker judges.
      case "presence":
      case "typing":
      case "receipt":
        return;
      default:
        this.breach(`a frame of unknown type: ${raw.slice(0, 80)}`);
    }
  }

  /** Something the protocol promises did not happen; judged by the checker (handshake invariant). */
  private breach(what: string): void {
    this.record.protocol.push(`${(this.ctx.now() / 1000).toFixed(2)}s ${what}`);
    this.log(`BREACH ${what}`);
  }

  private deliver(message: Entry, session: number, source: "ready" | "live" | "rest", asOf?: number): void {
    this.record.view.push({ seq: message.seq, message, session, source, ...(asOf === undefined ? {} : { asOf }) });
    if (message.kind === "message")
      this.known.set(message.seq, { userId: message.userId, deleted: message.deleted === true, replyTo: message.replyTo });
    else if (message.kind === "delete") {
      const k = this.known.get(message.target);
      if (k) k.deleted = true;
    }
  }

  /** `GET /messages?after=N&limit=1000` until seq `upto`; undefined if the server would not answer. */
  private async fillHole(after: number, upto: number): Promise<Array<{ entry: Entry; asOf: number | undefined }> | undefined> {
    const out: Array<{ entry: Entry; asOf: number | undefined }> = [];
    let cursor = after;
    for (let tries = 0; cursor < upto && tries < 20; tries++) {
      const res = await this.http("GET", `/v1/rooms/${this.record.room}/messages?after=${cursor}&limit=1000`);
      const body = res.body as { messages?: Entry[]; latestSeq?: unknown } | undefined;
      if (res.status !== 200 || !Array.isArray(body?.messages)) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      const page = body.messages.filter((m) => m.seq <= upto);
      if (page.length === 0) return undefined;
      const asOf = typeof body.latestSeq === "number" ? body.latestSeq : undefined;
      out.push(...page.map((entry) => ({ entry, asOf })));
      cursor = page.at(-1)?.seq ?? upto;
    }
    return cursor >= upto ? out : undefined;
  }

  // ---------------------------------------------------------------------------------------
  // Membership and faults

  /** Leaves for a while (clean close); sends keep going over HTTP. */
  leave(): void {
    if (this.desired !== "online") return;
    this.desired = "offline";
    this.log("leave");
    this.ws?.close(1000, "leaving");
  }

  rejoin(): void {
    if (this.desired === "gone") return;
    this.desired = "online";
    this.connect();
  }

  /** Leaves for good: its view must stay clean but need not catch up. */
  quit(): void {
    this.desired = "gone";
    this.record.joined = false;
    clearTimeout(this.reconnectTimer);
    this.log("quit");
    this.ws?.close(1000, "bye");
  }

  /** Kills the TCP connection abruptly; with `midFrame`, after writing half of a send frame. */
  kill(midFrame: boolean): void {
    const ws = this.ws;
    if (!ws) return;
    const socket = (ws as unknown as { _socket?: Socket })._socket;
    if (midFrame && socket && this.connected) {
      // A real send (it is in the outbox, so it will be retried) whose frame is cut in half on the wire.
      const p = this.newPending();
      p.state = "ws";
      p.session = this.session;
      p.sentAt = this.ctx.now();
      p.send.attempts++;
      const frame = maskedTextFrame(JSON.stringify(frameOf(p.send)), this.rng);
      socket.write(frame.subarray(0, this.rng.int(1, frame.length - 1)));
      this.log(`killed mid-frame (${p.send.clientMsgId})`);
    } else this.log("killed");
    if (socket) socket.destroy();
    else ws.terminate();
  }

  /** The end of the scenario: closes quietly (not a fault, so not counted). */
  stop(): void {
    this.desired = "gone";
    clearTimeout(this.reconnectTimer);
    const ws = this.ws;
    this.ws = undefined;
    ws?.terminate();
  }

  // ---------------------------------------------------------------------------------------
  // Sending

  private newPending(init: Partial<SendRecord> & { text?: string } = {}): Pending {
    this.counter++;
    // Ids repeat across users on purpose (m1, m2, …): dedup is per (user, clientMsgId).
    const op = init.op ?? "send";
    const what = op === "send" ? (init.replyTo === undefined ? "" : "reply ") : `${op} `;
    const text =
      op === "delete" || op === "react"
        ? ""
        : `${this.userId} ${what}#${this.counter} ${this.rng.int(0, 1e9).toString(36)}${this.rng.chance(0.1) ? " ünïcødé 😀" : ""}`;
    const send: SendRecord = {
      room: this.record.room,
      userId: this.userId,
      clientMsgId: `m${this.counter}`,
      ...init,
      op,
      text,
      attempts: 0,
      uncertain: 0,
      definite: [],
      acks: [],
    };
    this.register(send);
    this.mine.set(send.clientMsgId, send);
    this.mineList.push(send);
    if (op !== "send" && send.target !== undefined) this.busy.add(send.target);
    if (op === "delete" && send.target !== undefined) this.deleting.add(send.target);
    const p: Pending = { send, state: "queued", session: -1, sentAt: 0, retryAt: this.ctx.now(), backoff: 0 };
    this.outbox.set(send.clientMsgId, p);
    return p;
  }

  /** A new message; sent on the next tick. */
  write(): void {
    this.dispatch(this.newPending());
  }

  /**
   * A change, if there is something to change: an edit (30%) or a delete (15%) of one of my acked
   * messages, a reaction added or taken back (40%) on a message I was shown, or a reply (15%) to
   * one. Otherwise a new message. One change per target at a time (`busy`): pipelined requests
   * may commit out of order after an `unavailable`, and a take-back must not overtake its add.
   */
  change(): void {
    const roll = this.rng.next();
    if (roll < 0.45) {
      const own = this.mineList
        .filter((s) => (s.op ?? "send") === "send" && s.acks[0] !== undefined)
        .map((s) => s.acks[0]?.seq ?? 0)
        .filter((seq) => !this.busy.has(seq) && !this.deleting.has(seq) && this.known.get(seq)?.deleted !== true)
        .slice(-20);
      if (own.length > 0) {
        const target = this.rng.pick(own);
        this.dispatch(this.newPending({ op: roll < 0.3 ? "edit" : "delete", target }));
        return;
      }
    } else {
      const shown = [...this.known].filter(([seq, k]) => !k.deleted && !this.busy.has(seq) && !this.deleting.has(seq)).slice(-30);
      const picked = shown.length > 0 ? this.rng.pick(shown) : undefined;
      if (picked && roll < 0.85) {
        const [target] = picked;
        const emoji = this.rng.pick(EMOJI);
        const remove = this.reacted.has(`${target} ${emoji}`);
        this.dispatch(this.newPending({ op: "react", target, emoji, ...(remove ? { remove: true } : {}) }));
        return;
      }
      const parents = shown.filter(([, k]) => k.replyTo === undefined);
      if (parents.length > 0) {
        const [replyTo] = this.rng.pick(parents);
        this.dispatch(this.newPending({ op: "send", replyTo }));
        return;
      }
    }
    this.write();
  }

  /** Sends an already used clientMsgId again (same request), once, over a random transport. */
  repeat(): void {
    if (this.mineList.length === 0) return;
    const send = this.rng.pick(this.mineList);
    if (this.connected && this.rng.chance(0.5)) this.wsSend(send);
    else void this.httpSend(send, undefined);
  }

  /** Puts due sends on the wire and turns overdue acks into unknown outcomes. Called every tick. */
  tick(): void {
    const now = this.ctx.now();
    for (const p of this.outbox.values()) {
      if (p.state === "ws" && now - p.sentAt > this.ctx.ackTimeoutMs) {
        p.send.uncertain++;
        bump(this.ctx.errors.transport, "ack timeout");
        this.log(`no ack for ${p.send.clientMsgId} after ${this.ctx.ackTimeoutMs} ms`);
        p.state = "queued";
        p.retryAt = now;
      }
      if (p.state === "queued" && p.retryAt <= now) this.dispatch(p);
    }
  }

  private dispatch(p: Pending): void {
    const via: Via = this.connected && this.rng.chance(0.75) ? "ws" : "http";
    p.sentAt = this.ctx.now();
    if (via === "ws") {
      p.state = "ws";
      p.session = this.session;
      this.wsSend(p.send);
    } else {
      p.state = "http";
      void this.httpSend(p.send, p);
    }
  }

  private wsSend(send: SendRecord): void {
    send.attempts++;
    this.wire.set(send, { session: this.session, n: ++this.wireN });
    try {
      this.ws?.send(JSON.stringify(frameOf(send)));
    } catch {
      // The close event will requeue it.
    }
  }

  /** An HTTP request for a send or a change. `p` is the outbox entry, or undefined for a deliberate repeat. */
  private async httpSend(send: SendRecord, p: Pending | undefined): Promise<string> {
    send.attempts++;
    const sentAtMs = this.ctx.now();
    const { method, path, body: json } = requestOf(send);
    const res = await this.http(method, `/v1/rooms/${this.record.room}${path}`, json);
    const body = res.body as { message?: Entry; error?: { code?: unknown } } | undefined;
    if ((res.status === 200 || res.status === 201) && body?.message && typeof body.message.seq === "number") {
      this.acked(send, {
        seq: body.message.seq,
        via: "http",
        status: res.status,
        message: body.message,
        repeat: p === undefined,
        atMs: this.ctx.now(),
        sentAtMs,
      });
      return "acked";
    }
    let code: string;
    if (res.status === 0) code = "transport";
    else if (typeof body?.error?.code === "string") {
      code = body.error.code;
      this.sample(send, `${method} ${res.status}`, code, (body.error as { message?: unknown }).message);
    } else code = this.answerError(method, res.status, res.text);
    if (p && this.outbox.get(send.clientMsgId) === p && p.state === "http") this.failed(p, code, res.retryAfterMs);
    else if (!p && code === "conflict") this.judged(send, code);
    return code;
  }

  /**
   * One new message over HTTP that is never retried, like a user who closes the app after an
   * error. Returns "acked" or the code it got; an unknown outcome leaves the send abandoned.
   */
  async sendOnce(): Promise<string> {
    const p = this.newPending();
    this.outbox.delete(p.send.clientMsgId);
    const outcome = await this.httpSend(p.send, undefined);
    if (outcome !== "acked") {
      if (isUnknownOutcome(outcome)) p.send.uncertain++;
      else p.send.definite.push(outcome);
      p.send.abandoned = true;
      this.log(`gave up on ${p.send.clientMsgId} after ${outcome}`);
    }
    return outcome;
  }

  /** A first-and-only write acked on its own socket: is its seq in order with the earlier ones? */
  private observeOrder(session: number, send: SendRecord, seq: number): void {
    const w = this.wire.get(send);
    if (!w || w.session !== session || send.attempts !== 1) return;
    const acks = this.orderedAcks.get(session) ?? [];
    this.orderedAcks.set(session, acks);
    const order = this.record.sendOrder ?? { pairs: 0, inversions: [] };
    this.record.sendOrder = order;
    for (const a of acks) {
      order.pairs++;
      const inverted = (a.n < w.n && a.seq > seq) || (a.n > w.n && a.seq < seq);
      if (inverted && order.inversions.length < 20) {
        const [first, second] =
          a.n < w.n ? [`${a.id}@${a.seq}`, `${send.clientMsgId}@${seq}`] : [`${send.clientMsgId}@${seq}`, `${a.id}@${a.seq}`];
        order.inversions.push(`session ${session}: ${first} written before ${second}`);
      }
    }
    acks.push({ n: w.n, seq, id: send.clientMsgId });
  }

  private acked(send: SendRecord, ack: Ack): void {
    send.acks.push(ack);
    const p = this.outbox.get(send.clientMsgId);
    if (p && p.send === send) {
      this.outbox.delete(send.clientMsgId);
      this.settled(send);
      if (send.op === "react" && send.target !== undefined) {
        const key = `${send.target} ${send.emoji}`;
        if (send.remove) this.reacted.delete(key);
        else this.reacted.add(key);
      }
    }
  }

  /** A request left the outbox: its target may take my next change. */
  private settled(send: SendRecord): void {
    if ((send.op ?? "send") !== "send" && send.target !== undefined) this.busy.delete(send.target);
  }

  /** Evidence for a code no valid request should get (`internal`, `bad_request`, …): which request, how, what it was told. */
  private sample(send: SendRecord, via: string, code: string, message: unknown): void {
    if (code === "unavailable" || code === "rate_limited" || code === "conflict") return;
    const what =
      send.op === "send" || send.op === undefined
        ? send.replyTo === undefined
          ? "send"
          : `reply to ${send.replyTo}`
        : `${send.op} of ${send.target}`;
    this.ctx.errors.samples.push(
      `${(this.ctx.now() / 1000).toFixed(2)}s ${this.userId}/${send.clientMsgId} (${what}) via ${via}: ${code} ${JSON.stringify(String(message ?? "")).slice(0, 120)}`,
    );
  }

  /** A code the checker judges against Postgres for this request (a `conflict` is fine if its target was deleted). */
  private judged(send: SendRecord, code: string): void {
    send.definite.push(code);
    bump(this.ctx.errors.judged, code);
  }

  /** A failed attempt: retried with backoff unless the code says it never will work. */
  private failed(p: Pending, code: string, retryAfterMs: number | undefined): void {
    // `internal` is a definite answer (a committed message behind it would be a phantom), but the
    // SDK retries it a few times, and so do we.
    if (isUnknownOutcome(code)) p.send.uncertain++;
    else if (code === "conflict") this.judged(p.send, code);
    else p.send.definite.push(code);
    if (TERMINAL.includes(code)) {
      this.outbox.delete(p.send.clientMsgId); // terminal, as the SDK treats it
      p.send.refused = code;
      this.settled(p.send);
      this.log(`${p.send.op ?? "send"} ${p.send.clientMsgId} rejected: ${code}`);
      return;
    }
    p.state = "queued";
    p.backoff = Math.min(p.backoff + 1, 5);
    p.retryAt = this.ctx.now() + (retryAfterMs ?? this.rng.int(20, 60 * 2 ** p.backoff));
  }

  // ---------------------------------------------------------------------------------------
  // HTTP

  private async http(
    method: Method,
    path: string,
    json?: unknown,
  ): Promise<{ status: number; body: unknown; text: string; retryAfterMs?: number }> {
    this.inFlight++;
    try {
      const res = await fetch(`${this.ctx.baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(json ? { "content-type": "application/json" } : {}) },
        body: json === undefined ? undefined : JSON.stringify(json),
        signal: AbortSignal.timeout(this.ctx.httpTimeoutMs),
      });
      const text = await res.text();
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {}
      if (res.status >= 400) {
        const code = (body as { error?: { code?: unknown } } | undefined)?.error?.code;
        if (typeof code === "string") bump(this.ctx.errors.codes, code);
      }
      const retryAfter = Number(res.headers.get("retry-after") ?? "");
      return { status: res.status, body, text, ...(retryAfter > 0 ? { retryAfterMs: retryAfter * 1000 } : {}) };
    } catch (e) {
      const cause = (e as { cause?: { code?: string } }).cause;
      const name =
        e instanceof Error && e.name === "TimeoutError"
          ? "http timeout"
          : (cause?.code ?? (e instanceof Error ? e.message : "fetch failed"));
      bump(this.ctx.errors.transport, `http ${name}`);
      return { status: 0, body: undefined, text: "" };
    } finally {
      this.inFlight--;
    }
  }

  /**
   * An error answer without a JSON error body. From a dev server that is being restarted that is
   * expected (it is not our Worker answering yet); otherwise it is an undocumented error.
   * Returns the code it was counted under.
   */
  private answerError(what: string, status: number, text: string): string {
    let code: unknown;
    try {
      code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
    } catch {}
    if (typeof code === "string") {
      if (what.startsWith("upgrade")) bump(this.ctx.errors.codes, code);
      return code;
    }
    const label = `HTTP ${status} without an error body`;
    // wrangler dev reloads the Worker when a source file changes (or the process restarts) and
    // answers requests caught in between with this 503: a restart, not an answer of our Worker.
    if (this.ctx.serverRestarting() || (status === 503 && text.includes("restarted mid-request"))) {
      bump(this.ctx.errors.transport, `${label} (restarting)`);
      return "transport";
    }
    bump(this.ctx.errors.codes, label);
    this.ctx.errors.samples.push(`${this.userId}: ${what} → ${status} ${JSON.stringify(text.slice(0, 100))}`);
    return label;
  }
}

type Method = "GET" | "POST" | "PATCH" | "DELETE";

/** The WebSocket frame of a request (src/protocol/frames.ts EntryFrame). */
export function frameOf(send: SendRecord): Record<string, unknown> {
  const { clientMsgId, text, target } = send;
  switch (send.op ?? "send") {
    case "edit":
      return { type: "edit", clientMsgId, target, text };
    case "delete":
      return { type: "delete", clientMsgId, target };
    case "react":
      return { type: "react", clientMsgId, target, emoji: send.emoji, ...(send.remove ? { remove: true } : {}) };
    default:
      return { type: "send", clientMsgId, text, ...(send.replyTo === undefined ? {} : { replyTo: send.replyTo }) };
  }
}

/** The HTTP request of a request: POST /messages, PATCH or DELETE /messages/{seq}, POST /messages/{seq}/reactions. */
export function requestOf(send: SendRecord): { method: Method; path: string; body: Record<string, unknown> } {
  const { type: _type, target: _target, ...body } = frameOf(send);
  switch (send.op ?? "send") {
    case "edit":
      return { method: "PATCH", path: `/messages/${send.target}`, body };
    case "delete":
      return { method: "DELETE", path: `/messages/${send.target}`, body };
    case "react":
      return { method: "POST", path: `/messages/${send.target}/reactions`, body };
    default:
      return { method: "POST", path: "/messages", body };
  }
}

/** `unavailable`, a transport failure or a non-protocol answer: the send may or may not have committed. */
const isUnknownOutcome = (code: string): boolean => code === "unavailable" || code === "transport" || !/^[a-z_]+$/.test(code);

/** A client→server text frame (masked, as RFC 6455 requires of clients), to be cut in half on the wire. */
export function maskedTextFrame(text: string, rng: Rng): Buffer {
  const payload = Buffer.from(text, "utf8");
  const header: number[] = [0x81];
  if (payload.length < 126) header.push(0x80 | payload.length);
  else header.push(0x80 | 126, payload.length >> 8, payload.length & 0xff);
  const mask = Buffer.from([rng.int(0, 255), rng.int(0, 255), rng.int(0, 255), rng.int(0, 255)]);
  const masked = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) masked[i] = (payload[i] ?? 0) ^ (mask[i % 4] ?? 0);
  return Buffer.concat([Buffer.from(header), mask, masked]);
}
