// Public health report: Postgres, Redis, clamd and Mosquitto reachability (verify_jwt = false; health.ts).
import { loadEnv } from "../_shared/env.ts";
import { serveHandler } from "../_shared/http.ts";
import { checkHealth, HealthConfig } from "./health.ts";

const config = loadEnv(HealthConfig.shape);

Deno.serve(serveHandler("health", { methods: ["GET"], callers: ["public", "user", "service"] }, async () => {
  const report = await checkHealth(config);
  return Response.json(report, { status: report.status === "ok" ? 200 : 503 });
}));
