// Settles uploaded files: called with a database webhook's payload for each new object in the
// `files` bucket (the trigger and the sweep of migration 20261201001400), by the service only;
// files over FILES_LARGE_FILE_BYTES go to the worker.
import { createClient } from "@supabase/supabase-js";
import postgres from "postgres";
import { z } from "zod";
import { loadEnv } from "../_shared/env.ts";
import { processFile } from "../_shared/files/processing.ts";
import { serveHandler } from "../_shared/http.ts";
import { connectRealtime, type RealtimeClient } from "../_shared/realtime/client.ts";

const env = loadEnv({
  SUPABASE_DB_URL: z.string().url(),
  SUPABASE_URL: z.string().url(),
  SUPABASE_SERVICE_ROLE_KEY: z.string().min(1),
  CLAMD_HOST: z.string().min(1),
  CLAMD_PORT: z.coerce.number().int().positive(),
  MQTT_URL: z.string().min(1),
  MQTT_PASSWORD: z.string().min(1),
  // above this, the worker processes the file (an Edge Function's memory is limited)
  FILES_LARGE_FILE_BYTES: z.coerce.number().int().positive().default(25 * 1024 * 1024),
});
const sql = postgres(env.SUPABASE_DB_URL, { max: 4, onnotice: () => {} });
const storage = createClient(env.SUPABASE_URL, env.SUPABASE_SERVICE_ROLE_KEY, { auth: { persistSession: false, autoRefreshToken: false } });
let realtime: RealtimeClient | null = null;

/** Events are best effort: a broker that is away must not hold up settling files. */
async function publish(topic: string, envelope: Parameters<RealtimeClient["publish"]>[1]) {
  realtime ??= connectRealtime({ url: env.MQTT_URL, password: env.MQTT_PASSWORD, maxReconnectMs: 2000, clientId: `file-processing-${crypto.randomUUID().slice(0, 8)}` });
  const client = realtime;
  await Promise.race([
    client.connected().then(() => client.publish(topic, envelope)),
    new Promise((_, reject) => setTimeout(() => reject(new Error("broker did not answer in 2 s")), 2000)),
  ]);
}

Deno.serve(serveHandler("file-processing", (req, ctx) =>
  processFile(req, ctx, { sql, storage, clamd: { host: env.CLAMD_HOST, port: env.CLAMD_PORT }, publish, largeFileBytes: env.FILES_LARGE_FILE_BYTES })));
