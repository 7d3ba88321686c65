// The reference console (examples/console, served by the stack at http://127.0.0.1:54323) driven in
// headless Chromium as people use it: sign up and confirm by the mailed link, organizations and
// invitations (two browser contexts), files with live status over MQTT, usage charts, API keys, a
// student refused with a readable message. Every test fails on a console error, a CSP or CORS
// failure, or a request the flow did not expect; each screen is checked with axe-core (no
// critical violations) and a screenshot goes to .stack/screenshots/.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { createClient } from "@supabase/supabase-js";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { STATE } from "../../dev/stack/config.ts";
import { withRequestContext } from "../../supabase/functions/_shared/db.ts";
import { launchChromium, watchFailures } from "../helpers/browser.ts";
import { linkIn, mailTo } from "../helpers/mail.ts";
import { adminSql, API_URL, HOST, PORTS, rollUpAnalytics, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";

// CONSOLE_URL: another build of the console (its mailed links still lead to the stack's, site_url)
const CONSOLE = process.env.CONSOLE_URL ?? `http://${HOST}:${PORTS.console}`;
const SHOTS = path.join(STATE, "screenshots");
const PASSWORD = "console pass 42";
const AXE = fs.readFileSync(path.resolve("node_modules/axe-core/axe.min.js"), "utf8");
const admin = adminSql();
let browser: Browser;
const pages: { page: Page; failures: string[] }[] = [];

beforeAll(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  browser = await launchChromium();
});
afterEach(async (ctx) => {
  // a failing flow leaves what each of its pages showed
  if (ctx.task.result?.state === "fail") {
    const name = ctx.task.name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60);
    for (const [i, { page }] of pages.entries()) {
      await page.screenshot({ path: path.join(SHOTS, `failed-${name}-${i}.png`), fullPage: true }).catch(() => {});
    }
  }
  for (const { page } of pages.splice(0)) await page.context().close();
});
afterAll(async () => {
  await browser?.close();
  await admin.end();
});

async function open(pathname = "/", answersExpected = false, width = 1000) {
  const context = await browser.newContext({ viewport: { width, height: 800 } });
  const page = await context.newPage();
  const failures = watchFailures(page, { answersExpected });
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) failures.push(`csp: ${m.text()}`);
  });
  await page.goto(`${CONSOLE}${pathname}`);
  pages.push({ page, failures });
  return { page, failures };
}

/** axe-core in the page (through the debugger, which the page's CSP does not govern): no critical violations. */
async function accessible(page: Page, screen: string) {
  await page.evaluate(AXE);
  const critical = await page.evaluate(async () => {
    // deno-lint-ignore no-explicit-any
    const result = await (window as any).axe.run(document, { resultTypes: ["violations"] });
    return result.violations.filter((v: { impact: string }) => v.impact === "critical").map((v: { id: string }) => v.id);
  });
  expect(critical, `critical accessibility violations on ${screen}`).toEqual([]);
  await page.screenshot({ path: path.join(SHOTS, `${screen}.png`), fullPage: true });
}

async function mailLink(email: string, subject: RegExp) {
  return linkIn((await mailTo(email, subject)).text);
}

const newEmail = () => `console-${crypto.randomUUID().slice(0, 8)}@test.local`;

