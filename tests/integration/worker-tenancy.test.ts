// Organization jobs against the stack's database and storage, each run the way the worker runs it
// (runOne: payload validation, the organization's request context, the handler) in this process,
// so the stack's worker never sees them. A job's database work for its organization happens in
// that organization's request context, which the audit log shows (db_role authenticated, the
// job's correlation id); a job of one organization given another's ids (files, a batch, an export)
// finds nothing there and changes none of its rows or objects.
import crypto from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import type { JobWithMetadata } from "pg-boss";
import postgres from "postgres";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { filesExtractText, filesPlace, filesProcess, filesThumbnail } from "../../worker/src/jobs/files.ts";
import { notificationsEmail } from "../../worker/src/jobs/notifications.ts";
import { tenantExport } from "../../worker/src/jobs/tenant.ts";
import type { Metrics } from "../../worker/src/metrics.ts";
import type { JobDefinition } from "../../worker/src/registry.ts";
import { OrganizationLiveness, runOne } from "../../worker/src/runner.ts";
import { createStatementPool } from "../../worker/src/tenant-statement.ts";
import { adminSql, API_URL, createUser, DB_URL, HOST, PORTS, secrets } from "../helpers/stack.ts";

const admin = adminSql(4);
const sql = postgres(DB_URL, { max: 4, onnotice: () => {} });
const pool = createStatementPool(DB_URL, 4);
const storage = createClient<Database>(API_URL, secrets().serviceRoleKey, {
  auth: { persistSession: false, autoRefreshToken: false },
});
const metrics = { outcomes: { inc() {} }, duration: { observe() {} } } as unknown as Metrics;
const opts = { sql, pool, supabase: storage, metrics, concurrency: {}, liveness: new OrganizationLiveness() };
let orgA: string, orgB: string, ownerA: string, ownerB: string;

/** One attempt of a job, as the worker runs it. */
async function run(def: JobDefinition, data: Record<string, unknown>) {
  const job = {
    id: crypto.randomUUID(),
    name: def.queue,
    data: { correlation_id: `tenancy-${crypto.randomUUID()}`, ...data },
    retryCount: 0,
    retryLimit: 3,
    signal: new AbortController().signal,
  } as unknown as JobWithMetadata<Record<string, unknown>>;
  const result = await runOne(def, job, opts, new Set());
  return { ...result, correlationId: job.data.correlation_id as string };
}

/** A clean file with its object in storage, as file processing leaves one. */
async function cleanFile(org: string, name: string, mime: string, bytes: Uint8Array) {
  const id = crypto.randomUUID();
  const path = `${org}/2026/12/07/${id}-${name}`;
  await admin`insert into public.files (id, org_id, object_path, name, size_bytes, declared_mime, detected_mime, sha256, status)
              values (${id}, ${org}, ${path}, ${name}, ${bytes.byteLength}, ${mime}, ${mime},
                      ${crypto.createHash("sha256").update(bytes).digest("hex")}, 'clean')`;
  const { error } = await storage.storage.from("files").upload(path, bytes, { contentType: mime });
  expect(error).toBeNull();
  return { id, path };
}
const bucketsOf = async (name: string) =>
  (await admin`select bucket_id from storage.objects where name = ${name} order by 1`).map((r) => r.bucket_id);
const auditOf = (table: string, rowId: string) =>
  admin<{ db_role: string; request_id: string | null; action: string }[]>`
    select db_role, request_id, action from audit.log where table_name = ${table} and row_id = ${rowId} order by id`;

let png: Uint8Array;
beforeAll(async () => {
  png = new Uint8Array(await sharp({ create: { width: 8, height: 8, channels: 3, background: "#c00" } }).png().toBuffer());
  const run = crypto.randomUUID().slice(0, 8);
  [{ id: orgA }] =
    await admin`insert into public.organizations (name, slug) values ('Tenancy A', ${`tenancy-a-${run}`}) returning id`;
  [{ id: orgB }] =
    await admin`insert into public.organizations (name, slug) values ('Tenancy B', ${`tenancy-b-${run}`}) returning id`;
  ownerA = (await createUser(admin)).id;
  ownerB = (await createUser(admin)).id;
  await admin`insert into public.organization_members (org_id, user_id, role) values (${orgA}, ${ownerA}, 'owner'), (${orgB}, ${ownerB}, 'owner')`;
  process.env.SMTP_URL ??= `smtp://${HOST}:${PORTS.smtp}`;
  process.env.MAIL_FROM ??= "Tenancy test <no-reply@test.local>";
});
afterAll(async () => {
  await admin`update public.organizations set deleted_at = now() where id in (${orgA}, ${orgB})`;
  await Promise.all([admin.end(), sql.end(), pool.end()]);
});

