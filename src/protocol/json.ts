// The one guard for "a JSON object" (not an array, not null), used by every decoder on both sides.

export const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);
