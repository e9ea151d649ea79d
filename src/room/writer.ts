// The room's single writer: it claims the writer epoch, assigns seqs, commits batches, and
// resolves unknown outcomes. It sees its Postgres store and its Durable Object storage through
// the two small interfaces below, so the state machine (unknown outcome, fencing, a lost writer
// role, waking up after hibernation) runs in plain Node tests (writer.test.ts) as well as in workerd.
//
// State, and what survives what:
//  - Postgres: every committed entry, the room's last_seq and writer_epoch (the truth).
//  - Object storage (WriterStorage): the epoch this object last claimed, and the in-doubt marker
//    after an unknown outcome: the last seq every open socket was told about.
//  - Memory: lastSeq, the epoch held, needsResync — rebuilt by `ensure` after every wake-up.

import { ChatError, ErrorCode } from "../protocol/errors.js";
import { type Entry, EntryKind } from "../protocol/frames.js";
import type { BatchEffects, HistoryQuery, MessageStore, NewEntry, Role, RoomKey, RoomRecord } from "../storage/types.js";
import { StorageError } from "../storage/types.js";
import { namedSeqs, needsPlan, planBatch } from "./changes.js";
import { CommitPipeline, dedupeBatch, type PipelineOptions } from "./pipeline.js";
import { failure, type Failure, type SendOutcome } from "./results.js";

/** What the writer needs of Postgres. */
export type WriterStore = Pick<MessageStore, "readRoomState" | "claimWriter" | "commitBatch" | "readMessages" | "lookupBatch" | "readReactors">;

/** What the writer needs of the object's own storage (DurableObjectStorage fits it). */
export interface WriterStorage {
  get(keys: string[]): Promise<Map<string, unknown>>;
  put(entries: Record<string, unknown>): Promise<void>;
  delete(key: string): Promise<unknown>;
}

/** The rest of the room, as the writer sees it. Every hook is synchronous unless it says otherwise. */
export interface WriterHooks {
  /**
   * The room as Postgres holds it, created first where the tenant has open rooms and `actor` is a
   * first user. Throws ChatError(not_found) for a room that does not exist (or was deleted).
   */
  loadRoom(actor: string | undefined): Promise<RoomRecord>;
  /** After every claim: the newest committed entries (to seed the window) and the saved storage values. */
  booted(boot: {
    record: RoomRecord;
    recent: Entry[];
    /** The reactions on `recent` (who reacted: the window's `me` flags). */
    reactors: Array<{ target: number; emoji: string; userId: string }>;
    saved: Map<string, unknown>;
  }): void;
  /** Newly committed entries, in seq order, that no socket has seen: window, sockets, mirror. */
  publish(entries: Entry[]): void;
  /** Committed entries the open sockets missed (a previous instance's unknown outcome), window already holds them. */
  announce(entries: Entry[]): void;
  /** Another instance owns the room now; called after the senders of the failed batch heard `unavailable`. */
  lostRole(): void;
  /** Arms the heal alarm unless it is armed (before every commit, and after an unknown outcome). */
  armAlarm(): Promise<void>;
  /** Maps an error to the failure a sender hears (and logs it). */
  failureOf(error: unknown, operation: string): Failure;
  /** One commit statement ran: its batch size, duration and outcome (metrics). */
  measured?(batchSize: number, durationMs: number, code: string): void;
  /**
   * Before a batch that deletes messages commits: take these seqs (the messages and their edits)
   * out of every copy outside Postgres that could serve them (the Redis mirror). Resolves with a
   * release, called once the batch's outcome is published; rejects when that is not possible now
   * (the deletes are then refused with `unavailable` and nothing is committed for them).
   */
  redact?(seqs: number[]): Promise<() => void>;
  /**
   * The last screen of an entry, synchronous, in the turn its batch is formed (before any await
   * of the commit): a refusal is delivered at once and the entry takes no seq. The room refuses
   * entries of users it knows to be banned or muted by then (moderation.ts argues why that is the
   * moment that matters).
   */
  admit?(entry: PendingEntry): Failure | undefined;
}

/** One entry waiting for its seq. */
export interface PendingEntry extends NewEntry {
  id: string;
  kind: EntryKind;
  userId: string;
  clientMsgId: string;
  text: string;
  /** The author's role when the entry was authorized (admins may delete others' messages). */
  role?: Role | null;
  /** Size estimate for the batch byte limit. */
  bytes: number;
  /** Called exactly once, synchronously, when the entry's fate is known. */
  deliver: (outcome: SendOutcome) => void;
}

