// Security headers on every surface a browser reaches: each answer of the Data API, auth,
// storage, the functions and the gateway itself says nosniff and no-referrer and is never cached
// (they carry tokens and tenants' data); a user's file of a type a browser would run (HTML, SVG,
// XML) downloads as an attachment, so an uploaded page never runs as the API's origin.
import crypto from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { adminSql, API_URL, createUser, secrets, tokenFor } from "../helpers/stack.ts";

const admin = adminSql();
const BUCKET = `headers-${crypto.randomUUID().slice(0, 8)}`;
let user: { id: string }, token: string;

function expectSecure(res: Response, what: string) {
  expect(res.headers.get("x-content-type-options"), what).toBe("nosniff");
  expect(res.headers.get("referrer-policy"), what).toBe("no-referrer");
  expect(res.headers.get("cache-control"), what).toContain("no-store");
}

beforeAll(async () => {
  await admin`insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
              values (${BUCKET}, ${BUCKET}, false, 4096, array['text/html', 'image/svg+xml', 'text/plain'])`;
  for (const op of ["select", "insert"] as const) {
    const clause = `bucket_id = '${BUCKET}' and (storage.foldername(name))[1] = (select auth.uid())::text`;
    await admin.unsafe(
      op === "insert"
        ? `create policy "${BUCKET} ${op}" on storage.objects for insert to authenticated with check (${clause})`
        : `create policy "${BUCKET} ${op}" on storage.objects for select to authenticated using (${clause})`,
    );
  }
  user = await createUser(admin);
  token = (await tokenFor(admin, user.id)).token;
});

afterAll(async () => {
  for (const op of ["select", "insert"]) await admin.unsafe(`drop policy if exists "${BUCKET} ${op}" on storage.objects`);
  await admin`delete from storage.objects where bucket_id = ${BUCKET}`;
  await admin`delete from storage.buckets where id = ${BUCKET}`;
  await admin.end();
});

describe("security headers", () => {
  it("on the Data API, auth, the functions and the gateway's own answers (errors included)", async () => {
    const auth = { apikey: secrets().anonKey, Authorization: `Bearer ${token}` };
    const answers: [string, Promise<Response>][] = [
      ["rest", fetch(`${API_URL}/rest/v1/permissions?select=key`, { headers: auth })],
      ["rest error", fetch(`${API_URL}/rest/v1/no_such_table`, { headers: auth })],
      ["rest without key", fetch(`${API_URL}/rest/v1/permissions`)],
      ["auth user", fetch(`${API_URL}/auth/v1/user`, { headers: auth })],
      [
        "auth error",
        fetch(`${API_URL}/auth/v1/token?grant_type=password`, {
          method: "POST",
          headers: { apikey: secrets().anonKey, "content-type": "application/json" },
          body: JSON.stringify({ email: "nobody@headers.test", password: "wrong-password" }),
        }),
      ],
      ["function", fetch(`${API_URL}/functions/v1/health`)],
      ["function refusal", fetch(`${API_URL}/functions/v1/file-upload`, { method: "POST", headers: auth, body: "{}" })],
      ["unknown route", fetch(`${API_URL}/no/such/route`)],
      [
        "preflight",
        fetch(`${API_URL}/rest/v1/organizations`, {
          method: "OPTIONS",
          headers: { Origin: "https://app.example", "Access-Control-Request-Method": "GET" },
        }),
      ],
    ];
    for (const [what, pending] of answers) expectSecure(await pending, what);
  });

  it("on storage: answers with signed URLs are not cached; pages and SVGs download as attachments, text inline", async () => {
    const storage = createClient<Database>(API_URL, secrets().anonKey, {
      auth: { persistSession: false, autoRefreshToken: false },
      global: { headers: { Authorization: `Bearer ${token}` } },
    }).storage.from(BUCKET);
    const files: [string, string, string | null][] = [
      ["page.html", "text/html", "attachment"],
      ["logo.svg", "image/svg+xml", "attachment"],
      ["notes.txt", "text/plain", null],
    ];
    for (const [name, type, disposition] of files) {
      const body = type === "text/plain"
        ? "hello"
        : `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.domain)</script></svg>`;
      const up = await storage.upload(`${user.id}/${name}`, new Blob([body], { type }));
      expect(up.error, name).toBeNull();
      const signedAnswer = await fetch(`${API_URL}/storage/v1/object/sign/${BUCKET}/${user.id}/${name}`, {
        method: "POST",
        headers: { apikey: secrets().anonKey, Authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ expiresIn: 60 }),
      });
      expectSecure(signedAnswer, `signing ${name}`);
      const { signedURL } = await signedAnswer.json();
      for (
        const download of [
          fetch(`${API_URL}/storage/v1${signedURL}`),
          fetch(`${API_URL}/storage/v1/object/authenticated/${BUCKET}/${user.id}/${name}`, {
            headers: { apikey: secrets().anonKey, Authorization: `Bearer ${token}` },
          }),
        ]
      ) {
        const res = await download;
        expect(res.status, name).toBe(200);
        expectSecure(res, `downloading ${name}`);
        expect(res.headers.get("content-disposition"), name).toBe(disposition);
      }
    }
  });
});
