// Heavy work on files, off the Edge Functions: thumbnails for clean images (sharp), text for
// search (unpdf for PDFs), and the processing of files too large for a function.
import sharp from "sharp";
import { extractText, getDocumentProxy } from "unpdf";
import { asService } from "../../../supabase/functions/_shared/db.ts";
import { loadEnv } from "../../../supabase/functions/_shared/env.ts";
import { findPii, hasPii } from "../../../supabase/functions/_shared/files/pii.ts";
import { claimedFile, EXTRACTABLE, type PipelineDeps, runClaimed } from "../../../supabase/functions/_shared/files/pipeline.ts";
import { lazyPublisher } from "../../../supabase/functions/_shared/realtime/publisher.ts";
import { enqueueJob, JOB_PAYLOADS } from "../../../supabase/functions/_shared/jobs.ts";
import { SERVICES } from "../env.ts";
import { DEFAULT_OPTIONS, defineJob } from "../registry.ts";
import { WORKER_USER_AGENT } from "../tenant-context.ts";
import { tenantStatement } from "../tenant-statement.ts";

export const THUMBNAIL_SIZE = 256;

/**
 * A 256 px WebP thumbnail of a clean image, at thumbnails/{org}/{file}.webp. Idempotent: it
 * overwrites the same object and path.
 */
export const filesThumbnail = defineJob({
  queue: "files.thumbnail",
  payload: JOB_PAYLOADS["files.thumbnail"],
  uses: ["storage"],
  scopes: ["files.read"],
  tenancy: "organization",
  options: { ...DEFAULT_OPTIONS, concurrency: 2, batchSize: 1, retryLimit: 4, expireInSeconds: 300 },
  async handler(ctx, data) {
    // The file is read in the organization's request context: a payload naming another
    // organization's file finds nothing.
    const [file] = await tenantStatement(ctx.pool, ctx.tenant!)<{ object_path: string; declared_mime: string }[]>`
      select object_path, declared_mime from public.files
      where id = ${data.file_id} and status = 'clean' and declared_mime like 'image/%'`;
    if (!file) return { skipped: "not a clean image of this organization" };
    if (!ctx.supabase) throw new Error("the worker needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY for storage");
    const { data: blob, error } = await ctx.supabase.storage.from("files").download(file.object_path);
    if (error || !blob) throw new Error(`cannot read ${file.object_path}: ${error?.message}`);
    const webp = await sharp(Buffer.from(await blob.arrayBuffer()), { limitInputPixels: 100_000_000 })
      .rotate().resize(THUMBNAIL_SIZE, THUMBNAIL_SIZE, { fit: "inside", withoutEnlargement: true }).webp({ quality: 80 })
      .toBuffer();
    const path = `${data.org_id}/${data.file_id}.webp`;
    const up = await ctx.supabase.storage.from("thumbnails").upload(path, webp, { upsert: true, contentType: "image/webp" });
    if (up.error) throw new Error(`cannot store the thumbnail: ${up.error.message}`);
    // Recorded in the organization's request context too: the database writes the path, and only
    // for a clean image of this organization.
    const [recorded] = await tenantStatement(ctx.pool, ctx.tenant!)<{ path: string | null }[]>`
      select app.record_file_thumbnail(${data.file_id}) as path`;
    if (!recorded?.path) return { skipped: "no longer a clean image of this organization" };
    ctx.log.info("thumbnail made", { file_id: data.file_id, bytes: webp.length });
    return { thumbnail_path: recorded.path, bytes: webp.length };
  },
});

/**
 * Processing a large file (handed over by file-processing, which has claimed it): the same
 * pipeline, here without an Edge Function's memory and time limits. A file that is no longer
 * scanning (settled, or put back by the sweep) is left alone, so a repeated job does nothing.
 */
export const filesProcess = defineJob({
  queue: "files.process",
  payload: JOB_PAYLOADS["files.process"],
  uses: ["storage", "clamd", "broker"],
  scopes: [],
  tenancy: "organization",
  // one at a time per worker: a large file is held in memory while it is examined
  options: { ...DEFAULT_OPTIONS, concurrency: 1, batchSize: 1, retryLimit: 3, expireInSeconds: 600 },
  async handler(ctx, data) {
    // As the service, not in the organization's request context: this is the file-processing
    // function's pipeline, which settles the file (status, verdict, checksum, versions, the move
    // to quarantine), and none of that is any request role's to write (members hold the same role
    // as jobs). The claimed file is looked up within the payload's organization only.
    const file = await claimedFile(ctx.sql, data.file_id, data.org_id, ctx.correlationId);
    if (!file) return { skipped: "not scanning" };
    if (!ctx.supabase) throw new Error("the worker needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY for storage");
    const cfg = filesConfig();
    const result = await runClaimed(
      file,
      { sql: ctx.sql, storage: ctx.supabase, clamd: cfg.clamd, publish: cfg.publish },
      ctx.log,
      ctx.correlationId,
    );
    return result;
  },
});

