// The room's list and everything that fetches history for it over REST: the hole after a
// truncated `ready` or a skipped frame (filled at once, or after a grace period when only an ack
// says it exists), the rest of a `last=` join whose `ready` did not fit, and loadOlder. The
// Timeline decides what is contiguous; this file decides when to fetch, and retries. The list holds
// entries of every kind (each seq counts for the cursor); the app's `messages` are those of kind message.

import { ErrorCode } from "../protocol/errors.js";
import type { Message } from "../protocol/frames.js";
import { DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT } from "../protocol/limits.js";
import { Backoff, type BackoffPolicy } from "./backoff.js";
import { type AnyEntry, type EntriesPage, isMessage } from "./decode.js";
import { ChatClientError, type ChatClientErrorCode } from "./errors.js";
import { type MessageUpdate, type ReadyHistory, Timeline, type TimelineLine } from "./timeline.js";
import { clearTimer, type Timer } from "./timers.js";
import type { HistoryCursor } from "./transport.js";

/** An ack normally arrives a moment before or after its `message` frame; only fill over REST if the frame is this late. */
export const ACK_GRACE_MS = 1_000;

/** The REST history route, as the list sees it (RestApi implements it): entries of every kind. */
export interface HistorySource {
  listEntries(roomId: string, page: { after: number; limit: number }): Promise<EntriesPage>;
}

export interface HistoryHost {
  /**
   * Entries (of any kind) that joined the end of the list: once per seq, in seq order, never across
   * a hole; `updates`: the messages the list holds that change entries among them changed, keyed by
   * the change's seq.
   */
  onEntries(entries: readonly AnyEntry[], updates: ReadonlyMap<number, MessageUpdate>): void;
  /** A fill or a backfill finished: what waits on the list may move (acked sends, the join). */
  onChanged(): void;
  report(error: unknown, operation?: string): void;
}

export interface HistoryConfig {
  roomId: string;
  /** What the first socket asks for; later sockets resume with `since` = the last contiguous seq. */
  history: HistoryCursor;
  rest: HistorySource;
  /** Backoff between fill attempts that failed or found nothing yet. */
  reconnect: BackoffPolicy;
  random: () => number;
  /** The SDK's user, whose `me` flags on reactions the list keeps current. */
  viewer?: () => string | undefined;
}

/**
 * One room's list of messages, kept contiguous, with the REST fetches that close its holes.
 *
 * @example
 * const history = new History(config, host);
 * history.applyReady(ready);                // host.onEntries(...) with what can be shown now
 * if (history.settle()) resolveJoin();      // complete: nothing to fill, nothing being fetched
 * await history.loadOlder(50);
 */
export class History {
  readonly #config: HistoryConfig;
  readonly #host: HistoryHost;
  readonly #timeline: Timeline;
  readonly #fillBackoff: Backoff;

  #filling = false;
  /** The first `ready` of a `last=` join was truncated and the older rest is being fetched. */
  #backfilling = false;
  #olderQueue: Promise<unknown> = Promise.resolve();
  #fillTimer: Timer | undefined;
  /** Wakes the fill loop's backoff sleeps, so close() ends it at once. */
  readonly #sleeps = new Set<() => void>();
  /** Why the list stopped (for loadOlder calls made afterwards). */
  #ended: { code: ChatClientErrorCode; reason: string } | undefined;

  constructor(config: HistoryConfig, host: HistoryHost) {
    this.#config = config;
    this.#host = host;
    this.#timeline = new Timeline("since" in config.history ? config.history.since : undefined, config.viewer);
    this.#fillBackoff = new Backoff(config.reconnect, config.random);
  }

  /** The messages, ordered by seq, contiguous, without duplicates. A new array after each change. */
  get messages(): readonly Message[] {
    return this.#timeline.messages;
  }

  /** Messages and system entries, ordered by seq (see Room.timeline). */
  get lines(): readonly TimelineLine[] {
    return this.#timeline.lines;
  }

  get firstSeq(): number | undefined {
    return this.#timeline.firstSeq;
  }

  /** The seq the list is complete up to (undefined before the first `ready` of a `last=` join). */
  get lastSeq(): number | undefined {
    return this.#timeline.cursor;
  }

