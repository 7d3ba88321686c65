// Starts an upload for a signed-in member, or for a machine's API key holding files.write
// (x-api-key; docs/machines.md): POST { org_id, name, size, mime_type } → 201 { file_id, path, token, ... }
// (upload.ts).
import { z } from "zod";
import { apiKeyGate } from "../_shared/api-keys.ts";
import { connectDatabase, functionsDatabaseUrl } from "../_shared/db.ts";
import { loadEnv } from "../_shared/env.ts";
import { serveHandler } from "../_shared/http.ts";
import { redisRateLimiter } from "../_shared/rate-limit.ts";
import { redisFromEnv } from "../_shared/redis.ts";
import { apiCallCounterFromEnv } from "../_shared/usage/api-calls.ts";
import { startUpload } from "./upload.ts";

const env = loadEnv({
  SUPABASE_DB_URL: z.string().url(),
  SUPABASE_URL: z.string().url(),
  SUPABASE_ANON_KEY: z.string().min(1),
  SUPABASE_SERVICE_ROLE_KEY: z.string().min(1),
});
const sql = connectDatabase(functionsDatabaseUrl(env.SUPABASE_DB_URL), { max: 4, onnotice: () => {} });
const redis = redisFromEnv();
const gate = apiKeyGate({ sql, limiter: redisRateLimiter(redis) });

Deno.serve(
  serveHandler(
    "file-upload",
    {
      methods: ["POST"],
      callers: ["user", "api_key"],
      apiCalls: apiCallCounterFromEnv(redis),
      auth: { verifyApiKey: gate.verify },
    },
    (req, ctx) =>
      startUpload(req, ctx, {
        sql,
        supabaseUrl: env.SUPABASE_URL,
        anonKey: env.SUPABASE_ANON_KEY,
        apiKeys: { gate, serviceKey: env.SUPABASE_SERVICE_ROLE_KEY },
      }),
  ),
);
