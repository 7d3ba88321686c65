// Role changes and removals through the Data API (supabase-js with each member's own token,
// through the gateway): the caller must outrank the member's old and new role (owners excepted),
// nobody changes their own role, leaving stays allowed; an override's created_at is stamped by the
// database. What the caller sees: PostgREST's error with the SQLSTATE (TN004, TN005), and the rows
// as they were.
import crypto from "node:crypto";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { callAsMachine, createKey } from "../helpers/machines.ts";
import { adminSql, API_URL, createUser, secrets, tokenFor } from "../helpers/stack.ts";

const admin = adminSql();
let org: string;
type Member = { id: string; client: SupabaseClient<Database> };
const m = {} as Record<"owner" | "admin" | "admin2" | "teacher" | "teacher2" | "student", Member>;

async function member(role: string): Promise<Member> {
  const user = await createUser(admin);
  await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${user.id}, ${role})`;
  const { token } = await tokenFor(admin, user.id);
  const client = createClient<Database>(API_URL, secrets().anonKey, {
    global: { headers: { Authorization: `Bearer ${token}` } },
    auth: { persistSession: false, autoRefreshToken: false },
  });
  return { id: user.id, client };
}

const roles = async () =>
  Object.fromEntries(
    (await admin<
      { user_id: string; role: string }[]
    >`select user_id, role::text from public.organization_members where org_id = ${org}`)
      .map((r) => [r.user_id, r.role]),
  );
const setRole = (who: Member, target: Member, role: Database["public"]["Enums"]["org_role"]) =>
  who.client.from("organization_members").update({ role }).eq("org_id", org).eq("user_id", target.id).select();
const remove = (who: Member, target: Member) =>
  who.client.from("organization_members").delete().eq("org_id", org).eq("user_id", target.id).select();

beforeAll(async () => {
  [{ id: org }] = await admin`insert into public.organizations (name, slug)
                              values ('Ranks', ${`ranks-${crypto.randomUUID().slice(0, 8)}`}) returning id`;
  m.owner = await member("owner");
  m.admin = await member("admin");
  m.admin2 = await member("admin");
  m.teacher = await member("teacher");
  m.teacher2 = await member("teacher");
  m.student = await member("student");
  // an owner let this teacher manage members and keys
  await admin`insert into public.member_permissions (org_id, user_id, permission, granted)
              values (${org}, ${m.teacher.id}, 'members.manage', true), (${org}, ${m.teacher.id}, 'api_keys.manage', true)`;
});
afterAll(async () => {
  await admin`update public.organizations set deleted_at = now() where id = ${org}`;
  await admin.end();
});

describe("role changes follow the ranks", () => {
  it("a teacher holding members.manage cannot make themselves an admin, nor demote an admin", async () => {
    const before = await roles();
    const own = await setRole(m.teacher, m.teacher, "admin");
    expect(own.error?.code).toBe("TN005");
    const demote = await setRole(m.teacher, m.admin, "student");
    expect(demote.error?.code).toBe("TN004");
    const raise = await setRole(m.teacher, m.student, "teacher");
    expect(raise.error?.code).toBe("TN004");
    const removeAdmin = await remove(m.teacher, m.admin);
    expect(removeAdmin.error?.code).toBe("TN004");
    expect(await roles()).toEqual(before);
  });

  it("an admin cannot demote or remove a peer admin, nor change their own role", async () => {
    const before = await roles();
    expect((await setRole(m.admin, m.admin2, "student")).error?.code).toBe("TN004");
    expect((await remove(m.admin, m.admin2)).error?.code).toBe("TN004");
    expect((await setRole(m.admin, m.admin, "teacher")).error?.code).toBe("TN005");
    expect((await setRole(m.admin, m.student, "admin")).error?.code).toBe("TN004");
    expect(await roles()).toEqual(before);
  });

  it("what the ranks allow still works: an admin moves a student, an owner an admin, a member leaves", async () => {
    const up = await setRole(m.admin, m.student, "teacher");
    expect(up.error).toBeNull();
    expect(up.data).toHaveLength(1);
    expect((await setRole(m.admin, m.student, "student")).data).toHaveLength(1);
    expect((await setRole(m.owner, m.admin2, "teacher")).data).toHaveLength(1);
    const left = await remove(m.teacher2, m.teacher2);
    expect(left.error).toBeNull();
    expect(left.data).toHaveLength(1);
    expect((await roles())[m.admin2.id]).toBe("teacher");
  });
});

describe("through the machine API, a key ranks as its creator (never above admin) and never acts on its creator", () => {
  it("an admin's key cannot demote or remove an admin; a teacher's key cannot touch its creator nor a fellow teacher", async () => {
    const peer = await member("admin");
    const before = await roles();
    const adminKey = await createKey(admin, org, m.admin.id, ["members.manage"]);
    const demote = await callAsMachine(adminKey.key, `org-api/members/${peer.id}`, {
      method: "PATCH",
      body: { role: "student" },
    });
    expect([demote.status, demote.json?.error?.code]).toEqual([403, "rank"]);
    const removal = await callAsMachine(adminKey.key, `org-api/members/${peer.id}`, { method: "DELETE" });
    expect([removal.status, removal.json?.error?.code]).toEqual([403, "rank"]);
    const own = await callAsMachine(adminKey.key, `org-api/members/${m.admin.id}`, {
      method: "PATCH",
      body: { role: "teacher" },
    });
    expect([own.status, own.json?.error?.code]).toEqual([403, "own_role"]);

    const teacherKey = await createKey(admin, org, m.teacher.id, ["members.manage"]);
    const self = await callAsMachine(teacherKey.key, `org-api/members/${m.teacher.id}/permissions/settings.manage`, {
      method: "PUT",
      body: { granted: true },
    });
    expect(self.status).toBe(403);
    const fellow = await callAsMachine(teacherKey.key, `org-api/members/${m.admin2.id}`, {
      method: "PATCH",
      body: { role: "student" },
    });
    expect([fellow.status, fellow.json?.error?.code]).toEqual([403, "rank"]); // admin2 is a teacher by now
    expect(await roles()).toEqual(before);
    expect(
      await admin`select 1 from public.member_permissions where org_id = ${org} and user_id = ${m.teacher.id}
                       and permission = 'settings.manage'`,
    ).toEqual([]);
  });
});

describe("overrides", () => {
  it("keep the time they were written, not the one the client sent", async () => {
    const { data, error } = await m.admin.client.from("member_permissions")
      .insert({
        org_id: org,
        user_id: m.student.id,
        permission: "files.write",
        granted: true,
        created_at: "2001-01-01T00:00:00Z",
      })
      .select("created_at").single();
    expect(error).toBeNull();
    expect(Math.abs(Date.parse(data!.created_at) - Date.now())).toBeLessThan(60_000);
    await m.admin.client.from("member_permissions").update({ created_at: "2001-01-01T00:00:00Z" })
      .eq("org_id", org).eq("user_id", m.student.id);
    const [row] =
      await admin`select created_at from public.member_permissions where org_id = ${org} and user_id = ${m.student.id}`;
    expect(Math.abs(row.created_at.getTime() - Date.now())).toBeLessThan(60_000);
  });
});