/**
 * clamd and the broker, from the worker's environment (read when a file first needs them; the
 * worker checked them at start, with the same schemas, since files.process uses both).
 */
let config: { clamd: { host: string; port: number }; publish: PipelineDeps["publish"] } | null = null;
function filesConfig() {
  if (config) return config;
  const env = loadEnv({ ...SERVICES.clamd, ...SERVICES.broker });
  // a broker that does not answer in time costs the event only: file events are best effort
  const publish = lazyPublisher({ url: env.MQTT_URL, password: env.MQTT_PASSWORD, name: "worker-files", timeoutMs: 2000 });
  config = { clamd: { host: env.CLAMD_HOST, port: env.CLAMD_PORT }, publish };
  return config;
}

export const MAX_TEXT_CHARS = 1_000_000;

/**
 * The text of a clean PDF or text file, for search (public.file_texts, at most 1,000,000
 * characters). Personal data found in a PDF's text sets the file's contains_pii too. Idempotent:
 * the row is replaced.
 */
export const filesExtractText = defineJob({
  queue: "files.extract-text",
  payload: JOB_PAYLOADS["files.extract-text"],
  uses: ["storage"],
  scopes: ["files.read"],
  tenancy: "organization",
  options: { ...DEFAULT_OPTIONS, concurrency: 1, batchSize: 1, retryLimit: 3, expireInSeconds: 300 },
  async handler(ctx, data) {
    const [file] = await tenantStatement(ctx.pool, ctx.tenant!)<{ object_path: string; declared_mime: string }[]>`
      select object_path, declared_mime from public.files where id = ${data.file_id} and status = 'clean'`;
    if (!file || !EXTRACTABLE.has(file.declared_mime)) return { skipped: "not a clean extractable file of this organization" };
    if (!ctx.supabase) throw new Error("the worker needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY for storage");
    const { data: blob, error } = await ctx.supabase.storage.from("files").download(file.object_path);
    if (error || !blob) throw new Error(`cannot read ${file.object_path}: ${error?.message}`);
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let text: string;
    if (file.declared_mime === "application/pdf") {
      const pdf = await getDocumentProxy(bytes);
      text = (await extractText(pdf, { mergePages: true })).text;
    } else {
      text = new TextDecoder().decode(bytes);
    }
    text = text.replaceAll("\0", "");
    const truncated = text.length > MAX_TEXT_CHARS;
    const content = truncated ? text.slice(0, MAX_TEXT_CHARS) : text;
    const pii = hasPii(findPii(content));
    // In the organization's request context: the database stores it only for a clean file of this organization.
    const [{ stored }] = await tenantStatement(ctx.pool, ctx.tenant!)<{ stored: boolean }[]>`
      select app.record_file_text(${data.file_id}, ${content}, ${truncated}, ${pii}) as stored`;
    if (!stored) return { skipped: "no longer a clean file of this organization" };
    ctx.log.info("text extracted", { file_id: data.file_id, chars: content.length, truncated, contains_pii: pii });
    return { chars: content.length, truncated, contains_pii: pii };
  },
});

/** Where a file's objects belong: in `files` (and `thumbnails`) while it lives, in `trash` once deleted. */
function placesOf(file: { org_id: string; id: string; object_path: string; thumbnail_path: string | null }) {
  const places = [{ live: { bucket: "files", name: file.object_path }, trashed: { bucket: "trash", name: file.object_path } }];
  if (file.thumbnail_path) {
    places.push({
      live: { bucket: "thumbnails", name: file.thumbnail_path },
      trashed: { bucket: "trash", name: `${file.org_id}/thumbnails/${file.id}.webp` },
    });
  }
  return places;
}

/**
 * Moves a clean file's objects to match its state: into the private `trash` bucket when it was
 * deleted (signed URLs issued for it stop working), back when it was restored. Idempotent: an
 * object already in place is left alone.
 */
