// Rolls analytics events up into hourly and daily figures and copies the API call counters into
// usage_daily (aggregate.ts). Called by pg_cron through app.call_function, by the service only.
import { z } from "zod";
import { connectDatabase, functionsDatabaseUrl } from "../_shared/db.ts";
import { loadEnv } from "../_shared/env.ts";
import { serveHandler } from "../_shared/http.ts";
import { redisFromEnv } from "../_shared/redis.ts";
import { aggregate } from "./aggregate.ts";

const env = loadEnv({ SUPABASE_DB_URL: z.string().url() });
const sql = connectDatabase(functionsDatabaseUrl(env.SUPABASE_DB_URL), { max: 2, onnotice: () => {} });
const redis = redisFromEnv();

Deno.serve(
  serveHandler(
    "analytics-aggregation",
    { methods: ["POST"], callers: ["service"] },
    (req, ctx) => aggregate(req, ctx, { sql, redis }),
  ),
);