export const EPOCH_KEY = "writerEpoch";
/**
 * Saved when a commit's outcome becomes unknown: the last seq every open socket was told about.
 * Hibernation can drop this object's memory while its sockets stay open; the next instance then
 * announces whatever did commit after it, before anything else (see `claim`).
 */
export const IN_DOUBT_KEY = "inDoubtAfter";

export interface WriterOptions {
  /** How many recent entries to load at boot for the window. */
  windowEntries: number;
  /** Extra storage keys to read in the boot's one storage read (handed to `booted`). */
  bootKeys: readonly string[];
  pipeline: PipelineOptions;
}

export class Writer {
  /** Set once this instance holds the room's writer epoch in Postgres. */
  private held: { epoch: number; record: RoomRecord } | undefined;
  private booting: Promise<RoomRecord> | undefined;
  /** The room's committed high-water mark as this writer knows it. */
  private last = 0;
  /**
   * Set after any commit whose outcome is unknown (timeout, connection lost after the statement
   * was sent). Before the next seq is assigned, the writer re-reads last_seq from Postgres and
   * publishes whatever did commit, so no seq is assigned twice and none is skipped.
   */
  private needsResync = false;
  /** Set when a newer instance took the writer role; the room then disconnects its sockets. */
  private lostWriterRole = false;
  /** Mirror holds of deletes whose outcome is unknown: released by the next resync. */
  private heldMirror: Array<() => void> = [];
  private readonly pipeline: CommitPipeline<PendingEntry>;

  constructor(
    private readonly room: RoomKey,
    private readonly store: () => WriterStore,
    private readonly storage: WriterStorage,
    private readonly hooks: WriterHooks,
    private readonly options: WriterOptions,
  ) {
    this.pipeline = new CommitPipeline((batch) => this.commit(batch), options.pipeline);
  }

  get lastSeq(): number {
    return this.last;
  }

  /** The room record loaded with the writer role (undefined before `ensure` or after `forget`). */
  get record(): RoomRecord | undefined {
    return this.held?.record;
  }

  /** True while an unknown outcome is unresolved: the heal alarm must come back. */
  get inDoubt(): boolean {
    return this.needsResync;
  }

  /** Claims the writer role once per instance (after every wake-up); returns the room record. */
  ensure(actor?: string): Promise<RoomRecord> {
    if (this.held) return Promise.resolve(this.held.record);
    this.booting ??= this.claim(actor).finally(() => {
      this.booting = undefined;
    });
    return this.booting;
  }

  /** Replaces the record after a change this object made itself (rename, visibility). */
  updateRecord(record: RoomRecord): void {
    if (this.held) this.held = { ...this.held, record: { ...record, lastSeq: this.last, writerEpoch: this.held.epoch } };
  }

  /** Drops the writer role: the next call re-claims (after a create, with the new record; after a delete, fails). */
  forget(): void {
    this.held = undefined;
  }

  /** Queues an entry; its `deliver` is called once its fate is known. */
  submit(entry: PendingEntry): void {
    this.pipeline.submit(entry);
  }

  /** Resolves once every entry submitted so far has its outcome (see CommitPipeline.settled). */
  settled(): Promise<void> {
    return this.pipeline.settled();
  }

  /** Runs the commit step with nothing queued, so a pending resync happens now (the heal alarm). */
  kick(): Promise<void> {
    return this.pipeline.kick();
  }

  /** History for seq in (afterSeq, uptoSeq] straight from Postgres. */
  read(q: HistoryQuery): Promise<Entry[]> {
    return this.store().readMessages(this.room, q);
  }

