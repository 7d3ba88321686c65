// Rolling up (the analytics-aggregation function, run by pg_cron every minute and callable on
// demand by the service): app.rollup_analytics runs until no partial figures wait or the time budget
// is spent (_shared/analytics/rollup.ts); what is left after that (a backfill) goes to the worker's
// analytics.rollup job.
// Another run in progress (busy) is not an error: that run or the next one does the work.
// Each call also copies the day's API call counters from Redis into usage_daily (tasks).
import type { Redis } from "@upstash/redis";
import type postgres from "postgres";
import { z } from "zod";
import { rollUp } from "../_shared/analytics/rollup.ts";
import type { ServiceCaller } from "../_shared/auth.ts";
import { asService } from "../_shared/db.ts";
import { type HandlerContext, parseJson } from "../_shared/http.ts";
import { enqueueJob } from "../_shared/jobs.ts";
import { readApiCalls, utcDay } from "../_shared/usage/api-calls.ts";

export const AggregateRequest = z.object({
  type: z.enum(["SCHEDULE", "ON_DEMAND"]).default("ON_DEMAND"),
  max_buckets: z.number().int().min(1).max(100_000).default(20_000),
  budget_ms: z.number().int().min(100).max(110_000).default(20_000),
  // the roll-up schedule runs both; the usage schedule copies the counters only, so it never
  // starts a roll-up of its own (a benchmark or backfill that pauses roll-ups stays alone)
  tasks: z.array(z.enum(["rollup", "api_calls"])).min(1).default(["rollup", "api_calls"]),
}).strict();

/**
 * Today's counts and yesterday's: its last calls came after the last copy before midnight, and
 * copies may have failed for a while (copying again changes nothing, so yesterday costs one read).
 * Returns how many organizations' figures changed, per day.
 */
export async function copyApiCalls(sql: postgres.Sql, redis: Redis, correlationId: string, now = new Date()) {
  const days = [utcDay(now), utcDay(new Date(now.getTime() - 86400_000))];
  const stored: Record<string, number> = {};
  for (const day of days) {
    const counts = await readApiCalls(redis, day);
    const [r] = await asService(
      sql,
      correlationId,
      (tx) => tx<{ stored: number }[]>`select app.record_api_calls(${day}::date, ${tx.json(counts)}::jsonb) as stored`,
    );
    stored[day] = r.stored;
  }
  return stored;
}

export async function aggregate(
  req: Request,
  ctx: HandlerContext<ServiceCaller>,
  deps: { sql: postgres.Sql; redis?: Redis },
): Promise<Response> {
  const body = await parseJson(req, AggregateRequest);
  const answer: Record<string, unknown> = {};
  if (body.tasks.includes("rollup")) {
    const result = await rollUp(deps.sql, ctx.requestId, {
      maxBuckets: body.max_buckets,
      budgetMs: body.budget_ms,
      onRun: (r) => ctx.log.info("roll-up run", { ...r }),
    });
    let handedToWorker = false;
    if (result.pending > 0 && !result.busy) {
      const job = await asService(
        deps.sql,
        ctx.requestId,
        (tx) =>
          enqueueJob(tx, "analytics.rollup", { org_id: null, correlation_id: ctx.requestId }, {
            singletonKey: "analytics.rollup",
          }),
      );
      handedToWorker = job !== null;
    }
    Object.assign(answer, result, { handed_to_worker: handedToWorker });
  }
  if (body.tasks.includes("api_calls")) {
    // Counters that cannot be read now are read by the next call: they stay in Redis for days.
    answer.api_calls = deps.redis
      ? await copyApiCalls(deps.sql, deps.redis, ctx.requestId).catch((e) => {
        ctx.log.warn("API call counts not copied", { error: String(e) });
        return { error: "counters_unavailable" };
      })
      : null;
  }
  ctx.log.info("aggregation done", { trigger: body.type, tasks: body.tasks, ...answer });
  return Response.json(answer);
}
