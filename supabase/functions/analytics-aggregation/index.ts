// Rolls analytics events up into hourly and daily figures and copies the API call counters into
// usage_daily; see _shared/analytics/aggregate.ts.
import postgres from "postgres";
import { z } from "zod";
import { aggregate } from "../_shared/analytics/aggregate.ts";
import { loadEnv } from "../_shared/env.ts";
import { serveHandler } from "../_shared/http.ts";
import { redisFromEnv } from "../_shared/redis.ts";

const env = loadEnv({ SUPABASE_DB_URL: z.string().url() });
const sql = postgres(env.SUPABASE_DB_URL, { max: 2, onnotice: () => {} });
const redis = redisFromEnv();

Deno.serve(serveHandler("analytics-aggregation", (req, ctx) => aggregate(req, ctx, { sql, redis })));