  /*
   * Fencing. The platform can briefly run two instances of one object (an old one that has not
   * noticed it was replaced, and the new one). Each instance, before its first write, picks
   * epoch = max(epoch in its storage, epoch in Postgres) + 1, persists it in its storage (a
   * replaced instance's storage writes fail), and claims it in Postgres only if it is higher
   * than the stored one. Every commit is one statement that advances last_seq only WHERE
   * writer_epoch = my epoch AND last_seq = what I expect, under the row lock of `rooms`. So once
   * a newer instance has claimed, an older one can never commit again: its statements match no
   * row and insert nothing, and the (room, seq) primary key forbids a seq being used twice even
   * if that argument had a hole.
   */
  private async claim(actor: string | undefined): Promise<RoomRecord> {
    const store = this.store();
    const saved = await this.storage.get([EPOCH_KEY, IN_DOUBT_KEY, ...this.options.bootKeys]);
    const state = await this.hooks.loadRoom(actor);
    const savedEpoch = numberOr(saved.get(EPOCH_KEY), 0);
    const epoch = Math.max(savedEpoch, state.writerEpoch) + 1;
    await this.storage.put({ [EPOCH_KEY]: epoch });
    const claimed = await store.claimWriter(this.room, epoch);
    if (!claimed) throw new StorageError("another instance of this room claimed it first; retry", "failed");
    const recent = await store.readMessages(this.room, {
      afterSeq: Math.max(0, claimed.lastSeq - this.options.windowEntries),
      uptoSeq: claimed.lastSeq,
      limit: this.options.windowEntries,
      from: "newest",
    });
    const reactors = await store.readReactors(this.room, (recent[0]?.seq ?? claimed.lastSeq + 1) - 1, claimed.lastSeq);
    // An unknown outcome the previous instance never resolved: the sockets that outlived it
    // (hibernation keeps them open) were told about seqs up to `inDoubt` only.
    const inDoubtRaw = saved.get(IN_DOUBT_KEY);
    const inDoubt = typeof inDoubtRaw === "number" ? inDoubtRaw : undefined;
    const unannounced =
      inDoubt !== undefined && inDoubt < claimed.lastSeq
        ? await store.readMessages(this.room, {
            afterSeq: inDoubt,
            uptoSeq: claimed.lastSeq,
            limit: claimed.lastSeq - inDoubt,
            from: "oldest",
          })
        : [];
    this.last = claimed.lastSeq;
    this.needsResync = false;
    const record: RoomRecord = { ...state, ...claimed };
    this.held = { epoch, record };
    this.hooks.booted({ record, recent, reactors, saved });
    if (inDoubt !== undefined) {
      // One turn: marker gone and frames out together (the output gate holds the frames until
      // the delete is durable). Sockets joining from now on get these seqs in `ready` instead.
      void this.storage.delete(IN_DOUBT_KEY).catch(() => {});
      this.hooks.announce(unannounced);
    }
    return record;
  }

