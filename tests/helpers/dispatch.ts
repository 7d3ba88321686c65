// notification-dispatch run in-process against the stack's Postgres, Redis and broker, for tests
// that set up a batch (with the insert trigger off) and then watch one dispatch of it.
import crypto from "node:crypto";
import { Redis } from "@upstash/redis";
import { dispatchBatch, type DispatchDeps } from "../../supabase/functions/notification-dispatch/dispatch.ts";
import { createLogger } from "../../supabase/functions/_shared/log.ts";
import { redisRateLimiter } from "../../supabase/functions/_shared/rate-limit.ts";
import { lazyPublisher } from "../../supabase/functions/_shared/realtime/publisher.ts";
import { HOST, PORTS, secrets } from "./stack.ts";

export const servicePublisher = (name: string) =>
  lazyPublisher({ url: `mqtt://${HOST}:${PORTS.mqtt}`, password: secrets().serviceRoleKey, name, timeoutMs: 5000 });

/** The stack's Redis behind the rate limiter; a prefix of its own keeps a test's limits from reaching anyone else's. */
export const stackRateLimiter = (prefix = "rl") =>
  redisRateLimiter(new Redis({ url: `http://${HOST}:${PORTS.upstash}`, token: secrets().upstashToken }), prefix);

/** One dispatch of a batch, as the sweep asks for it. */
export async function dispatchOnce(batchId: string, deps: DispatchDeps): Promise<Response> {
  const req = new Request("http://functions.local/notification-dispatch", {
    method: "POST",
    body: JSON.stringify({ type: "SWEEP", table: "notifications", schema: "public", batch_id: batchId }),
  });
  const requestId = crypto.randomUUID();
  const ctx = { requestId, log: createLogger("dispatch-test", { request_id: requestId }), caller: { kind: "service" as const } };
  return await dispatchBatch(req, ctx, deps);
}
