// The primary's side of regional replicas: which replicas are subscribed to the room, and one
// ordered push queue per replica (docs/architecture.md, "Regional replicas").
//
// Why pushes from the primary are the live feed, not a Redis subscription: a Worker cannot hold a
// Redis subscription without staying awake (Upstash's subscribe is a held HTTP stream), so every
// replica of every room would cost a running object around the clock; polling Redis costs
// requests while nothing happens. A push costs nothing while the room is idle, one request per
// batch per replica while it is not, and the replica can hibernate between pushes. Redis stays
// the gap filler near the replica (src/replica/replica.ts).
//
// Ordering: one push in flight per replica; what commits meanwhile is coalesced into the next
// push, so a replica sees batches in seq order (it still tolerates any order: feed.ts). Controls
// (end a user's sockets, end all, re-check access, ephemeral frames) travel in the same queue, so
// a revocation queued before a commit reaches the replica before that commit's entries.
//
// Faults: a failed push is retried with backoff, the queue kept; past MAX_QUEUED entries the
// oldest entries are dropped (never controls): the replica sees the gap at its next push and
// fills it. A replica that answers `subscribed: false` (no sockets left) is forgotten; the
// registry is durable so an evicted primary keeps pushing after its restart.

import type { ErrorCode } from "../protocol/errors.js";
import type { Entry, ServerFrame } from "../protocol/frames.js";

export const MAX_QUEUED = 2_000;

/** Something that is not an entry but must reach a replica in order with entries. */
export type ReplicaControl =
  /** Close the sockets of `userId` (or all) with this code: a revocation or a deleted room. */
  | { kind: "end"; code: ErrorCode; reason: string; userId?: string }
  /** Ask the primary again whether each connected user may still read (the room went private). */
  | { kind: "recheck" }
  /** An ephemeral frame (typing, presence, receipt) for the replica's sockets. */
  | { kind: "frame"; frame: ServerFrame; minProtocol: number }
  /** The typing set, for a replica to personalise (each socket hears others' typing). */
  | { kind: "typing"; userIds: string[] };

export interface ReplicaPush {
  /** Committed entries, ascending (maybe not contiguous after a drop). */
  entries: Entry[];
  /** The primary's last committed seq when it pushed. */
  lastSeq: number;
  controls: ReplicaControl[];
}

export interface FanoutDeps {
  push(name: string, batch: ReplicaPush): Promise<{ subscribed: boolean }>;
  /** Persists the registry (names only). */
  save(names: string[]): Promise<void>;
  lastSeq(): number;
  later(run: () => void, ms: number): void;
  warn(message: string, error: unknown): void;
}

interface Queue {
  entries: Entry[];
  controls: ReplicaControl[];
  inFlight: boolean;
  /** A failed push waits for its backoff: commits meanwhile queue, they do not push early. */
  backingOff: boolean;
  failures: number;
  /** Bumped by every register: a `subscribed: false` answer to a push sent before it is stale. */
  generation: number;
  /** Pushes delivered to this replica (observability). */
  pushes: number;
  lastError?: string;
}

export class ReplicaFanout {
  private readonly queues = new Map<string, Queue>();

  constructor(private readonly deps: FanoutDeps) {}

  /** The registry read back at boot. */
  restore(names: readonly string[]): void {
    for (const name of names) if (!this.queues.has(name)) this.queues.set(name, emptyQueue());
  }

  get names(): string[] {
    return [...this.queues.keys()];
  }

  /** Subscribes a replica (idempotent). Resolves once the registry is durable. */
  async register(name: string): Promise<void> {
    const known = this.queues.get(name);
    if (known) {
      known.generation++;
      return;
    }
    this.queues.set(name, emptyQueue());
    await this.deps.save(this.names);
  }

  committed(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    for (const [name, queue] of this.queues) {
      queue.entries.push(...entries);
      if (queue.entries.length > MAX_QUEUED) queue.entries.splice(0, queue.entries.length - MAX_QUEUED);
      this.pump(name, queue);
    }
  }

  control(control: ReplicaControl): void {
    for (const [name, queue] of this.queues) {
      // Ephemeral frames are not worth a growing queue while a replica is unreachable.
      if ((control.kind === "frame" || control.kind === "typing") && queue.failures > 0) continue;
      queue.controls.push(control);
      this.pump(name, queue);
    }
  }

  /** Observability: per replica, pushes made and the last failure. */
  describe(): Array<{ name: string; queued: number; failures: number; pushes: number; lastError?: string }> {
    return [...this.queues].map(([name, q]) => ({
      name,
      queued: q.entries.length,
      failures: q.failures,
      pushes: q.pushes,
      ...(q.lastError === undefined ? {} : { lastError: q.lastError }),
    }));
  }

  /** The room was deleted: nobody to push to. */
  clear(): void {
    this.queues.clear();
  }

  private pump(name: string, queue: Queue): void {
    if (queue.inFlight || queue.backingOff || (queue.entries.length === 0 && queue.controls.length === 0)) return;
    queue.inFlight = true;
    const batch: ReplicaPush = { entries: queue.entries.splice(0), controls: queue.controls.splice(0), lastSeq: this.deps.lastSeq() };
    const generation = queue.generation;
    this.deps.push(name, batch).then(
      ({ subscribed }) => {
        queue.inFlight = false;
        queue.failures = 0;
        queue.pushes++;
        // A replica that registered again after this push left (a socket joined while the push
        // was answered "no sockets") stays subscribed.
        if (!subscribed && queue.generation === generation) {
          // Commits queued meanwhile are not needed: the replica has no socket to give them to.
          if (this.queues.get(name) === queue) this.queues.delete(name);
          void this.deps.save(this.names).catch((error: unknown) => this.deps.warn("unable to save the replica registry", error));
          return;
        }
        this.pump(name, queue);
      },
      (error: unknown) => {
        queue.inFlight = false;
        queue.failures++;
        queue.lastError = error instanceof Error ? error.message : String(error);
        // Put the batch back in front, in order; drop the oldest entries past the bound (the
        // replica fills them), never a control.
        queue.entries.unshift(...batch.entries);
        if (queue.entries.length > MAX_QUEUED) queue.entries.splice(0, queue.entries.length - MAX_QUEUED);
        queue.controls.unshift(...batch.controls.filter((c) => c.kind === "end" || c.kind === "recheck"));
        if (queue.failures === 1) this.deps.warn(`pushing to replica ${name} failed; retrying`, error);
        queue.backingOff = true;
        this.deps.later(() => {
          queue.backingOff = false;
          this.pump(name, queue);
        }, Math.min(5_000, 50 * 2 ** Math.min(queue.failures, 7)));
      },
    );
  }
}

const emptyQueue = (): Queue => ({ entries: [], controls: [], inFlight: false, backingOff: false, failures: 0, pushes: 0, generation: 0 });
