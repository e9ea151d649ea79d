// Metrics across rooms, through Workers Analytics Engine (`[[analytics_engine_datasets]]`,
// binding METRICS). Every room is its own object, so nothing inside one sees the whole
// deployment; Analytics Engine aggregates data points written by every Worker isolate and room
// object, queried with SQL (docs/observability.md has the schema and example queries).
//
// One data point layout for every metric, so one query shape reads them all:
//   index1  tenant ("-" before authentication): the sampling key, so a busy tenant cannot
//           crowd the others out of a sampled query
//   blob1   metric name (request, send, commit, mirror_lag, socket)
//   blob2   tenant      blob3 room id ("" when none)
//   blob4   operation (a route such as "GET /v1/rooms/:roomId/messages", or a room step)
//   blob5   outcome: "ok" or an error code       blob6 detail (HTTP status, socket event, …)
//   double1 value (1 per event, or the amount: batch size, lag in seqs, open sockets)
//   double2 duration in ms (0 when not timed)
//
// A missing binding makes every call a no-op (Analytics Engine also records nothing locally), and
// a writer can be injected in tests: `metrics({ METRICS: fake })`. Writing never throws.

export const METRIC = {
  /** One per HTTP request the Worker answers (value 1, duration, outcome by code). */
  request: "request",
  /** One per send the room answered (value = number of sends, outcome ok or the error code). */
  send: "send",
  /** One per commit batch (value = batch size in entries, duration of the statement). */
  commit: "commit",
  /** The mirror's lag behind Postgres, in seqs, when a mirror pass ends (value = lag). */
  mirrorLag: "mirror_lag",
  /** A socket opened, closed or was shed (value = sockets open in the room afterwards). */
  socket: "socket",
} as const;

export type MetricName = (typeof METRIC)[keyof typeof METRIC];

export interface MetricLabels {
  tenant?: string;
  room?: string;
  op?: string;
  /** "ok" or an error code (src/protocol/errors.ts). */
  code?: string;
  detail?: string;
}

/** What Analytics Engine's binding offers (and what a test fake implements). */
export interface MetricsWriter {
  writeDataPoint(point: AnalyticsEngineDataPoint): void;
}

export interface MetricsEnv {
  METRICS?: MetricsWriter;
}

/** Blobs are capped at 16 KB per point in total; ours are short, but a long room id must not cost a point. */
const blob = (value: string | undefined, max = 256): string => (value ?? "").slice(0, max);

export class Metrics {
  constructor(private readonly writer: MetricsWriter | undefined) {}

  /** The generic form: every helper below is one call of this. */
  count(name: MetricName, labels: MetricLabels = {}, value = 1, durationMs = 0): void {
    if (!this.writer) return;
    try {
      this.writer.writeDataPoint({
        indexes: [blob(labels.tenant || "-", 96)],
        blobs: [name, blob(labels.tenant), blob(labels.room), blob(labels.op), blob(labels.code ?? "ok"), blob(labels.detail)],
        doubles: [Number.isFinite(value) ? value : 0, Number.isFinite(durationMs) ? Math.max(0, durationMs) : 0],
      });
    } catch {
      // Metrics are best effort: losing a data point must never fail a request or a commit.
    }
  }

  /** The Worker, once per request. */
  request(labels: { tenant?: string; room?: string; route: string; status: number; code: string }, durationMs: number): void {
    this.count(
      METRIC.request,
      { tenant: labels.tenant, room: labels.room, op: labels.route, code: labels.code, detail: String(labels.status) },
      1,
      durationMs,
    );
  }

  /** The room, when it answers sends: `code` "ok" for acks (duplicates included), else the error code. */
  sends(tenant: string, room: string, code: string, count = 1, via: "ws" | "http" | "replica" = "ws"): void {
    this.count(METRIC.send, { tenant, room, op: "send", code, detail: via }, count);
  }

  /** The room, once per commit statement: entries in the batch, its duration, "ok" or the error code. */
  commit(tenant: string, room: string, batchSize: number, durationMs: number, code = "ok"): void {
    this.count(METRIC.commit, { tenant, room, op: "commit", code }, batchSize, durationMs);
  }

  /** The room, after a mirror pass (or a failed one): how many seqs Redis is behind Postgres. */
  mirrorLag(tenant: string, room: string, lagSeqs: number, code = "ok"): void {
    this.count(METRIC.mirrorLag, { tenant, room, op: "mirror", code }, lagSeqs);
  }

  /** The room, when a socket opens, closes or is shed: `openNow` = the room's open sockets afterwards. */
  socket(tenant: string, room: string, event: "open" | "close" | "shed", openNow: number, code = "ok"): void {
    this.count(METRIC.socket, { tenant, room, op: "socket", code, detail: event }, openNow);
  }
}

/** The metrics of this env: the METRICS binding, or a no-op when it is absent. */
export const metrics = (env: MetricsEnv): Metrics => new Metrics(env.METRICS);
