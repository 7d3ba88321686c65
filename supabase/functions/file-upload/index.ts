// Starts an upload for a signed-in member: POST { org_id, name, size, mime_type } → 201 { file_id, path, token, ... }
// (upload.ts).
import { z } from "zod";
import { connectDatabase } from "../_shared/db.ts";
import { loadEnv } from "../_shared/env.ts";
import { serveHandler } from "../_shared/http.ts";
import { redisFromEnv } from "../_shared/redis.ts";
import { redisApiCallCounter } from "../_shared/usage/api-calls.ts";
import { startUpload } from "./upload.ts";

const env = loadEnv({ SUPABASE_DB_URL: z.string().url(), SUPABASE_URL: z.string().url(), SUPABASE_ANON_KEY: z.string().min(1) });
const sql = connectDatabase(env.SUPABASE_DB_URL, { max: 4, onnotice: () => {} });

Deno.serve(
  serveHandler(
    "file-upload",
    { methods: ["POST"], callers: ["user"], apiCalls: redisApiCallCounter(redisFromEnv()) },
    (req, ctx) => startUpload(req, ctx, { sql, supabaseUrl: env.SUPABASE_URL, anonKey: env.SUPABASE_ANON_KEY }),
  ),
);
