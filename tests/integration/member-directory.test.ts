// The member directory through the Data API (POST /rest/v1/rpc/organization_members_directory), as
// the console calls it: an owner reads every member's name and address; a student the staff's and
// their own; another organization's owner, anon, a forged token and an expired one are refused
// before any row. The rules themselves are pinned in supabase/tests/database/42_member_directory.
import crypto from "node:crypto";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminSql, API_URL, createUser, secrets, tokenFor } from "../helpers/stack.ts";

const admin = adminSql();
const people: Record<string, { id: string; email: string; token: string }> = {};
let org = "";
let otherOrg = "";

beforeAll(async () => {
  for (const who of ["owner", "teacher", "student", "classmate", "outsider"]) {
    const u = await createUser(admin);
    await admin`update auth.users set raw_user_meta_data = ${admin.json({ full_name: `The ${who}` })} where id = ${u.id}`;
    people[who] = { ...u, token: "" };
  }
  [{ id: org }] = await admin`insert into public.organizations (name, slug) values ('Directory School', ${`dir-${
    crypto.randomUUID().slice(0, 8)
  }`}) returning id`;
  [{ id: otherOrg }] = await admin`insert into public.organizations (name, slug) values ('Other School', ${`dir-other-${
    crypto.randomUUID().slice(0, 8)
  }`}) returning id`;
  for (const [who, role] of [["owner", "owner"], ["teacher", "teacher"], ["student", "student"], ["classmate", "student"]]) {
    await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${people[who].id}, ${role})`;
  }
  await admin`insert into public.organization_members (org_id, user_id, role) values (${otherOrg}, ${people.outsider.id}, 'owner')`;
  for (const p of Object.values(people)) p.token = (await tokenFor(admin, p.id)).token;
});
afterAll(async () => {
  await admin`delete from public.organizations where id in (${org}, ${otherOrg})`;
  await admin`delete from auth.users where id in ${admin(Object.values(people).map((p) => p.id))}`;
  await admin.end();
});

async function directory(token: string | null) {
  const res = await fetch(`${API_URL}/rest/v1/rpc/organization_members_directory`, {
    method: "POST",
    headers: {
      apikey: secrets().publishableKey,
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      "Content-Type": "application/json",
    },
    body: JSON.stringify({ org_id: org }),
  });
  return { status: res.status, body: await res.json() };
}

describe("the member directory over the Data API", () => {
  it("gives an owner every member's name and address, highest rank first", async () => {
    const { status, body } = await directory(people.owner.token);
    expect(status).toBe(200);
    expect(body.map((m: { email: string; role: string }) => [m.role, m.email])).toEqual([
      ["owner", people.owner.email],
      ["teacher", people.teacher.email],
      ["student", people.classmate.email],
      ["student", people.student.email],
    ]);
    expect(body[0]).toMatchObject({ display_name: "The owner", user_id: people.owner.id });
  });

  it("gives a student every name, the staff's addresses and their own, never a classmate's", async () => {
    const { status, body } = await directory(people.student.token);
    expect(status).toBe(200);
    const byName = Object.fromEntries(body.map((m: { display_name: string; email: string | null }) => [m.display_name, m.email]));
    expect(byName).toEqual({
      "The owner": people.owner.email,
      "The teacher": people.teacher.email,
      "The classmate": null,
      "The student": people.student.email,
    });
    expect(JSON.stringify(body)).not.toContain(people.classmate.email);
  });

  it("refuses another organization's owner, anon, a forged token and an expired one", async () => {
    expect(await directory(people.outsider.token)).toMatchObject({ status: 403, body: { code: "42501" } });
    expect(await directory(null)).toMatchObject({ status: 401, body: { code: "42501" } });
    const claims = JSON.parse(Buffer.from(people.owner.token.split(".")[1], "base64url").toString());
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .sign(new TextEncoder().encode("x".repeat(40)));
    expect(await directory(forged)).toMatchObject({ status: 401, body: { code: "PGRST301" } });
    const expired = (await tokenFor(admin, people.owner.id, -60)).token;
    expect((await directory(expired)).status).toBe(401);
  });
});
