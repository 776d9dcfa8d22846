// Timing and summary statistics for the benchmark. Every comparison runs its two sides
// alternately (A B, B A, A B, ...) and reports medians, so that slow drift of the machine
// (other processes, cache state, table bloat) lands on both sides alike.

/** Seconds elapsed while fn runs (monotonic clock). */
export async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const t0 = process.hrtime.bigint();
  const value = await fn();
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, value };
}

export function median(xs: number[]): number {
  return quantile(xs, 0.5);
}

/** Linear-interpolated quantile (q in [0, 1]); NaN for an empty list. */
export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

/**
 * The order in which the sides of a comparison run in round r: the first round as given,
 * the next reversed, and so on (A B, B A, A B ...). A linear drift then favours no side.
 */
export function roundOrder<T>(sides: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...sides] : [...sides].reverse();
}

export function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return 'n/a';
  if (s >= 100) return `${s.toFixed(0)} s`;
  if (s >= 10) return `${s.toFixed(1)} s`;
  if (s >= 1) return `${s.toFixed(2)} s`;
  if (s >= 0.001) return `${(s * 1000).toFixed(s >= 0.1 ? 0 : 1)} ms`;
  return `${(s * 1e6).toFixed(0)} µs`;
}

export function fmtMs(s: number): string {
  if (!Number.isFinite(s)) return 'n/a';
  return `${(s * 1000).toFixed(s >= 0.01 ? 1 : 2)} ms`;
}

export function fmtRatio(r: number): string {
  return Number.isFinite(r) ? `${r.toFixed(2)}x` : 'n/a';
}

export function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a';
}

export function fmtBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(0)} KiB`;
}

/**
 * Runs fn while sampling this process's resident set size every 50 ms: the peak, in MiB
 * (the worker runs in the bench process, so this is the worker's memory plus the bench's).
 */
export async function peakRss<T>(fn: () => Promise<T>): Promise<{ peakRssMiB: number; value: T }> {
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  try {
    const value = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { peakRssMiB: peak / 2 ** 20, value };
  } finally {
    clearInterval(sampler);
  }
}
