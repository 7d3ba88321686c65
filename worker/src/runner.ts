// Runs the registry's jobs. Each job: payload validated with its schema (an invalid one goes
// straight to the dead-letter queue with the validation error, never retried); a job for a
// deleted organization completes as a no-op with a log line; otherwise the handler runs, with
// the organization's request context at hand. A handler that throws fails the attempt and
// pg-boss retries it with exponential backoff, then dead-letters it; the organization's members
// holding jobs.manage are notified of the last failure (job.failed).
import type { SupabaseClient } from "@supabase/supabase-js";
import type { JobResult, JobWithMetadata, PgBoss } from "pg-boss";
import type pg from "pg";
import type postgres from "postgres";
import { createLogger } from "../../supabase/functions/_shared/log.ts";
import type { Metrics } from "./metrics.ts";
import { isLostConnection } from "./process-errors.ts";
import type { JobDefinition } from "./registry.ts";
import { asService } from "../../supabase/functions/_shared/db.ts";
import { withTimeout } from "../../supabase/functions/_shared/timeout.ts";
import { WORKER_USER_AGENT } from "./tenant-context.ts";

const log = createLogger("worker");

export interface RunnerOptions {
  sql: postgres.Sql;
  /** Connections for tenantStatement (node-postgres: one statement in a job's context per round trip). */
  pool: pg.Pool;
  supabase?: SupabaseClient | null;
  metrics: Metrics;
  concurrency: Record<string, number>;
  liveness: OrganizationLiveness;
}

export async function startWorkers(boss: PgBoss, jobs: readonly JobDefinition[], opts: RunnerOptions) {
  for (const def of jobs) {
    await boss.work(
      def.queue,
      workOptions(def, opts.concurrency[def.queue]),
      (batch: JobWithMetadata<Record<string, unknown>>[]) => runBatch(def, batch, opts),
    );
  }
}

/**
 * How a queue is fetched. A full batch fetches again at once (burst), so a backlog drains at full
 * speed; NOTIFY wakes idle loops for new jobs; polling every 2 s finds retries whose backoff ended
 * and deferred jobs coming due, which no NOTIFY announces.
 */
export function workOptions(def: JobDefinition, concurrency?: number) {
  return {
    batchSize: def.options.batchSize,
    burstWhenBatchFull: true,
    includeMetadata: true as const,
    perJobResults: true as const,
    localConcurrency: concurrency ?? def.options.concurrency,
    pollingIntervalSeconds: 2,
    notifyPollingIntervalSeconds: 2,
  };
}

/**
 * Which organizations are deleted, asked once per batch and remembered for a moment: deleting an
 * organization is rare, and a job that starts just after anyway finds nothing, since the policy
 * helpers hide a deleted organization from its request context.
 */
export class OrganizationLiveness {
  readonly #seen = new Map<string, { alive: boolean; at: number }>();
  readonly ttlMs: number;
  constructor(ttlMs = 2000) {
    this.ttlMs = ttlMs;
  }

