// The worker as an object: start (pg-boss, queues, schedules, handlers, HTTP) and a graceful stop
// that stops taking jobs and waits for running ones (pg-boss's graceful stop) up to a grace period;
// what is still running then is left to expire and be retried, never lost.
import http from "node:http";
import { createClient } from "@supabase/supabase-js";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { PgBoss } from "pg-boss";
import type pg from "pg";
import postgres from "postgres";
import { createLogger } from "../../supabase/functions/_shared/log.ts";
import { isDisabled, type WorkerEnv } from "./env.ts";
import { createMetrics } from "./metrics.ts";
import { ensureQueues } from "./queues.ts";
import type { JobDefinition } from "./registry.ts";
import { OrganizationLiveness, startWorkers } from "./runner.ts";
import { createStatementPool } from "./tenant-statement.ts";

const log = createLogger("worker");

export interface Worker {
  boss: PgBoss;
  sql: postgres.Sql;
  pool: pg.Pool;
  port: number;
  stop(): Promise<void>;
}

export async function startWorker(env: WorkerEnv, jobs: readonly JobDefinition[]): Promise<Worker> {
  // useListenNotify: jobs on notify queues start as soon as they are committed, not at the next poll.
  const boss = new PgBoss({
    connectionString: env.DATABASE_URL,
    application_name: "saas-backend-worker",
    schedule: env.WORKER_SCHEDULES === "on",
    useListenNotify: true,
    superviseIntervalSeconds: env.WORKER_SUPERVISE_SECONDS,
    cronMonitorIntervalSeconds: env.WORKER_CRON_MONITOR_SECONDS,
    // pg-boss decides per queue from its cached queue list whether NOTIFY applies; queues made at
    // start would otherwise wait for the default 60 s refresh, fetching slowly until then.
    queueCacheIntervalSeconds: 5,
  });
  let healthy = true;
  boss.on("error", (e: unknown) => log.error("pg-boss error", { error: e instanceof Error ? e.message : JSON.stringify(e) }));
  const sql = postgres(env.DATABASE_URL, {
    max: 10,
    onnotice: () => {},
    connection: { application_name: "saas-backend-worker-jobs" },
  });
  const pool = createStatementPool(env.DATABASE_URL);
  // Jobs switched off keep their queues, so what is enqueued for them waits for a worker that runs them.
  const running = jobs.filter((j) => !isDisabled(j.queue, env.WORKER_DISABLED_JOBS));
  await boss.start();
  await ensureQueues(boss, jobs);
  if (env.WORKER_SCHEDULES === "on") {
    for (const job of running.filter((j) => j.schedule)) {
      await boss.schedule(job.queue, job.schedule!.cron, { org_id: null, correlation_id: `schedule:${job.queue}` }, {
        tz: "UTC",
      });
    }
  }
  const metrics = createMetrics(boss, () => jobs.map((j) => j.queue));
  const supabase = env.SUPABASE_URL && env.SUPABASE_SERVICE_ROLE_KEY
    ? createClient<Database>(env.SUPABASE_URL, env.SUPABASE_SERVICE_ROLE_KEY, {
      auth: { persistSession: false, autoRefreshToken: false },
    })
    : null;
  await startWorkers(boss, running, {
    sql,
    pool,
    supabase,
    metrics,
    concurrency: env.WORKER_CONCURRENCY,
    liveness: new OrganizationLiveness(),
  });

  const server = http.createServer(async (req, res) => {
    if (req.url === "/health") {
      let db = false;
      try {
        await sql`select 1`;
        db = true;
      } catch { /* reported below */ }
      const ok = healthy && db;
      res.writeHead(ok ? 200 : 503, { "content-type": "application/json" });
      return void res.end(
        JSON.stringify({
          status: ok ? "ok" : "degraded",
          database: db,
          queues: running.length,
          disabled: jobs.length - running.length,
        }),
      );
    }
    if (req.url === "/metrics") {
      try {
        const body = await metrics.registry.metrics();
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        return void res.end(body);
      } catch (e) {
        res.writeHead(503, { "content-type": "text/plain" });
        return void res.end(`metrics unavailable: ${e}`);
      }
    }
    res.writeHead(404, { "content-type": "application/json" }).end(
      '{"error":{"code":"not_found","message":"GET /health or /metrics"}}',
    );
  });
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(env.WORKER_PORT, env.WORKER_HOST, resolve));
  const port = (server.address() as { port: number }).port;
  log.info("worker started", {
    port,
    queues: running.map((j) => j.queue),
    disabled: jobs.filter((j) => !running.includes(j)).map((j) => j.queue),
  });

  let stopping: Promise<void> | null = null;
  return {
    boss,
    sql,
    pool,
    port,
    stop() {
      stopping ??= (async () => {
        healthy = false;
        log.info("worker stopping: finishing running jobs", { grace_seconds: env.WORKER_SHUTDOWN_GRACE_SECONDS });
        await boss.stop({ graceful: true, timeout: env.WORKER_SHUTDOWN_GRACE_SECONDS * 1000 });
        server.close();
        await sql.end({ timeout: 5 });
        await pool.end();
        log.info("worker stopped");
      })();
      return stopping;
    },
  };
}
