// Rolling up (the analytics-aggregation function, run by pg_cron every minute and callable on
// demand by the service): app.rollup_analytics runs until no partial figures wait or the time budget
// is spent; what is left after that (a backfill) goes to the worker's analytics.rollup job.
// Another run in progress (busy) is not an error: that run or the next one does the work.
// Each call also copies the day's API call counters from Redis into usage_daily (tasks).
import type { Redis } from "@upstash/redis";
import type postgres from "postgres";
import { z } from "zod";
import { callerOf } from "../auth.ts";
import { withRequestContext } from "../db.ts";
import { HttpError } from "../errors.ts";
import { parseJson, type RequestContext } from "../http.ts";
import { readApiCalls, utcDay } from "../usage/api-calls.ts";

export const AggregateRequest = z.object({
  type: z.enum(["SCHEDULE", "ON_DEMAND"]).default("ON_DEMAND"),
  max_buckets: z.number().int().min(1).max(100_000).default(20_000),
  budget_ms: z.number().int().min(100).max(110_000).default(20_000),
  // the roll-up schedule runs both; the usage schedule copies the counters only, so it never
  // starts a roll-up of its own (a benchmark or backfill that pauses roll-ups stays alone)
  tasks: z.array(z.enum(["rollup", "api_calls"])).min(1).default(["rollup", "api_calls"]),
}).strict();

export interface Rollup {
  hours: number;
  days: number;
  pending: number;
  busy: boolean;
}

/** Runs roll-ups as the service until done or out of budget; shared with the worker's job. */
export async function rollUp(sql: postgres.Sql, correlationId: string, opts: { maxBuckets: number; budgetMs: number; onRun?: (r: Rollup) => void }) {
  const started = performance.now();
  const total = { runs: 0, hours: 0, days: 0, pending: 0, busy: false };
  do {
    const [r] = await withRequestContext(sql, { role: "service_role", claims: { role: "service_role" }, headers: { "x-request-id": correlationId } },
      (tx) => tx<Rollup[]>`select hours, days, pending::int as pending, busy from app.rollup_analytics(${opts.maxBuckets})`);
    total.runs++;
    total.hours += r.hours;
    total.days += r.days;
    total.pending = r.pending;
    total.busy = r.busy;
    opts.onRun?.(r);
  } while (!total.busy && total.pending > 0 && performance.now() - started < opts.budgetMs);
  return { ...total, ms: Math.round(performance.now() - started) };
}

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
    const [r] = await withRequestContext(sql, { role: "service_role", claims: { role: "service_role" }, headers: { "x-request-id": correlationId } },
      (tx) => tx<{ stored: number }[]>`select app.record_api_calls(${day}::date, ${tx.json(counts)}::jsonb) as stored`);
    stored[day] = r.stored;
  }
  return stored;
}

export async function aggregate(req: Request, ctx: RequestContext, deps: { sql: postgres.Sql; redis?: Redis }): Promise<Response> {
  if (req.method !== "POST") throw new HttpError(405, "method_not_allowed", "Use POST.");
  if (callerOf(req).role !== "service_role") throw new HttpError(403, "forbidden", "Only the service runs roll-ups.");
  const body = await parseJson(req, AggregateRequest);
  const answer: Record<string, unknown> = {};
  if (body.tasks.includes("rollup")) {
    const result = await rollUp(deps.sql, ctx.requestId, {
      maxBuckets: body.max_buckets, budgetMs: body.budget_ms,
      onRun: (r) => ctx.log.info("roll-up run", { ...r }),
    });
    let handedToWorker = false;
    if (result.pending > 0 && !result.busy) {
      const [job] = await withRequestContext(deps.sql, { role: "service_role", claims: { role: "service_role" } }, (tx) => tx<{ id: string | null }[]>`
        select app.enqueue_job('analytics.rollup', ${tx.json({ org_id: null, correlation_id: ctx.requestId })}::jsonb, 0, 0, 'analytics.rollup') as id`);
      handedToWorker = job.id !== null;
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