/** A confirmed user, and optionally a member of an organization, made by the service. */
async function user(org?: string, role = "teacher") {
  const email = newEmail();
  const svc = createClient(API_URL, secrets().secretKey, { auth: { persistSession: false } });
  const { data } = await svc.auth.admin.createUser({ email, password: PASSWORD, email_confirm: true });
  if (org) {
    await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${data.user!.id}, ${role})`;
    await admin`insert into public.user_active_org (user_id, org_id) values (${data.user!.id}, ${org})`;
  }
  return { id: data.user!.id, email };
}

/** Waits for a text on the page; a timeout says what the page showed instead. */
async function until(page: Page, text: string | RegExp, timeout = 15_000) {
  await page.getByText(text).first().waitFor({ timeout }).catch(async (e: Error) => {
    throw new Error(`${e.message.split("\n")[0]} — the page says: ${await page.locator("#message").textContent()}`);
  });
}

async function signIn(page: Page, email: string) {
  await page.getByLabel("E-mail").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#who", { hasText: `Signed in as ${email}` }).waitFor();
}

async function schoolWith(role = "owner") {
  const owner = await user();
  const [{ id: org }] = await admin`insert into public.organizations (name, slug) values ('Console School', ${`console-${
    owner.id.slice(0, 8)
  }`}) returning id`;
  await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${owner.id}, ${role})`;
  await admin`insert into public.user_active_org (user_id, org_id) values (${owner.id}, ${org})`;
  return { org, owner };
}

