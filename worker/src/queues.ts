// Queues from the registry: one dead-letter queue per area, then each job's queue with its retry
// policy (exponential backoff), expiry, dead letter and pg-boss policy, dispatching by LISTEN/NOTIFY.
import type { PgBoss, QueueResult } from "pg-boss";
import { deadLetterQueueOf, type JobDefinition } from "./registry.ts";

/** Dead letters wait for a person: kept 30 days, never retried on their own. */
const DEAD_LETTER_RETENTION_SECONDS = 30 * 24 * 3600;

/** The policies a queue of the shared job table can switch between in place (see setPolicy). */
const SWITCHABLE = new Set(["standard", "short"]);

export async function ensureQueues(boss: PgBoss, jobs: readonly JobDefinition[]) {
  for (const dlq of new Set(jobs.map((j) => deadLetterQueueOf(j.queue)))) {
    const spec = {
      retryLimit: 0,
      retentionSeconds: DEAD_LETTER_RETENTION_SECONDS,
      deleteAfterSeconds: DEAD_LETTER_RETENTION_SECONDS,
    };
    if (await boss.getQueue(dlq)) await boss.updateQueue(dlq, spec);
    else await boss.createQueue(dlq, spec);
  }
  for (const job of jobs) {
    const spec = {
      retryLimit: job.options.retryLimit,
      retryDelay: job.options.retryDelay,
      retryBackoff: true,
      retryDelayMax: job.options.retryDelayMax,
      expireInSeconds: job.options.expireInSeconds,
      deadLetter: deadLetterQueueOf(job.queue),
      notify: true,
    };
    const policy = job.policy ?? "standard";
    const existing = await boss.getQueue(job.queue);
    if (!existing) {
      await boss.createQueue(job.queue, { ...spec, policy });
      continue;
    }
    await boss.updateQueue(job.queue, spec);
    if ((existing.policy ?? "standard") !== policy) await setPolicy(boss, existing, policy);
  }
}

/**
 * pg-boss fixes a queue's policy at createQueue (updateQueue refuses it), so a queue created before
 * its job chose another policy is switched here. For a queue in pg-boss's shared job table
 * (pgboss.job_common, every queue not created with `partition`) the policy is only the queue row's
 * column: that table carries every policy's unique index, each limited to the job rows of its
 * policy, and every insert (pg-boss's and app.enqueue_job) copies the queue's policy into the job
 * row. So jobs enqueued from now on follow the new policy; a job already waiting keeps the policy
 * it was written with, and may wait beside one new job with its key. A queue with its own table
 * has only its policy's index, and is refused.
 */
async function setPolicy(boss: PgBoss, queue: QueueResult, policy: string) {
  const from = queue.policy ?? "standard";
  if (queue.partition || !SWITCHABLE.has(from) || !SWITCHABLE.has(policy)) {
    throw new Error(
      `queue ${queue.name} has pg-boss policy ${from}${queue.partition ? " in its own table" : ""}, ` +
        `and cannot switch to ${policy} in place: delete the queue (and its jobs) to recreate it`,
    );
  }
  await boss.getDb().executeSql("update pgboss.queue set policy = $2, updated_on = now() where name = $1", [
    queue.name,
    policy,
  ]);
}
