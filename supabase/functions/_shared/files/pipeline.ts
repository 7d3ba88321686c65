// The work on one claimed file, wherever it runs (the file-processing function, or the worker for
// large files): the bytes must be the declared size and, sniffed, the declared type; clamd scans
// them; infected files move to quarantine; text is searched for personal data; the file ends
// clean, infected, rejected or failed, which settles its quota reservation (a trigger); images get
// a thumbnail job, PDFs and text a text-extraction job; the organization hears `file.ready` or `file.rejected`. When the scan cannot
// happen (clamd unreachable, anything unexpected), the file goes back to pending with a backoff
// and the sweep (supabase/schemas/140_file_processing.sql) sends it again when it is due.
import type { SupabaseClient } from "@supabase/supabase-js";
import type postgres from "postgres";
import { asService } from "../db.ts";
import { enqueueJob } from "../jobs.ts";
import type { Logger } from "../log.ts";
import { makeEnvelope } from "../realtime/envelope.ts";
import type { Publish } from "../realtime/publisher.ts";
import { topics } from "../realtime/topics.ts";
import { TEXT_TYPES } from "./mime.ts";
import { findPii, hasPii } from "./pii.ts";
import { scanBytes, ScanUnavailable } from "./scan.ts";
import { decodeText, detectMime } from "./sniff.ts";

export const MAX_SCAN_ATTEMPTS = 8;
/** Types whose text the worker extracts for search (files.extract-text). */
export const EXTRACTABLE = new Set(["application/pdf", "text/plain", "text/csv", "text/markdown"]);

export interface PipelineDeps {
  sql: postgres.Sql;
  storage: SupabaseClient; // service role
  clamd: { host: string; port: number };
  publish: Publish;
}

export interface FileRow {
  id: string;
  org_id: string;
  object_path: string;
  name: string;
  size_bytes: string;
  declared_mime: string;
  scan_attempts: number;
  uploaded_by: string | null;
}

type Outcome =
  | { status: "clean"; detected_mime: string; sha256: string; contains_pii: boolean }
  | { status: "rejected"; reason: string; detected_mime?: string; sha256?: string }
  | { status: "infected"; reason: string; sha256: string; detected_mime: string }
  | { status: "failed"; reason: string }
  | { status: "retry"; reason: string };

export type PipelineResult = { status: "clean" | "rejected" | "infected" | "failed" } | {
  status: "retry";
  reason: string;
  retryInSeconds: number;
};

/** Claims a pending file by its object path (pending → scanning); null when there is nothing to claim. */
export async function claimFile(sql: postgres.Sql, objectPath: string, correlationId: string): Promise<FileRow | null> {
  const [file] = await asService(sql, correlationId, (tx) =>
    tx<FileRow[]>`
    update public.files set status = 'scanning', scan_attempts = scan_attempts + 1, next_attempt_at = null, scan_started_at = now()
    where object_path = ${objectPath} and status = 'pending'
    returning id, org_id, object_path, name, size_bytes, declared_mime, scan_attempts, uploaded_by`);
  return file ?? null;
}

/**
 * A file of the organization claimed earlier (by the function that handed it on); null when it is
 * no longer scanning, or not that organization's.
 */
export async function claimedFile(
  sql: postgres.Sql,
  fileId: string,
  orgId: string,
  correlationId: string,
): Promise<FileRow | null> {
  const [file] = await asService(sql, correlationId, (tx) =>
    tx<FileRow[]>`
    select id, org_id, object_path, name, size_bytes, declared_mime, scan_attempts, uploaded_by
    from public.files where id = ${fileId} and org_id = ${orgId} and status = 'scanning'`);
  return file ?? null;
}

/** Examines and settles a claimed file, or puts it back for a retry. */
export async function runClaimed(file: FileRow, deps: PipelineDeps, log: Logger, correlationId: string): Promise<PipelineResult> {
  let outcome: Outcome;
  try {
    outcome = await examine(file, deps, log);
    if (outcome.status !== "retry") await settle(file, outcome, deps, correlationId);
  } catch (e) {
    // Anything unexpected (storage, the database): the file goes back to pending and is retried.
    log.error("processing failed", { error: e instanceof Error ? e.message : String(e) });
    outcome = { status: "retry", reason: "processing_error" };
  }
  if (outcome.status === "retry" && file.scan_attempts >= MAX_SCAN_ATTEMPTS) {
    outcome = { status: "failed", reason: outcome.reason };
    await settle(file, outcome, deps, correlationId);
  }
  if (outcome.status === "retry") {
    const delay = Math.min(5 * 2 ** (file.scan_attempts - 1), 600);
    const reason = outcome.reason;
    await asService(deps.sql, correlationId, (tx) =>
      tx`update public.files set status = 'pending', status_reason = ${reason},
                                 next_attempt_at = now() + make_interval(secs => ${delay}) where id = ${file.id}`);
    log.warn("will retry", { reason, in_seconds: delay });
    return { status: "retry", reason, retryInSeconds: delay };
  }

  log.info("file settled", { status: outcome.status, reason: "reason" in outcome ? outcome.reason : undefined });
  const ready = outcome.status === "clean";
  await deps.publish(
    topics.events(file.org_id),
    makeEnvelope({
      type: ready ? "file.ready" : "file.rejected",
      org_id: file.org_id,
      correlation_id: correlationId,
      data: {
        file_id: file.id,
        name: file.name,
        status: outcome.status,
        ...(ready ? {} : { reason: (outcome as { reason: string }).reason }),
      },
    }),
  ).catch((e) => log.warn("event not published", { error: String(e) }));
  return { status: outcome.status };
}

