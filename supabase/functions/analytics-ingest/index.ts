// Takes batches of events from browser apps: POST { events: [{ type, occurred_at, properties }] }
// → { accepted, rejected: [{ index, code, message }] }; see _shared/analytics/ingest.ts.
import postgres from "postgres";
import { z } from "zod";
import { ingestEvents } from "../_shared/analytics/ingest.ts";
import { loadEnv } from "../_shared/env.ts";
import { serveHandler } from "../_shared/http.ts";
import { redisRateLimiter } from "../_shared/rate-limit.ts";
import { redisFromEnv } from "../_shared/redis.ts";
import { redisApiCallCounter } from "../_shared/usage/api-calls.ts";

const env = loadEnv({ SUPABASE_DB_URL: z.string().url() });
const sql = postgres(env.SUPABASE_DB_URL, { max: 4, onnotice: () => {} });
const redis = redisFromEnv();
const limiter = redisRateLimiter(redis);

Deno.serve(serveHandler("analytics-ingest", (req, ctx) => ingestEvents(req, ctx, { sql, limiter }), { apiCalls: redisApiCallCounter(redis) }));
