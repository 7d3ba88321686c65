// Files end to end, from supabase-js with a member's token: start an upload (file-upload), upload
// to the signed URL, the trigger's webhook to file-processing (sniff, clamd, sha256, PII), the
// status, the thumbnail from the worker, the download; each bad case; cross-organization attempts;
// a repeated webhook; clamd away and back.
import crypto from "node:crypto";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminSql, API_URL, apiSql, createUser, HOST, PORTS, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";
import { readPid, spawnDetached, stopProcess } from "../../dev/stack/processes.ts";
import { clearOfMinuteEnd } from "../helpers/machines.ts";
import { services } from "../../dev/stack/services.ts";
import { connectRealtime } from "../../supabase/functions/_shared/realtime/client.ts";
import { withRequestContext } from "../../supabase/functions/_shared/db.ts";
import { makePdf } from "../fixtures/files/pdf.ts";
import { topics } from "../../supabase/functions/_shared/realtime/topics.ts";
import type { Envelope } from "../../supabase/functions/_shared/realtime/envelope.ts";

const admin = adminSql();
const EICAR = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
/** Storage's answer for an object the caller may not read: not found, as if it were not there. */
const HIDDEN = { status: 404, statusCode: "404" };
/** Storage's answer for a path the caller may not write (the INSERT policy's refusal). */
const NOT_YOURS = { status: 403, statusCode: "403" };
let orgA: string, orgB: string;
let teacher: { id: string; client: SupabaseClient<Database>; token: string };
let student: { id: string; client: SupabaseClient<Database>; token: string };
let outsider: { id: string; client: SupabaseClient<Database> };

