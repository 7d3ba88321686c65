// Heavy work on files, off the Edge Functions: thumbnails for clean images (sharp), text for
// search (unpdf for PDFs), and the processing of files too large for a function.
import sharp from "sharp";
import { extractText, getDocumentProxy } from "unpdf";
import { z } from "zod";
import { asService } from "../../../supabase/functions/_shared/db.ts";
import { loadEnv } from "../../../supabase/functions/_shared/env.ts";
import { findPii, hasPii } from "../../../supabase/functions/_shared/files/pii.ts";
import { claimedFile, EXTRACTABLE, type PipelineDeps, runClaimed } from "../../../supabase/functions/_shared/files/pipeline.ts";
import { lazyPublisher } from "../../../supabase/functions/_shared/realtime/publisher.ts";
import { JOB_PAYLOADS } from "../../../supabase/functions/_shared/jobs.ts";
import { DEFAULT_OPTIONS, defineJob } from "../registry.ts";
import { inTenantContext, WORKER_USER_AGENT } from "../tenant-context.ts";

export const THUMBNAIL_SIZE = 256;

/**
 * A 256 px WebP thumbnail of a clean image, at thumbnails/{org}/{file}.webp. Idempotent: it
 * overwrites the same object and path.
 */
export const filesThumbnail = defineJob({
  queue: "files.thumbnail",
  payload: JOB_PAYLOADS["files.thumbnail"],
  scopes: ["files.read"],
  tenancy: "organization",
  options: { ...DEFAULT_OPTIONS, concurrency: 2, batchSize: 1, retryLimit: 4, expireInSeconds: 300 },
  async handler(ctx, data) {
    // The file is read in the organization's request context: a payload naming another
    // organization's file finds nothing.
    const [file] = await inTenantContext(ctx.sql, ctx.tenant!, (tx) =>
      tx<{ object_path: string; declared_mime: string }[]>`
      select object_path, declared_mime from public.files
      where id = ${data.file_id} and status = 'clean' and declared_mime like 'image/%'`);
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
    await asService(
      ctx.sql,
      ctx.correlationId,
      (tx) => tx`update public.files set thumbnail_path = ${path} where id = ${data.file_id} and org_id = ${data.org_id}`,
      WORKER_USER_AGENT,
    );
    ctx.log.info("thumbnail made", { file_id: data.file_id, bytes: webp.length });
    return { thumbnail_path: path, bytes: webp.length };
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
  scopes: [],
  tenancy: "organization",
  // one at a time per worker: a large file is held in memory while it is examined
  options: { ...DEFAULT_OPTIONS, concurrency: 1, batchSize: 1, retryLimit: 3, expireInSeconds: 600 },
  async handler(ctx, data) {
    const file = await claimedFile(ctx.sql, data.file_id, ctx.correlationId);
    if (!file || file.org_id !== data.org_id) return { skipped: "not scanning" };
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

/** clamd and the broker, from the worker's environment (read when a file first needs them). */
let config: { clamd: { host: string; port: number }; publish: PipelineDeps["publish"] } | null = null;
function filesConfig() {
  if (config) return config;
  const env = loadEnv({
    CLAMD_HOST: z.string().min(1),
    CLAMD_PORT: z.coerce.number().int().positive(),
    MQTT_URL: z.string().min(1).optional(),
    MQTT_PASSWORD: z.string().min(1).optional(),
  });
  // without a broker configured, file events are not published (they are best effort anyway)
  const publish: PipelineDeps["publish"] = env.MQTT_URL && env.MQTT_PASSWORD
    ? lazyPublisher({ url: env.MQTT_URL, password: env.MQTT_PASSWORD, name: "worker-files", timeoutMs: 2000 })
    : async () => {};
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
  scopes: ["files.read"],
  tenancy: "organization",
  options: { ...DEFAULT_OPTIONS, concurrency: 1, batchSize: 1, retryLimit: 3, expireInSeconds: 300 },
  async handler(ctx, data) {
    const [file] = await inTenantContext(ctx.sql, ctx.tenant!, (tx) =>
      tx<{ object_path: string; declared_mime: string }[]>`
      select object_path, declared_mime from public.files where id = ${data.file_id} and status = 'clean'`);
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
    await asService(ctx.sql, ctx.correlationId, async (tx) => {
      await tx`insert into public.file_texts (file_id, org_id, content, truncated) values (${data.file_id}, ${data.org_id}, ${content}, ${truncated})
               on conflict (file_id) do update set content = excluded.content, truncated = excluded.truncated, extracted_at = now()`;
      if (pii) {
        await tx`update public.files set contains_pii = true where id = ${data.file_id} and org_id = ${data.org_id} and not contains_pii`;
      }
    }, WORKER_USER_AGENT);
    ctx.log.info("text extracted", { file_id: data.file_id, chars: content.length, truncated, contains_pii: pii });
    return { chars: content.length, truncated, contains_pii: pii };
  },
});
