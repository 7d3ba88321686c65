// Heavy work on files, off the Edge Functions: thumbnails for clean images (sharp).
import sharp from "sharp";
import { z } from "zod";
import { BasePayload, DEFAULT_OPTIONS, defineJob } from "../registry.ts";
import { asService, inTenantContext } from "../tenant-context.ts";

export const THUMBNAIL_SIZE = 256;

/**
 * A 256 px WebP thumbnail of a clean image, at thumbnails/{org}/{file}.webp. Idempotent: it
 * overwrites the same object and path.
 */
export const filesThumbnail = defineJob({
  queue: "files.thumbnail",
  payload: BasePayload.extend({ org_id: z.uuid(), file_id: z.uuid() }),
  scopes: ["files.read"],
  tenancy: "organization",
  options: { ...DEFAULT_OPTIONS, concurrency: 2, batchSize: 1, retryLimit: 4, expireInSeconds: 300 },
  async handler(ctx, data) {
    // The file is read in the organization's request context: a payload naming another
    // organization's file finds nothing.
    const [file] = await inTenantContext(ctx.sql, ctx.tenant!, (tx) => tx<{ object_path: string; declared_mime: string }[]>`
      select object_path, declared_mime from public.files
      where id = ${data.file_id} and status = 'clean' and declared_mime like 'image/%'`);
    if (!file) return { skipped: "not a clean image of this organization" };
    if (!ctx.supabase) throw new Error("the worker needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY for storage");
    const { data: blob, error } = await ctx.supabase.storage.from("files").download(file.object_path);
    if (error || !blob) throw new Error(`cannot read ${file.object_path}: ${error?.message}`);
    const webp = await sharp(Buffer.from(await blob.arrayBuffer()), { limitInputPixels: 100_000_000 })
      .rotate().resize(THUMBNAIL_SIZE, THUMBNAIL_SIZE, { fit: "inside", withoutEnlargement: true }).webp({ quality: 80 }).toBuffer();
    const path = `${data.org_id}/${data.file_id}.webp`;
    const up = await ctx.supabase.storage.from("thumbnails").upload(path, webp, { upsert: true, contentType: "image/webp" });
    if (up.error) throw new Error(`cannot store the thumbnail: ${up.error.message}`);
    await asService(ctx.sql, ctx.correlationId, (tx) => tx`update public.files set thumbnail_path = ${path} where id = ${data.file_id} and org_id = ${data.org_id}`);
    ctx.log.info("thumbnail made", { file_id: data.file_id, bytes: webp.length });
    return { thumbnail_path: path, bytes: webp.length };
  },
});
