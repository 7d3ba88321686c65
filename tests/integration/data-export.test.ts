// tenant.export end to end on the running stack: an owner requests an export (RPC, request
// context), the stack's worker builds it in the organization's context with progress, stores it in
// the `exports` bucket, and the owner downloads it with a signed URL through supabase-js.
import crypto from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withRequestContext } from "../../supabase/functions/_shared/db.ts";
import { adminSql, API_URL, createUser, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";

const admin = adminSql();
let owner: { id: string }, student: { id: string }, stranger: { id: string }, org: string;
afterAll(() => admin.end());

beforeAll(async () => {
  [owner, student, stranger] = [await createUser(admin), await createUser(admin), await createUser(admin)];
  [{ id: org }] = await admin`insert into public.organizations (name, slug) values ('Export School', ${`export-${
    crypto.randomUUID().slice(0, 8)
  }`}) returning id`;
  await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${owner.id}, 'owner'), (${org}, ${student.id}, 'student')`;
  await admin`insert into public.invitations (org_id, email, role, token_hash, expires_at)
              values (${org}, 'invitee@export.test', 'teacher', sha256(${crypto.randomUUID()}::bytea), now() + interval '1 day')`;
});

const as = async <T>(userId: string, fn: (tx: postgres.TransactionSql) => Promise<T>) =>
  withRequestContext(admin, {
    role: "authenticated",
    claims: (await tokenFor(admin, userId)).claims,
    headers: { "x-request-id": "export-test" },
  }, fn);
const storageAs = async (userId: string) =>
  createClient<Database>(API_URL, secrets().anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    global: { headers: { Authorization: `Bearer ${(await tokenFor(admin, userId)).token}` } },
  }).storage.from("exports");

describe("data export", () => {
  let exportId: string, objectPath: string;

  it("is requested by a member holding data.export and completes with progress", async () => {
    const [requested] = await as(owner.id, (tx) => tx`select * from public.request_data_export(${org})`);
    exportId = requested.id;
    expect(requested).toMatchObject({ status: "queued", progress: 0 });
    expect(requested.job_id).toMatch(/^[0-9a-f-]{36}$/);
    const done = await waitUntil("the export", async () => {
      const [row] = await as(
        owner.id,
        (tx) => tx`select status, progress, object_path, error from public.data_exports where id = ${exportId}`,
      );
      return row.status === "completed" || row.status === "failed" ? row : null;
    }, 20_000);
    expect(done).toMatchObject({ status: "completed", progress: 100, error: null, object_path: `${org}/${exportId}.json` });
    objectPath = done.object_path;
    const [job] = await admin`select data->>'correlation_id' as cid from pgboss.job where id = ${requested.job_id}`;
    expect(job.cid).toBe("export-test");
  });

  it("is downloaded by the owner through a signed URL, holding the organization's data and no secrets", async () => {
    const signed = await (await storageAs(owner.id)).createSignedUrl(objectPath, 60);
    expect(signed.error).toBeNull();
    const archive = await (await fetch(signed.data!.signedUrl)).json();
    expect(archive).toMatchObject({
      format: "saas-backend-export/1",
      org_id: org,
      organization: { id: org, name: "Export School" },
    });
    expect(archive.members.map((m: { user_id: string }) => m.user_id).sort()).toEqual([owner.id, student.id].sort());
    expect(archive.invitations).toEqual([expect.objectContaining({ email: "invitee@export.test", role: "teacher" })]);
    expect(archive.audit_log.length).toBeGreaterThan(0);
    const text = JSON.stringify(archive);
    expect(text).not.toMatch(/token_hash|key_hash/);
  });

  it("is neither requested, seen nor downloaded by members without data.export or by other organizations", async () => {
    await expect(as(student.id, (tx) => tx`select public.request_data_export(${org})`)).rejects.toMatchObject({ code: "42501" });
    expect(await as(student.id, (tx) => tx`select 1 from public.data_exports where org_id = ${org}`)).toEqual([]);
    expect((await (await storageAs(student.id)).createSignedUrl(objectPath, 60)).error).toMatchObject({ status: 404 });
    expect((await (await storageAs(stranger.id)).download(objectPath)).error).toMatchObject({ status: 404 });
  });

  it("cannot have its progress changed by a member, only by the export job", async () => {
    const changed = await as(
      owner.id,
      (tx) => tx`update public.data_exports set status = 'failed' where id = ${exportId} returning id`,
    );
    expect(changed).toEqual([]);
  });

  it("refuses a second export while one is under way (TN050)", async () => {
    // a job that waits an hour: alive, so its export is under way
    const [{ job }] = await admin`select app.enqueue_job('tenant.export', ${
      admin.json({ org_id: org, export_id: crypto.randomUUID() })
    }, 0, 3600) as job`;
    await admin`insert into public.data_exports (org_id, status, job_id) values (${org}, 'running', ${job})`;
    try {
      await expect(as(owner.id, (tx) => tx`select public.request_data_export(${org})`)).rejects.toMatchObject({ code: "TN050" });
    } finally {
      await admin`update public.data_exports set status = 'failed' where org_id = ${org} and status = 'running'`;
      await admin`update pgboss.job set state = 'cancelled' where id = ${job}`;
    }
  });

  it("holds only what its requester may read, and only they or holders of all it needed read it", async () => {
    // a student given data.export: the organization and its members, nothing a student may not read
    await admin`insert into public.member_permissions (org_id, user_id, permission, granted) values (${org}, ${student.id}, 'data.export', true)`;
    const [requested] = await as(student.id, (tx) => tx`select * from public.request_data_export(${org})`);
    const done = await waitUntil("the student's export", async () => {
      const [row] =
        await admin`select status, object_path, required_permissions from public.data_exports where id = ${requested.id}`;
      return row.status === "completed" || row.status === "failed" ? row : null;
    }, 20_000);
    expect(done).toMatchObject({ status: "completed", required_permissions: ["org.read"] });
    const signed = await (await storageAs(student.id)).createSignedUrl(done.object_path, 60);
    const archive = await (await fetch(signed.data!.signedUrl)).json();
    expect(archive.sections).toEqual(["organization", "members"]);
    for (const hidden of ["member_permissions", "invitations", "api_keys", "audit_log"]) {
      expect(archive).not.toHaveProperty(hidden);
    }
    expect(JSON.stringify(archive)).not.toContain("invitee@export.test");

    // the owner's archive needed more than the student holds
    expect((await (await storageAs(student.id)).createSignedUrl(objectPath, 60)).error).toMatchObject({ status: 404 });
    // the owner holds all the student's archive needed
    expect((await (await storageAs(owner.id)).createSignedUrl(done.object_path, 60)).error).toBeNull();
  });
});
