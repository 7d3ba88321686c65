// Queues from the registry: one dead-letter queue per area, then each job's queue with its retry
// policy (exponential backoff), expiry and dead letter, dispatching by LISTEN/NOTIFY.
import type { PgBoss } from "pg-boss";
import { deadLetterQueueOf, type JobDefinition } from "./registry.ts";

/** Dead letters wait for a person: kept 30 days, never retried on their own. */
const DEAD_LETTER_RETENTION_SECONDS = 30 * 24 * 3600;

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
    if (await boss.getQueue(job.queue)) await boss.updateQueue(job.queue, spec);
    else await boss.createQueue(job.queue, spec);
  }
}
