// Starting an upload (the file-upload function): validates the request, asks Postgres to reserve
// the bytes and create the file row as the user (request_file_upload: permission, type, size,
// name, quota), then makes a signed upload URL for exactly that path with the user's own token,
// so the storage policies check it too. The client uploads with supabase-js's uploadToSignedUrl.
// An API key (files.write) reserves the same way, in its own request context; having no token for
// Storage to check, its URL is signed by the service for exactly the path Postgres just reserved
// for it (an upload through it may not exceed the reservation: FL007).
import { createClient } from "@supabase/supabase-js";
import type postgres from "postgres";
import { z } from "zod";
import type { ApiKeyGate } from "../_shared/api-keys.ts";
import type { ApiKeyCaller, UserCaller } from "../_shared/auth.ts";
import type { Database } from "../_shared/database.types.ts";
import { asUser } from "../_shared/db.ts";
import { HttpError } from "../_shared/errors.ts";
import { extensionFits, FILE_TYPES } from "../_shared/files/mime.ts";
import { type HandlerContext, parseJson } from "../_shared/http.ts";

export const UploadRequest = z.object({
  org_id: z.uuid(),
  name: z.string().min(1).max(255).refine(
    // deno-lint-ignore no-control-regex -- control characters are what a name must not have
    (n) => !/[/\\\u0000-\u001f\u007f]/.test(n) && n !== "." && n !== "..",
    "a file name has no slashes or control characters",
  ),
  size: z.number().int().positive(),
  mime_type: z.string().refine((m) => m in FILE_TYPES, "this type of file is not accepted"),
}).strict();

/** The answer: PUT the file's bytes to signed_url (or supabase-js's uploadToSignedUrl(path, token)). */
export const UploadResponse = z.object({
  file_id: z.uuid(),
  bucket: z.literal("files"),
  path: z.string(),
  token: z.string(),
  signed_url: z.url(),
}).meta({ id: "UploadStarted" });

export interface UploadDeps {
  sql: postgres.Sql;
  supabaseUrl: string;
  anonKey: string;
  /** Admits API keys; their upload URLs are signed with the service key. */
  apiKeys?: { gate: ApiKeyGate; serviceKey: string };
}

/** Postgres errors of request_file_upload as HTTP answers (docs/errors.md). */
const SQL_ERRORS: Record<string, [number, string]> = {
  "42501": [403, "forbidden"],
  FL001: [409, "quota_exceeded"],
  FL002: [415, "unsupported_type"],
  FL003: [413, "file_too_large"],
  FL004: [400, "invalid_name"],
};

export async function startUpload(
  req: Request,
  ctx: HandlerContext<UserCaller | ApiKeyCaller>,
  deps: UploadDeps,
): Promise<Response> {
  const { caller } = ctx;
  const body = await parseJson(req, UploadRequest);
  if (!extensionFits(body.name, body.mime_type)) {
    throw new HttpError(400, "extension_mismatch", `The name's extension does not fit ${body.mime_type}.`, {
      allowed: FILE_TYPES[body.mime_type],
    });
  }

  let file: { id: string; object_path: string };
  const reserve = (tx: postgres.TransactionSql) =>
    tx<{ id: string; object_path: string }[]>`
      select id, object_path from public.request_file_upload(${body.org_id}, ${body.name}, ${body.size}, ${body.mime_type})`;
  try {
    if (caller.kind === "user") [file] = await asUser(deps.sql, caller, req, ctx.requestId, reserve);
    else {
      if (!deps.apiKeys) throw new Error("file-upload: API key callers need the gate");
      [file] = await deps.apiKeys.gate.run(caller, req, ctx.requestId, "files.write", reserve);
    }
  } catch (e) {
    const mapped = SQL_ERRORS[(e as { code?: string }).code ?? ""];
    if (mapped) throw new HttpError(mapped[0], mapped[1], (e as Error).message);
    throw e;
  }

  const storageClient = createClient<Database>(
    deps.supabaseUrl,
    caller.kind === "user" ? deps.anonKey : deps.apiKeys!.serviceKey,
    {
      global: {
        headers: caller.kind === "user"
          ? { Authorization: `Bearer ${caller.token}`, "x-request-id": ctx.requestId }
          : { "x-request-id": ctx.requestId },
      },
      auth: { persistSession: false, autoRefreshToken: false },
    },
  );
  const { data, error } = await storageClient.storage.from("files").createSignedUploadUrl(file.object_path);
  if (error || !data) {
    // The reservation is released by the sweep of uploads that never arrive.
    ctx.log.error("signed upload URL refused", { file_id: file.id, error: error?.message });
    throw new HttpError(502, "storage_unavailable", "Storage did not issue an upload URL; try again.");
  }
  ctx.log.info("upload started", { file_id: file.id, org_id: body.org_id, size: body.size, mime_type: body.mime_type });
  return Response.json({
    file_id: file.id,
    bucket: "files",
    path: file.object_path,
    token: data.token,
    signed_url: data.signedUrl,
  }, { status: 201 });
}
