// Public health report: Postgres, Redis, clamd and Mosquitto reachability (verify_jwt = false).
import { loadEnv } from "../_shared/env.ts";
import { checkHealth, HealthConfig } from "../_shared/health.ts";
import { serveHandler } from "../_shared/http.ts";

const config = loadEnv(HealthConfig.shape);

Deno.serve(serveHandler("health", async () => {
  const report = await checkHealth(config);
  return Response.json(report, { status: report.status === "ok" ? 200 : 503 });
}));
