// Takes batches of events from browser apps: POST { events: [{ type, occurred_at, properties }] }
// → { accepted, rejected: [{ index, code, message }] }; see _shared/analytics/ingest.ts.
import postgres from "postgres";
import { Redis } from "@upstash/redis";
import { z } from "zod";
import { ingestEvents } from "../_shared/analytics/ingest.ts";
import { loadEnv } from "../_shared/env.ts";
import { serveHandler } from "../_shared/http.ts";
import { redisRateLimiter } from "../_shared/rate-limit.ts";

const env = loadEnv({
  SUPABASE_DB_URL: z.string().url(),
  UPSTASH_REDIS_REST_URL: z.string().url(),
  UPSTASH_REDIS_REST_TOKEN: z.string().min(1),
});
const sql = postgres(env.SUPABASE_DB_URL, { max: 4, onnotice: () => {} });
const limiter = redisRateLimiter(new Redis({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN, retry: { retries: 1 } }));

Deno.serve(serveHandler("analytics-ingest", (req, ctx) => ingestEvents(req, ctx, { sql, limiter })));
