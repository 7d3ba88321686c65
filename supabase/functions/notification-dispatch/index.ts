// Delivers new notifications (MQTT now, e-mail through the worker); see _shared/notifications/dispatch.ts.
import postgres from "postgres";
import { z } from "zod";
import { loadEnv } from "../_shared/env.ts";
import { serveHandler } from "../_shared/http.ts";
import { dispatchBatch } from "../_shared/notifications/dispatch.ts";
import { redisRateLimiter } from "../_shared/rate-limit.ts";
import { redisFromEnv } from "../_shared/redis.ts";
import { withTimeout } from "../_shared/timeout.ts";
import { connectRealtime, type RealtimeClient } from "../_shared/realtime/client.ts";

const env = loadEnv({
  SUPABASE_DB_URL: z.string().url(),
  MQTT_URL: z.string().min(1),
  MQTT_PASSWORD: z.string().min(1),
});
const sql = postgres(env.SUPABASE_DB_URL, { max: 4, onnotice: () => {} });
const limiter = redisRateLimiter(redisFromEnv());
let realtime: RealtimeClient | null = null;

/** Publishes with the QoS of the topic's kind; a broker that does not answer in 5 s counts as away. */
async function publish(topic: string, envelope: Parameters<RealtimeClient["publish"]>[1]) {
  realtime ??= connectRealtime({ url: env.MQTT_URL, password: env.MQTT_PASSWORD, maxReconnectMs: 2000, clientId: `notification-dispatch-${crypto.randomUUID().slice(0, 8)}` });
  const client = realtime;
  await withTimeout(client.connected().then(() => client.publish(topic, envelope)), 5000, "broker");
}

Deno.serve(serveHandler("notification-dispatch", (req, ctx) => dispatchBatch(req, ctx, { sql, publish, limiter })));
