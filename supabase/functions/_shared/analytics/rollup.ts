// Rolling analytics up: app.rollup_analytics runs until no partial figures wait or the time
// budget is spent. Shared by the analytics-aggregation function and the worker's analytics.rollup
// job (a backfill the function hands over).
import type postgres from "postgres";
import { asService } from "../db.ts";

export interface Rollup {
  hours: number;
  days: number;
  pending: number;
  busy: boolean;
}

/** Runs roll-ups as the service until done or out of budget. */
export async function rollUp(
  sql: postgres.Sql,
  correlationId: string,
  opts: { maxBuckets: number; budgetMs: number; onRun?: (r: Rollup) => void },
) {
  const started = performance.now();
  const total = { runs: 0, hours: 0, days: 0, pending: 0, busy: false };
  do {
    const [r] = await asService(
      sql,
      correlationId,
      (tx) => tx<Rollup[]>`select hours, days, pending::int as pending, busy from app.rollup_analytics(${opts.maxBuckets})`,
    );
    total.runs++;
    total.hours += r.hours;
    total.days += r.days;
    total.pending = r.pending;
    total.busy = r.busy;
    opts.onRun?.(r);
  } while (!total.busy && total.pending > 0 && performance.now() - started < opts.budgetMs);
  return { ...total, ms: Math.round(performance.now() - started) };
}
