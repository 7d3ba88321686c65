// The job registry: each job declares its queue (`<area>.<job>`), its zod payload schema (from the
// map in supabase/functions/_shared/jobs.ts, which the functions enqueue with), the permissions it
// holds in its organization, its queue options and its handler. Enqueueing from TypeScript
// (enqueueJob in _shared/jobs.ts) and from SQL (app.enqueue_job) use the same names; the worker
// validates every payload with the schema before running it. Later features add their jobs to JOBS.
import type { SupabaseClient } from "@supabase/supabase-js";
import type pg from "pg";
import type postgres from "postgres";
import { z } from "zod";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import type { Logger } from "../../supabase/functions/_shared/log.ts";
import type { Service } from "./env.ts";
import type { TenantJob } from "./tenant-context.ts";

/** What every payload carries; org_id is null only for jobs over every organization. */
export { BasePayload } from "../../supabase/functions/_shared/jobs.ts";

export interface JobOptions {
  retryLimit: number;
  retryDelay: number; // seconds; doubled per attempt (retryBackoff) up to retryDelayMax
  retryDelayMax: number;
  expireInSeconds: number;
  /** Fetch loops per worker process; each takes up to batchSize jobs at once and runs them together. */
  concurrency: number;
  batchSize: number;
  priority?: number;
}

export interface JobContext {
  sql: postgres.Sql;
  /** Connections for tenantStatement (tenant-statement.ts): one statement in the job's context, one round trip. */
  pool: pg.Pool;
  log: Logger;
  /** finalAttempt: no retry follows if this attempt fails (the job then goes to the dead-letter queue). */
  job: { id: string; queue: string; retryCount: number; finalAttempt: boolean; signal: AbortSignal };
  /** The project's API as the service (SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY), for Storage; null when not configured. */
  supabase: SupabaseClient<Database> | null;
  /** The organization's request context, for jobs with an org_id. */
  tenant: TenantJob | null;
  correlationId: string;
}

export interface JobDefinition<P extends z.ZodType = z.ZodType> {
  queue: `${string}.${string}`;
  payload: P;
  /** Permissions the job holds in its organization (its RLS scopes). */
  scopes: readonly string[];
  /** Jobs over every organization (maintenance) take org_id null; the rest require one. */
  tenancy: "organization" | "all-organizations";
  /**
   * Outside services the handler reaches (env.ts SERVICES): their variables are required at start
   * while this job is on, so a missing one stops the worker there, not this job later.
   */
  uses?: readonly Service[];
  /** By default a job for a deleted organization completes as a no-op; purge and delete jobs opt in. */
  runsOnDeletedOrganization?: boolean;
  options: JobOptions;
  /**
   * pg-boss's queue policy. `short`: at most one job per singleton key waits to start (pg-boss's
   * unique index over created jobs); a second enqueue with the key is skipped and answers null. A
   * job that started, or waits for a retry, no longer holds its key. Every enqueue of a `short`
   * queue passes a key: key-less jobs share the empty key and collapse into one too. Absent:
   * `standard`, where a key deduplicates nothing.
   */
  policy?: "short";
  schedule?: { cron: string; key?: string };
  handler(ctx: JobContext, data: z.infer<P>): Promise<unknown>;
}

export function defineJob<P extends z.ZodType>(def: JobDefinition<P>): JobDefinition<P> {
  return def;
}

export const areaOf = (queue: string) => queue.slice(0, queue.indexOf("."));
export const deadLetterQueueOf = (queue: string) => `${areaOf(queue)}.dead-letter`;

export const DEFAULT_OPTIONS: JobOptions = {
  retryLimit: 5,
  retryDelay: 2,
  retryDelayMax: 300,
  expireInSeconds: 900,
  concurrency: 2,
  batchSize: 5,
};
