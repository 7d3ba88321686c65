// Settles uploaded files: called with a database webhook's payload for each new object in the
// `files` bucket (the trigger and the sweep of supabase/schemas/140_file_processing.sql), by the
// service only; files over FILES_LARGE_FILE_BYTES go to the worker (processing.ts).
import { createClient } from "@supabase/supabase-js";
import { z } from "zod";
import type { Database } from "../_shared/database.types.ts";
import { connectDatabase, functionsDatabaseUrl } from "../_shared/db.ts";
import { loadEnv } from "../_shared/env.ts";
import { serveHandler } from "../_shared/http.ts";
import { lazyPublisher } from "../_shared/realtime/publisher.ts";
import { processFile } from "./processing.ts";

const env = loadEnv({
  SUPABASE_DB_URL: z.string().url(),
  SUPABASE_URL: z.string().url(),
  SUPABASE_SERVICE_ROLE_KEY: z.string().min(1),
  CLAMD_HOST: z.string().min(1),
  CLAMD_PORT: z.coerce.number().int().positive(),
  MQTT_URL: z.string().min(1),
  MQTT_PASSWORD: z.string().min(1),
  // Above this, the worker processes the file: a hosted Edge Function has 256 MB. bench:functions
  // measured a peak of 186 MB for a 10 MB text file and over 256 MB for 24 MB (the bytes, their
  // Blob, their text and clamd's chunks are in memory at once).
  FILES_LARGE_FILE_BYTES: z.coerce.number().int().positive().default(10 * 1024 * 1024),
});
const sql = connectDatabase(functionsDatabaseUrl(env.SUPABASE_DB_URL), { max: 4, onnotice: () => {} });
const storage = createClient<Database>(env.SUPABASE_URL, env.SUPABASE_SERVICE_ROLE_KEY, {
  auth: { persistSession: false, autoRefreshToken: false },
});
// File events are best effort: a broker that does not answer in 2 s must not hold up settling files.
const publish = lazyPublisher({ url: env.MQTT_URL, password: env.MQTT_PASSWORD, name: "file-processing", timeoutMs: 2000 });

Deno.serve(
  serveHandler("file-processing", { methods: ["POST"], callers: ["service"] }, (req, ctx) =>
    processFile(req, ctx, {
      sql,
      storage,
      clamd: { host: env.CLAMD_HOST, port: env.CLAMD_PORT },
      publish,
      largeFileBytes: env.FILES_LARGE_FILE_BYTES,
    })),
);
