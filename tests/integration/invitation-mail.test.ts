// What an invitation mail says, end to end: member-invite through a gateway of its own (this
// checkout's auth stand-in and functions, the stack's database and SMTP sink) with the project's
// mail templates (config.toml [auth.email.template.invite] and .magic_link). A new address gets
// Auth's invitation, an address with an account a magic link; both name the organization and the
// role in the subject and the text. The words live in the person's metadata only while their mail
// goes: any organization may invite any address, and a later magic link keeps Supabase's words.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { createClient } from "@supabase/supabase-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../dev/stack/config.ts";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { type FixtureGateway, projectCopy, startFixtureGateway } from "../helpers/fixture-gateway.ts";
import { mailTo } from "../helpers/mail.ts";
import { adminSql, HOST, PORTS, secrets } from "../helpers/stack.ts";

const PASSWORD = "invitation mail 42";
const admin = adminSql();
let gateway: FixtureGateway;
let project = "";
const users: string[] = [];
let org = "";
const strangerOrgs: string[] = [];

beforeAll(async () => {
  project = projectCopy("invitation-mail");
  gateway = await startFixtureGateway("invitation-mail", project, {
    AUTH_SMTP_URL: `smtp://${HOST}:${PORTS.smtp}`,
    FUNCTIONS_ENV_FILE: path.join(ROOT, ".stack", "functions.env"),
  });
}, 60_000);
afterAll(async () => {
  await gateway?.stop();
  if (project) fs.rmSync(project, { recursive: true, force: true });
  for (const id of [org, ...strangerOrgs].filter(Boolean)) await admin`delete from public.organizations where id = ${id}`;
  for (const id of users) await admin`delete from auth.users where id = ${id}`;
  await admin.end();
});

const newEmail = () => `invited-${crypto.randomUUID().slice(0, 8)}@test.local`;
const service = () => createClient<Database>(gateway.url, secrets().secretKey, { auth: { persistSession: false } });
const browserTab = () => createClient<Database>(gateway.url, secrets().publishableKey, { auth: { persistSession: false } });

async function account(email = newEmail()) {
  const made = await service().auth.admin.createUser({ email, password: PASSWORD, email_confirm: true });
  expect(made.error).toBeNull();
  users.push(made.data.user!.id);
  return { id: made.data.user!.id, email };
}

describe("an invitation mail", () => {
  it("names the organization and the role, for a new address and for an existing account", { timeout: 120_000 }, async () => {
    const owner = await account();
    [{ id: org }] = await admin`insert into public.organizations (name, slug) values ('Hillside School', ${`mail-${
      owner.id.slice(0, 8)
    }`}) returning id`;
    await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${owner.id}, 'owner')`;
    const tab = browserTab();
    expect((await tab.auth.signInWithPassword({ email: owner.email, password: PASSWORD })).error).toBeNull();

    const stranger = newEmail();
    const invited = await tab.functions.invoke("member-invite", { body: { org_id: org, email: stranger, role: "teacher" } });
    expect(invited.error).toBeNull();
    expect(invited.data).toMatchObject({ mail: "invite" });
    const mail = await mailTo(stranger, /invites you/);
    expect(mail.subject).toBe("Hillside School invites you as a teacher");
    expect(mail.text).toContain("You are invited to join Hillside School as a teacher.");
    expect(mail.text).toMatch(/http:\/\/\S+\/auth\/v1\/verify\?token=\S+&type=invite&redirect_to=\S*accept-invitation/);
    const [made] = await admin`select id, raw_user_meta_data as meta from auth.users where email = ${stranger}`;
    users.push(made.id);
    expect(made.meta).toEqual({}); // the mail's words went with the mail

    const existing = await account();
    const again = await tab.functions.invoke("member-invite", { body: { org_id: org, email: existing.email, role: "student" } });
    expect(again.error).toBeNull();
    expect(again.data).toMatchObject({ mail: "magiclink" });
    const magic = await mailTo(existing.email, /invites you/);
    expect(magic.subject).toBe("Hillside School invites you as a student");
    expect(magic.text).toContain("Follow this link to sign in and accept the invitation:");
    expect(magic.text).toMatch(/code: \d{6}/);

    expect(await metadataOf(existing.id)).toEqual({});

    // nothing of the invitation stays: a later magic link is a plain one
    await plainMagicLink(existing);
  });

  it("leaves nothing on an account a stranger organization invites", { timeout: 120_000 }, async () => {
    const stranger = await account();
    const [{ id: strangersOrg }] = await admin`insert into public.organizations (name, slug)
      values ('Your Bank Security Team', ${`stranger-${stranger.id.slice(0, 8)}`}) returning id`;
    strangerOrgs.push(strangersOrg);
    await admin`insert into public.organization_members (org_id, user_id, role) values (${strangersOrg}, ${stranger.id}, 'owner')`;
    const victim = await account();
    await admin`update auth.users set raw_user_meta_data = '{"display_name": "Vera"}' where id = ${victim.id}`;
    const tab = browserTab();
    expect((await tab.auth.signInWithPassword({ email: stranger.email, password: PASSWORD })).error).toBeNull();

    const invited = await tab.functions.invoke("member-invite", {
      body: { org_id: strangersOrg, email: victim.email, role: "owner" },
    });
    expect(invited.error).toBeNull();
    expect(invited.data).toMatchObject({ mail: "magiclink" });
    expect((await mailTo(victim.email, /invites you/)).subject).toBe("Your Bank Security Team invites you as an owner");
    expect(await metadataOf(victim.id)).toEqual({ display_name: "Vera" });

    await plainMagicLink(victim);
  });
});

async function metadataOf(userId: string) {
  const [u] = await admin`select raw_user_meta_data as meta from auth.users where id = ${userId}`;
  return u.meta;
}

/** The person asks for a magic link of their own (POST /auth/v1/otp): Supabase's words, no organization's. */
async function plainMagicLink(person: { id: string; email: string }) {
  await admin`update auth.users set recovery_sent_at = null where id = ${person.id}`; // past max_frequency
  const asked = await fetch(`${gateway.url}/auth/v1/otp`, {
    method: "POST",
    headers: { apikey: secrets().publishableKey, "content-type": "application/json" },
    body: JSON.stringify({ email: person.email, create_user: false }),
  });
  expect(asked.status).toBe(200);
  const plain = await mailTo(person.email, /Magic Link/);
  expect(plain.subject).toBe("Your Magic Link");
  expect(plain.text).toContain("Follow this link to login:");
  expect(plain.text).not.toMatch(/invite/i);
}
