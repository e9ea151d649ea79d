// Structured logs: one JSON object per line, which Workers Logs (`[observability]` in
// wrangler.toml) indexes field by field. The Worker writes one line per request; the room object
// writes one per notable event (a failed commit, a mirror outage, a fenced writer).
//
// What must never be logged: tokens, secrets, and what users wrote. The fields are typed as flat
// primitives, and `log` enforces the rule at runtime as well, because a log line is forever: keys
// that name such things are dropped, and values that look like a bearer token or a JWT are blanked.

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface LogFields {
  /** What happened, snake_case: `request`, `commit_failed`, `mirror_failed`, … */
  event: string;
  tenant?: string;
  room?: string;
  /** The operation: a route (`GET /v1/rooms/:roomId/messages`) or a room step (`commit`, `mirror`). */
  op?: string;
  status?: number;
  /** An error code from src/protocol/errors.ts, or `ok`. */
  code?: string;
  durationMs?: number;
  [field: string]: string | number | boolean | undefined;
}

/** Keys whose values are secrets or user content; dropped from every line. */
const FORBIDDEN_KEY = /token|secret|password|passwd|authorization|cookie|^text$|^body$|^message$|^content$|^jwt$|^key$/i;
/** Values that are credentials whatever their key: `Bearer …` and anything shaped like a JWT. */
const CREDENTIAL_VALUE = /bearer\s+\S+|eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.?/i;
const MAX_VALUE_CHARS = 200;

/** The line as it will be written (exported for tests and for callers that batch). */
export const logLine = (level: LogLevel, fields: LogFields): string => {
  const out: Record<string, string | number | boolean> = { level };
  const dropped: string[] = [];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    if (FORBIDDEN_KEY.test(key)) {
      dropped.push(key);
      continue;
    }
    if (typeof value === "string") {
      out[key] = CREDENTIAL_VALUE.test(value)
        ? "[redacted]"
        : value.length > MAX_VALUE_CHARS
          ? `${value.slice(0, MAX_VALUE_CHARS)}…`
          : value;
    } else if (typeof value === "number" || typeof value === "boolean") {
      out[key] = value;
    }
  }
  if (dropped.length > 0) out.redacted = dropped.join(",");
  return JSON.stringify(out);
};

/** Writes one structured line. Never throws. */
export const log = (level: LogLevel, fields: LogFields): void => {
  try {
    const line = logLine(level, fields);
    if (level === "error") console.error(line);
    else if (level === "warn") console.warn(line);
    else console.log(line);
  } catch {
    // A log line must never break the request that writes it.
  }
};

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface Logger {
  debug(fields: LogFields): void;
  info(fields: LogFields): void;
  warn(fields: LogFields): void;
  error(fields: LogFields): void;
}

/**
 * A logger that drops lines below LOG_LEVEL (debug | info | warn | error; default info). The
 * workerd tests set `warn`, so their output is not one request line per request.
 *
 * @example
 *   logger(this.env).warn({ event: "commit_failed", tenant, room, op: "commit", code: "unavailable", ...errorFields(e) });
 */
export const logger = (env: { LOG_LEVEL?: string }): Logger => {
  const configured = env.LOG_LEVEL as LogLevel | undefined;
  const min = configured !== undefined && configured in RANK ? RANK[configured] : RANK.info;
  const at =
    (level: LogLevel) =>
    (fields: LogFields): void => {
      if (RANK[level] >= min) log(level, fields);
    };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
};

/**
 * What may be logged of an error: its class and, for driver errors, their code (a Postgres
 * SQLSTATE, say). Never the message: driver messages can quote statements and Upstash errors echo
 * the command, which holds message texts.
 */
export const errorFields = (error: unknown): { error: string; errorCode?: string } => {
  if (!(error instanceof Error)) return { error: typeof error };
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && code.length <= 32 ? { error: error.name, errorCode: code } : { error: error.name };
};
