// A browser app's first steps, in headless Chromium, from a page on its own origin with supabase-js
// as it ships (the UMD bundle) against http://127.0.0.1:54321: sign in with a password, keep the
// session across a reload, create an organization (rpc), write and read a table (from), upload
// through a signed upload URL and with upload(), wait for the scan, list (list and listV2),
// download. Any CORS refusal fails the test: Chromium reports it as a failed request.
import crypto from "node:crypto";
import type { SupabaseClient } from "@supabase/supabase-js";
import type { Browser, Page } from "playwright-core";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium, serveSite, watchFailures } from "../helpers/browser.ts";
import { adminSql, API_URL, secrets } from "../helpers/stack.ts";

const admin = adminSql();
const PASSWORD = `pw-${crypto.randomUUID()}`;
let browser: Browser;
let site: Awaited<ReturnType<typeof serveSite>>;
let user: { id: string; email: string };
let orgId: string | undefined;

// The page makes one client, as an app does; the test only calls into it.
const PAGE = `<!doctype html><meta charset="utf-8"><title>app</title><link rel="icon" href="data:,">
<script src="/supabase.js"></script>
<script>
  const params = new URLSearchParams(location.search);
  window.client = supabase.createClient(params.get("url"), params.get("key"));
</script>`;

async function openApp(key = secrets().publishableKey, answersExpected = false) {
  const page: Page = await (await browser.newContext()).newPage();
  const failures = watchFailures(page, { answersExpected });
  await page.goto(`${site.origin}/?url=${encodeURIComponent(API_URL)}&key=${encodeURIComponent(key)}`);
  return { page, failures };
}

beforeAll(async () => {
  user = { id: crypto.randomUUID(), email: `browser-${crypto.randomUUID().slice(0, 8)}@test.local` };
  await admin`insert into auth.users (id, aud, role, email, encrypted_password, email_confirmed_at, raw_app_meta_data, raw_user_meta_data)
              values (${user.id}, 'authenticated', 'authenticated', ${user.email},
                      extensions.crypt(${PASSWORD}, extensions.gen_salt('bf', 4)), now(), '{"provider":"email"}', '{}')`;
  site = await serveSite(PAGE);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await site?.close();
  // nothing stays behind: the organization with its stored objects, and the person
  if (orgId) {
    await admin`delete from storage.objects where bucket_id in ('files', 'thumbnails', 'trash') and name like ${`${orgId}/%`}`;
    await admin`delete from public.organizations where id = ${orgId}`;
  }
  if (user) await admin`delete from auth.users where id = ${user.id}`;
  await admin.end();
});

