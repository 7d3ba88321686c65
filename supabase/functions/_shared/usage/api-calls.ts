// API calls per organization per day: every function request served (an answer below 400) to a
// verified caller of an organization counts once for it (serveHandler's apiCallOrganization:
// docs/analytics.md). Counted in Redis (one hash a day, a field per organization), not in
// Postgres, so busy organizations do not queue on one counter row; the analytics-aggregation function copies the day's counts into usage_daily
// (app.record_api_calls), where the tier's daily limit is checked.
//
// A request only adds one to this process's tally; the tally goes to Redis in one transaction
// (HINCRBY per organization and day, EXPIRE per day) every API_CALLS_FLUSH_MS (1 s by default)
// while there is something to send, and when the function is shut down (the runtime's
// `beforeunload`, kept alive for the write by EdgeRuntime.waitUntil). A round trip to Redis per
// request cost more than the rest of a one-event analytics-ingest call; in exchange a process that
// dies without its shutdown (killed, out of memory) loses at most the last interval's counts.
import type { Redis } from "@upstash/redis";
import { z } from "zod";
import { loadEnv } from "../env.ts";
import { createLogger } from "../log.ts";
import { withTimeout } from "../timeout.ts";

export interface ApiCallCounter {
  /** One call for the organization, added to the tally (never waits, never throws). */
  count(orgId: string): void;
  /** Sends the tally now; resolves once Redis has it, or it is given up (see flushingApiCallCounter). */
  flush(): Promise<void>;
}

const DAYS_KEPT = 3; // every copy reads today's and yesterday's
export const apiCallsKey = (day: string) => `usage:api_calls:${day}`;
export const utcDay = (at: Date) => at.toISOString().slice(0, 10);

export const API_CALLS_FLUSH_MS_DEFAULT = 1000;

export interface CounterOptions {
  /** How long counts wait in memory at most (while Redis answers). */
  flushMs?: number;
  /** A write Redis has not answered within this is given up and its counts are lost. */
  timeoutMs?: number;
}

/**
 * Counts in memory and sends them every flushMs. A write Redis refuses (away, an error) puts its
 * counts back for the next one; a write that times out is given up, counts and all: Redis may
 * still apply it, and counting it again would count those calls twice.
 */
export function flushingApiCallCounter(redis: Redis, opts: CounterOptions = {}): ApiCallCounter {
  const flushMs = opts.flushMs ?? API_CALLS_FLUSH_MS_DEFAULT;
  const timeoutMs = opts.timeoutMs ?? 2000;
  const log = createLogger("api-calls");
  let tally = new Map<string, Map<string, number>>(); // day -> organization -> calls
  let timer: ReturnType<typeof setTimeout> | null = null;
  let sending: Promise<void> | null = null;

  const add = (day: string, orgId: string, n: number) => {
    let orgs = tally.get(day);
    if (!orgs) tally.set(day, orgs = new Map());
    orgs.set(orgId, (orgs.get(orgId) ?? 0) + n);
  };
  const schedule = () => {
    timer ??= setTimeout(() => {
      timer = null;
      void flush();
    }, flushMs);
  };

  async function send() {
    const batch = tally;
    tally = new Map();
    const tx = redis.multi();
    for (const [day, orgs] of batch) {
      for (const [orgId, n] of orgs) tx.hincrby(apiCallsKey(day), orgId, n);
      tx.expire(apiCallsKey(day), DAYS_KEPT * 86400);
    }
    let refused = false;
    const exec = tx.exec().catch((e) => {
      refused = true;
      throw e;
    });
    try {
      await withTimeout(exec, timeoutMs, "API call counter");
    } catch (e) {
      const calls = [...batch.values()].reduce((sum, orgs) => sum + [...orgs.values()].reduce((a, b) => a + b, 0), 0);
      if (refused) {
        for (const [day, orgs] of batch) for (const [orgId, n] of orgs) add(day, orgId, n);
        log.warn("API calls kept for the next write: Redis refused them", { calls, error: String(e) });
        schedule();
      } else {
        exec.catch(() => {});
        log.warn("API calls not counted: Redis did not answer in time", { calls, error: String(e) });
      }
    }
  }

  async function flush(): Promise<void> {
    if (timer) clearTimeout(timer);
    timer = null;
    // one write at a time: what arrives meanwhile goes in the next
    while (sending) await sending;
    if (tally.size === 0) return;
    sending = send().finally(() => sending = null);
    await sending;
  }

  return {
    count(orgId) {
      add(utcDay(new Date()), orgId, 1);
      schedule();
    },
    flush,
  };
}

/**
 * A function's counter: flushed every API_CALLS_FLUSH_MS (validated: 10 to 60,000 ms) and when the
 * runtime shuts the function down (edge-runtime's `beforeunload`; the local function host sends
 * it on SIGTERM), the write kept alive with EdgeRuntime.waitUntil where the runtime has it.
 */
export function apiCallCounterFromEnv(redis: Redis): ApiCallCounter {
  const { API_CALLS_FLUSH_MS } = loadEnv({
    API_CALLS_FLUSH_MS: z.coerce.number().int().min(10).max(60_000).default(API_CALLS_FLUSH_MS_DEFAULT),
  });
  const counter = flushingApiCallCounter(redis, { flushMs: API_CALLS_FLUSH_MS });
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  if (typeof g.addEventListener === "function") {
    g.addEventListener("beforeunload", () => {
      const written = counter.flush();
      g.EdgeRuntime?.waitUntil?.(written);
    });
  }
  return counter;
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