async function examine(file: FileRow, deps: PipelineDeps, log: Logger): Promise<Outcome> {
  const { data, error } = await deps.storage.storage.from("files").download(file.object_path);
  if (error || !data) return { status: "retry", reason: "object_unreadable" };
  const bytes = new Uint8Array(await data.arrayBuffer());
  if (bytes.byteLength !== Number(file.size_bytes)) {
    return { status: "rejected", reason: `size_mismatch: declared ${file.size_bytes}, got ${bytes.byteLength}` };
  }
  const sha256 = hex(await crypto.subtle.digest("SHA-256", bytes));
  const text = TEXT_TYPES.has(file.declared_mime) ? decodeText(bytes) : null;
  const detected = await detectMime(bytes, file.declared_mime, text);
  if (detected !== file.declared_mime) {
    return {
      status: "rejected",
      reason: `type_mismatch: declared ${file.declared_mime}, found ${detected}`,
      detected_mime: detected,
      sha256,
    };
  }

  const started = performance.now();
  let scan;
  try {
    scan = await scanBytes(deps.clamd.host, deps.clamd.port, bytes);
  } catch (e) {
    if (e instanceof ScanUnavailable) {
      log.warn("clamd unavailable", { error: e.message });
      return { status: "retry", reason: "scanner_unavailable" };
    }
    throw e;
  }
  log.info("scanned", { verdict: scan.verdict, ms: Math.round(performance.now() - started), bytes: bytes.byteLength });
  if (scan.verdict === "error") return { status: "retry", reason: `scanner_error: ${scan.reply}` };
  if (scan.verdict === "infected") return { status: "infected", reason: scan.signature, sha256, detected_mime: detected };

  const containsPii = TEXT_TYPES.has(detected) && text !== null && hasPii(findPii(text));
  return { status: "clean", detected_mime: detected, sha256, contains_pii: containsPii };
}

async function settle(file: FileRow, outcome: Exclude<Outcome, { status: "retry" }>, deps: PipelineDeps, correlationId: string) {
  if (outcome.status === "infected") {
    // Into quarantine first, then out of reach: a failure in between leaves it scanning, which the
    // sweep retries; it is never readable meanwhile (only clean files are).
    const { data } = await deps.storage.storage.from("files").download(file.object_path);
    const moved = data &&
      !(await deps.storage.storage.from("quarantine").upload(file.object_path, data, {
        upsert: true,
        contentType: "application/octet-stream",
      })).error;
    if (!moved) throw new Error("could not move an infected file to quarantine");
    await deps.storage.storage.from("files").remove([file.object_path]);
  }
  if (outcome.status === "rejected") {
    // a rejected upload's bytes are never served and hold no quota: they go (a failure retries)
    const gone = await deps.storage.storage.from("files").remove([file.object_path]);
    if (gone.error) throw new Error(`could not remove a rejected file's object: ${gone.error.message}`);
  }
  await asService(deps.sql, correlationId, async (tx) => {
    await tx`update public.files set
               status = ${outcome.status}, status_reason = ${"reason" in outcome ? outcome.reason.slice(0, 500) : null},
               detected_mime = ${"detected_mime" in outcome ? outcome.detected_mime ?? null : null},
               sha256 = ${"sha256" in outcome ? outcome.sha256 ?? null : null},
               contains_pii = ${outcome.status === "clean" ? outcome.contains_pii : false},
               processed_at = now()
             where id = ${file.id}`;
    if (outcome.status === "clean") {
      await tx`insert into public.file_versions (org_id, file_id, version, object_path, size_bytes, sha256, created_by)
               values (${file.org_id}, ${file.id}, 1, ${file.object_path}, ${file.size_bytes}, ${outcome.sha256}, ${file.uploaded_by})
               on conflict (file_id, version) do nothing`;
      if (file.declared_mime.startsWith("image/")) {
        await enqueueJob(tx, "files.thumbnail", { org_id: file.org_id, file_id: file.id, correlation_id: correlationId });
      }
      if (EXTRACTABLE.has(file.declared_mime)) {
        await enqueueJob(tx, "files.extract-text", { org_id: file.org_id, file_id: file.id, correlation_id: correlationId });
      }
    }
  });
}

const hex = (buf: ArrayBuffer) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
