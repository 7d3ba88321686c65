// A deleted file's bytes stay counted against the storage quota until the file is purged: they are
// still stored (in the trash), so cycling uploads and deletes cannot hold more than the plan. From
// the caller's side: supabase-js with a member's own token (request_file_upload, delete_file,
// restore_file, the organization's storage_quotas row); the file's scan is stood in for by marking
// it clean, and the purge is the files sweep's last step.
import crypto from "node:crypto";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { adminSql, API_URL, createUser, secrets, tokenFor } from "../helpers/stack.ts";

const admin = adminSql();
let org: string;
let teacher: SupabaseClient<Database>;
const SIZE = 4000;

beforeAll(async () => {
  [{ id: org }] = await admin`insert into public.organizations (name, slug)
                              values ('Trash', ${`trash-${crypto.randomUUID().slice(0, 8)}`}) returning id`;
  const user = await createUser(admin);
  await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${user.id}, 'teacher')`;
  const { token } = await tokenFor(admin, user.id);
  teacher = createClient<Database>(API_URL, secrets().anonKey, {
    global: { headers: { Authorization: `Bearer ${token}` } },
    auth: { persistSession: false, autoRefreshToken: false },
  });
  // the rest of the plan is taken by other files, leaving room for one of these and a little more
  await admin`update public.storage_quotas q set used_bytes = t.storage_bytes - ${SIZE + SIZE / 2}
              from public.organizations o join public.subscription_tiers t on t.tier = o.tier
              where o.id = q.org_id and q.org_id = ${org}`;
});
afterAll(async () => {
  await admin`update public.organizations set deleted_at = now() where id = ${org}`;
  await admin.end();
});

const used = async () => (await teacher.from("storage_quotas").select("used_bytes").eq("org_id", org).single()).data!.used_bytes;
async function cleanFile(name: string) {
  const { data, error } = await teacher.rpc("request_file_upload", {
    org_id: org,
    name,
    size_bytes: SIZE,
    mime_type: "text/plain",
  });
  expect(error).toBeNull();
  await admin`update public.files set status = 'clean', sha256 = ${"0".repeat(64)} where id = ${data!.id}`;
  return data!.id;
}

it("a deleted file's bytes count until it is purged, so upload-and-delete cannot exceed the plan", async () => {
  const first = await cleanFile("first.txt");
  const full = await used();
  expect((await teacher.rpc("delete_file", { file_id: first })).error).toBeNull();
  expect(await used()).toBe(full); // in the trash, still stored, still counted

  const again = await teacher.rpc("request_file_upload", {
    org_id: org,
    name: "second.txt",
    size_bytes: SIZE,
    mime_type: "text/plain",
  });
  expect(again.error?.code).toBe("FL001");

  // restoring takes nothing more: its bytes never stopped counting
  expect((await teacher.rpc("restore_file", { file_id: first })).error).toBeNull();
  expect(await used()).toBe(full);
  expect((await teacher.rpc("delete_file", { file_id: first })).error).toBeNull();

  // purged after the tier's retention (the files sweep's last step): the bytes are free again
  await admin`update public.files set deleted_at = now() - interval '400 days' where id = ${first}`;
  expect((await admin`select app.forget_deleted_file(${first}) as gone`)[0].gone).toBe(true);
  expect(await used()).toBe(full - SIZE);
  expect(
    (await teacher.rpc("request_file_upload", { org_id: org, name: "third.txt", size_bytes: SIZE, mime_type: "text/plain" }))
      .error,
  )
    .toBeNull();
});
