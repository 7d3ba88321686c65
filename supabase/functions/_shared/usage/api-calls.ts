// API calls per organization per day: every function request whose access token names an active
// organization (the org_id claim) counts once, whatever its answer. Counted in Redis (one hash a
// day, a field per organization), not in Postgres, so busy organizations do not queue on one
// counter row; the analytics-aggregation function copies the day's counts into usage_daily
// (app.record_api_calls), where the tier's daily limit is checked.
import type { Redis } from "@upstash/redis";
import { z } from "zod";
import { withTimeout } from "../timeout.ts";

export interface ApiCallCounter {
  count(orgId: string): Promise<void>;
}

const DAYS_KEPT = 3; // every copy reads today's and yesterday's
export const apiCallsKey = (day: string) => `usage:api_calls:${day}`;
export const utcDay = (at: Date) => at.toISOString().slice(0, 10);

/** A Redis slower than timeoutMs costs the figure a call (the request waits no longer for it). */
export function redisApiCallCounter(redis: Redis, timeoutMs = 1000): ApiCallCounter {
  return {
    async count(orgId) {
      const key = apiCallsKey(utcDay(new Date()));
      const p = redis.pipeline();
      p.hincrby(key, orgId, 1);
      p.expire(key, DAYS_KEPT * 86400);
      await withTimeout(p.exec(), timeoutMs, "API call counter");
    },
  };
}

const Counts = z.record(z.uuid(), z.coerce.number().int().nonnegative());

/** One day's counts, { org_id: calls }; fields that are not organization ids are left out. */
export async function readApiCalls(redis: Redis, day: string): Promise<Record<string, number>> {
  const raw = (await redis.hgetall<Record<string, unknown>>(apiCallsKey(day))) ?? {};
  const counts: Record<string, number> = {};
  for (const [field, value] of Object.entries(raw)) {
    const one = Counts.safeParse({ [field]: value });
    if (one.success) Object.assign(counts, one.data);
  }
  return counts;
}