  async deletedAmong(sql: postgres.Sql, orgIds: string[], correlationId: string): Promise<Set<string>> {
    const now = Date.now();
    const unknown = orgIds.filter((id) => !(now - (this.#seen.get(id)?.at ?? -Infinity) < this.ttlMs));
    if (unknown.length) {
      const live = await asService(sql, correlationId, (tx) =>
        tx<{ id: string }[]>`
        select id from public.organizations where id = any(${unknown}::uuid[]) and deleted_at is null`, WORKER_USER_AGENT);
      const alive = new Set(live.map((r) => r.id));
      for (const id of unknown) this.#seen.set(id, { alive: alive.has(id), at: now });
      if (this.#seen.size > 10_000) this.#seen.clear();
    }
    return new Set(orgIds.filter((id) => this.#seen.get(id)?.alive === false));
  }
}

/** Runs a fetched batch together. */
export async function runBatch(
  def: JobDefinition,
  batch: JobWithMetadata<Record<string, unknown>>[],
  opts: RunnerOptions,
): Promise<JobResult[]> {
  const orgIds = [
    ...new Set(batch.map((j) => j.data?.org_id).filter((id): id is string => typeof id === "string" && UUID.test(id))),
  ];
  // (bounded like a handler: a check stuck on a dead connection fails the batch, which is retried)
  const deleted = orgIds.length && !def.runsOnDeletedOrganization
    ? await untilExpired(
      throughOutages(() => opts.liveness.deletedAmong(opts.sql, orgIds, batch[0].id), def.queue),
      def.options.expireInSeconds,
      batch[0].signal,
    )
    : new Set<string>();
  return Promise.all(batch.map((job) => runOne(def, job, opts, deleted)));
}

/**
 * Asks again while the database is briefly away (a restart or failover): a batch fetched just
 * before it should run once Postgres is back, not fail while pg-boss cannot even record the
 * failure. Other errors, and an outage longer than the job's time (untilExpired), fail the batch.
 */
async function throughOutages<T>(ask: () => Promise<T>, queue: string): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await ask();
    } catch (e) {
      if (!isLostConnection(e)) throw e;
      if (attempt === 1) log.warn("database away during the organization check; asking again", { queue, error: String(e) });
      // (a restart takes about a second; asking more often only opens connections into it)
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function runOne(
  def: JobDefinition,
  job: JobWithMetadata<Record<string, unknown>>,
  opts: RunnerOptions,
  deletedOrgs: ReadonlySet<string>,
): Promise<JobResult> {
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

  if (orgId && deletedOrgs.has(orgId)) {
    jlog.info("organization deleted, job skipped", { org_id: orgId });
    return settle("skipped", { id: job.id, status: "completed", output: { skipped: "organization deleted" } });
  }

  const started = performance.now();
  try {
    const output = await untilExpired(
      def.handler({
        sql: opts.sql,
        pool: opts.pool,
        log: jlog,
        job: {
          id: job.id,
          queue: def.queue,
          retryCount: job.retryCount,
          finalAttempt: job.retryCount >= job.retryLimit,
          signal: job.signal,
        },
        supabase: opts.supabase ?? null,
        tenant: orgId ? { id: job.id, orgId, scopes: def.scopes, correlationId } : null,
        correlationId,
      }, parsed.data),
      def.options.expireInSeconds,
      job.signal,
    );
    opts.metrics.duration.observe({ queue: def.queue }, (performance.now() - started) / 1000);
    jlog.info("job completed", { ms: +(performance.now() - started).toFixed(1) });
    return settle("completed", { id: job.id, status: "completed", output: output ?? null });
  } catch (e) {
    opts.metrics.duration.observe({ queue: def.queue }, (performance.now() - started) / 1000);
    const message = e instanceof Error ? e.message : String(e);
    jlog.error("job failed", { error: message, retries_left: job.retryLimit - job.retryCount });
    if (orgId && job.retryCount >= job.retryLimit) {
      await notifyJobFailed(opts.sql, { orgId, queue: def.queue, jobId: job.id, correlationId })
        .catch((e) => jlog.warn("job.failed notification not made", { error: String(e) }));
    }
    return settle("failed", { id: job.id, status: "failed", output: { error: "handler_failed", message } });
  }
}

/**
 * Waits for a handler, but no longer than its job's time (expireInSeconds, or job.signal, which
 * pg-boss aborts when it gives up on the job first). The attempt then fails and pg-boss retries
 * it: a handler stuck on a dead connection (postgres.js can leave a transaction's queued queries
 * unsettled when its connection closes mid-way, porsager/postgres#1186) must not hold the job,
 * or the loop that runs it, for good. The stuck promise is left behind; its connection is gone.
 */
function untilExpired<T>(work: Promise<T>, seconds: number, signal?: AbortSignal): Promise<T> {
  return withTimeout(work, seconds * 1000, "the attempt (past expireInSeconds, so it is retried)", signal);
}

/** What job managers read (and are mailed): the handler's error is for developers, in the log and the job's output. */
const JOB_FAILED_TEXT = "Its last attempt failed and it will not be tried again on its own. Retry it from the Jobs screen.";

/** The last attempt failed: the organization's job managers hear it, once per job. */
function notifyJobFailed(
  sql: postgres.Sql,
  f: { orgId: string; queue: string; jobId: string; correlationId: string },
) {
  return asService(sql, f.correlationId, (tx) =>
    tx`
    select app.notify(${f.orgId}, 'job.failed', ${`A background job failed: ${f.queue}`}, ${JOB_FAILED_TEXT},
                      ${tx.json({ queue: f.queue, job_id: f.jobId })}::jsonb, '{"permission": "jobs.manage"}'::jsonb, null,
                      ${`job.failed:${f.jobId}`})`, WORKER_USER_AGENT);
}
