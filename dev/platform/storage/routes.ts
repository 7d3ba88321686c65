// The smallest stand-in for the Supabase Storage API, under /storage/v1, for what supabase-js's
// storage client needs so far: upload (POST/PUT /object/{bucket}/{path}), download (GET
// /object[/authenticated]/{bucket}/{path}), public objects (GET /object/public/{bucket}/{path}),
// signed download URLs (POST and GET /object/sign/{bucket}/{path}; several at once, POST
// /object/sign/{bucket}), signed upload URLs (POST /object/upload/sign/{bucket}/{path}, then PUT
// there with the token), info and exists (GET /object/info/{bucket}/{path}), list (POST
// /object/list/{bucket}; the paged list-v2 in list-v2.ts), move and copy (POST /object/move, /object/copy), remove (DELETE
// /object/{bucket}). Like the Storage API it writes
// and reads storage.objects as the caller's role with the caller's claims, so the project's own
// policies on storage.objects decide; it enforces the bucket's file_size_limit and
// allowed_mime_types; bytes live on disk under STORAGE_DIR/<bucket>/<name>. Errors use the Storage
// API's shape ({ statusCode, error, message }).
import crypto from "node:crypto";
import fs from "node:fs";
import type http from "node:http";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import busboy from "busboy";
import { jwtVerify, SignJWT } from "jose";
import type postgres from "postgres";
import { z } from "zod";
import { asService, withRequestContext } from "../../../supabase/functions/_shared/db.ts";
import { contextFromClaims } from "../../../supabase/functions/_shared/request-context.ts";
import type { StoredFile } from "../http/file-reply.ts";
import { verifyBearer } from "../http/bearer.ts";
import type { TokenKeys } from "../../../supabase/functions/_shared/access-token.ts";
import { readJsonBody } from "../http/request-body.ts";
import { decodeCursor, listV2, ListV2Body } from "./list-v2.ts";
import { OverBudget, UploadBudget } from "./upload-budget.ts";

export interface StorageDeps {
  sql: postgres.Sql;
  /** The legacy secret: signs and checks the stand-in's own signed-URL tokens, as hosted Storage's. */
  jwtSecret: string;
  /** What callers' access tokens are verified against. */
  tokenKeys: TokenKeys;
  dir: string;
}

type Reply = { status: number; body?: unknown; file?: StoredFile; headers?: Record<string, string> };
const storageError = (status: number, error: string, message: string): Reply => ({
  status,
  body: { statusCode: String(status), error, message },
});
const MAX_UPLOAD_BYTES = 512 * 1024 * 1024;
// Uploads one caller may have in flight at once, in bytes (STORAGE_MAX_INFLIGHT_BYTES_PER_CALLER).
const uploadBudget = new UploadBudget(Number(process.env.STORAGE_MAX_INFLIGHT_BYTES_PER_CALLER ?? 2 * MAX_UPLOAD_BYTES));

/** Bucket ids and object names as the Storage API accepts them: no traversal, no control characters. */
const BucketId = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/);
const ObjectName = z.string().min(1).max(1024).refine(
  (n) =>
    !n.startsWith("/") && !n.split("/").some((p) => p === "" || p === "." || p === "..") && !/[\u0000-\u001f\u007f\\]/.test(n),
  "invalid object name",
);

