// The organization's API for machines holding an API key (x-api-key; docs/machines.md): reads with
// paged JSON, and the writes a scope allows that no other function makes (routes.ts); its OpenAPI
// description, with analytics-ingest's, file-upload's and member-invite's, at GET /openapi.json.
import { createClient } from "@supabase/supabase-js";
import { z } from "zod";
import { apiKeyGate } from "../_shared/api-keys.ts";
import type { Database } from "../_shared/database.types.ts";
import { connectDatabase, functionsDatabaseUrl } from "../_shared/db.ts";
import { loadEnv } from "../_shared/env.ts";
import { serveHandler } from "../_shared/http.ts";
import { redisRateLimiter } from "../_shared/rate-limit.ts";
import { redisFromEnv } from "../_shared/redis.ts";
import { apiCallCounterFromEnv } from "../_shared/usage/api-calls.ts";
import { openApiDocument } from "./openapi.ts";
import { routeRequest } from "./router.ts";

const env = loadEnv({
  SUPABASE_DB_URL: z.string().url(),
  SUPABASE_URL: z.string().url(),
  SUPABASE_SERVICE_ROLE_KEY: z.string().min(1),
});
const sql = connectDatabase(functionsDatabaseUrl(env.SUPABASE_DB_URL), { max: 4, onnotice: () => {} });
const redis = redisFromEnv();
const gate = apiKeyGate({ sql, limiter: redisRateLimiter(redis) });
const storage = createClient<Database>(env.SUPABASE_URL, env.SUPABASE_SERVICE_ROLE_KEY, {
  auth: { persistSession: false, autoRefreshToken: false },
});
let described: unknown;
const openapi = () => (described ??= openApiDocument(`${env.SUPABASE_URL.replace(/\/$/, "")}/functions/v1`));

Deno.serve(
  serveHandler(
    "org-api",
    {
      methods: ["GET", "POST", "PUT", "PATCH", "DELETE"],
      callers: ["api_key", "public"],
      apiCalls: apiCallCounterFromEnv(redis),
      auth: { verifyApiKey: gate.verify },
    },
    (req, ctx) => routeRequest(req, ctx, { sql, gate, storage }, openapi),
  ),
);
