// Percentiles by nearest rank on the full sample (no histograms, no interpolation): with n
// samples, p99 is the ceil(0.99·n)-th smallest, so with fewer than 100 samples p99 is the max.

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

export const percentile = (sorted: Float64Array, p: number): number => {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
};

export const summarize = (samples: readonly number[]): Summary => {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.length ? (sorted[sorted.length - 1] ?? Number.NaN) : Number.NaN,
    mean: sorted.length ? sum / sorted.length : Number.NaN,
  };
};

export const median = (values: readonly number[]): number => percentile(Float64Array.from(values).sort(), 50);

/** Milliseconds with sensible precision: 0.42, 3.1, 27, 1,204. */
export const ms = (value: number): string => {
  if (!Number.isFinite(value)) return "–";
  if (value < 1) return value.toFixed(2);
  if (value < 10) return value.toFixed(1);
  return Math.round(value).toLocaleString("en-US");
};

export const int = (value: number): string => (Number.isFinite(value) ? Math.round(value).toLocaleString("en-US") : "–");

export const ratio = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(value < 10 ? 2 : 1)}×` : "–");
