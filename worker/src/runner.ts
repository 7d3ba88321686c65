// Runs the registry's jobs. Each job: payload validated with its schema (an invalid one goes
// straight to the dead-letter queue with the validation error, never retried); a job for a
// deleted organization completes as a no-op with a log line; otherwise the handler runs, with
// the organization's request context at hand. A handler that throws fails the attempt and
// pg-boss retries it with exponential backoff, then dead-letters it.
import type { JobResult, JobWithMetadata, PgBoss } from "pg-boss";
import type postgres from "postgres";
import { createLogger } from "../../supabase/functions/_shared/log.ts";
import type { Metrics } from "./metrics.ts";
import type { JobDefinition } from "./registry.ts";
import { asService } from "./tenant-context.ts";

const log = createLogger("worker");

export interface RunnerOptions {
  sql: postgres.Sql;
  metrics: Metrics;
  concurrency: Record<string, number>;
}

export async function startWorkers(boss: PgBoss, jobs: readonly JobDefinition[], opts: RunnerOptions) {
  for (const def of jobs) {
    await boss.work(def.queue, {
      batchSize: 1,
      includeMetadata: true as const,
      perJobResults: true as const,
      localConcurrency: opts.concurrency[def.queue] ?? def.options.concurrency,
      // NOTIFY wakes workers for new jobs; polling still finds retries whose backoff ended and
      // deferred jobs coming due, which no NOTIFY announces.
      pollingIntervalSeconds: 2,
      notifyPollingIntervalSeconds: 2,
    }, async (batch: JobWithMetadata<Record<string, unknown>>[]) => Promise.all(batch.map((job) => runOne(def, job, opts))));
  }
}

export async function runOne(def: JobDefinition, job: JobWithMetadata<Record<string, unknown>>, opts: RunnerOptions): Promise<JobResult> {
  const correlationId = typeof job.data?.correlation_id === "string" ? job.data.correlation_id : job.id;
  const jlog = log.child({ correlation_id: correlationId, queue: def.queue, job_id: job.id, attempt: job.retryCount + 1 });
  const settle = (outcome: string, result: JobResult) => {
    opts.metrics.outcomes.inc({ queue: def.queue, outcome });
    return result;
  };

  const parsed = def.payload.safeParse(job.data);
  const orgId = parsed.success ? (parsed.data as { org_id: string | null }).org_id : null;
  if (!parsed.success || (def.tenancy === "organization" && !orgId)) {
    const issues = parsed.success ? [{ path: ["org_id"], message: "this job needs an organization" }] : parsed.error.issues;
    jlog.warn("invalid payload, dead-lettered", { issues });
    return settle("dead_lettered", { id: job.id, status: "deadletter", output: { error: "invalid_payload", issues } });
  }

  if (orgId && !def.runsOnDeletedOrganization) {
    const [org] = await asService(opts.sql, correlationId, (tx) => tx`select deleted_at from public.organizations where id = ${orgId}`);
    if (!org || org.deleted_at) {
      jlog.info("organization deleted, job skipped", { org_id: orgId });
      return settle("skipped", { id: job.id, status: "completed", output: { skipped: "organization deleted" } });
    }
  }

  const started = performance.now();
  try {
    const output = await def.handler({
      sql: opts.sql,
      log: jlog,
      job: { id: job.id, queue: def.queue, retryCount: job.retryCount, signal: job.signal },
      tenant: orgId ? { id: job.id, orgId, scopes: def.scopes, correlationId } : null,
      correlationId,
    }, parsed.data);
    opts.metrics.duration.observe({ queue: def.queue }, (performance.now() - started) / 1000);
    jlog.info("job completed", { ms: +(performance.now() - started).toFixed(1) });
    return settle("completed", { id: job.id, status: "completed", output: output ?? null });
  } catch (e) {
    opts.metrics.duration.observe({ queue: def.queue }, (performance.now() - started) / 1000);
    const message = e instanceof Error ? e.message : String(e);
    jlog.error("job failed", { error: message, retries_left: job.retryLimit - job.retryCount });
    return settle("failed", { id: job.id, status: "failed", output: { error: "handler_failed", message } });
  }
}
