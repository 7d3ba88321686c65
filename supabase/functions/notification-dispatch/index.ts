// Delivers new notifications (MQTT now, e-mail through the worker), for the service only; see dispatch.ts.
import { z } from "zod";
import { connectDatabase, functionsDatabaseUrl } from "../_shared/db.ts";
import { loadEnv } from "../_shared/env.ts";
import { serveHandler } from "../_shared/http.ts";
import { redisRateLimiter } from "../_shared/rate-limit.ts";
import { lazyPublisher } from "../_shared/realtime/publisher.ts";
import { redisFromEnv } from "../_shared/redis.ts";
import { dispatchBatch } from "./dispatch.ts";

const env = loadEnv({
  SUPABASE_DB_URL: z.string().url(),
  MQTT_URL: z.string().min(1),
  MQTT_PASSWORD: z.string().min(1),
});
const sql = connectDatabase(functionsDatabaseUrl(env.SUPABASE_DB_URL), { max: 4, onnotice: () => {} });
const limiter = redisRateLimiter(redisFromEnv());
// A broker that does not answer in 5 s counts as away: the deliveries are retried later.
const publish = lazyPublisher({ url: env.MQTT_URL, password: env.MQTT_PASSWORD, name: "notification-dispatch", timeoutMs: 5000 });

Deno.serve(
  serveHandler(
    "notification-dispatch",
    { methods: ["POST"], callers: ["service"] },
    (req, ctx) => dispatchBatch(req, ctx, { sql, publish, limiter }),
  ),
);