async function member(org: string | null, role: string) {
  const user = await createUser(admin);
  if (org) await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${user.id}, ${role})`;
  const { token } = await tokenFor(admin, user.id);
  const client = createClient<Database>(API_URL, secrets().anonKey, {
    global: { headers: { Authorization: `Bearer ${token}` } },
    auth: { persistSession: false, autoRefreshToken: false },
  });
  return { id: user.id, client, token };
}

async function startUpload(who: { client: SupabaseClient<Database> }, body: Record<string, unknown>) {
  const { data, error } = await who.client.functions.invoke("file-upload", { body });
  if (error) {
    const res = (error as { context?: Response }).context;
    return { status: res?.status ?? 0, body: res ? await res.json() : null };
  }
  return { status: 201, body: data };
}

async function upload(who: { client: SupabaseClient<Database> }, org: string, name: string, bytes: Uint8Array, mime: string) {
  const started = await startUpload(who, { org_id: org, name, size: bytes.byteLength, mime_type: mime });
  expect(started.status, JSON.stringify(started.body)).toBe(201);
  const { error } = await who.client.storage.from("files").uploadToSignedUrl(
    started.body.path,
    started.body.token,
    new Blob([bytes as Uint8Array<ArrayBuffer>], { type: mime }),
  );
  expect(error).toBeNull();
  return started.body as { file_id: string; path: string };
}

const fileRow = async (id: string) => (await admin`select * from public.files where id = ${id}`)[0];
const settled = (id: string, ms = 20_000) =>
  waitUntil(
    `file ${id} to settle`,
    async () => {
      const f = await fileRow(id);
      return f && !["pending", "scanning"].includes(f.status) ? f : null;
    },
    ms,
    100,
  );
const quota = async (org: string) =>
  (await admin`select used_bytes::int, reserved_bytes::int from public.storage_quotas where org_id = ${org}`)[0];
/** The invariant: used is the clean files' bytes (deleted ones too, until purged), reserved the unsettled ones'. */
async function expectQuotaExact(org: string) {
  const [sums] = await admin`select coalesce(sum(size_bytes) filter (where status = 'clean'), 0)::int as used_bytes,
                                    coalesce(sum(size_bytes) filter (where status in ('pending', 'scanning')), 0)::int as reserved_bytes
                             from public.files where org_id = ${org}`;
  expect(await quota(org)).toEqual(sums);
}

beforeAll(async () => {
  const suffix = crypto.randomUUID().slice(0, 8);
  [{ id: orgA }] =
    await admin`insert into public.organizations (name, slug) values ('Files A', ${`files-a-${suffix}`}) returning id`;
  [{ id: orgB }] =
    await admin`insert into public.organizations (name, slug) values ('Files B', ${`files-b-${suffix}`}) returning id`;
  teacher = await member(orgA, "teacher");
  student = await member(orgA, "student");
  outsider = await member(orgB, "owner");
});
afterAll(async () => {
  await admin`update public.organizations set deleted_at = now() where id in (${orgA}, ${orgB})`;
  await admin.end();
});

describe("a clean upload", () => {
  it("goes from request to clean, with sha256, a version, an event, a download for members and none for outsiders", async () => {
    const events: Envelope[] = [];
    const rt = connectRealtime({ url: `mqtt://${HOST}:${PORTS.mqtt}`, password: student.token, username: "student" });
    await rt.subscribe(topics.events(orgA), (e) => void events.push(e));
    const text = new TextEncoder().encode("Lesson plan: fractions.\n");
    const { file_id, path } = await upload(teacher, orgA, "plan.txt", text, "text/plain");
    const f = await settled(file_id);
    const ready = await waitUntil(
      "file.ready",
      async () => events.find((e) => e.type === "file.ready" && e.data.file_id === file_id),
      5000,
      20,
    );
    expect(ready).toMatchObject({ org_id: orgA, data: { name: "plan.txt", status: "clean" } });
    await rt.close();
    expect(f).toMatchObject({
      status: "clean",
      detected_mime: "text/plain",
      contains_pii: false,
      sha256: crypto.createHash("sha256").update(text).digest("hex"),
    });
    expect(await admin`select version from public.file_versions where file_id = ${file_id}`).toEqual([{ version: 1 }]);
    const dl = await student.client.storage.from("files").download(path);
    expect(new Uint8Array(await dl.data!.arrayBuffer())).toEqual(text);
    const signed = await student.client.storage.from("files").createSignedUrl(path, 60);
    expect((await fetch(signed.data!.signedUrl)).status).toBe(200);
    expect((await outsider.client.storage.from("files").download(path)).error).toMatchObject(HIDDEN);
    await expectQuotaExact(orgA);
  });

  it("flags personal data in text", async () => {
    const text = new TextEncoder().encode("Contact jane.doe@example.com or +44 20 7946 0958. SSN 123-45-6789.\n");
    const { file_id } = await upload(teacher, orgA, "contacts.csv", text, "text/csv");
    expect(await settled(file_id)).toMatchObject({ status: "clean", contains_pii: true });
  });

  it("makes a thumbnail of an image in the worker", async () => {
    const png = await sharp({ create: { width: 800, height: 600, channels: 3, background: "#3366cc" } }).png().toBuffer();
    const { file_id } = await upload(teacher, orgA, "board.png", new Uint8Array(png), "image/png");
    expect(await settled(file_id)).toMatchObject({ status: "clean", detected_mime: "image/png" });
    const row = await waitUntil("the thumbnail", async () => (await fileRow(file_id)).thumbnail_path, 20_000, 200);
    const thumb = await student.client.storage.from("thumbnails").download(row);
    const meta = await sharp(Buffer.from(await thumb.data!.arrayBuffer())).metadata();
    expect(meta).toMatchObject({ format: "webp", width: 256, height: 192 });
    expect((await outsider.client.storage.from("thumbnails").download(row)).error).toMatchObject(HIDDEN);
  });
});