describe("an organization's job works in its organization's request context", () => {
  it("files.thumbnail records the thumbnail as the organization's request (audit: authenticated, the job's request id)", async () => {
    const file = await cleanFile(orgA, "photo.png", "image/png", png);
    const result = await run(filesThumbnail, { org_id: orgA, file_id: file.id });
    expect(result.output).toMatchObject({ thumbnail_path: `${orgA}/${file.id}.webp` });
    const [row] = await admin`select thumbnail_path from public.files where id = ${file.id}`;
    expect(row.thumbnail_path).toBe(`${orgA}/${file.id}.webp`);
    expect((await auditOf("public.files", file.id)).filter((e) => e.action === "UPDATE")).toEqual([
      { db_role: "authenticated", request_id: result.correlationId, action: "UPDATE" },
    ]);
  });

  it("files.extract-text stores the text and flags personal data the same way", async () => {
    const file = await cleanFile(
      orgA,
      "notes.txt",
      "text/plain",
      new TextEncoder().encode("Call Jane at jane.doe@example.org\n"),
    );
    const result = await run(filesExtractText, { org_id: orgA, file_id: file.id });
    expect(result.output).toMatchObject({ contains_pii: true });
    const [text] = await admin`select content from public.file_texts where file_id = ${file.id}`;
    expect(text.content).toContain("jane.doe@example.org");
    expect(await auditOf("public.file_texts", file.id)).toEqual([
      { db_role: "authenticated", request_id: result.correlationId, action: "INSERT" },
    ]);
    const flagged = (await auditOf("public.files", file.id)).filter((e) => e.action === "UPDATE");
    expect(flagged).toEqual([{ db_role: "authenticated", request_id: result.correlationId, action: "UPDATE" }]);
  });

  it("files.place finds a deleted file of its organization and moves its object into the trash", async () => {
    const file = await cleanFile(orgA, "binned.txt", "text/plain", new TextEncoder().encode("binned\n"));
    await admin`update public.files set deleted_at = now() where id = ${file.id}`;
    const result = await run(filesPlace, { org_id: orgA, file_id: file.id });
    expect(result.output).toEqual({ moved: 1 });
    expect(await bucketsOf(file.path)).toEqual(["trash"]);
  });

  it("tenant.export reads who asked and what they may read in the organization's context, then as them", async () => {
    const exportId = crypto.randomUUID();
    await admin.begin(async (tx) => {
      await tx`set local session_replication_role = replica`; // created_by as the requesting owner, without the job trigger's side
      await tx`insert into public.data_exports (id, org_id, created_by) values (${exportId}, ${orgA}, ${ownerA})`;
    });
    const result = await run(tenantExport, { org_id: orgA, export_id: exportId });
    expect(result.output).toEqual({ object_path: `${orgA}/${exportId}.json` });
    const [row] = await admin`select status, required_permissions from public.data_exports where id = ${exportId}`;
    expect(row).toEqual({
      status: "completed",
      required_permissions: ["api_keys.manage", "audit.read", "members.invite", "members.manage", "org.read"],
    });
  });
});

describe("a job of one organization given another's ids touches nothing of it", () => {
  it("files: thumbnail, text, placement and processing of another organization's files", async () => {
    const image = await cleanFile(orgB, "theirs.png", "image/png", png);
    const text = await cleanFile(orgB, "theirs.txt", "text/plain", new TextEncoder().encode("theirs\n"));
    const binned = await cleanFile(orgB, "theirs-binned.txt", "text/plain", new TextEncoder().encode("binned\n"));
    await admin`update public.files set deleted_at = now() where id = ${binned.id}`;
    const scanning = crypto.randomUUID();
    await admin`insert into public.files (id, org_id, object_path, name, size_bytes, declared_mime, status, scan_attempts)
                values (${scanning}, ${orgB}, ${`${orgB}/2026/12/07/${scanning}-big.txt`}, 'big.txt', 20000000, 'text/plain', 'scanning', 1)`;
    const before = await admin`select id, status, thumbnail_path, contains_pii, scan_attempts, updated_at from public.files
                               where org_id = ${orgB} order by id`;

    expect((await run(filesThumbnail, { org_id: orgA, file_id: image.id })).output).toMatchObject({
      skipped: expect.any(String),
    });
    expect((await run(filesExtractText, { org_id: orgA, file_id: text.id })).output).toMatchObject({
      skipped: expect.any(String),
    });
    expect((await run(filesPlace, { org_id: orgA, file_id: binned.id })).output).toMatchObject({ skipped: expect.any(String) });
    expect((await run(filesProcess, { org_id: orgA, file_id: scanning })).output).toMatchObject({ skipped: expect.any(String) });

    expect(
      await admin`select id, status, thumbnail_path, contains_pii, scan_attempts, updated_at from public.files
                       where org_id = ${orgB} order by id`,
    ).toEqual(before);
    expect(await admin`select 1 from public.file_texts where org_id = ${orgB}`).toEqual([]);
    expect(await bucketsOf(binned.path)).toEqual(["files"]);
    expect(await bucketsOf(`${orgA}/${image.id}.webp`)).toEqual([]);
  });

  it("notifications.email with another organization's batch sends none of it", async () => {
    const batch = await admin.begin(async (tx) => {
      await tx`set local session_replication_role = replica`; // no dispatch: this test is the only one to act on it
      const [{ batch_id }] = await tx`select batch_id from app.notify(${orgB}, 'announcement.posted', 'For B only', '', '{}',
                                                                     '{"everyone": true}'::jsonb)`;
      return batch_id as string;
    });
    const result = await run(notificationsEmail, { org_id: orgA, batch_id: batch });
    expect(result.output).toEqual({ sent: 0 });
    expect(
      await admin`select status, attempts from public.notification_deliveries where batch_id = ${batch} and channel = 'email'`,
    )
      .toEqual([{ status: "pending", attempts: 0 }]);
  });

  it("tenant.export with another organization's export leaves it alone", async () => {
    const exportId = crypto.randomUUID();
    await admin.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`insert into public.data_exports (id, org_id, created_by) values (${exportId}, ${orgB}, ${ownerB})`;
    });
    const result = await run(tenantExport, { org_id: orgA, export_id: exportId });
    expect(result.output).toEqual({ skipped: "export not found" });
    expect(await admin`select status, progress, object_path from public.data_exports where id = ${exportId}`)
      .toEqual([{ status: "queued", progress: 0, object_path: null }]);
    expect(await bucketsOf(`${orgA}/${exportId}.json`)).toEqual([]);
  });
});
