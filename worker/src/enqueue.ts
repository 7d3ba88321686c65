// Enqueueing from TypeScript: the payload is validated with the job's own schema first, so a
// caller learns of a bad payload at once (code invalid_payload) instead of from a dead letter.
// With a pg-boss instance the job goes through pg-boss's send (the worker's own jobs that start
// others, tests); with only a database connection through app.enqueue_job, the path SQL callers
// and the functions (enqueueJob in supabase/functions/_shared/jobs.ts) take too.
import type { PgBoss } from "pg-boss";
import type postgres from "postgres";
import type { z } from "zod";
import { JOB_PAYLOADS, sendJob } from "../../supabase/functions/_shared/jobs.ts";
import type { JobDefinition } from "./registry.ts";

export class EnqueueError extends Error {
  readonly code: "unknown_queue" | "invalid_payload";
  readonly issues: unknown;
  constructor(code: EnqueueError["code"], message: string, issues?: unknown) {
    super(message);
    this.code = code;
    this.issues = issues;
  }
}

export interface EnqueueOptions {
  priority?: number;
  startAfterSeconds?: number;
  singletonKey?: string;
  /** The registry to validate against (the project's payload map unless a test brings its own). */
  jobs?: readonly JobDefinition[];
}

function schemaOf(queue: string, jobs?: readonly JobDefinition[]): z.ZodType | undefined {
  if (jobs) return jobs.find((j) => j.queue === queue)?.payload;
  return Object.hasOwn(JOB_PAYLOADS, queue) ? JOB_PAYLOADS[queue as keyof typeof JOB_PAYLOADS] : undefined;
}

export function validatePayload(queue: string, payload: unknown, jobs?: readonly JobDefinition[]) {
  const schema = schemaOf(queue, jobs);
  if (!schema) throw new EnqueueError("unknown_queue", `no job is registered for queue ${queue}`);
  const parsed = schema.safeParse(payload);
  if (!parsed.success) throw new EnqueueError("invalid_payload", `invalid payload for ${queue}`, parsed.error.issues);
  return parsed.data as Record<string, unknown>;
}

export async function enqueue(boss: PgBoss, queue: string, payload: unknown, opts: EnqueueOptions = {}): Promise<string | null> {
  const data = validatePayload(queue, payload, opts.jobs);
  return boss.send(queue, data, {
    // pg-boss checks the options it is given, so absent ones are left out rather than undefined
    ...(opts.priority !== undefined && { priority: opts.priority }),
    ...(opts.startAfterSeconds !== undefined && { startAfter: opts.startAfterSeconds }),
    ...(opts.singletonKey !== undefined && { singletonKey: opts.singletonKey }),
  });
}

export function enqueueWith(
  sql: postgres.Sql | postgres.TransactionSql,
  queue: string,
  payload: unknown,
  opts: EnqueueOptions = {},
): Promise<string | null> {
  return sendJob(sql, queue, validatePayload(queue, payload, opts.jobs), opts);
}
