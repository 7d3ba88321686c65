// Backfills of analytics roll-ups that outgrow a function call: the same runs as the
// analytics-aggregation function, until no partial figures wait, with progress in the log.
import { rollUp } from "../../../supabase/functions/_shared/analytics/rollup.ts";
import { JOB_PAYLOADS } from "../../../supabase/functions/_shared/jobs.ts";
import { DEFAULT_OPTIONS, defineJob } from "../registry.ts";

export const analyticsRollup = defineJob({
  queue: "analytics.rollup",
  payload: JOB_PAYLOADS["analytics.rollup"],
  scopes: [],
  tenancy: "all-organizations",
  options: { ...DEFAULT_OPTIONS, concurrency: 1, batchSize: 1, retryLimit: 5 },
  policy: "short", // one waiting backfill (key `analytics.rollup`)
  async handler(ctx) {
    let runs = 0;
    const result = await rollUp(ctx.sql, ctx.correlationId, {
      maxBuckets: 20_000,
      budgetMs: 30 * 60_000,
      onRun: (r) => {
        runs++;
        ctx.log.info("roll-up progress", { run: runs, ...r });
      },
    });
    ctx.log.info("roll-up backfill done", result);
    return result;
  },
});
