// Reachability of the services the backend depends on, each check bounded in time so one dead
// service cannot hang the report. The function is public, so a burst of calls must cost the
// services nothing: clients are long-lived and the report is cached for a few seconds.
// @ts-types="../_shared/types/clamdjs.d.ts"
import clamd from "clamdjs";
import mqtt from "mqtt";
import { Redis } from "@upstash/redis";
import { z } from "zod";
import { connectDatabase, functionsDatabaseUrl } from "../_shared/db.ts";
import { withTimeout } from "../_shared/timeout.ts";

export const HealthConfig = z.object({
  SUPABASE_DB_URL: z.string().url(),
  UPSTASH_REDIS_REST_URL: z.string().url(),
  UPSTASH_REDIS_REST_TOKEN: z.string().min(1),
  CLAMD_HOST: z.string().min(1),
  CLAMD_PORT: z.coerce.number().int().positive(),
  MQTT_URL: z.string().min(1),
  MQTT_USERNAME: z.string().min(1),
  MQTT_PASSWORD: z.string().min(1),
});
export type HealthConfig = z.infer<typeof HealthConfig>;

export interface CheckResult {
  ok: boolean;
  ms: number;
  error?: string;
}

export interface HealthReport {
  status: "ok" | "degraded";
  checks: Record<"postgres" | "redis" | "clamd" | "mosquitto", CheckResult>;
}

async function timed(fn: () => Promise<unknown>, timeoutMs: number): Promise<CheckResult> {
  const started = performance.now();
  try {
    await withTimeout(fn(), timeoutMs, "the check");
    return { ok: true, ms: Math.round(performance.now() - started) };
  } catch (e) {
    return { ok: false, ms: Math.round(performance.now() - started), error: e instanceof Error ? e.message : String(e) };
  }
}

/** One long-lived client per service, checked at most once per `ttlMs`, however many ask. */
export function healthMonitor(cfg: HealthConfig, { ttlMs = 5000, timeoutMs = 2500 } = {}) {
  // max 1: a burst of requests shares one connection instead of opening one each
  const sql = connectDatabase(functionsDatabaseUrl(cfg.SUPABASE_DB_URL), {
    max: 1,
    connect_timeout: 2,
    onnotice: () => {},
    connection: { application_name: "health" },
  });
  const redis = new Redis({
    url: cfg.UPSTASH_REDIS_REST_URL,
    token: cfg.UPSTASH_REDIS_REST_TOKEN,
    retry: false,
    enableTelemetry: false,
  });
  // connected once and kept; its state is the broker's health (an unguessable id: nobody can take it over)
  let mqttError = "not connected yet";
  const broker = mqtt.connect(cfg.MQTT_URL, {
    username: cfg.MQTT_USERNAME,
    password: cfg.MQTT_PASSWORD,
    reconnectPeriod: 1000,
    connectTimeout: 2000,
    clientId: `health-${crypto.randomUUID()}`,
    clean: true,
  });
  broker.on("error", (e) => void (mqttError = e.message));
  broker.on("close", () => void (mqttError ||= "connection closed"));
  broker.on("connect", () => void (mqttError = ""));
  const brokerUp = () =>
    broker.connected ? Promise.resolve() : new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(mqttError || "not connected")), Math.min(timeoutMs, 2000));
      broker.once("connect", () => (clearTimeout(timer), resolve()));
    });

  let cached: { at: number; report: HealthReport } | null = null;
  let inFlight: Promise<HealthReport> | null = null;

  async function run(): Promise<HealthReport> {
    const [pg, red, clam, mosq] = await Promise.all([
      timed(() => sql`select 1`, timeoutMs),
      timed(async () => {
        const pong = await redis.ping();
        if (pong !== "PONG") throw new Error(`unexpected reply ${pong}`);
      }, timeoutMs),
      timed(async () => {
        if (!(await clamd.ping(cfg.CLAMD_HOST, cfg.CLAMD_PORT, 2000))) throw new Error("clamd did not answer PONG");
      }, timeoutMs),
      timed(brokerUp, timeoutMs),
    ]);
    const checks = { postgres: pg, redis: red, clamd: clam, mosquitto: mosq };
    const report: HealthReport = { status: Object.values(checks).every((c) => c.ok) ? "ok" : "degraded", checks };
    cached = { at: Date.now(), report };
    return report;
  }

  return {
    /** The latest report, at most `ttlMs` old; concurrent callers share one check. */
    report(): Promise<HealthReport> {
      if (cached && Date.now() - cached.at < ttlMs) return Promise.resolve(cached.report);
      inFlight ??= run().finally(() => (inFlight = null));
      return inFlight;
    },
    async close() {
      broker.end(true);
      await sql.end({ timeout: 1 });
    },
  };
}

/** What a caller without the service key sees: whether all is well, not which service or why. */
export function publicReport(report: HealthReport): Pick<HealthReport, "status"> {
  return { status: report.status };
}
