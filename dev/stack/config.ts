// Where the local stack keeps its state and which ports it uses. The ports are Supabase's local
// range (see docs/local-stack.md) so nothing collides with system services.
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const STATE = process.env.STACK_STATE_DIR ?? path.join(ROOT, ".stack");

export const PORTS = {
  gateway: 54321,
  // Overridable so a benchmark can run its own throwaway cluster with the same setup.
  postgres: Number(process.env.STACK_POSTGRES_PORT ?? 54322),
  redis: 54325,
  upstash: 54326,
  clamd: 54330,
  mqtt: 54383,
  mqttWs: 54384,
  worker: 54390,
  jobDashboard: 54392,
  // the reference console (examples/console), served on its own origin
  console: 54323,
  // the SMTP sink: SMTP, and HTTP to read what it caught (Supabase's local stack puts its mail viewer on 54324)
  smtp: 54327,
  mailHttp: 54324,
  // PostgREST, reached through the gateway's /rest/v1 only, and its admin server (health)
  postgrest: 54328,
  postgrestAdmin: 54329,
};

export const HOST = "127.0.0.1";
export const PG_BIN = "/usr/lib/postgresql/15/bin";
export const PG_DATA = path.join(STATE, "postgres", "data");
export const PG_SOCKET_DIR = path.join(STATE, "postgres");
export const DB_PASSWORD = "postgres";
export const DB_URL = `postgresql://postgres:${DB_PASSWORD}@${HOST}:${PORTS.postgres}/postgres`;

export const paths = {
  pids: path.join(STATE, "pids"),
  logs: path.join(STATE, "logs"),
  secrets: path.join(STATE, "secrets.json"),
  functionsEnv: path.join(STATE, "functions.env"),
  redis: path.join(STATE, "redis"),
  clamav: path.join(STATE, "clamav"),
  mosquitto: path.join(STATE, "mosquitto"),
  storage: path.join(STATE, "storage"),
  mail: path.join(STATE, "mail"),
  postgrest: path.join(STATE, "postgrest"),
  notProvided: path.join(STATE, "not-provided.json"),
  supabase: path.join(ROOT, "supabase"),
  functions: path.join(ROOT, "supabase", "functions"),
  baselineSql: path.join(ROOT, "dev", "platform", "sql"),
};