export const filesPlace = defineJob({
  queue: "files.place",
  payload: JOB_PAYLOADS["files.place"],
  uses: ["storage"],
  scopes: ["files.read"],
  tenancy: "organization",
  options: { ...DEFAULT_OPTIONS, concurrency: 2, batchSize: 1, retryLimit: 6 },
  async handler(ctx, data) {
    if (!ctx.supabase) throw new Error("the worker needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY for storage");
    // In the organization's request context (deleted files too, which no select policy shows).
    const [file] = await tenantStatement(ctx.pool, ctx.tenant!)<
      { org_id: string; id: string; object_path: string; thumbnail_path: string | null; deleted: boolean }[]
    >`select org_id, id, object_path, thumbnail_path, deleted from app.file_placement(${data.file_id})`;
    if (!file) return { skipped: "no clean file of this organization" };
    let moved = 0;
    for (const { live, trashed } of placesOf(file)) {
      const [from, to] = file.deleted ? [live, trashed] : [trashed, live];
      // As the service: no request role sees objects in the trash (no policy reads it), and the
      // move itself is the service's, through the Storage API. The names are this file's, read
      // above in the organization's context.
      const [present] = await asService(
        ctx.sql,
        ctx.correlationId,
        (tx) => tx`select 1 from storage.objects where bucket_id = ${from.bucket} and name = ${from.name}`,
        WORKER_USER_AGENT,
      );
      if (!present) continue;
      const { error } = await ctx.supabase.storage.from(from.bucket).move(from.name, to.name, { destinationBucket: to.bucket });
      if (error) throw new Error(`moving ${from.bucket}/${from.name}: ${error.message}`);
      moved++;
    }
    ctx.log.info("file objects placed", { file_id: file.id, deleted: file.deleted, moved });
    return { moved };
  },
});

/**
 * Daily: files whose objects sit in the wrong bucket (a files.place job that never ran) get one;
 * deleted files past their tier's retention lose their objects in `trash`, then their rows.
 */
export const filesSweep = defineJob({
  queue: "maintenance.files-sweep",
  payload: JOB_PAYLOADS["maintenance.files-sweep"],
  uses: ["storage"],
  scopes: [],
  tenancy: "all-organizations",
  options: { ...DEFAULT_OPTIONS, concurrency: 1, batchSize: 1 },
  schedule: { cron: "23 4 * * *" },
  async handler(ctx) {
    if (!ctx.supabase) throw new Error("the worker needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY for storage");
    const misplaced = await asService(ctx.sql, ctx.correlationId, (tx) =>
      tx<{ id: string; org_id: string }[]>`
      select f.id, f.org_id from public.files f
      join storage.objects o on o.name = f.object_path
        and o.bucket_id = case when f.deleted_at is null then 'trash' else 'files' end
      where f.status = 'clean' limit 1000`, WORKER_USER_AGENT);
    // files.place keeps pg-boss's standard policy, since app.place_file_object enqueues it without a
    // key: the key names the job but deduplicates nothing, and a file whose job still waits may get
    // a second one, which finds its object already in place.
    for (const f of misplaced) {
      await enqueueJob(ctx.sql, "files.place", { org_id: f.org_id, file_id: f.id, correlation_id: ctx.correlationId }, {
        singletonKey: `files.place:${f.id}`,
      });
    }
    const expired = await asService(
      ctx.sql,
      ctx.correlationId,
      (tx) =>
        tx<{ id: string; org_id: string; object_path: string; thumbnail_path: string | null }[]>`
      select f.id, f.org_id, f.object_path, f.thumbnail_path
      from public.files f join public.organizations o on o.id = f.org_id join public.subscription_tiers t on t.tier = o.tier
      where f.deleted_at < now() - make_interval(days => t.retention_days) order by f.deleted_at limit 1000`,
      WORKER_USER_AGENT,
    );
    let forgotten = 0;
    for (const f of expired) {
      const names = placesOf(f).flatMap(({ live, trashed }) => [live, trashed]);
      for (const bucket of ["files", "thumbnails", "trash"]) {
        const inBucket = names.filter((n) => n.bucket === bucket).map((n) => n.name);
        if (inBucket.length === 0) continue;
        const { error } = await ctx.supabase.storage.from(bucket).remove(inBucket);
        if (error) throw new Error(`removing a deleted file's objects from ${bucket}: ${error.message}`);
      }
      const [{ gone }] = await asService(
        ctx.sql,
        ctx.correlationId,
        (tx) => tx`select app.forget_deleted_file(${f.id}) as gone`,
        WORKER_USER_AGENT,
      );
      if (gone) forgotten++;
    }
    ctx.log.info("files swept", { misplaced: misplaced.length, forgotten });
    return { misplaced: misplaced.length, forgotten };
  },
});