  /** Whether older messages exist before `messages[0]`. */
  get hasOlder(): boolean {
    return (this.#timeline.firstSeq ?? 1) > 1;
  }

  get(seq: number): AnyEntry | undefined {
    return this.#timeline.get(seq);
  }

  noteLatest(seq: number): void {
    this.#timeline.noteLatest(seq);
  }

  /** What the next socket asks for: the join's cursor until the first `ready`, then everything after the last contiguous seq. */
  nextCursor(): HistoryCursor {
    const cursor = this.#timeline.cursor;
    return cursor === undefined ? this.#config.history : { since: cursor };
  }

  /** Applies a socket's `ready`. A truncated one leaves a hole: its messages are held and shown once REST has filled it. */
  applyReady(frame: ReadyHistory & { truncated: boolean }): void {
    const cursor = this.#timeline.cursor;
    if (cursor !== undefined && frame.latestSeq < cursor) {
      this.#host.report(
        new ChatClientError(
          "protocol",
          `unable to resume room ${this.#config.roomId}; the server's latest seq ${frame.latestSeq} is below ours (${cursor})`,
        ),
      );
    }
    const firstReadyOfLastJoin = cursor === undefined && "last" in this.#config.history;
    this.#emit(this.#timeline.applyReady(frame));
    if (firstReadyOfLastJoin && frame.truncated && "last" in this.#config.history) {
      // `last=` asked for more than fit in the frame (MAX_READY_BYTES): the rest is older than the
      // list's start, so it is not a hole, but join() promised `last` messages. Fetch them first.
      const missing = this.#config.history.last - frame.messages.length;
      this.#backfilling = true;
      void this.loadOlder(Math.max(1, Math.min(MAX_HISTORY_LIMIT, missing)))
        .catch((error: unknown) => this.#host.report(error, "load the rest of the requested history"))
        .finally(() => {
          this.#backfilling = false;
          if (!this.#ended) this.#host.onChanged();
        });
    }
  }

  /** Applies a live `message` frame (an entry of any kind). */
  applyLive(entry: AnyEntry): void {
    this.#emit(this.#timeline.applyMessage(entry));
  }

  /**
   * After any change: fill a hole over REST if there is one. A hole with messages held beyond it
   * (a truncated `ready`, a skipped frame) is filled at once; a hole only known from an ack or a
   * `latestSeq` is given ACK_GRACE_MS for its `message` frame to arrive first, as it nearly always
   * does. Returns whether the list is complete: no hole, and no backfill still being fetched.
   */
  settle(): boolean {
    if (this.#timeline.gap()) {
      this.#fillSoon(this.#timeline.holding ? 0 : ACK_GRACE_MS);
      return false;
    }
    return !this.#backfilling;
  }

  /** See Room.loadOlder. Calls are queued, so two quick calls load two consecutive pages. */
  loadOlder(limit: number = DEFAULT_HISTORY_LIMIT): Promise<Message[]> {
    const run = this.#olderQueue.then(() => this.#loadOlderNow(limit));
    this.#olderQueue = run.catch(() => undefined);
    return run;
  }

  /** Stops every fetch; loadOlder calls made afterwards reject with `code`. */
  close(code: ChatClientErrorCode, reason: string): void {
    if (this.#ended) return;
    this.#ended = { code, reason };
    clearTimer(this.#fillTimer);
    this.#fillTimer = undefined;
    for (const wake of [...this.#sleeps]) wake();
  }

  #emit(entries: readonly AnyEntry[]): void {
    this.#host.onEntries(entries, this.#timeline.takeUpdates());
  }

  #fillSoon(delayMs: number): void {
    if (this.#filling || this.#ended) return;
    if (delayMs === 0) {
      clearTimer(this.#fillTimer);
      this.#fillTimer = undefined;
      void this.#fill();
      return;
    }
    this.#fillTimer ??= setTimeout(() => {
      this.#fillTimer = undefined;
      void this.#fill();
    }, delayMs);
  }

  /** Fetches pages over REST until the list has no hole; retries with backoff; one loop at a time. */
  async #fill(): Promise<void> {
    if (this.#filling || this.#ended) return;
    this.#filling = true;
    let reportedStall = false;
    try {
      for (let gap = this.#timeline.gap(); gap && !this.#ended; gap = this.#timeline.gap()) {
        try {
          const page = await this.#config.rest.listEntries(this.#config.roomId, gap);
          if (this.#ended) return;
          const added = this.#timeline.applyPage(page.entries, page.latestSeq);
          this.#emit(added);
          if (added.length > 0) {
            this.#fillBackoff.reset();
            continue;
          }
          if (!reportedStall) {
            reportedStall = true;
            this.#host.report(
              new ChatClientError(
                "protocol",
                `unable to fill messages after seq ${gap.after}; the server returned none yet, retrying`,
              ),
            );
          }
        } catch (error) {
          if (this.#ended) return;
          this.#host.report(error, "fill missing messages");
        }
        await this.#sleep(this.#fillBackoff.next());
      }
    } finally {
      this.#filling = false;
    }
    if (!this.#ended) this.#host.onChanged();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimer(timer);
        this.#sleeps.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleeps.add(wake);
    });
  }

  async #loadOlderNow(limit: number): Promise<Message[]> {
    if (this.#ended) throw new ChatClientError(this.#ended.code, `unable to load older messages; ${this.#ended.reason}`);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_HISTORY_LIMIT) {
      throw new ChatClientError(ErrorCode.BadRequest, `unable to load older messages; limit must be 1–${MAX_HISTORY_LIMIT}`);
    }
    const firstSeq = this.#timeline.firstSeq;
    if (firstSeq === undefined || firstSeq <= 1) return [];
    const count = Math.min(limit, firstSeq - 1);
    const page = await this.#config.rest.listEntries(this.#config.roomId, {
      after: Math.max(0, firstSeq - 1 - count),
      limit: count,
    });
    if (this.#ended) return [];
    // `limit` counts seqs, whatever their kind, so paging back stays arithmetic; only messages are returned.
    return this.#timeline.prependOlder(page.entries).filter(isMessage);
  }
}