describe("the console's host", () => {
  it("serves the app with its CSP, the runtime config, and survives hostile paths", async () => {
    const page = await fetch(`${CONSOLE}/any/client/route`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(await page.text()).toContain('<main id="screen"');
    expect(await (await fetch(`${CONSOLE}/config.json`)).json()).toMatchObject({
      apiUrl: API_URL,
      publishableKey: secrets().publishableKey,
    });
    expect((await fetch(`${CONSOLE}/%E0%A4%A`)).status).toBe(400); // malformed percent-encoding
    const traversal = await fetch(`${CONSOLE}/..%2f..%2fpackage.json`);
    expect(await traversal.text()).not.toContain('"workspaces"'); // the app, never a file outside dist
    expect((await fetch(`${CONSOLE}/`)).status).toBe(200); // still up
  });
});

describe("the reference console in Chromium", () => {
  it("signs up, confirms by the mailed link, signs in and out", async () => {
    const { page, failures } = await open("/", true); // the unconfirmed sign-in answers 400
    await accessible(page, "auth");
    const email = newEmail();
    await page.getByLabel("E-mail").fill(email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign up" }).click();
    await page.getByText("Check your mail").waitFor();
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("Confirm your e-mail address first").waitFor();
    await page.goto(await mailLink(email, /Confirm Your Signup/));
    await page.locator("#who", { hasText: `Signed in as ${email}` }).waitFor();
    const [u] = await admin`select email_confirmed_at is not null as confirmed from auth.users where email = ${email}`;
    expect(u.confirmed).toBe(true);
    // a forgotten password, through the mailed link, then a new one
    await page.getByRole("button", { name: "Sign out everywhere" }).click();
    await page.locator("#who", { hasText: "Not signed in" }).waitFor();
    await page.getByLabel("E-mail").fill(email);
    await page.getByRole("button", { name: "Forgot password" }).click();
    await page.getByText("a reset link is on its way").waitFor();
    await page.goto(await mailLink(email, /Reset Your Password/));
    await page.locator("#who", { hasText: `Signed in as ${email}` }).waitFor();
    await page.getByLabel("New password").fill("a new console pass 7");
    await page.getByRole("button", { name: "Change password" }).click();
    await page.getByText("Your password was changed.").waitFor();
    await page.getByRole("button", { name: "Sign out everywhere" }).click();
    await page.locator("#who", { hasText: "Not signed in" }).waitFor();
    expect(failures.filter((f) => !f.includes("/auth/v1/token"))).toEqual([]);
  });

  it("creates an organization, invites a new person who accepts from the mailed link in another browser", async () => {
    const owner = await user();
    const { page, failures } = await open();
    await signIn(page, owner.email);
    await page.goto(`${CONSOLE}/#/orgs`);
    const slug = `made-${owner.id.slice(0, 8)}`;
    await page.getByLabel("Name", { exact: true }).fill("Made In Chromium");
    await page.getByLabel("Slug").fill(slug);
    await page.getByRole("button", { name: "Create organization" }).click();
    await page.getByRole("heading", { name: "Members" }).waitFor();
    await accessible(page, "organizations");
    const [org] = await admin`select id from public.organizations where slug = ${slug}`;
    // a second organization, then switching back: the token's claims follow
    await page.getByLabel("Name", { exact: true }).fill("Second School");
    await page.getByLabel("Slug").fill(`second-${owner.id.slice(0, 8)}`);
    await page.getByRole("button", { name: "Create organization" }).click();
    await page.getByRole("button", { name: "Switch to Second School" }).click();
    await page.getByRole("button", { name: "Switch to Made In Chromium" }).click(); // back, after the reload
    await page.getByRole("button", { name: "Switch to Second School" }).waitFor(); // reloaded with Made In Chromium active
    const claims = await page.evaluate(() => {
      const key = Object.keys(localStorage).find((k) => k.endsWith("-auth-token"))!;
      const token = JSON.parse(localStorage.getItem(key)!).access_token as string;
      return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    });
    expect(claims.org_id).toBe(org.id);

    const invitee = newEmail();
    await page.getByLabel("E-mail addresses").fill(invitee);
    await page.getByLabel("Role", { exact: true }).selectOption("teacher");
    await page.getByRole("button", { name: "Invite" }).click();
    await page.getByText(`Invitation sent to ${invitee} as teacher.`).waitFor();

    const other = await open();
    await other.page.goto(await mailLink(invitee, /invites you as a teacher|You have been invited/));
    await other.page.getByRole("heading", { name: "Accept the invitation" }).waitFor();
    await other.page.getByLabel("Choose a password (new accounts)").fill(PASSWORD);
    await other.page.getByRole("button", { name: "Accept" }).click();
    await other.page.getByText("You joined as teacher.").waitFor();
    const [m] = await admin`select m.role from public.organization_members m join auth.users u on u.id = m.user_id
                            where m.org_id = ${org.id} and u.email = ${invitee}`;
    expect(m.role).toBe("teacher");
    expect(failures).toEqual([]);
    expect(other.failures).toEqual([]);
  });

  it("uploads a file with progress and shows its verdict live, without reloading", async () => {
    const { org, owner } = await schoolWith();
    const { page, failures } = await open();
    await signIn(page, owner.email);
    await page.goto(`${CONSOLE}/#/files`);
    await page.getByText("Live updates on.").waitFor();
    await page.getByLabel("Files", { exact: true }).setInputFiles({
      name: "lesson.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("Fractions, lesson one.\n"),
    });
    await page.getByRole("button", { name: "Upload" }).click();
    await page.getByText("lesson.txt uploaded").waitFor();
    // the row turns clean by the file.ready event over MQTT
    await page.locator("[data-file-status]", { hasText: "ready" }).waitFor({ timeout: 20_000 });
    expect(await page.getByRole("progressbar", { name: "Upload progress" }).evaluate((p) => (p as HTMLProgressElement).value))
      .toBe(100);
    await page.getByRole("button", { name: "Download lesson.txt" }).waitFor();
    await accessible(page, "files");
    const [f] = await admin`select status from public.files where org_id = ${org} and name = 'lesson.txt'`;
    expect(f.status).toBe("clean");
    expect(failures).toEqual([]);
  });

  it("a teacher uploads and a student sees the file turn clean live; the teacher shares it with students", async () => {
    const { org } = await schoolWith();
    const teacher = await user(org, "teacher");
    const student = await user(org, "student");
    const studentView = await open();
    await signIn(studentView.page, student.email);
    await studentView.page.goto(`${CONSOLE}/#/files`);
    await studentView.page.getByText("Live updates on.").waitFor();

    const teacherView = await open();
    await signIn(teacherView.page, teacher.email);
    await teacherView.page.goto(`${CONSOLE}/#/files`);
    await teacherView.page.getByText("Live updates on.").waitFor();
    await teacherView.page.getByLabel("Files", { exact: true }).setInputFiles({
      name: "homework.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("Exercise 1.\n"),
    });
    await teacherView.page.getByRole("button", { name: "Upload" }).click();
    // the student's page, untouched, shows the file once it is clean
    await studentView.page.getByRole("button", { name: "Download homework.txt" }).waitFor({ timeout: 20_000 });

    await teacherView.page.getByRole("button", { name: "Download homework.txt" }).waitFor({ timeout: 20_000 });
    await teacherView.page.getByRole("link", { name: "Share homework.txt" }).click();
    const share = teacherView.page.getByRole("form", { name: "Share a file" });
    await share.getByLabel("File").selectOption({ label: "homework.txt" });
    await share.getByLabel("With").selectOption({ label: "all students" });
    await share.getByLabel("Access").selectOption("write");
    await share.getByRole("button", { name: "Share" }).click();
    await until(teacherView.page, "homework.txt is shared with all students: they may see, download, rename and delete it.");
    const [shared] = await admin`select s.grantee_role, s.access from public.file_shares s join public.files f on f.id = s.file_id
                                 where f.org_id = ${org} and f.name = 'homework.txt'`;
    expect(shared).toEqual({ grantee_role: "student", access: "write" });
    expect(studentView.failures).toEqual([]);
    expect(teacherView.failures).toEqual([]);
  });

  it("shows usage against the plan's limits as bars and events as a chart", async () => {
    const { org, owner } = await schoolWith();
    await admin`insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
                select ${org}, ${owner.id}, 'page.viewed', now() - (i % 3) * interval '1 day', '{"path": "/"}' from generate_series(1, 12) i`;
    await rollUpAnalytics(admin);
    await admin`select app.track_usage()`; // today's usage row (the hourly schedule's work)
    const { page, failures } = await open();
    await signIn(page, owner.email);
    await page.goto(`${CONSOLE}/#/usage`);
    await page.getByRole("heading", { name: "page.viewed per day" }).waitFor();
    await page.getByRole("img", { name: /percent of the limit/ }).first().waitFor();
    await page.getByRole("img", { name: "Daily page.viewed events, last 7 days" }).waitFor();
    await accessible(page, "usage");
    expect(failures).toEqual([]);
  });

  it("creates an API key shown once, and revokes it", async () => {
    const { org, owner } = await schoolWith();
    const { page, failures } = await open();
    await signIn(page, owner.email);
    await page.goto(`${CONSOLE}/#/keys`);
    await page.getByLabel("Name", { exact: true }).fill("SIS sync");
    await page.getByLabel("org.read").check();
    await page.getByRole("button", { name: "Create key" }).click();
    await page.getByText("Copy the key now: it is shown only once.").waitFor();
    await accessible(page, "keys");
    page.on("dialog", (d) => void d.accept()); // the confirmation before revoking
    await page.getByRole("button", { name: "Revoke SIS sync" }).click();
    await page.getByText("Key SIS sync revoked.").waitFor();
    const [k] =
      await admin`select revoked_at is not null as revoked from public.api_keys where org_id = ${org} and name = 'SIS sync'`;
    expect(k.revoked).toBe(true);
    expect(failures).toEqual([]);
  });

  it("shows a notification in the student's inbox live, and marks it read", async () => {
    const { org, owner } = await schoolWith();
    const student = await user(org, "student");
    const { page, failures } = await open();
    await signIn(page, student.email);
    await page.goto(`${CONSOLE}/#/inbox`);
    await page.getByText("Live updates on.").waitFor();
    const title = `Trip <b>${crypto.randomUUID().slice(0, 6)}</b>`; // markup stays text
    await withRequestContext(
      admin,
      { role: "authenticated", claims: (await tokenFor(admin, owner.id)).claims },
      (tx) =>
        tx`select public.send_notification(${org}, 'announcement.posted', ${title}, 'Bring lunch', '{}'::jsonb, '{"role": "student"}'::jsonb)`,
    );
    await page.getByRole("cell", { name: title, exact: true }).waitFor({ timeout: 15_000 });
    expect(await page.locator("b").count()).toBe(0);
    // an announcement with audience delivery comes once on the students' role topic; the page shows it live too
    const broadcast = `Assembly ${crypto.randomUUID().slice(0, 6)}`;
    const [{ batch_id }] = await withRequestContext(
      admin,
      { role: "authenticated", claims: (await tokenFor(admin, owner.id)).claims },
      (tx) =>
        tx`select batch_id from public.send_notification(${org}, 'announcement.broadcast', ${broadcast}, 'At ten', '{}'::jsonb, '{"role": "student"}'::jsonb)`,
    );
    await page.getByRole("cell", { name: broadcast, exact: true }).waitFor({ timeout: 15_000 });
    await waitUntil(
      "the audience delivery recorded",
      async () =>
        (await admin`select status from public.notification_audience_deliveries where batch_id = ${batch_id}`)[0]?.status ===
          "sent",
    );
    await accessible(page, "inbox");
    await page.getByRole("button", { name: `Mark "${title}" read` }).click();
    await page.getByRole("cell", { name: "read", exact: true }).waitFor();
    await page.getByLabel("E-mail me notifications").uncheck();
    await page.getByLabel("Quiet hours from").fill("21:00");
    await page.getByLabel("Quiet hours until").fill("07:00");
    await page.getByLabel("Time zone").selectOption("Europe/Paris");
    await page.getByRole("button", { name: "Save preferences" }).click();
    await until(page, "Preferences saved.");
    const [settings] = await admin`select quiet_start::text, quiet_end::text, time_zone from public.notification_settings
                                   where org_id = ${org} and user_id = ${student.id}`;
    expect(settings).toEqual({ quiet_start: "21:00:00", quiet_end: "07:00:00", time_zone: "Europe/Paris" });
    const [pref] = await admin`select enabled from public.notification_preferences
                               where org_id = ${org} and user_id = ${student.id} and type = '*' and channel = 'email'`;
    expect(pref.enabled).toBe(false);
    expect(failures).toEqual([]);
  });

  it("exports the organization's data with progress and offers the archive", async () => {
    const { owner } = await schoolWith();
    const { page, failures } = await open();
    await signIn(page, owner.email);
    await page.goto(`${CONSOLE}/#/jobs`);
    await page.getByRole("button", { name: "Export the organization's data" }).click();
    await page.getByRole("button", { name: "Download export" }).waitFor({ timeout: 20_000 });
    await page.getByRole("cell", { name: "completed" }).waitFor();
    await accessible(page, "jobs");
    expect(failures).toEqual([]);
  });

  it("fits a 360 px wide screen: no screen scrolls sideways", async () => {
    const { owner } = await schoolWith();
    const { page, failures } = await open("/", false, 360);
    await signIn(page, owner.email);
    for (const screen of ["auth", "orgs", "files", "inbox", "usage", "jobs", "keys"]) {
      await page.goto(`${CONSOLE}/#/${screen}`);
      await page.locator("#screen h2").first().waitFor();
      const wide = await page.evaluate(() => document.documentElement.scrollWidth);
      expect(wide, `${screen} at 360 px`).toBeLessThanOrEqual(360);
    }
    expect(failures).toEqual([]);
  });

  it("offers a student no teacher's action, and says why a screen is not theirs", async () => {
    const { org } = await schoolWith();
    const student = await user(org, "student");
    const { page, failures } = await open();
    await signIn(page, student.email);
    await page.goto(`${CONSOLE}/#/orgs`);
    await page.getByRole("heading", { name: "Members" }).waitFor();
    expect(await page.getByRole("form", { name: "Invite" }).count()).toBe(0);
    await page.goto(`${CONSOLE}/#/jobs`);
    await page.getByText("Your role does not include this screen.").waitFor();
    expect(await admin`select 1 from public.invitations where org_id = ${org}`).toEqual([]);
    expect(failures).toEqual([]);
  });
});
