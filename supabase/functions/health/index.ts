// Public health report: Postgres, Redis, clamd and Mosquitto reachability (verify_jwt = false;
// health.ts). Everyone learns whether all is well; which service failed, and why, only the service.
import { loadEnv } from "../_shared/env.ts";
import { serveHandler } from "../_shared/http.ts";
import { HealthConfig, healthMonitor, publicReport } from "./health.ts";

const monitor = healthMonitor(loadEnv(HealthConfig.shape));

Deno.serve(serveHandler("health", { methods: ["GET"], callers: ["public", "user", "service"] }, async (_req, ctx) => {
  const report = await monitor.report();
  const status = report.status === "ok" ? 200 : 503;
  return Response.json(ctx.caller.kind === "service" ? report : publicReport(report), {
    status,
    headers: { "cache-control": "no-store" },
  });
}));