describe("text for search", () => {
  it("is extracted from PDFs by the worker, searchable by readers only, and flags personal data in it", async () => {
    const pdf = makePdf("Field trip consent: reply to jane.doe@example.com");
    const { file_id } = await upload(teacher, orgA, "consent.pdf", pdf, "application/pdf");
    // (the scan itself looks for personal data in text files only: in a PDF, it is the extracted text that has it)
    expect(await settled(file_id)).toMatchObject({ status: "clean", detected_mime: "application/pdf" });
    const row = await waitUntil(
      "the extracted text",
      async () => (await admin`select content from public.file_texts where file_id = ${file_id}`)[0],
      20_000,
      100,
    );
    expect(row.content).toContain("Field trip consent");
    expect(await fileRow(file_id)).toMatchObject({ contains_pii: true });

    const api = apiSql();
    try {
      const search = (userId: string) =>
        withRequestContext(
          api,
          { role: "authenticated", claims: { sub: userId, role: "authenticated" } },
          (tx) => tx`select file_id from public.file_texts where search @@ plainto_tsquery('simple', 'consent')`,
        );
      expect((await search(student.id)).map((r) => r.file_id)).toContain(file_id);
      expect(await search(outsider.id)).toEqual([]);
    } finally {
      await api.end();
    }
  });
});

describe("large files", () => {
  it("are processed by the worker (files.process), to the same end", async () => {
    const big = new Uint8Array(26 * 1024 * 1024).fill(0x61);
    for (let i = 80; i < big.length; i += 81) big[i] = 0x0a;
    // enterprise: files up to 500 MB
    await admin`update public.organizations set tier = 'enterprise' where id = ${orgA}`;
    try {
      const { file_id } = await upload(teacher, orgA, "big.txt", big, "text/plain");
      const job = await waitUntil(
        "the files.process job",
        async () =>
          (await admin`select state from pgboss.job where name = 'files.process' and data ->> 'file_id' = ${file_id}`)[0],
        20_000,
        100,
      );
      expect(job).toBeTruthy();
      expect(await settled(file_id, 60_000)).toMatchObject({
        status: "clean",
        detected_mime: "text/plain",
        sha256: crypto.createHash("sha256").update(big).digest("hex"),
      });
      await expectQuotaExact(orgA);
    } finally {
      await admin`update public.organizations set tier = 'free' where id = ${orgA}`;
    }
  }, 90_000);
});

