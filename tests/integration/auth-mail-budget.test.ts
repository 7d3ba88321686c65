// Auth's mail budget under a flood from anonymous callers, on a gateway of the test's own over a
// copy of the project whose config.toml has small limits (the stack's 1,000 mails an hour cannot be
// spent in a test, and spending them would starve every other test): /recover is limited per
// source address, one source cannot spend the hour's mail, and invitations (member-invite) still
// go out when every anonymous caller together has spent what anonymous callers may.
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { createClient } from "@supabase/supabase-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../dev/stack/config.ts";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { type FixtureGateway, projectCopy, startFixtureGateway } from "../helpers/fixture-gateway.ts";
import { waitForMails } from "../helpers/mail.ts";
import { adminSql, HOST, PORTS, secrets } from "../helpers/stack.ts";

const EMAIL_SENT = 8; // per hour, the whole project
const SIGN_IN_SIGN_UPS = 20; // per 5 minutes, per source address
const PASSWORD = "correct horse 42";

const admin = adminSql();
let project = "";
let gateway: FixtureGateway;

beforeAll(async () => {
  project = projectCopy("auth-mail-budget", (config) => {
    const edited = config
      .replace(/^email_sent = \d+$/m, `email_sent = ${EMAIL_SENT}`)
      .replace(/^sign_in_sign_ups = \d+$/m, `sign_in_sign_ups = ${SIGN_IN_SIGN_UPS}`);
    expect(edited).toContain(`email_sent = ${EMAIL_SENT}\n`);
    expect(edited).toContain(`sign_in_sign_ups = ${SIGN_IN_SIGN_UPS}\n`);
    return edited;
  });
  gateway = await startFixtureGateway("auth-mail-budget", project, {
    AUTH_SMTP_URL: `smtp://${HOST}:${PORTS.smtp}`,
    FUNCTIONS_ENV_FILE: path.join(ROOT, ".stack", "functions.env"),
  });
}, 60_000);
afterAll(async () => {
  await gateway?.stop();
  fs.rmSync(project, { recursive: true, force: true });
  await admin.end();
});

const newEmail = () => `budget-${crypto.randomUUID().slice(0, 8)}@test.local`;

/** A POST to /auth/v1 from one source address (all of 127.0.0.0/8 is this machine). */
function fromAddress(source: string, route: string, body: unknown) {
  return new Promise<{ status: number; code?: string }>((resolve, reject) => {
    const req = http.request(`${gateway.url}/auth/v1${route}`, {
      method: "POST",
      localAddress: source,
      headers: {
        apikey: secrets().publishableKey,
        "content-type": "application/json",
        "x-supabase-api-version": "2024-01-01",
      },
    }, (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, code: (JSON.parse(text || "{}") as { code?: string }).code }));
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}
const signUpFrom = (source: string, email = newEmail()) => fromAddress(source, "/signup", { email, password: PASSWORD });

/** A source address of its own for each use, so reruns within the hour start clean. */
let nextSource = crypto.randomInt(2, 200);
const freshSource = () => `127.${crypto.randomInt(1, 250)}.${nextSource++ % 250}.${crypto.randomInt(2, 250)}`;

describe("the mail budget under a flood", () => {
  it("/recover is limited per source address (429 over_request_rate_limit); other addresses are not held back", async () => {
    const source = freshSource();
    const statuses: number[] = [];
    for (let i = 0; i < SIGN_IN_SIGN_UPS; i++) {
      statuses.push((await fromAddress(source, "/recover", { email: newEmail() })).status);
    }
    expect(statuses).toEqual(Array(SIGN_IN_SIGN_UPS).fill(200));
    expect(await fromAddress(source, "/recover", { email: newEmail() })).toEqual({
      status: 429,
      code: "over_request_rate_limit",
    });
    expect((await fromAddress(freshSource(), "/recover", { email: newEmail() })).status).toBe(200);
  });

  it("one anonymous source cannot spend the hour's mail; when all of them have spent theirs, invitations still go out", async () => {
    const flooder = freshSource();
    let sent = 0;
    let refusal: { status: number; code?: string } | null = null;
    for (let i = 0; i < EMAIL_SENT + 2 && !refusal; i++) {
      const r = await signUpFrom(flooder);
      if (r.status === 200) sent++;
      else refusal = r;
    }
    expect(refusal).toEqual({ status: 429, code: "over_email_send_rate_limit" });
    expect(sent).toBeLessThan(EMAIL_SENT);
    // someone else's confirmation still goes out
    const other = newEmail();
    expect(await signUpFrom(freshSource(), other)).toEqual({ status: 200, code: undefined });
    await waitForMails(other, 1, /Confirm Your Signup/);

    // every anonymous source together, until what anonymous callers may send is spent
    let spent = false;
    for (let i = 0; i < EMAIL_SENT * 2 && !spent; i++) {
      const source = freshSource();
      const r = await signUpFrom(source);
      if (r.status === 429) spent = (await signUpFrom(freshSource())).status === 429;
    }
    expect(spent).toBe(true);

    // a school's invitation still goes out
    const svc = createClient<Database>(gateway.url, secrets().secretKey, { auth: { persistSession: false } });
    const owner = newEmail();
    const made = await svc.auth.admin.createUser({ email: owner, password: PASSWORD, email_confirm: true });
    expect(made.error).toBeNull();
    const [{ id: org }] = await admin`insert into public.organizations (name, slug) values ('Budget School', ${`budget-${
      made.data.user!.id.slice(0, 8)
    }`}) returning id`;
    await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${made.data.user!.id}, 'owner')`;
    const tab = createClient<Database>(gateway.url, secrets().publishableKey, { auth: { persistSession: false } });
    expect((await tab.auth.signInWithPassword({ email: owner, password: PASSWORD })).error).toBeNull();
    const invitee = newEmail();
    const invited = await tab.functions.invoke("member-invite", { body: { org_id: org, email: invitee, role: "teacher" } });
    expect(invited.error).toBeNull();
    expect(invited.data).toMatchObject({ mail: "invite" });
    expect(await waitForMails(invitee, 1, /^Budget School invites you as a teacher$/)).toHaveLength(1);
  });
});