/** decodeURIComponent that answers null for malformed percent-encoding instead of throwing. */
function decoded(s: string): string | null {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

function parseTarget(rest: string): { bucket: string; name: string } | null {
  const i = rest.indexOf("/");
  if (i < 0) return null;
  const bucket = BucketId.safeParse(decoded(rest.slice(0, i)));
  const name = ObjectName.safeParse(decoded(rest.slice(i + 1)));
  return bucket.success && name.success ? { bucket: bucket.data, name: name.data } : null;
}

export async function handleStorage(req: http.IncomingMessage, url: URL, deps: StorageDeps): Promise<Reply> {
  const route = url.pathname.replace(/^\/storage\/v1/, "");
  const secret = new TextEncoder().encode(deps.jwtSecret);

  // Signed download URLs carry their own authorization: a token for exactly this object.
  const signedGet = /^\/object\/sign\/(.+)$/.exec(route);
  if (signedGet && req.method === "GET") {
    const target = parseTarget(signedGet[1]);
    if (!target) return storageError(400, "invalid_key", "Invalid object path");
    try {
      const { payload } = await jwtVerify(url.searchParams.get("token") ?? "", secret, { algorithms: ["HS256"] });
      // an upload URL's token never reads the object back
      if (payload.url !== `${target.bucket}/${target.name}` || payload.kind !== undefined) {
        return storageError(400, "invalid_signature", "The token is for another object");
      }
    } catch {
      return storageError(400, "invalid_signature", "The signed URL is invalid or has expired");
    }
    return asDownload(await serveFile(deps, target, "service"), url);
  }

  // Public buckets' objects: anyone reads them, by the URL getPublicUrl builds.
  const publicGet = /^\/object\/public\/(.+)$/.exec(route);
  if (publicGet && (req.method === "GET" || req.method === "HEAD")) {
    const target = parseTarget(publicGet[1]);
    if (!target) return storageError(400, "invalid_key", "Invalid object path");
    const [bucket] = await deps.sql`select public from storage.buckets where id = ${target.bucket}`;
    // a private bucket's object answers as a missing one: nothing is told about it
    if (!bucket?.public) return storageError(404, "not_found", "Object not found");
    return asDownload(await serveFile(deps, target, "service"), url);
  }

  // Signed upload URLs: the INSERT policy was checked, as the caller, when the URL was made; the
  // upload itself is written as the owner the token names.
  const signedPut = /^\/object\/upload\/sign\/(.+)$/.exec(route);
  if (signedPut && req.method === "PUT") {
    const target = parseTarget(signedPut[1]);
    if (!target) return storageError(400, "invalid_key", "Invalid object path");
    let owner: string | null;
    let upsert: boolean;
    try {
      const { payload } = await jwtVerify(url.searchParams.get("token") ?? "", secret, { algorithms: ["HS256"] });
      if (payload.url !== `${target.bucket}/${target.name}` || payload.kind !== "upload") {
        return storageError(400, "invalid_signature", "The token is for another object");
      }
      owner = typeof payload.owner === "string" ? payload.owner : null;
      upsert = payload.upsert === true;
    } catch {
      return storageError(400, "invalid_signature", "The signed URL is invalid or has expired");
    }
    // Written as the owner the token names, so the owner's policies decide: INSERT for a new object,
    // and for an upsert that replaces one, UPDATE and SELECT too (hosted Storage asks the same).
    // A token without an owner (made with the service key) writes as the service.
    const requestId = String(req.headers["x-request-id"] ?? "");
    const asOwner = <T>(fn: (tx: postgres.TransactionSql) => Promise<T>) =>
      owner
        ? withRequestContext(deps.sql, {
          role: "authenticated",
          claims: { sub: owner, role: "authenticated" },
          headers: { "x-request-id": requestId },
        }, fn)
        : asService(deps.sql, requestId, fn);
    return uploadObject(req, deps, target, { sub: owner }, asOwner, upsert, owner ?? `signed:${target.bucket}`);
  }

  const auth = await verifyBearer(req.headers.authorization, deps.tokenKeys);
  if (!auth.ok) return storageError(auth.code === "missing_authorization" ? 400 : 403, "unauthorized", auth.message);
  const ctx = contextFromClaims(auth.claims, {
    "x-forwarded-for": req.socket.remoteAddress ?? "",
    "user-agent": String(req.headers["user-agent"] ?? ""),
    "x-request-id": String(req.headers["x-request-id"] ?? ""),
  });
  const asCaller = <T>(fn: (tx: postgres.TransactionSql) => Promise<T>) => withRequestContext(deps.sql, ctx, fn);

  const uploadSign = /^\/object\/upload\/sign\/(.+)$/.exec(route);
  if (uploadSign && req.method === "POST") {
    const target = parseTarget(uploadSign[1]);
    if (!target) return storageError(400, "invalid_key", "Invalid object path");
    const [bucket] = await deps.sql`select 1 from storage.buckets where id = ${target.bucket}`;
    if (!bucket) return storageError(404, "not_found", "Bucket not found");
    // Would the caller's insert pass the policies? Try it and roll it back.
    const sub = typeof ctx.claims.sub === "string" ? ctx.claims.sub : null;
    const allowed = await asCaller(async (tx) => {
      try {
        await tx.savepoint(async (sp) => {
          await sp`insert into storage.objects (bucket_id, name, owner, owner_id) values (${target.bucket}, ${target.name}, ${sub}, ${sub})`;
          throw new RolledBack();
        });
      } catch (e) {
        if (e instanceof RolledBack) return "yes";
        const code = (e as { code?: string }).code;
        if (code === "42501") return "no";
        if (code === "23505") return "exists";
        throw e;
      }
      return "yes";
    });
    if (allowed === "no") return storageError(403, "Unauthorized", "new row violates row-level security policy");
    if (allowed === "exists" && req.headers["x-upsert"] !== "true") {
      return storageError(409, "Duplicate", "The resource already exists");
    }
    const token = await new SignJWT({
      url: `${target.bucket}/${target.name}`,
      kind: "upload",
      owner: sub,
      upsert: req.headers["x-upsert"] === "true",
    })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" }).setIssuedAt().setExpirationTime(Math.floor(Date.now() / 1000) + 2 * 3600)
      .sign(secret);
    return { status: 200, body: { url: `/object/upload/sign/${encodePath(target)}?token=${token}` } };
  }

  // Several signed URLs at once (createSignedUrls): one per path the caller may read, an error for the rest.
  const signMany = /^\/object\/sign\/([^/]+)$/.exec(route);
  if (signMany && req.method === "POST") {
    const bucket = BucketId.safeParse(decoded(signMany[1]));
    const body = z.object({
      expiresIn: z.number().int().min(1).max(7 * 24 * 3600),
      paths: z.array(z.string().max(1024)).min(1).max(1000),
    })
      .safeParse(await readJsonBody(req));
    if (!bucket.success || !body.success) {
      return storageError(400, "invalid_request", "paths must be 1 to 1000 object names and expiresIn 1 to 604800 seconds");
    }
    const names = body.data.paths.filter((p) => ObjectName.safeParse(p).success);
    const visible = new Set(
      (await asCaller((tx) => tx`select name from storage.objects where bucket_id = ${bucket.data} and name = any(${names})`))
        .map((r) => r.name as string),
    );
    const exp = Math.floor(Date.now() / 1000) + body.data.expiresIn;
    const signed = await Promise.all(body.data.paths.map(async (p) => {
      if (!visible.has(p)) {
        return { path: p, signedURL: null, error: "Either the object does not exist or you do not have access to it" };
      }
      const token = await new SignJWT({ url: `${bucket.data}/${p}` }).setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setIssuedAt().setExpirationTime(exp).sign(secret);
      return { path: p, signedURL: `/object/sign/${encodePath({ bucket: bucket.data, name: p })}?token=${token}`, error: null };
    }));
    return { status: 200, body: signed };
  }

  // An object's details (info, and exists, which asks info), for callers who may read it.
  const info = /^\/object\/info\/(?:authenticated\/)?(.+)$/.exec(route);
  if (info && (req.method === "GET" || req.method === "HEAD")) {
    const target = parseTarget(info[1]);
    if (!target) return storageError(400, "invalid_key", "Invalid object path");
    const [o] = await asCaller((tx) =>
      tx`select id, name, bucket_id, version, metadata, created_at, updated_at from storage.objects
         where bucket_id = ${target.bucket} and name = ${target.name}`
    );
    if (!o) return storageError(404, "not_found", "Object not found");
    const m = (o.metadata ?? {}) as Record<string, unknown>;
    return {
      status: 200,
      body: {
        id: o.id,
        name: o.name,
        bucket_id: o.bucket_id,
        version: o.version ?? null,
        size: m.size ?? null,
        content_type: m.mimetype ?? null,
        cache_control: m.cacheControl ?? null,
        etag: m.eTag ?? null,
        last_modified: m.lastModified ?? o.updated_at,
        created_at: o.created_at,
        metadata: m,
      },
    };
  }

  // Listing a folder (list): its files and its sub-folders, as the caller may see them.
  const list = /^\/object\/list\/([^/]+)$/.exec(route);
  if (list && req.method === "POST") {
    const bucket = BucketId.safeParse(decoded(list[1]));
    const body = z.object({
      prefix: z.string().max(1024).default(""),
      limit: z.number().int().min(1).max(1000).default(100),
      offset: z.number().int().min(0).default(0),
      sortBy: z.object({
        column: z.enum(["name", "created_at", "updated_at", "last_accessed_at"]).default("name"),
        order: z.enum(["asc", "desc"]).default("asc"),
      })
        .default({ column: "name", order: "asc" }),
      search: z.string().max(1024).default(""),
    }).safeParse(await readJsonBody(req));
    if (!bucket.success || !body.success) return storageError(400, "invalid_request", "The list request is not valid");
    const { prefix, limit, offset, sortBy, search } = body.data;
    const folder = prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`;
    const rows = await asCaller((tx) =>
      tx`
      with visible as (
        select o.*, substr(o.name, ${folder.length + 1}) as rest from storage.objects o
        where o.bucket_id = ${bucket.data} and starts_with(o.name, ${folder})
      ), entries as (
        select split_part(rest, '/', 1) as name, null::uuid as id, null::timestamptz as updated_at, null::timestamptz as created_at,
               null::timestamptz as last_accessed_at, null::jsonb as metadata
        from visible where position('/' in rest) > 0 group by 1
        union all
        select rest, id, updated_at, created_at, last_accessed_at, metadata from visible where position('/' in rest) = 0
      )
      select * from entries where ${search} = '' or name ilike (${search.replace(/[\\%_]/g, "\\$&")} || '%')
      order by ${tx(sortBy.column)} ${sortBy.order === "desc" ? tx`desc` : tx`asc`}, name
      limit ${limit} offset ${offset}`
    );
    return { status: 200, body: rows };
  }

  // The cursor-paged listing (listV2): full keys, folders folded at the next "/" on request.
  const listPaged = /^\/object\/list-v2\/([^/]+)$/.exec(route);
  if (listPaged && req.method === "POST") {
    const bucket = BucketId.safeParse(decoded(listPaged[1]));
    const body = ListV2Body.safeParse(await readJsonBody(req));
    if (!bucket.success || !body.success) return storageError(400, "invalid_request", "The list-v2 request is not valid");
    const cursor = body.data.cursor === undefined ? null : decodeCursor(body.data.cursor);
    if (body.data.cursor !== undefined && cursor === null) {
      return storageError(400, "InvalidParameter", "Invalid Parameter continuation token");
    }
    return { status: 200, body: await asCaller((tx) => listV2(tx, bucket.data, body.data, cursor)) };
  }

  // move: the caller's UPDATE policy must let the object go (USING) and take its new name (WITH
  // CHECK); copy: SELECT of the source and INSERT of the copy, as the caller. Bytes follow.
  if ((route === "/object/move" || route === "/object/copy") && req.method === "POST") {
    const body = z.object({
      bucketId: BucketId,
      sourceKey: ObjectName,
      destinationKey: ObjectName,
      destinationBucket: BucketId.optional(),
    }).safeParse(await readJsonBody(req));
    if (!body.success) return storageError(400, "invalid_request", "bucketId, sourceKey and destinationKey must be valid names");
    const from = { bucket: body.data.bucketId, name: body.data.sourceKey };
    const to = { bucket: body.data.destinationBucket ?? body.data.bucketId, name: body.data.destinationKey };
    const source = filePath(deps, from);
    try {
      // The bytes move (or are copied) inside the row's transaction: a failure of either undoes
      // both, so storage.objects and the files on disk never disagree.
      const dest = filePath(deps, to);
      let placed = false;
      const undo = () => {
        if (!placed) return;
        if (route === "/object/move") fs.renameSync(dest, source);
        else fs.rmSync(dest, { force: true });
      };
      const sub = typeof ctx.claims.sub === "string" ? ctx.claims.sub : null;
      const id = crypto.randomUUID();
      let found: boolean;
      try {
        found = await asCaller(async (tx) => {
          const rows = route === "/object/move"
            ? await tx`update storage.objects set bucket_id = ${to.bucket}, name = ${to.name}, updated_at = now()
                       where bucket_id = ${from.bucket} and name = ${from.name} returning id`
            : await tx`insert into storage.objects (id, bucket_id, name, owner, owner_id, metadata)
                       select ${id}, ${to.bucket}, ${to.name}, ${sub}, ${sub}, o.metadata from storage.objects o
                       where o.bucket_id = ${from.bucket} and o.name = ${from.name} returning id`;
          if (!rows.length) return false;
          if (!fs.existsSync(source)) throw new MissingBytes();
          fs.mkdirSync(path.dirname(dest), { recursive: true });
          if (route === "/object/move") fs.renameSync(source, dest);
          else fs.copyFileSync(source, dest, fs.constants.COPYFILE_EXCL);
          placed = true;
          return true;
        });
      } catch (e) {
        undo();
        if (e instanceof MissingBytes) return storageError(404, "not_found", "Object not found");
        throw e;
      }
      if (!found) return storageError(404, "not_found", "Object not found");
      return route === "/object/move"
        ? { status: 200, body: { message: "Successfully moved" } }
        : { status: 200, body: { Id: id, Key: `${to.bucket}/${to.name}` } };
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === "23505") return storageError(409, "Duplicate", "The resource already exists");
      if (code === "42501") return storageError(403, "Unauthorized", "new row violates row-level security policy");
      if (code === "23503") return storageError(404, "not_found", "Bucket not found");
      throw e;
    }
  }

  const sign = /^\/object\/sign\/(.+)$/.exec(route);
  if (sign && req.method === "POST") {
    const target = parseTarget(sign[1]);
    if (!target) return storageError(400, "invalid_key", "Invalid object path");
    const body = z.object({ expiresIn: z.number().int().min(1).max(7 * 24 * 3600) }).safeParse(await readJsonBody(req));
    if (!body.success) return storageError(400, "invalid_request", "expiresIn must be 1 to 604800 seconds");
    const visible = await asCaller((tx) =>
      tx`select 1 from storage.objects where bucket_id = ${target.bucket} and name = ${target.name}`
    );
    if (!visible.length) return storageError(404, "not_found", "Object not found");
    const token = await new SignJWT({ url: `${target.bucket}/${target.name}` }).setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setIssuedAt().setExpirationTime(Math.floor(Date.now() / 1000) + body.data.expiresIn).sign(secret);
    return { status: 200, body: { signedURL: `/object/sign/${encodePath(target)}?token=${token}` } };
  }

  const download = /^\/object\/(?:authenticated\/)?(.+)$/.exec(route);
  if (download && req.method === "GET") {
    const target = parseTarget(download[1]);
    if (!target) return storageError(400, "invalid_key", "Invalid object path");
    return asDownload(await serveFile(deps, target, asCaller), url);
  }

  const upload = /^\/object\/(.+)$/.exec(route);
  if (upload && (req.method === "POST" || req.method === "PUT")) {
    const target = parseTarget(upload[1]);
    if (!target) return storageError(400, "invalid_key", "Invalid object path");
    const caller = typeof auth.claims.sub === "string" ? auth.claims.sub : `${auth.claims.role}:${req.socket.remoteAddress}`;
    return uploadObject(
      req,
      deps,
      target,
      auth.claims,
      asCaller,
      req.method === "PUT" || req.headers["x-upsert"] === "true",
      caller,
    );
  }

  const remove = /^\/object\/([^/]+)$/.exec(route);
  if (remove && req.method === "DELETE") {
    const bucket = BucketId.safeParse(decoded(remove[1]));
    const body = z.object({ prefixes: z.array(ObjectName).min(1).max(1000) }).safeParse(await readJsonBody(req));
    if (!bucket.success || !body.success) return storageError(400, "invalid_request", "prefixes must be a list of object names");
    const removed = await asCaller((tx) =>
      tx`delete from storage.objects where bucket_id = ${bucket.data} and name = any(${body.data.prefixes})
                                              returning id, name, bucket_id, metadata, created_at, updated_at`
    );
    for (const r of removed) fs.rmSync(filePath(deps, { bucket: bucket.data, name: r.name }), { force: true });
    return { status: 200, body: removed };
  }
  return storageError(404, "not_found", `The local storage stand-in does not provide ${req.method} ${route}`);
}

async function uploadObject(
  req: http.IncomingMessage,
  deps: StorageDeps,
  target: { bucket: string; name: string },
  claims: Record<string, unknown>,
  asCaller: <T>(fn: (tx: postgres.TransactionSql) => Promise<T>) => Promise<T>,
  upsert: boolean,
  caller: string,
): Promise<Reply> {
  const [bucket] = await deps.sql`select file_size_limit, allowed_mime_types from storage.buckets where id = ${target.bucket}`;
  if (!bucket) return storageError(404, "not_found", "Bucket not found");
  const limit = Math.min(Number(bucket.file_size_limit ?? MAX_UPLOAD_BYTES), MAX_UPLOAD_BYTES);
  const tooLarge = () => storageError(413, "Payload too large", "The object exceeded the maximum allowed size");
  const owner = typeof claims.sub === "string" ? claims.sub : null;
  const declared = String(req.headers["content-type"] ?? "application/octet-stream");
  const multipart = declared.toLowerCase().startsWith("multipart/form-data");
  const declaredLength = Number(req.headers["content-length"]);
  if (Number.isFinite(declaredLength) && declaredLength > limit && !multipart) return tooLarge();
  // As hosted Storage's testPermission: the row is written and rolled back as the caller before a
  // byte of the body is read, so a caller the policies refuse costs no disk and no wait.
  const refused = await testPermission(asCaller, (tx) =>
    writeObjectRow(tx, target, owner, {
      size: Number.isFinite(declaredLength) && !multipart ? declaredLength : 0,
      mimetype: multipart ? "application/octet-stream" : declared.split(";")[0].trim().toLowerCase(),
    }, upsert));
  if (refused) return refused;
  const tmp = path.join(deps.dir, ".tmp", crypto.randomUUID());
  fs.mkdirSync(path.dirname(tmp), { recursive: true });
  const hash = crypto.createHash("md5");
  let size = 0;
  let contentType: string;
  let cacheControl = String(req.headers["cache-control"] ?? "no-cache");
  let held = 0;
  const hold = (n: number) => {
    uploadBudget.take(caller, n);
    held += n;
  };
  try {
    if (multipart) {
      // supabase-js sends Blobs and Files as a form: the file part carries the type, a field the
      // cache setting. Streamed to disk as it arrives (busboy), so a large upload never sits in memory.
      const form = await receiveForm(req, tmp, limit, hash, hold);
      if (form.kind === "too_large") {
        fs.rmSync(tmp, { force: true });
        return tooLarge();
      }
      if (form.kind !== "file") {
        fs.rmSync(tmp, { force: true });
        return storageError(400, "invalid_request", form.kind === "no_file" ? "The form has no file" : "The form cannot be read");
      }
      size = form.size;
      contentType = (form.contentType || "application/octet-stream").split(";")[0].trim().toLowerCase();
      if (form.cacheControl) cacheControl = form.cacheControl;
    } else {
      contentType = declared.split(";")[0].trim().toLowerCase();
      const out = fs.createWriteStream(tmp);
      try {
        for await (const chunk of req) {
          size += (chunk as Buffer).length;
          if (size > limit) {
            out.destroy();
            fs.rmSync(tmp, { force: true });
            return tooLarge();
          }
          hold((chunk as Buffer).length);
          hash.update(chunk as Buffer);
          if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
        }
      } catch (e) {
        out.destroy();
        throw e;
      }
      await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
    }
    if (bucket.allowed_mime_types?.length && !bucket.allowed_mime_types.some((m: string) => mimeMatches(m, contentType))) {
      fs.rmSync(tmp, { force: true });
      return storageError(415, "invalid_mime_type", `mime type ${contentType} is not supported`);
    }
    const metadata = {
      size,
      mimetype: contentType,
      eTag: `"${hash.digest("hex")}"`,
      cacheControl,
      lastModified: new Date().toISOString(),
      contentLength: size,
      httpStatusCode: 200,
    };
    const id = await asCaller((tx) => writeObjectRow(tx, target, owner, metadata, upsert));
    const dest = filePath(deps, target);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.renameSync(tmp, dest);
    return { status: 200, body: { Id: id, Key: `${target.bucket}/${target.name}` } };
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    if (e instanceof OverBudget) {
      req.resume();
      return storageError(429, "TooManyRequests", "Too many bytes of uploads in flight for this caller; retry when some finish");
    }
    const refusal = rowRefusal(e);
    if (refusal) return refusal;
    throw e;
  } finally {
    uploadBudget.release(caller, held);
  }
}

/**
 * The object's row. A plain upload needs only the INSERT policy, as on hosted Storage: the id is
 * made here, so nothing is read back (RETURNING would make the SELECT policy apply too). An upsert
 * needs INSERT, and UPDATE and SELECT for the object it replaces, which Postgres itself asks of
 * INSERT ... ON CONFLICT DO UPDATE.
 */
async function writeObjectRow(
  tx: postgres.TransactionSql,
  target: { bucket: string; name: string },
  owner: string | null,
  metadata: Record<string, unknown>,
  upsert: boolean,
): Promise<string> {
  const id = crypto.randomUUID();
  if (!upsert) {
    await tx`insert into storage.objects (id, bucket_id, name, owner, owner_id, metadata)
             values (${id}, ${target.bucket}, ${target.name}, ${owner}, ${owner}, ${tx.json(metadata as postgres.JSONValue)})`;
    return id;
  }
  const [row] = await tx`insert into storage.objects (id, bucket_id, name, owner, owner_id, metadata)
             values (${id}, ${target.bucket}, ${target.name}, ${owner}, ${owner}, ${tx.json(metadata as postgres.JSONValue)})
             on conflict (bucket_id, name) do update set metadata = excluded.metadata, owner = excluded.owner, owner_id = excluded.owner_id, updated_at = now()
             returning id`;
  return row.id;
}

class DryRun extends Error {}

/** Runs `write` as the caller and rolls it back; the refusal it met, or null when it would pass. */
async function testPermission(
  asCaller: <T>(fn: (tx: postgres.TransactionSql) => Promise<T>) => Promise<T>,
  write: (tx: postgres.TransactionSql) => Promise<unknown>,
): Promise<Reply | null> {
  try {
    await asCaller(async (tx) => {
      await write(tx);
      throw new DryRun();
    });
  } catch (e) {
    if (e instanceof DryRun) return null;
    const refusal = rowRefusal(e);
    if (refusal) return refusal;
    throw e;
  }
  return null;
}

function rowRefusal(e: unknown): Reply | null {
  const code = (e as { code?: string }).code;
  if (code === "23505") return storageError(409, "Duplicate", "The resource already exists");
  if (code === "42501") return storageError(403, "Unauthorized", "new row violates row-level security policy");
  if (code === "FL006") return storageError(409, "InvalidRequest", (e as Error).message);
  if (code === "FL007") return storageError(413, "Payload too large", (e as Error).message);
  return null;
}

/** An object whose row exists but whose bytes do not: answered as missing, and nothing changes. */
class MissingBytes extends Error {}

type FormResult =
  | { kind: "file"; size: number; contentType: string; cacheControl?: string }
  | { kind: "too_large" | "no_file" | "malformed" };

/** Reads a multipart upload's first file part into `tmp`, hashing it on the way; nothing is held in memory. */
function receiveForm(
  req: http.IncomingMessage,
  tmp: string,
  limit: number,
  hash: crypto.Hash,
  hold: (n: number) => void,
): Promise<FormResult> {
  return new Promise((resolve, reject) => {
    let form: busboy.Busboy;
    try {
      form = busboy({ headers: req.headers, limits: { files: 1, fileSize: limit, fields: 20, fieldSize: 64 * 1024 } });
    } catch {
      return resolve({ kind: "malformed" });
    }
    let cacheControl: string | undefined;
    let written: Promise<{ size: number; contentType: string; truncated: boolean }> | null = null;
    form.on("field", (name, value) => {
      if (name === "cacheControl" && /^\d{1,9}$/.test(value)) cacheControl = `max-age=${value}`;
    });
    form.on("file", (_name, stream, info) => {
      if (written) return void stream.resume(); // one file per upload
      let size = 0;
      let truncated = false;
      stream.on("limit", () => (truncated = true));
      const count = new Transform({
        transform(chunk: Buffer, _enc, done) {
          size += chunk.length;
          try {
            hold(chunk.length);
          } catch (e) {
            return done(e as Error);
          }
          hash.update(chunk);
          done(null, chunk);
        },
      });
      written = pipeline(stream, count, fs.createWriteStream(tmp)).then(() => ({ size, contentType: info.mimeType, truncated }));
    });
    form.on("error", () => resolve({ kind: "malformed" }));
    form.on("close", () => {
      if (!written) return resolve({ kind: "no_file" });
      written.then(
        (w) =>
          resolve(w.truncated ? { kind: "too_large" } : { kind: "file", size: w.size, contentType: w.contentType, cacheControl }),
        reject,
      );
    });
    req.pipe(form);
  });
}

async function serveFile(
  deps: StorageDeps,
  target: { bucket: string; name: string },
  access: "service" | (<T>(fn: (tx: postgres.TransactionSql) => Promise<T>) => Promise<T>),
): Promise<Reply> {
  const query = (tx: postgres.TransactionSql | postgres.Sql) =>
    tx`select metadata from storage.objects where bucket_id = ${target.bucket} and name = ${target.name}`;
  const rows = access === "service" ? await query(deps.sql) : await access((tx) => query(tx));
  const file = filePath(deps, target);
  if (!rows.length || !fs.existsSync(file)) return storageError(404, "not_found", "Object not found");
  return {
    status: 200,
    file: {
      path: file,
      contentType: rows[0].metadata?.mimetype ?? "application/octet-stream",
      size: fs.statSync(file).size,
      etag: typeof rows[0].metadata?.eTag === "string" ? rows[0].metadata.eTag : undefined,
    },
  };
}

/**
 * Hosted Storage's `?download=` (storage-js `{ download: true | name }` on signed and public URLs):
 * the browser saves the object instead of showing it, under the given name, else the URL's.
 */
function asDownload(reply: Reply, url: URL): Reply {
  const name = url.searchParams.get("download");
  if (!reply.file || name === null) return reply;
  const encoded = encodeURIComponent(name);
  const disposition = name === "" ? "attachment;" : `attachment; filename=${encoded}; filename*=UTF-8''${encoded};`;
  return { ...reply, headers: { ...reply.headers, "content-disposition": disposition } };
}

function filePath(deps: StorageDeps, target: { bucket: string; name: string }) {
  const p = path.resolve(deps.dir, target.bucket, target.name);
  if (!p.startsWith(path.resolve(deps.dir) + path.sep)) throw new Error("object path escapes the storage directory");
  return p;
}

class RolledBack extends Error {}

const encodePath = (t: { bucket: string; name: string }) => [t.bucket, ...t.name.split("/")].map(encodeURIComponent).join("/");

function mimeMatches(pattern: string, type: string) {
  const p = pattern.toLowerCase();
  return p === type || (p.endsWith("/*") && type.startsWith(p.slice(0, -1)));
}
