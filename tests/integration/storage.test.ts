// The local Storage stand-in through supabase-js's storage client: uploads and downloads decided
// by the policies on storage.objects (as the caller's role), the bucket's size and type limits,
// path checks, signed URLs and removal. The test bucket and its policies exist only during the run.
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { createClient } from "@supabase/supabase-js";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { STATE } from "../../dev/stack/config.ts";
import { adminSql, API_URL, createUser, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";

const admin = adminSql();
const BUCKET = "standin-test";
let alice: { id: string }, bob: { id: string };
let asAlice: ReturnType<typeof client>, asBob: ReturnType<typeof client>;

function client(token?: string) {
  return createClient<Database>(API_URL, secrets().anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    global: token ? { headers: { Authorization: `Bearer ${token}` } } : {},
  }).storage.from(BUCKET);
}

beforeAll(async () => {
  await admin`insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
              values (${BUCKET}, ${BUCKET}, false, 64, array['text/plain']) on conflict (id) do nothing`;
  for (const op of ["select", "insert", "update", "delete"] as const) {
    await admin.unsafe(`drop policy if exists "standin-test ${op}" on storage.objects`);
    const clause = `bucket_id = '${BUCKET}' and (storage.foldername(name))[1] = (select auth.uid())::text`;
    await admin.unsafe(
      op === "insert"
        ? `create policy "standin-test ${op}" on storage.objects for insert to authenticated with check (${clause})`
        : `create policy "standin-test ${op}" on storage.objects for ${op} to authenticated using (${clause})`,
    );
  }
  alice = await createUser(admin);
  bob = await createUser(admin);
  asAlice = client((await tokenFor(admin, alice.id)).token);
  asBob = client((await tokenFor(admin, bob.id)).token);
});

afterAll(async () => {
  for (const op of ["select", "insert", "update", "delete"]) {
    await admin.unsafe(`drop policy if exists "standin-test ${op}" on storage.objects`);
  }
  await admin`delete from storage.objects where bucket_id = ${BUCKET}`;
  await admin`delete from storage.buckets where id = ${BUCKET}`;
  await admin.end();
});

const text = (s: string) => new Blob([s], { type: "text/plain" });

