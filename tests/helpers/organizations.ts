// Organizations and members for integration tests, inserted as the database owner (no request
// context: this is the test's setup, not a caller's act), each organization with a slug of its own
// so test files never meet. orgWithMember is the usual start of a file: one organization, one
// signed-in member and the member's access token, soft-deleted when the file is done.
import crypto from "node:crypto";
import type postgres from "postgres";
import { createUser, tokenFor } from "./stack.ts";

export async function createOrg(admin: postgres.Sql, name: string, tier = "basic") {
  const [{ id }] = await admin<{ id: string }[]>`
    insert into public.organizations (name, slug, tier)
    values (${name}, ${`${name.toLowerCase().replace(/[^a-z0-9]+/g, "-")}-${
    crypto.randomUUID().slice(0, 8)
  }`}, ${tier}::public.subscription_tier)
    returning id`;
  return id;
}

export async function addMember(admin: postgres.Sql, org: string, role: string, email?: string) {
  const user = await createUser(admin, email);
  await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${user.id}, ${role}::public.org_role)`;
  return user;
}

/** An organization of the file's own with one member of `role` and that member's access token; end() soft-deletes it. */
export async function orgWithMember(admin: postgres.Sql, name: string, role = "owner", tier = "free") {
  const org = await createOrg(admin, name, tier);
  const member = await addMember(admin, org, role);
  const { token } = await tokenFor(admin, member.id);
  return {
    org,
    member: member.id,
    token,
    async end() {
      await admin`update public.organizations set deleted_at = now() where id = ${org}`;
    },
  };
}
