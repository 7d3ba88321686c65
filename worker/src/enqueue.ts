// Enqueueing from TypeScript: the payload is validated with the job's own schema first, so a
// caller learns of a bad payload at once (code invalid_payload) instead of from a dead letter.
// With a pg-boss instance the job goes through pg-boss's send; with only a database connection
// (Edge Functions, handlers) through app.enqueue_job, the same function SQL callers use.
import type { PgBoss } from "pg-boss";
import type postgres from "postgres";
import { JOBS } from "./jobs/index.ts";
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
  /** The registry to validate against (the worker's JOBS unless a test brings its own). */
  jobs?: readonly JobDefinition[];
}

export function validatePayload(queue: string, payload: unknown, jobs: readonly JobDefinition[] = JOBS) {
  const def = jobs.find((j) => j.queue === queue);
  if (!def) throw new EnqueueError("unknown_queue", `no job is registered for queue ${queue}`);
  const parsed = def.payload.safeParse(payload);
  if (!parsed.success) throw new EnqueueError("invalid_payload", `invalid payload for ${queue}`, parsed.error.issues);
  return { def, data: parsed.data as Record<string, unknown> };
}

export async function enqueue(boss: PgBoss, queue: string, payload: unknown, opts: EnqueueOptions = {}): Promise<string | null> {
  const { def, data } = validatePayload(queue, payload, opts.jobs);
  const priority = opts.priority ?? def.options.priority;
  return boss.send(queue, data, {
    // pg-boss checks the options it is given, so absent ones are left out rather than undefined
    ...(priority !== undefined && { priority }),
    ...(opts.startAfterSeconds !== undefined && { startAfter: opts.startAfterSeconds }),
    ...(opts.singletonKey !== undefined && { singletonKey: opts.singletonKey }),
  });
}

export async function enqueueWith(sql: postgres.Sql | postgres.TransactionSql, queue: string, payload: unknown, opts: EnqueueOptions = {}): Promise<string | null> {
  const { def, data } = validatePayload(queue, payload, opts.jobs);
  const [row] = await sql`select app.enqueue_job(${queue}, ${sql.json(data as postgres.JSONValue)}, ${opts.priority ?? def.options.priority ?? 0},
                                                 ${opts.startAfterSeconds ?? 0}, ${opts.singletonKey ?? null}) as id`;
  return row.id as string | null;
}
