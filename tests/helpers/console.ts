// What the console's browser tests share: people and schools made by the service (each test makes
// its own organization, deleted afterwards with its stored objects and people), a signed-in page at
// a desktop's or a phone's size that records every failure, and the checks each screen must pass
// (axe-core without serious or critical violations, no internal text, no sideways scrolling).
// CONSOLE_URL points the tests at another build of the console.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { createClient } from "@supabase/supabase-js";
import type { Browser, Page } from "playwright-core";
import { expect } from "vitest";
import { STATE } from "../../dev/stack/config.ts";
import { launchChromium, watchFailures } from "./browser.ts";
import { adminSql, API_URL, HOST, PORTS, secrets } from "./stack.ts";

export const CONSOLE = process.env.CONSOLE_URL ?? `http://${HOST}:${PORTS.console}`;
export const SHOTS = path.join(STATE, "screenshots");
export const PASSWORD = "console pass 42";
const AXE = fs.readFileSync(path.resolve("node_modules/axe-core/axe.min.js"), "utf8");
/** What must never reach a person's screen: constraint names, SQL, raw codes, ids. */
export const INTERNAL =
  /violates|constraint|relation "|SQLSTATE|\bTN0\d\d\b|\bFL0\d\d\b|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-|Something went wrong:/;
export const SIZES = [{ name: "desktop", width: 1280, height: 800 }, { name: "phone", width: 390, height: 844 }] as const;
export type Size = (typeof SIZES)[number];

export const newEmail = () => `school-${crypto.randomUUID().slice(0, 8)}@test.local`;

/** A browser, the people and organizations a test file makes, and `cleanup` for its afterAll. */
export function consoleHarness() {
  const admin = adminSql();
  const svc = createClient(API_URL, secrets().secretKey, { auth: { persistSession: false } });
  const orgs: string[] = [];
  const users: string[] = [];
  let browser: Browser | undefined;

  /** A confirmed person; with `org`, a member of it in `role`, with it active. */
  async function user(org?: string, role = "teacher") {
    const email = newEmail();
    const { data } = await svc.auth.admin.createUser({ email, password: PASSWORD, email_confirm: true });
    users.push(data.user!.id);
    if (org) {
      await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${data.user!.id}, ${role})`;
      await admin`insert into public.user_active_org (user_id, org_id) values (${data.user!.id}, ${org})`;
    }
    return { id: data.user!.id, email };
  }

  /** An organization of its own with an owner. */
  async function school() {
    const owner = await user();
    const [{ id: org }] = await admin`insert into public.organizations (name, slug) values ('Hillside School', ${`hill-${
      owner.id.slice(0, 8)
    }`}) returning id`;
    orgs.push(org);
    await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${owner.id}, 'owner')`;
    await admin`insert into public.user_active_org (user_id, org_id) values (${owner.id}, ${org})`;
    return { org: org as string, owner };
  }

  /** A new browser context at `size`, signed in as `email`; `failures()` lists what went wrong. */
  async function open(size: Size, email: string) {
    browser ??= await launchChromium();
    fs.mkdirSync(SHOTS, { recursive: true });
    const context = await browser.newContext({ viewport: { width: size.width, height: size.height }, acceptDownloads: true });
    const page = await context.newPage();
    // under a test's own 30 s: a step that hangs fails naming what it waited for, not as a timeout
    page.setDefaultTimeout(25_000);
    const watched = watchFailures(page, { answersExpected: true });
    // a navigation that becomes a download is reported as aborted: that is the download working
    const failures = () => watched.filter((f) => !/&download=[^ ]*: net::ERR_ABORTED$/.test(f));
    page.on("console", (m) => {
      if (/Content Security Policy/i.test(m.text())) watched.push(`csp: ${m.text()}`);
    });
    page.on("dialog", (d) => void d.accept()); // the confirmations before removing and revoking
    await page.goto(`${CONSOLE}/`);
    await page.getByLabel("E-mail").fill(email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#who", { hasText: `Signed in as ${email}` }).waitFor();
    return { page, failures, close: () => context.close() };
  }

  async function cleanup() {
    await browser?.close();
    for (const org of orgs) {
      await admin`delete from storage.objects where bucket_id in ('files', 'exports', 'thumbnails', 'trash')
                  and name like ${`${org}/%`}`;
      await admin`delete from public.organizations where id = ${org}`.catch(() => {});
    }
    for (const id of users) await svc.auth.admin.deleteUser(id).catch(() => {});
    await admin.end();
  }

  return { admin, user, school, open, cleanup };
}

/** axe-core: no serious or critical violations; no internal text; no sideways scrolling; a screenshot. */
export async function checked(page: Page, screen: string, size: string) {
  await page.evaluate(AXE);
  const bad = await page.evaluate(async () => {
    // deno-lint-ignore no-explicit-any
    const result = await (window as any).axe.run(document, { resultTypes: ["violations"] });
    return result.violations.filter((v: { impact: string }) => v.impact === "serious" || v.impact === "critical")
      .map((v: { id: string; nodes: { target: string[] }[] }) => `${v.id} ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  });
  expect(bad, `serious or critical accessibility violations on ${screen} (${size})`).toEqual([]);
  expect(await page.locator("body").innerText(), `internal text on ${screen} (${size})`).not.toMatch(INTERNAL);
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(wide, `${screen} scrolls sideways (${size})`).toBeLessThanOrEqual(await page.evaluate(() => innerWidth));
  await page.screenshot({ path: path.join(SHOTS, `${screen}-${size}.png`), fullPage: true });
}

/** The note next to a control (the first one after it in its form or row). */
export const noteIn = (page: Page, form: string) => page.getByRole("form", { name: form }).locator(".note");