describe("bad uploads", () => {
  it("refuses bad requests with stable codes, and changes nothing", async () => {
    const before = await quota(orgA);
    const cases: [Record<string, unknown>, number, string][] = [
      [{ org_id: orgA, name: "big.pdf", size: 11 * 1024 * 1024, mime_type: "application/pdf" }, 413, "file_too_large"],
      [{ org_id: orgA, name: "tool.exe", size: 10, mime_type: "application/x-msdownload" }, 400, "invalid_request"],
      [{ org_id: orgA, name: "photo.pdf", size: 10, mime_type: "image/png" }, 400, "extension_mismatch"],
      [{ org_id: orgA, name: "../../etc/passwd.txt", size: 10, mime_type: "text/plain" }, 400, "invalid_request"],
      [{ org_id: orgB, name: "x.txt", size: 10, mime_type: "text/plain" }, 403, "forbidden"],
      [{ org_id: orgA, name: "x.txt", size: -1, mime_type: "text/plain" }, 400, "invalid_request"],
    ];
    for (const [body, status, code] of cases) {
      const r = await startUpload(teacher, body);
      expect([r.status, r.body?.error?.code], JSON.stringify(body)).toEqual([status, code]);
    }
    expect((await startUpload(student, { org_id: orgA, name: "x.txt", size: 10, mime_type: "text/plain" })).body.error.code).toBe(
      "forbidden",
    );
    expect(await quota(orgA)).toEqual(before);
  });

  it("refuses an upload over the quota", async () => {
    await admin`update public.storage_quotas set used_bytes = used_bytes + 1073741824 - 100 - (used_bytes + reserved_bytes) where org_id = ${orgA}`;
    try {
      const r = await startUpload(teacher, { org_id: orgA, name: "x.txt", size: 101, mime_type: "text/plain" });
      expect([r.status, r.body.error.code]).toEqual([409, "quota_exceeded"]);
    } finally {
      await admin`update public.storage_quotas set used_bytes = (select coalesce(sum(size_bytes), 0) from public.files where org_id = ${orgA} and status = 'clean') where org_id = ${orgA}`;
    }
  });

  it("keeps uploads out of other organizations' prefixes and off other paths", async () => {
    const started = await startUpload(teacher, { org_id: orgA, name: "a.txt", size: 3, mime_type: "text/plain" });
    const foreign = started.body.path.replace(orgA, orgB);
    expect((await teacher.client.storage.from("files").createSignedUploadUrl(foreign)).error).toMatchObject(NOT_YOURS);
    expect(
      (await teacher.client.storage.from("files").upload(`${orgA}/2026/01/01/${crypto.randomUUID()}-x.txt`, new Blob(["abc"])))
        .error,
    ).toMatchObject(NOT_YOURS);
    expect((await outsider.client.storage.from("files").createSignedUploadUrl(started.body.path)).error).toMatchObject(NOT_YOURS);
  });

  it("rejects a spoofed type and a size that differs from the request, releasing the reservation", async () => {
    const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: "#000" } }).png().toBuffer();
    const spoofed = await upload(teacher, orgA, "notes.txt", new Uint8Array(png), "text/plain");
    expect(await settled(spoofed.file_id)).toMatchObject({
      status: "rejected",
      status_reason: expect.stringMatching(/^type_mismatch/),
    });
    // a rejected upload's bytes are removed, not kept where nobody can read them
    expect(await admin`select 1 from storage.objects where bucket_id = 'files' and name = ${spoofed.path}`).toEqual([]);

    const started = await startUpload(teacher, { org_id: orgA, name: "short.txt", size: 100, mime_type: "text/plain" });
    await teacher.client.storage.from("files").uploadToSignedUrl(
      started.body.path,
      started.body.token,
      new Blob(["only a few bytes"], { type: "text/plain" }),
    );
    expect(await settled(started.body.file_id)).toMatchObject({
      status: "rejected",
      status_reason: expect.stringMatching(/^size_mismatch/),
    });
    await expectQuotaExact(orgA);
  });

  it("refuses an upload larger than its reservation (FL007, 413) and stores nothing", async () => {
    const started = await startUpload(teacher, { org_id: orgA, name: "tiny.txt", size: 1, mime_type: "text/plain" });
    expect(started.status).toBe(201);
    const big = new Blob([new Uint8Array(64 * 1024).fill(65)], { type: "text/plain" });
    const viaUrl = await teacher.client.storage.from("files").uploadToSignedUrl(started.body.path, started.body.token, big);
    expect(viaUrl.error).toMatchObject({ statusCode: "413" });
    const direct = await teacher.client.storage.from("files").upload(started.body.path, big);
    expect(direct.error).toMatchObject({ statusCode: "413" });
    expect(await admin`select 1 from storage.objects where bucket_id = 'files' and name = ${started.body.path}`).toEqual([]);
    expect((await fileRow(started.body.file_id)).status).toBe("pending");
  });

  it("never replaces a processed file's bytes: not by an upsert, not through an upload URL issued with upsert (FL006)", async () => {
    const clean = new TextEncoder().encode("lesson notes");
    const started = await startUpload(teacher, {
      org_id: orgA,
      name: "notes.txt",
      size: clean.byteLength,
      mime_type: "text/plain",
    });
    expect(started.status).toBe(201);
    const files = teacher.client.storage.from("files");
    // while the file is pending, its uploader may ask for an upload URL that overwrites
    const overwriting = await files.createSignedUploadUrl(started.body.path, { upsert: true });
    expect(overwriting.error).toBeNull();
    expect(
      (await files.uploadToSignedUrl(started.body.path, started.body.token, new Blob([clean], { type: "text/plain" }))).error,
    ).toBeNull();
    expect((await settled(started.body.file_id)).status).toBe("clean");

    const eicar = new Blob([new TextEncoder().encode(EICAR.padEnd(clean.byteLength))], { type: "text/plain" });
    const viaUrl = await files.uploadToSignedUrl(started.body.path, overwriting.data!.token, eicar);
    // refused by the uploader's own policies (no UPDATE on files), and FL006 behind them even for the service
    expect(viaUrl.error?.message).toMatch(/already processed|row-level security/);
    const direct = await files.upload(started.body.path, eicar, { upsert: true });
    expect(direct.error?.message).toMatch(/already processed|row-level security/);
    const { data } = await files.download(started.body.path);
    expect(await data!.text()).toBe("lesson notes");
    expect((await fileRow(started.body.file_id)).status).toBe("clean");
  });

  it("quarantines the EICAR test file", async () => {
    const { file_id, path } = await upload(teacher, orgA, "eicar.txt", new TextEncoder().encode(EICAR), "text/plain");
    expect(await settled(file_id)).toMatchObject({ status: "infected", status_reason: expect.stringMatching(/Eicar/i) });
    expect(await admin`select bucket_id from storage.objects where name = ${path}`).toEqual([{ bucket_id: "quarantine" }]);
    expect((await teacher.client.storage.from("quarantine").download(path)).error).toMatchObject(HIDDEN);
    await expectQuotaExact(orgA);
  });
});

