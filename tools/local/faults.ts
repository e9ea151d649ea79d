// The wsproxy's fault modes, shared by the proxy and by tests (which POST them from workerd, so the
// JSON has to be validated: a typo in a test should fail loudly, not silently mean "none").

export type Fault =
  /** Normal relaying. */
  | { mode: "none" }
  /** Close every open connection and answer new upgrades with HTTP 503 until the mode changes. */
  | { mode: "refuse" }
  /** Close every open connection once, then behave as "none". */
  | { mode: "drop" }
  /** Hold traffic both ways: each frame delayed by delayMs, or held until the mode changes. */
  | { mode: "pause"; delayMs?: number }
  /**
   * When a client→server frame contains `pattern`, forward it, then ~150 ms later destroy the
   * connection without relaying anything Postgres answered: an ambiguous COMMIT. once defaults to true.
   */
  | { mode: "cut-after"; pattern: string; once?: boolean };

/** Returns the fault, or a message saying what is wrong with it. */
export function parseFault(input: unknown): Fault | string {
  if (typeof input !== "object" || input === null) return "fault must be a JSON object";
  const f = input as Record<string, unknown>;
  switch (f.mode) {
    case "none":
    case "refuse":
    case "drop":
      return { mode: f.mode };
    case "pause":
      if (f.delayMs === undefined) return { mode: "pause" };
      if (typeof f.delayMs !== "number" || !(f.delayMs >= 0)) return "pause.delayMs must be a number >= 0";
      return { mode: "pause", delayMs: f.delayMs };
    case "cut-after":
      if (typeof f.pattern !== "string" || f.pattern === "") return "cut-after.pattern must be a non-empty string";
      if (f.once !== undefined && typeof f.once !== "boolean") return "cut-after.once must be a boolean";
      return f.once === undefined ? { mode: "cut-after", pattern: f.pattern } : { mode: "cut-after", pattern: f.pattern, once: f.once };
    default:
      return `unknown fault mode ${JSON.stringify(f.mode)} (none | refuse | drop | pause | cut-after)`;
  }
}