/** A request sent with its path exactly as written (fetch would normalize it). */
function rawPost(pathname: string, token: string) {
  return new Promise<number>((resolve, reject) => {
    const req = http.request(`${API_URL}${pathname}`, {
      method: "POST",
      headers: { "content-type": "text/plain", apikey: secrets().anonKey, authorization: `Bearer ${token}` },
    }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
    req.end("x");
  });
}

describe("storage stand-in (supabase-js)", () => {
  it("uploads into the caller's own folder as the caller, and downloads it back", async () => {
    const up = await asAlice.upload(`${alice.id}/hello.txt`, text("hello"), { contentType: "text/plain" });
    expect(up.error).toBeNull();
    expect(up.data?.fullPath).toBe(`${BUCKET}/${alice.id}/hello.txt`);
    const [row] =
      await admin`select owner, metadata->>'size' as size from storage.objects where bucket_id = ${BUCKET} and name = ${`${alice.id}/hello.txt`}`;
    expect(row).toEqual({ owner: alice.id, size: "5" });
    const down = await asAlice.download(`${alice.id}/hello.txt`);
    expect(await down.data?.text()).toBe("hello");
  });

  it("lets the policies decide: another user neither reads nor writes there, anon sees nothing", async () => {
    expect((await asBob.download(`${alice.id}/hello.txt`)).error).toMatchObject({ status: 404 });
    expect((await asBob.upload(`${alice.id}/intruder.txt`, text("x"), { contentType: "text/plain" })).error).toMatchObject({
      status: 403,
    });
    expect((await client().download(`${alice.id}/hello.txt`)).error).toMatchObject({ status: 404 });
  });

  it("enforces the bucket's size limit and types, refuses traversal and duplicates", async () => {
    expect((await asAlice.upload(`${alice.id}/big.txt`, text("x".repeat(65)), { contentType: "text/plain" })).error)
      .toMatchObject({ status: 413 });
    expect(
      (await asAlice.upload(`${alice.id}/page.html`, new Blob(["<p>"], { type: "text/html" }), { contentType: "text/html" }))
        .error,
    )
      .toMatchObject({ status: 415 });
    // "..", even encoded, is resolved by URL parsing (client or gateway), so it lands in bob's
    // folder, which the policies refuse; names with "." or ".." segments are refused besides.
    expect((await asAlice.upload(`${alice.id}/../${bob.id}/x.txt`, text("x"), { contentType: "text/plain" })).error)
      .toMatchObject({ status: 403 });
    const token = (await tokenFor(admin, alice.id)).token;
    const status = await rawPost(`/storage/v1/object/${BUCKET}/${alice.id}/%2e%2e/${bob.id}/x.txt`, token);
    expect(status).toBe(403); // the gateway's URL parsing resolves it too: bob's folder, refused
    expect(await rawPost(`/storage/v1/object/${BUCKET}/${alice.id}/bad-%E0%A4%A.txt`, token)).toBe(400); // malformed encoding
    expect(await admin`select 1 from storage.objects where bucket_id = ${BUCKET} and name like ${`${bob.id}/%`}`).toHaveLength(0);
    expect((await asAlice.upload(`${alice.id}/hello.txt`, text("again"), { contentType: "text/plain" })).error).toMatchObject({
      status: 409,
    });
    expect((await asAlice.upload(`${alice.id}/hello.txt`, text("again"), { contentType: "text/plain", upsert: true })).error)
      .toBeNull();
    expect(await (await asAlice.download(`${alice.id}/hello.txt`)).data?.text()).toBe("again");
  });

  it("signs download URLs for objects the caller may read, only for that object and only until expiry", async () => {
    const signed = await asAlice.createSignedUrl(`${alice.id}/hello.txt`, 60);
    expect(signed.error).toBeNull();
    const res = await fetch(signed.data!.signedUrl);
    expect(await res.text()).toBe("again");
    const forged = signed.data!.signedUrl.replace("hello.txt", "other.txt");
    expect((await fetch(forged)).status).toBe(400);
    expect((await asBob.createSignedUrl(`${alice.id}/hello.txt`, 60)).error).toMatchObject({ status: 404 });
    const expiring = await asAlice.createSignedUrl(`${alice.id}/hello.txt`, 1);
    await waitUntil("the signed URL to expire", async () => (await fetch(expiring.data!.signedUrl)).status === 400, 5000);
  });

  it("a plain upload needs only the INSERT policy (as on hosted Storage); an upsert needs UPDATE and SELECT too", async () => {
    const bucket = `insert-only-${crypto.randomUUID().slice(0, 8)}`;
    await admin`insert into storage.buckets (id, name, public) values (${bucket}, ${bucket}, false)`;
    const clause = `bucket_id = '${bucket}' and (storage.foldername(name))[1] = (select auth.uid())::text`;
    await admin.unsafe(`create policy "${bucket} insert" on storage.objects for insert to authenticated with check (${clause})`);
    try {
      const dropbox = createClient<Database>(API_URL, secrets().anonKey, {
        auth: { persistSession: false, autoRefreshToken: false },
        global: { headers: { Authorization: `Bearer ${(await tokenFor(admin, alice.id)).token}` } },
      }).storage.from(bucket);
      const put = await dropbox.upload(`${alice.id}/report.txt`, text("handed in"));
      expect(put.error).toBeNull();
      expect(put.data?.path).toBe(`${alice.id}/report.txt`);
      expect(
        (await admin`select 1 from storage.objects where bucket_id = ${bucket} and name = ${`${alice.id}/report.txt`}`).length,
      ).toBe(1);
      // reading it back, or replacing it, is not what an INSERT policy grants
      expect((await dropbox.download(`${alice.id}/report.txt`)).error).toMatchObject({ status: 404 });
      const again = await dropbox.upload(`${alice.id}/report.txt`, text("changed"), { upsert: true });
      expect(again.error).toMatchObject({ status: 403 });
      // an upload URL issued with upsert is no way around that: the write is the owner's, under the owner's policies
      const overwrite = await dropbox.createSignedUploadUrl(`${alice.id}/report.txt`, { upsert: true });
      expect(overwrite.error).toBeNull(); // INSERT would pass, so the URL is issued
      const viaUrl = await dropbox.uploadToSignedUrl(`${alice.id}/report.txt`, overwrite.data!.token, text("changed"));
      expect(viaUrl.error?.message).toMatch(/row-level security/);
      const [o] =
        await admin`select metadata from storage.objects where bucket_id = ${bucket} and name = ${`${alice.id}/report.txt`}`;
      expect(o.metadata.size).toBe("handed in".length);
    } finally {
      await admin.unsafe(`drop policy "${bucket} insert" on storage.objects`);
      await admin`delete from storage.objects where bucket_id = ${bucket}`;
      await admin`delete from storage.buckets where id = ${bucket}`;
    }
  });

  it("lists a folder's files and sub-folders as the caller may see them, and only those", async () => {
    await asAlice.upload(`${alice.id}/list/a.txt`, text("a"));
    await asAlice.upload(`${alice.id}/list/b.txt`, text("b"));
    await asAlice.upload(`${alice.id}/list/sub/c.txt`, text("c"));
    const { data, error } = await asAlice.list(`${alice.id}/list`);
    expect(error).toBeNull();
    const entries = data!.map((e) => `${e.name} ${e.id === null ? "folder" : "file"}`);
    expect(entries).toEqual(["a.txt file", "b.txt file", "sub folder"]);
    expect(data!.find((e) => e.name === "a.txt")?.metadata).toMatchObject({ size: 1, mimetype: "text/plain" });
    expect((await asAlice.list(`${alice.id}/list`, { search: "b" })).data!.map((e) => e.name)).toEqual(["b.txt"]);
    expect((await asAlice.list(`${alice.id}/list`, { limit: 1, offset: 1 })).data!.map((e) => e.name)).toEqual(["b.txt"]);
    expect((await asBob.list(`${alice.id}/list`)).data).toEqual([]);
  });

  it("pages a listing with list-v2's cursor, folds folders on request, and shows nothing another user may not see", async () => {
    const root = `${alice.id}/v2/`;
    for (const n of ["c.txt", "a.txt", "b/x.txt", "b/y.txt", "d.txt"]) {
      expect((await asAlice.upload(root + n, text(n))).error).toBeNull();
    }
    const flat = await asAlice.listV2({ prefix: root, limit: 2 });
    expect(flat.error).toBeNull();
    expect(flat.data!.objects.map((o) => o.name)).toEqual([`${root}a.txt`, `${root}b/x.txt`]);
    expect(flat.data!.hasNext).toBe(true);
    const names: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await asAlice.listV2({ prefix: root, limit: 2, cursor });
      names.push(...page.data!.objects.map((o) => o.name));
      cursor = page.data!.hasNext ? page.data!.nextCursor : undefined;
    } while (cursor);
    expect(names).toEqual(["a.txt", "b/x.txt", "b/y.txt", "c.txt", "d.txt"].map((n) => root + n));

    const folded = await asAlice.listV2({ prefix: root, with_delimiter: true, sortBy: { column: "name", order: "desc" } });
    expect(folded.data!.folders.map((f) => f.name)).toEqual([`${root}b/`]);
    expect(folded.data!.objects.map((o) => o.name)).toEqual(["d.txt", "c.txt", "a.txt"].map((n) => root + n));
    expect(folded.data!.objects[0].metadata).toMatchObject({ size: 5, mimetype: "text/plain" });

    // by creation time, in pages of one: every object once, in upload order
    const created: string[] = [];
    cursor = undefined;
    do {
      const page = await asAlice.listV2({ prefix: root, limit: 1, cursor, sortBy: { column: "created_at" } });
      created.push(...page.data!.objects.map((o) => o.name));
      cursor = page.data!.hasNext ? page.data!.nextCursor : undefined;
    } while (cursor);
    expect(created).toEqual(["c.txt", "a.txt", "b/x.txt", "b/y.txt", "d.txt"].map((n) => root + n));

    const asOutsider = await asBob.listV2({ prefix: root });
    expect(asOutsider.data).toMatchObject({ hasNext: false, folders: [], objects: [] });
    const forged = await asAlice.listV2({ prefix: root, cursor: "bm90IGEgY3Vyc29y" });
    expect(forged.error).toMatchObject({ statusCode: "400" });
  });

  it("tells an object's details (info, exists) only to who may read it", async () => {
    await asAlice.upload(`${alice.id}/info.txt`, text("info"));
    const info = await asAlice.info(`${alice.id}/info.txt`);
    expect(info.error).toBeNull();
    expect(info.data).toMatchObject({ name: `${alice.id}/info.txt`, size: 4, contentType: "text/plain" });
    expect((await asAlice.exists(`${alice.id}/info.txt`)).data).toBe(true);
    expect((await asAlice.exists(`${alice.id}/nothing.txt`)).data).toBe(false);
    expect((await asBob.exists(`${alice.id}/info.txt`)).data).toBe(false);
  });

  it("signs several URLs at once, each only for an object the caller may read", async () => {
    await asAlice.upload(`${alice.id}/many.txt`, text("many"));
    const { data, error } = await asAlice.createSignedUrls([`${alice.id}/many.txt`, `${bob.id}/not-mine.txt`], 60);
    expect(error).toBeNull();
    expect(data![0].error).toBeNull();
    expect(await (await fetch(data![0].signedUrl!)).text()).toBe("many");
    expect(data![1]).toMatchObject({ signedUrl: null });
    expect(data![1].error).toBe("Either the object does not exist or you do not have access to it");
  });

  it("serves public buckets' objects by their public URL, and nothing of a private bucket", async () => {
    const pub = `public-${crypto.randomUUID().slice(0, 8)}`;
    await admin`insert into storage.buckets (id, name, public) values (${pub}, ${pub}, true)`;
    await admin.unsafe(
      `create policy "${pub} insert" on storage.objects for insert to authenticated with check (bucket_id = '${pub}')`,
    );
    try {
      const bucket = createClient<Database>(API_URL, secrets().anonKey, {
        auth: { persistSession: false, autoRefreshToken: false },
        global: { headers: { Authorization: `Bearer ${(await tokenFor(admin, alice.id)).token}` } },
      }).storage.from(pub);
      expect((await bucket.upload("logo.txt", text("public!"))).error).toBeNull();
      const { publicUrl } = bucket.getPublicUrl("logo.txt").data;
      const res = await fetch(publicUrl);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("public!");
      await asAlice.upload(`${alice.id}/private.txt`, text("private"));
      const privateUrl = asAlice.getPublicUrl(`${alice.id}/private.txt`).data.publicUrl;
      expect((await fetch(privateUrl)).status).toBe(404);
    } finally {
      await admin.unsafe(`drop policy "${pub} insert" on storage.objects`);
      await admin`delete from storage.objects where bucket_id = ${pub}`;
      await admin`delete from storage.buckets where id = ${pub}`;
    }
  });

  it("moves and copies within what the caller's policies allow, bytes included", async () => {
    await asAlice.upload(`${alice.id}/move-me.txt`, text("moving"));
    expect((await asAlice.move(`${alice.id}/move-me.txt`, `${alice.id}/moved.txt`)).error).toBeNull();
    expect(await (await asAlice.download(`${alice.id}/moved.txt`)).data!.text()).toBe("moving");
    expect((await asAlice.exists(`${alice.id}/move-me.txt`)).data).toBe(false);
    expect((await asAlice.copy(`${alice.id}/moved.txt`, `${alice.id}/copy.txt`)).error).toBeNull();
    expect(await (await asAlice.download(`${alice.id}/copy.txt`)).data!.text()).toBe("moving");
    // out of one's own folder, or someone else's object: refused, nothing changes
    expect((await asAlice.move(`${alice.id}/copy.txt`, `${bob.id}/stolen.txt`)).error).toMatchObject({ status: 403 });
    expect((await asBob.copy(`${alice.id}/copy.txt`, `${bob.id}/stolen.txt`)).error).toMatchObject({ status: 404 });
    expect((await asBob.move(`${alice.id}/copy.txt`, `${bob.id}/stolen.txt`)).error).toMatchObject({ status: 404 });
    expect(await (await asAlice.download(`${alice.id}/copy.txt`)).data!.text()).toBe("moving");
    expect(await admin`select 1 from storage.objects where bucket_id = ${BUCKET} and name = ${`${bob.id}/stolen.txt`}`)
      .toHaveLength(0);

    // bytes lost from disk: a 404, never a 500, and the row stays where it was (the move is undone whole)
    await asAlice.upload(`${alice.id}/lost.txt`, text("lost"));
    fs.rmSync(path.join(STATE, "storage", BUCKET, alice.id, "lost.txt"));
    expect((await asAlice.move(`${alice.id}/lost.txt`, `${alice.id}/found.txt`)).error?.message).toBe("Object not found");
    expect((await asAlice.copy(`${alice.id}/lost.txt`, `${alice.id}/found.txt`)).error?.message).toBe("Object not found");
    const rows = await admin`select name from storage.objects where bucket_id = ${BUCKET}
                             and name in (${`${alice.id}/lost.txt`}, ${`${alice.id}/found.txt`})`;
    expect(rows.map((r) => r.name)).toEqual([`${alice.id}/lost.txt`]);
  });

  it("downloads answer ETag with 304 for If-None-Match, byte ranges with 206, and 416 past the end", async () => {
    await asAlice.upload(`${alice.id}/digits.txt`, text("0123456789"));
    const url = `${API_URL}/storage/v1/object/authenticated/${BUCKET}/${alice.id}/digits.txt`;
    const auth = { apikey: secrets().anonKey, Authorization: `Bearer ${(await tokenFor(admin, alice.id)).token}` };
    const whole = await fetch(url, { headers: auth });
    expect(whole.status).toBe(200);
    expect(whole.headers.get("accept-ranges")).toBe("bytes");
    const etag = whole.headers.get("etag")!;
    expect(etag).toMatch(/^"[0-9a-f]{32}"$/);
    expect(await whole.text()).toBe("0123456789");
    expect((await fetch(url, { headers: { ...auth, "If-None-Match": etag } })).status).toBe(304);
    expect((await fetch(url, { headers: { ...auth, "If-None-Match": '"other"' } })).status).toBe(200);
    const part = await fetch(url, { headers: { ...auth, Range: "bytes=2-5" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe("bytes 2-5/10");
    expect(await part.text()).toBe("2345");
    const tail = await fetch(url, { headers: { ...auth, Range: "bytes=-3" } });
    expect([tail.status, await tail.text()]).toEqual([206, "789"]);
    const past = await fetch(url, { headers: { ...auth, Range: "bytes=20-" } });
    expect([past.status, past.headers.get("content-range")]).toEqual([416, "bytes */10"]);
    const unread = await fetch(url, { headers: { ...auth, Range: "bytes=0-1,4-5" } }); // several ranges: the whole file
    expect([unread.status, await unread.text()]).toEqual([200, "0123456789"]);
    // another user's object stays a 404 whatever the headers
    const bobAuth = { apikey: secrets().anonKey, Authorization: `Bearer ${(await tokenFor(admin, bob.id)).token}` };
    expect((await fetch(url, { headers: { ...bobAuth, Range: "bytes=0-1", "If-None-Match": etag } })).status).toBe(404);
  });

  it("needs the project's API key, as hosted's gateway does, except on links a browser opens", async () => {
    await asAlice.upload(`${alice.id}/keyed.txt`, text("keyed"));
    const url = `${API_URL}/storage/v1/object/authenticated/${BUCKET}/${alice.id}/keyed.txt`;
    const bearer = { Authorization: `Bearer ${(await tokenFor(admin, alice.id)).token}` };
    const none = await fetch(url, { headers: bearer });
    expect([none.status, (await none.json()).message]).toEqual([401, "No API key found in request"]);
    const foreign = await fetch(url, { headers: { ...bearer, apikey: "not-a-key" } });
    expect([foreign.status, (await foreign.json()).message]).toEqual([401, "Invalid API key"]);
    expect((await fetch(url, { headers: { ...bearer, apikey: secrets().publishableKey } })).status).toBe(200);
    const signed = await asAlice.createSignedUrl(`${alice.id}/keyed.txt`, 60);
    expect((await fetch(signed.data!.signedUrl)).status).toBe(200); // a link: no key, no header
  });

  it("an upload URL's token never downloads the object", async () => {
    const signedUpload = await asAlice.createSignedUploadUrl(`${alice.id}/drop.txt`);
    expect(signedUpload.error).toBeNull();
    expect((await asAlice.uploadToSignedUrl(`${alice.id}/drop.txt`, signedUpload.data!.token, text("dropped"))).error).toBeNull();
    const asDownload = `${API_URL}/storage/v1/object/sign/${BUCKET}/${alice.id}/drop.txt?token=${signedUpload.data!.token}`;
    expect((await fetch(asDownload)).status).toBe(400);
  });

  it("removes objects the caller may delete, and only those", async () => {
    expect((await asBob.remove([`${alice.id}/hello.txt`])).data).toEqual([]);
    const removed = await asAlice.remove([`${alice.id}/hello.txt`]);
    expect(removed.data?.map((o) => o.name)).toEqual([`${alice.id}/hello.txt`]);
    expect((await asAlice.download(`${alice.id}/hello.txt`)).error).toMatchObject({ status: 404 });
  });
});