describe("a browser app on its own origin, with supabase-js as it ships", () => {
  it("signs in, creates an organization, reads and writes, uploads both ways, lists and downloads", async () => {
    const { page, failures } = await openApp();
    const signedIn = await page.evaluate(async ([email, password]) => {
      const { data, error } = await window.client.auth.signInWithPassword({ email, password });
      const header = data.session
        ? JSON.parse(atob(data.session.access_token.split(".")[0].replace(/-/g, "+").replace(/_/g, "/")))
        : null;
      return { error: error?.message ?? null, user: data.user?.id ?? null, alg: header?.alg, kid: typeof header?.kid };
    }, [user.email, PASSWORD]);
    // a hosted project's default: the session's token is signed with an asymmetric key named by kid
    expect(signedIn).toEqual({ error: null, user: user.id, alg: "ES256", kid: "string" });

    // the session lives in localStorage: a reload is still signed in
    await page.reload();
    expect(await page.evaluate(async () => (await window.client.auth.getUser()).data.user?.id)).toBe(user.id);

    const slug = `browser-${crypto.randomUUID().slice(0, 8)}`;
    const written = await page.evaluate(async (slug) => {
      const c = window.client;
      const org = await c.rpc("create_organization", { name: "Browser school", slug });
      if (org.error) return { error: `rpc: ${org.error.message}` };
      const inserted = await c.from("exercises").insert({ org_id: org.data.id, title: "Fractions" }).select("id, title")
        .single();
      if (inserted.error) return { error: `insert: ${inserted.error.message}` };
      const read = await c.from("exercises").select("title").eq("org_id", org.data.id);
      const orgs = await c.from("organizations").select("id, slug").eq("id", org.data.id);
      return { error: read.error?.message ?? orgs.error?.message ?? null, org: org.data.id, read: read.data, orgs: orgs.data };
    }, slug);
    expect(written.error).toBeNull();
    orgId = written.org;
    expect(written.read).toEqual([{ title: "Fractions" }]);
    expect(written.orgs).toEqual([{ id: orgId, slug }]);

    // file-upload reserves the file; one goes up through the signed upload URL, one with upload()
    const uploaded = await page.evaluate(async (org) => {
      const c = window.client;
      const out: { id: string; path: string; text: string }[] = [];
      for (const [name, how] of [["signed.txt", "signed"], ["plain.txt", "plain"]] as const) {
        const text = `uploaded ${how} from a browser\n`;
        const blob = new Blob([text], { type: "text/plain" });
        const started = await c.functions.invoke("file-upload", {
          body: { org_id: org, name, size: blob.size, mime_type: "text/plain" },
        });
        if (started.error) return { error: `file-upload: ${started.error.message}` };
        const files = c.storage.from("files");
        const put = how === "signed"
          ? await files.uploadToSignedUrl(started.data.path, started.data.token, blob)
          : await files.upload(started.data.path, blob);
        if (put.error) return { error: `${how}: ${put.error.message}` };
        out.push({ id: started.data.file_id, path: started.data.path, text });
      }
      return { error: null, files: out };
    }, orgId!);
    expect(uploaded.error).toBeNull();
    const files = uploaded.files!;

    const statuses = await page.evaluate(async (ids) => {
      for (let i = 0; i < 200; i++) {
        const { data } = await window.client.from("files").select("id, status").in("id", ids);
        if (data && data.length === ids.length && data.every((f) => f.status !== "pending" && f.status !== "scanning")) {
          return data.map((f) => f.status);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      return "still scanning";
    }, files.map((f) => f.id));
    expect(statuses).toEqual(["clean", "clean"]);

    const read = await page.evaluate(async ({ org, files }) => {
      const bucket = window.client.storage.from("files");
      const folder = files[0].path.slice(0, files[0].path.lastIndexOf("/"));
      const listed = await bucket.list(folder);
      const paged = await bucket.listV2({ prefix: `${org}/` });
      const downloads = [];
      for (const f of files) {
        const { data, error } = await bucket.download(f.path);
        downloads.push(error ? `error: ${error.message}` : await data.text());
      }
      const signed = await bucket.createSignedUrl(files[0].path, 60);
      const viaLink = signed.data ? await (await fetch(signed.data.signedUrl)).text() : signed.error?.message;
      return {
        listed: listed.error?.message ?? listed.data!.map((e) => `${folder}/${e.name}`).sort(),
        paged: paged.error?.message ?? paged.data!.objects.map((o) => o.name).sort(),
        downloads,
        viaLink,
      };
    }, { org: orgId!, files });
    const paths = files.map((f) => f.path).sort();
    expect(read.listed).toEqual(paths);
    expect(read.paged).toEqual(paths);
    expect(read.downloads).toEqual(files.map((f) => f.text));
    expect(read.viaLink).toBe(files[0].text);

    expect(failures).toEqual([]);
  }, 90_000);

  it("shows a signed-out visitor nothing of it, and refuses the secret key in a browser", async () => {
    expect(orgId).toBeDefined();
    const { page, failures } = await openApp(secrets().publishableKey, true);
    const seen = await page.evaluate(async (org) => {
      const c = window.client;
      const exercises = await c.from("exercises").select("id").eq("org_id", org);
      const listed = await c.storage.from("files").listV2({ prefix: `${org}/` });
      return { exercises: exercises.data ?? exercises.error?.code, objects: listed.data?.objects ?? listed.error?.message };
    }, orgId!);
    // anon holds no grant on tenant tables at all (42501), and sees no object
    expect(seen).toEqual({ exercises: "42501", objects: [] });
    expect(failures).toEqual([]);

    // hosted refuses a secret key sent from a browser; so does the gateway
    const withSecret = await openApp(secrets().secretKey);
    const status = await withSecret.page.evaluate(async () => (await window.client.from("organizations").select("id")).status);
    expect(status).toBe(401);
  });
});

declare global {
  interface Window {
    /** The page's client; typed here, created in the page from the UMD bundle. */
    client: SupabaseClient<Database>;
  }
}
