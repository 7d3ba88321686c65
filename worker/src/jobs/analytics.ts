// Backfills of analytics roll-ups that outgrow a function call: the same runs as the
// analytics-aggregation function, until no partial figures wait, with progress in the log.
import { z } from "zod";
import { rollUp } from "../../../supabase/functions/_shared/analytics/aggregate.ts";
import { BasePayload, DEFAULT_OPTIONS, defineJob } from "../registry.ts";

export const analyticsRollup = defineJob({
  queue: "analytics.rollup",
  payload: BasePayload.extend({ org_id: z.null() }),
  scopes: [],
  tenancy: "all-organizations",
  options: { ...DEFAULT_OPTIONS, concurrency: 1, batchSize: 1, retryLimit: 5 },
  async handler(ctx) {
    let runs = 0;
    const result = await rollUp(ctx.sql, ctx.correlationId, {
      maxBuckets: 20_000, budgetMs: 30 * 60_000,
      onRun: (r) => {
        runs++;
        ctx.log.info("roll-up progress", { run: runs, ...r });
      },
    });
    ctx.log.info("roll-up backfill done", result);
    return result;
  },
});
