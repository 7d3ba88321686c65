// The job queues (`<area>.<job>`) and their payloads, in one typed map that the worker (which
// validates and runs them) and the functions (which enqueue them) both import, so a payload a
// function sends is checked against the schema the worker runs it with, at compile time and again
// before it is sent. Every payload carries org_id (null only for jobs over every organization)
// and a correlation_id (docs/architecture.md, Jobs).
import type postgres from "postgres";
import { z } from "zod";

export const BasePayload = z.object({
  org_id: z.uuid().nullable(),
  correlation_id: z.string().min(1).max(128),
});
const ForOrganization = BasePayload.extend({ org_id: z.uuid() });
const OverAllOrganizations = BasePayload.extend({ org_id: z.null() });
const ForFile = ForOrganization.extend({ file_id: z.uuid() });

export const JOB_PAYLOADS = {
  "maintenance.expire-invitations": OverAllOrganizations,
  "maintenance.purge-soft-deleted": OverAllOrganizations,
  "maintenance.files-sweep": OverAllOrganizations,
  "tenant.delete": ForOrganization,
  "tenant.export": ForOrganization.extend({ export_id: z.uuid() }),
  "files.thumbnail": ForFile,
  "files.process": ForFile,
  "files.extract-text": ForFile,
  "files.place": ForFile,
  "notifications.email": ForOrganization.extend({ batch_id: z.uuid() }),
  "notifications.digest": OverAllOrganizations,
  "analytics.rollup": OverAllOrganizations,
} as const;

export type Queue = keyof typeof JOB_PAYLOADS;
export type JobPayload<Q extends Queue> = z.infer<(typeof JOB_PAYLOADS)[Q]>;

export interface SendOptions {
  priority?: number;
  startAfterSeconds?: number;
  /**
   * pg-boss's singletonKey. On a queue with the `short` policy (the registry's `policy`, see
   * worker/src/queues.ts) at most one job per key waits to start: a second enqueue is skipped and
   * answers null. On a `standard` queue a second job with the key is queued too.
   */
  singletonKey?: string;
}

/**
 * Enqueues through app.enqueue_job (pg-boss has no SQL API, and Deno functions carry no pg-boss),
 * in the caller's transaction when given one: the job exists exactly when the caller's work
 * commits. Returns the job id, or null when the queue's policy refused the job (under `short`, a job
 * with the same singleton key has not started yet), as pg-boss's send does.
 * enqueueJob's untyped core: the functions and the worker call enqueueJob; only tests call this
 * directly, for the test registry's queues, which are not in the map.
 */
export async function sendJob(
  sql: postgres.Sql | postgres.TransactionSql,
  queue: string,
  data: Record<string, unknown>,
  opts: SendOptions = {},
) {
  const [row] = await sql<{ id: string | null }[]>`
    select app.enqueue_job(${queue}, ${sql.json(data as postgres.JSONValue)}, ${opts.priority ?? 0}, ${
    opts.startAfterSeconds ?? 0
  },
                           ${opts.singletonKey ?? null}) as id`;
  return row.id;
}

/**
 * Enqueues one of the project's jobs (functions, and the worker's jobs that start others): the
 * payload is typed by the map at compile time and parsed with the job's schema before anything is
 * sent (zod's ZodError), so a bad one never reaches the queue.
 */
export async function enqueueJob<Q extends Queue>(
  sql: postgres.Sql | postgres.TransactionSql,
  queue: Q,
  payload: JobPayload<Q>,
  opts: SendOptions = {},
): Promise<string | null> {
  return await sendJob(sql, queue, JOB_PAYLOADS[queue].parse(payload), opts);
}
