// Percentiles and a timed request loop shared by the benchmarks.
export function percentile(sorted: number[], p: number) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function summarize(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p90: percentile(s, 90), p95: percentile(s, 95), p99: percentile(s, 99) };
}

export async function timeRequests(n: number, send: () => Promise<void>) {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await send();
    out.push(performance.now() - t);
  }
  return out;
}

export const fmt = (x: number) => x.toFixed(3);
