// Reachability of the services the backend depends on, each check bounded in time so one dead
// service cannot hang the report.
// @ts-types="../_shared/types/clamdjs.d.ts"
import clamd from "clamdjs";
import mqtt from "mqtt";
import postgres from "postgres";
import { Redis } from "@upstash/redis";
import { z } from "zod";
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

async function checkPostgres(url: string) {
  const sql = postgres(url, { max: 1, connect_timeout: 2, idle_timeout: 1, onnotice: () => {} });
  try {
    await sql`select 1`;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

async function checkRedis(url: string, token: string) {
  const redis = new Redis({ url, token, retry: false, enableTelemetry: false });
  const pong = await redis.ping();
  if (pong !== "PONG") throw new Error(`unexpected reply ${pong}`);
}

async function checkClamd(host: string, port: number) {
  if (!(await clamd.ping(host, port, 2000))) throw new Error("clamd did not answer PONG");
}

function checkMosquitto(url: string, username: string, password: string) {
  return new Promise<void>((resolve, reject) => {
    const client = mqtt.connect(url, {
      username,
      password,
      reconnectPeriod: 0,
      connectTimeout: 2000,
      clientId: `health-${crypto.randomUUID().slice(0, 8)}`,
      clean: true,
    });
    client.once("connect", () => client.end(true, {}, () => resolve()));
    client.once("error", (e) => {
      client.end(true);
      reject(e);
    });
  });
}

export async function checkHealth(cfg: HealthConfig, timeoutMs = 2500): Promise<HealthReport> {
  const [pg, redis, clam, mosq] = await Promise.all([
    timed(() => checkPostgres(cfg.SUPABASE_DB_URL), timeoutMs),
    timed(() => checkRedis(cfg.UPSTASH_REDIS_REST_URL, cfg.UPSTASH_REDIS_REST_TOKEN), timeoutMs),
    timed(() => checkClamd(cfg.CLAMD_HOST, cfg.CLAMD_PORT), timeoutMs),
    timed(() => checkMosquitto(cfg.MQTT_URL, cfg.MQTT_USERNAME, cfg.MQTT_PASSWORD), timeoutMs),
  ]);
  const checks = { postgres: pg, redis, clamd: clam, mosquitto: mosq };
  return { status: Object.values(checks).every((c) => c.ok) ? "ok" : "degraded", checks };
}