  /** One batch: at most one runs at a time (CommitPipeline). Delivers every outcome; never throws. */
  private async commit(batch: PendingEntry[]): Promise<void> {
    const { unique: deduped, repeats } = dedupeBatch(this.admitted(batch));
    let unique = deduped;
    /** For each entry of `unique`, its index in `deduped` (planning replaces refused and rewritten entries). */
    let origin = deduped.map((_, index) => index);
    /** Refusals of planned changes, by their index in `deduped` (nothing committed for them). */
    const refused = new Map<number, Failure>();
    let results: Array<{ message: Entry; duplicate: boolean }>;
    let fresh: Entry[];
    let release: (() => void) | undefined;
    try {
      await this.ensure();
      const epoch = this.held?.epoch;
      if (epoch === undefined) throw new StorageError("the writer role was lost while booting", "failed");
      if (this.needsResync) await this.resync(epoch);
      if (batch.length === 0) return; // a kick: the resync above was the work
      if (deduped.length === 0) return; // every entry was refused by the screen
      const createdAt = new Date().toISOString();
      let effects: BatchEffects | undefined;
      if (deduped.some(needsPlan)) {
        const planned = await this.plan(deduped, createdAt, refused);
        unique = planned.accepted;
        origin = planned.origin;
        effects = planned.effects;
        release = planned.release;
        for (const [index, f] of refused) deduped[index]?.deliver(f);
        if (unique.length === 0) {
          this.deliverRepeats(repeats, refused, new Map());
          release?.();
          return;
        }
      }
      // Armed before the commit, so a crash between commit and mirror still gets healed.
      await this.hooks.armAlarm();
      const started = Date.now();
      const outcome = await this.store()
        .commitBatch(this.room, epoch, this.last, createdAt, unique, effects)
        .catch((error: unknown) => {
          this.hooks.measured?.(unique.length, Date.now() - started, "unavailable");
          throw error;
        });
      this.hooks.measured?.(unique.length, Date.now() - started, outcome.kind === "committed" ? "ok" : "rejected");
      if (outcome.kind === "rejected") {
        // Our epoch or last_seq was stale: find out which before anything else is sequenced.
        // Nothing of this batch was written; its senders retry with the same clientMsgIds.
        this.needsResync = true;
        await this.resync(epoch);
        throw new StorageError("the room's state moved under this writer; nothing was committed", "failed");
      }
      let seq = this.last;
      fresh = [];
      results = unique.map((pending, index) => {
        const original = outcome.duplicates.get(index);
        if (original) return { message: original, duplicate: true };
        seq += 1;
        const entry = entryOf(this.room.roomId, pending, seq, createdAt);
        fresh.push(entry);
        return { message: entry, duplicate: false };
      });
      this.last = outcome.lastSeq;
    } catch (error) {
      // Whatever failed, the outcome may be unknown: re-read Postgres before the next seq
      // (at the next send, or when the heal alarm fires if no send comes).
      if (this.held) {
        this.needsResync = true;
        // Not awaited, but the runtime's output gate holds the `unavailable` frames below until
        // this write is durable: no client hears of the failure unless the marker survives.
        void this.storage.put({ [IN_DOUBT_KEY]: this.last }).catch(() => {});
        void this.hooks.armAlarm().catch(() => {});
      }
      const f = this.hooks.failureOf(error, "unable to commit the message");
      deduped.forEach((pending, index) => {
        if (!refused.has(index)) pending.deliver(f);
      });
      for (const { item, original } of repeats) item.deliver(refused.get(original) ?? f);
      // The outcome may be unknown: the deletes may have committed. The mirror stays held (it
      // could otherwise write a deleted message back from memory that does not know of the
      // delete yet) until the resync has published whatever did commit.
      if (release) this.heldMirror.push(release);
      // Only after the senders heard `unavailable`: if another instance owns the room now,
      // send every client there.
      if (!this.held && this.lostWriterRole) {
        this.lostWriterRole = false;
        this.hooks.lostRole();
      }
      return;
    }
    // Committed. Publish first, in seq order, then ack: a sender sees its own entry before its
    // ack, and the next batch cannot start before both are out (we are still inside the
    // pipeline's turn).
    this.hooks.publish(fresh);
    release?.();
    unique.forEach((pending, index) => {
      const result = results[index];
      if (result) pending.deliver({ ok: true, ...result });
    });
    this.deliverRepeats(repeats, refused, new Map(origin.map((at, index) => [at, results[index]] as const)));
  }

  /** The batch without the entries the room's screen refuses (each told at once). */
  private admitted(batch: PendingEntry[]): PendingEntry[] {
    const admit = this.hooks.admit;
    if (!admit) return batch;
    return batch.filter((entry) => {
      const refused = admit(entry);
      if (refused) entry.deliver(refused);
      return !refused;
    });
  }

  /**
   * Repeats within the batch share their first copy's outcome, found by the first copy's index in
   * the deduplicated batch (planning hands the writer new objects, so identity would not find it).
   */
  private deliverRepeats(
    repeats: Array<{ item: PendingEntry; original: number }>,
    refused: Map<number, Failure>,
    results: Map<number, { message: Entry; duplicate: boolean } | undefined>,
  ): void {
    for (const { item, original } of repeats) {
      const no = refused.get(original);
      if (no) {
        item.deliver(no);
        continue;
      }
      const result = results.get(original);
      // Every first copy is either refused or committed; anything else would leave a sender waiting forever.
      if (result) item.deliver({ ok: true, message: result.message, duplicate: true });
      else item.deliver(failure(ErrorCode.Internal, "unable to commit the message; its first copy has no outcome"));
    }
  }

