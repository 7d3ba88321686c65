// Rolls analytics events up into hourly and daily figures; see _shared/analytics/aggregate.ts.
import postgres from "postgres";
import { z } from "zod";
import { aggregate } from "../_shared/analytics/aggregate.ts";
import { loadEnv } from "../_shared/env.ts";
import { serveHandler } from "../_shared/http.ts";

const env = loadEnv({ SUPABASE_DB_URL: z.string().url() });
const sql = postgres(env.SUPABASE_DB_URL, { max: 2, onnotice: () => {} });

Deno.serve(serveHandler("analytics-aggregation", (req, ctx) => aggregate(req, ctx, { sql })));