describe("deleted files", () => {
  const where = async (path: string) =>
    (await admin`select bucket_id from storage.objects where name = ${path} and bucket_id in ('files', 'trash')`).map((r) =>
      r.bucket_id
    );

  it("leave the reach of signed URLs issued before the delete, and come back when restored", async () => {
    const text = "to be deleted\n";
    const { file_id, path } = await upload(teacher, orgA, "deleted.txt", new TextEncoder().encode(text), "text/plain");
    expect((await settled(file_id)).status).toBe("clean");
    const signed = await teacher.client.storage.from("files").createSignedUrl(path, 3600);
    expect(await (await fetch(signed.data!.signedUrl)).text()).toBe(text);

    expect((await teacher.client.rpc("delete_file", { file_id })).error).toBeNull();
    await waitUntil("the object to move to trash", async () => (await where(path)).join() === "trash", 15_000, 100);
    const afterDelete = await fetch(signed.data!.signedUrl);
    expect([afterDelete.status, await afterDelete.json()]).toEqual([404, {
      statusCode: "404",
      error: "not_found",
      message: "Object not found",
    }]);
    expect((await teacher.client.storage.from("trash").download(path)).error).toMatchObject(HIDDEN); // trash is nobody's to read

    expect((await teacher.client.rpc("restore_file", { file_id })).error).toBeNull();
    await waitUntil("the object to come back", async () => (await where(path)).join() === "files", 15_000, 100);
    expect(await (await fetch(signed.data!.signedUrl)).text()).toBe(text);
  });

  it("lose their objects and their rows once the tier's retention after the delete has passed", async () => {
    const { file_id, path } = await upload(teacher, orgA, "expired.txt", new TextEncoder().encode("old\n"), "text/plain");
    expect((await settled(file_id)).status).toBe("clean");
    expect((await teacher.client.rpc("delete_file", { file_id })).error).toBeNull();
    await waitUntil("the object to move to trash", async () => (await where(path)).join() === "trash", 15_000, 100);
    await admin`update public.files set deleted_at = now() - interval '400 days' where id = ${file_id}`;
    await admin`select app.enqueue_job('maintenance.files-sweep', '{"org_id": null}')`;
    await waitUntil("the sweep to forget the file", async () => !(await fileRow(file_id)), 20_000, 100);
    expect(await where(path)).toEqual([]);
    await expectQuotaExact(orgA);
  });
});