  /**
   * A batch that changes messages: look up what it names (one query), plan it (changes.ts), and
   * take deleted messages out of the mirror before the commit. Refusals go into `refused`.
   */
  private async plan(
    entries: PendingEntry[],
    createdAt: string,
    refused: Map<number, Failure>,
  ): Promise<{ accepted: PendingEntry[]; origin: number[]; effects: BatchEffects; release: (() => void) | undefined }> {
    const users = [...new Set(entries.map((e) => e.userId))];
    const lookup = await this.store().lookupBatch(this.room, namedSeqs(entries), users, entries);
    let plan = planBatch(entries, lookup, this.last, createdAt);
    let release: (() => void) | undefined;
    const redacts = plan.verdicts.flatMap((v) => (v.ok && v.seq !== undefined && v.entry.kind === EntryKind.Delete ? numbersOf(v.data?.redacts) : []));
    if (redacts.length > 0 && this.hooks.redact) {
      try {
        release = await this.hooks.redact(redacts);
      } catch (error) {
        // Fail closed: a delete is only committed once no copy outside Postgres can serve the text.
        const f = this.hooks.failureOf(error, "unable to delete the message");
        const deletes = new Set(entries.filter((e) => e.kind === EntryKind.Delete));
        entries.forEach((e, index) => {
          if (deletes.has(e)) refused.set(index, { ...f, code: ErrorCode.Unavailable });
        });
        plan = planBatch(
          entries.filter((e) => !deletes.has(e)),
          lookup,
          this.last,
          createdAt,
        );
      }
    }
    const accepted: PendingEntry[] = [];
    const origin: number[] = [];
    for (const v of plan.verdicts) {
      const index = entries.indexOf(v.entry);
      if (!v.ok) {
        refused.set(index, failure(v.code, v.message, v.reason));
        continue;
      }
      accepted.push({ ...v.entry, text: v.text, ...(v.data === undefined ? {} : { data: v.data }) });
      origin.push(index);
    }
    return { accepted, origin, effects: plan.effects, release };
  }

  /**
   * Re-reads the room from Postgres after an unknown outcome. If the epoch moved, another
   * instance owns the room now (see "Fencing" above): drop the writer role so the room sends its
   * clients to the new owner. If last_seq moved, the unknown commit did happen: those entries
   * are published now, before any newer seq.
   */
  private async resync(epoch: number): Promise<void> {
    try {
      await this.resyncOnce(epoch);
    } finally {
      // Whatever happened, memory now agrees with Postgres (or this instance lost the room):
      // the mirror may write again, and reads current forms.
      if (!this.needsResync) for (const release of this.heldMirror.splice(0)) release();
    }
  }

  private async resyncOnce(epoch: number): Promise<void> {
    const store = this.store();
    const state = await store.readRoomState(this.room);
    if (!state || state.writerEpoch !== epoch) {
      this.held = undefined;
      this.lostWriterRole = true;
      this.needsResync = false;
      throw new StorageError("another instance of this room took over; reconnect", "failed");
    }
    if (state.lastSeq > this.last) {
      const missed = await store.readMessages(this.room, {
        afterSeq: this.last,
        uptoSeq: state.lastSeq,
        limit: state.lastSeq - this.last,
        from: "oldest",
      });
      if (missed.length !== state.lastSeq - this.last) {
        throw new StorageError(`resync read ${missed.length} of ${state.lastSeq - this.last} entries`, "failed");
      }
      this.last = state.lastSeq;
      // Same turn as the publish: the output gate releases the frames only once the marker is
      // gone, so a crash cannot make the next instance announce them a second time.
      void this.storage.delete(IN_DOUBT_KEY).catch(() => {});
      this.hooks.publish(missed);
    } else {
      void this.storage.delete(IN_DOUBT_KEY).catch(() => {});
    }
    this.needsResync = false;
  }
}

const numberOr = (value: unknown, fallback: number): number => (typeof value === "number" ? value : fallback);

const numbersOf = (value: unknown): number[] => (Array.isArray(value) ? value.filter((v): v is number => typeof v === "number") : []);

/** A committed entry in its wire shape: the envelope, the kind's columns, and its own fields (`data`). */
export const entryOf = (roomId: string, pending: NewEntry, seq: number, createdAt: string): Entry =>
  ({
    ...pending.data,
    roomId,
    seq,
    id: pending.id,
    kind: pending.kind,
    userId: pending.userId,
    text: pending.text,
    clientMsgId: pending.clientMsgId,
    createdAt,
    ...(pending.target === undefined ? {} : { target: pending.target }),
    ...(pending.replyTo === undefined ? {} : { replyTo: pending.replyTo }),
    ...(pending.parts === undefined ? {} : { parts: pending.parts }),
  }) as Entry;

/** A room that does not exist, as every operation reports it. */
export const roomNotFound = (): ChatError => new ChatError(ErrorCode.NotFound, "unable to find the room; it does not exist");
