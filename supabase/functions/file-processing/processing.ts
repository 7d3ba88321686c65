// The file-processing function: called with a database webhook's payload for a new object in
// `files` (by the trigger, or the sweep), by the service only. It claims the file (pending →
// scanning), so a repeated delivery finds nothing to do; then it runs the pipeline itself, or, for
// a large file, hands it to the worker (files.process), which runs the same pipeline without an
// Edge Function's memory and time limits.
import type postgres from "postgres";
import { z } from "zod";
import type { ServiceCaller } from "../_shared/auth.ts";
import { asService } from "../_shared/db.ts";
import { claimFile, type PipelineDeps, runClaimed } from "../_shared/files/pipeline.ts";
import { type HandlerContext, parseJson } from "../_shared/http.ts";
import { enqueueJob } from "../_shared/jobs.ts";
import { findUnstorableText, UNSTORABLE_TEXT } from "../_shared/text.ts";

export const ObjectWebhook = z.object({
  type: z.enum(["INSERT", "UPDATE"]),
  table: z.literal("objects"),
  schema: z.literal("storage"),
  record: z.object({ bucket_id: z.literal("files"), name: z.string().min(1).max(1024) }).passthrough(),
  old_record: z.unknown().optional(),
}).superRefine((hook, ctx) => {
  const unstorable = findUnstorableText(hook);
  if (unstorable !== null) ctx.addIssue({ code: "custom", path: unstorable.split("."), message: UNSTORABLE_TEXT });
});

export interface ProcessingDeps extends PipelineDeps {
  /** Files above this size are processed by the worker. */
  largeFileBytes: number;
}

export async function processFile(req: Request, ctx: HandlerContext<ServiceCaller>, deps: ProcessingDeps): Promise<Response> {
  const hook = await parseJson(req, ObjectWebhook);
  const file = await claimFile(deps.sql, hook.record.name, ctx.requestId);
  if (!file) {
    ctx.log.info("nothing to process", { object: hook.record.name });
    return Response.json({ processed: false, reason: "not pending" });
  }
  const log = ctx.log.child({ file_id: file.id, org_id: file.org_id, attempt: file.scan_attempts });

  if (Number(file.size_bytes) > deps.largeFileBytes) {
    await handToWorker(deps.sql, file, ctx.requestId);
    log.info("large file handed to the worker", { size: Number(file.size_bytes) });
    return Response.json({ processed: false, file_id: file.id, handed_to: "files.process" }, { status: 202 });
  }
  const result = await runClaimed(file, deps, log, ctx.requestId);
  if (result.status === "retry") {
    return Response.json({ processed: false, retry_in_seconds: result.retryInSeconds, reason: result.reason }, { status: 503 });
  }
  return Response.json({ processed: true, file_id: file.id, status: result.status });
}

async function handToWorker(sql: postgres.Sql, file: { id: string; org_id: string }, correlationId: string) {
  await asService(
    sql,
    correlationId,
    (tx) => enqueueJob(tx, "files.process", { org_id: file.org_id, file_id: file.id, correlation_id: correlationId }),
  );
}