describe("delivery and faults", () => {
  it("does nothing more when the webhook is delivered again", async () => {
    const { file_id, path } = await upload(teacher, orgA, "again.txt", new TextEncoder().encode("again\n"), "text/plain");
    const first = await settled(file_id);
    const [object] =
      await admin`select to_jsonb(o) as record from storage.objects o where bucket_id = 'files' and name = ${path}`;
    const res = await fetch(`${API_URL}/functions/v1/file-processing`, {
      method: "POST",
      headers: { Authorization: `Bearer ${secrets().serviceRoleKey}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "INSERT", table: "objects", schema: "storage", record: object.record, old_record: null }),
    });
    expect(await res.json()).toMatchObject({ processed: false });
    expect(await fileRow(file_id)).toMatchObject({
      status: "clean",
      scan_attempts: first.scan_attempts,
      processed_at: first.processed_at,
    });
  });

  it("refuses webhook calls that are not the service's, and malformed payloads", async () => {
    const call = (token: string, body: unknown) =>
      fetch(`${API_URL}/functions/v1/file-processing`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    expect(
      (await call(teacher.token, {
        type: "INSERT",
        table: "objects",
        schema: "storage",
        record: { bucket_id: "files", name: "x" },
      })).status,
    ).toBe(403);
    const bad = await call(secrets().serviceRoleKey, { type: "INSERT", table: "users" });
    expect([bad.status, (await bad.json()).error.code]).toEqual([400, "invalid_request"]);
    // text Postgres cannot store is the caller's mistake (400), not the function's (500)
    for (const name of [`${orgA}/x\u0000.txt`, `${orgA}/\ud800.txt`]) {
      const res = await call(secrets().serviceRoleKey, {
        type: "INSERT",
        table: "objects",
        schema: "storage",
        record: { bucket_id: "files", name },
      });
      expect([res.status, (await res.json()).error.code]).toEqual([400, "invalid_request"]);
    }
  });

  it("keeps files pending while clamd is down and settles them once it is back", async () => {
    const clamd = services(secrets()).find((s) => s.name === "clamd")!;
    await stopProcess("clamd");
    let file_id: string;
    try {
      ({ file_id } = await upload(teacher, orgA, "waiting.txt", new TextEncoder().encode("waiting for clamd\n"), "text/plain"));
      const row = await waitUntil(
        "a failed scan attempt",
        async () => {
          const f = await fileRow(file_id);
          return f.status === "pending" && f.scan_attempts >= 1 && f.next_attempt_at ? f : null;
        },
        20_000,
        100,
      );
      expect(row.status_reason).toBe("scanner_unavailable");
    } finally {
      if (!readPid("clamd")) spawnDetached(clamd);
      await waitUntil("clamd", () => clamd.healthy(), 60_000, 250);
    }
    // the sweep sends it again once it is due (pg_cron runs it every minute; here it is called)
    await admin`update public.files set next_attempt_at = now() where id = ${file_id!}`;
    await admin`select * from app.sweep_files()`;
    // at least the failed attempt and the one after clamd came back (the net worker may have
    // resent the webhook once more while clamd was starting)
    expect(await settled(file_id!)).toMatchObject({ status: "clean" });
    expect((await fileRow(file_id!)).scan_attempts).toBeGreaterThanOrEqual(2);
  }, 90_000);

  it("sweeps scans that hang and uploads that never arrive", async () => {
    // pg_cron's files-sweep runs at the top of each minute and would take these rows first
    await clearOfMinuteEnd(15_000);
    const started = await startUpload(teacher, { org_id: orgA, name: "never.txt", size: 10, mime_type: "text/plain" });
    const { file_id } = await upload(teacher, orgA, "hung.txt", new TextEncoder().encode("hung\n"), "text/plain");
    await settled(file_id);
    await admin`update public.files set status = 'scanning', scan_started_at = now() - interval '11 minutes' where id = ${file_id}`;
    // created_at is kept by a trigger: changed here with triggers off (no status change, so no quota change)
    await admin.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`update public.files set created_at = now() - interval '4 hours' where id = ${started.body.file_id}`;
    });
    const [swept] = await admin`select * from app.sweep_files()`;
    expect(swept.unstuck).toBeGreaterThanOrEqual(1);
    expect(swept.abandoned).toBeGreaterThanOrEqual(1);
    expect(await fileRow(started.body.file_id)).toMatchObject({ status: "failed", status_reason: "upload_never_arrived" });
    expect(await settled(file_id)).toMatchObject({ status: "clean" });
    await expectQuotaExact(orgA);
  });
});
