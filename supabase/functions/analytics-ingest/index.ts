// Takes batches of events from browser apps, for signed-in members, and from machines, for API keys
// holding events.write (x-api-key; docs/machines.md):
// POST { events: [{ type, occurred_at, properties }] } → { accepted, rejected: [{ index, code, message }] }
// (ingest.ts; the event types in events.ts).
import { z } from "zod";
import { apiKeyGate } from "../_shared/api-keys.ts";
import { connectDatabase, functionsDatabaseUrl } from "../_shared/db.ts";
import { loadEnv } from "../_shared/env.ts";
import { serveHandler } from "../_shared/http.ts";
import { redisRateLimiter } from "../_shared/rate-limit.ts";
import { redisFromEnv } from "../_shared/redis.ts";
import { apiCallCounterFromEnv } from "../_shared/usage/api-calls.ts";
import { ingestEvents } from "./ingest.ts";

const env = loadEnv({ SUPABASE_DB_URL: z.string().url() });
// Ten connections: with four, calls under load queued for one (docs/scaling.md). Through the
// transaction pooler (DB_POOLER_URL) they are client connections, which cost Postgres nothing
// while idle.
const sql = connectDatabase(functionsDatabaseUrl(env.SUPABASE_DB_URL), { max: 10, onnotice: () => {} });
const redis = redisFromEnv();
const limiter = redisRateLimiter(redis);
const apiKeys = apiKeyGate({ sql, limiter });

Deno.serve(
  serveHandler(
    "analytics-ingest",
    {
      methods: ["POST"],
      callers: ["user", "api_key"],
      apiCalls: apiCallCounterFromEnv(redis),
      auth: { verifyApiKey: apiKeys.verify },
    },
    (req, ctx) => ingestEvents(req, ctx, { sql, limiter, apiKeys }),
  ),
);
