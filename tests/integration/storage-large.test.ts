// A 200 MB upload through supabase-js's storage client (a Blob, so a multipart form) is streamed
// to disk by the storage stand-in: the gateway's resident memory, sampled while it arrives, grows
// by a small part of the upload's size. The stored object is whole (size and MD5 ETag).
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { createClient } from "@supabase/supabase-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { STATE } from "../../dev/stack/config.ts";
import { adminSql, API_URL, createUser, secrets, tokenFor } from "../helpers/stack.ts";

const admin = adminSql();
const BUCKET = `large-${crypto.randomUUID().slice(0, 8)}`;
const SIZE = 200 * 1024 * 1024;
let user: { id: string };

const rssOf = (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) * 1024;

beforeAll(async () => {
  await admin`insert into storage.buckets (id, name, public) values (${BUCKET}, ${BUCKET}, false)`;
  await admin.unsafe(`create policy "${BUCKET} insert" on storage.objects for insert to authenticated
                      with check (bucket_id = '${BUCKET}' and (storage.foldername(name))[1] = (select auth.uid())::text)`);
  user = await createUser(admin);
});
afterAll(async () => {
  await admin.unsafe(`drop policy if exists "${BUCKET} insert" on storage.objects`);
  await admin`delete from storage.objects where bucket_id = ${BUCKET}`;
  await admin`delete from storage.buckets where id = ${BUCKET}`;
  fs.rmSync(path.join(STATE, "storage", BUCKET), { recursive: true, force: true });
  await admin.end();
});

describe("a 200 MB upload", () => {
  it("is streamed to disk: the gateway's memory grows by a small part of it, and the object is whole", async () => {
    const gateway = Number(fs.readFileSync(path.join(STATE, "pids", "gateway.pid"), "utf8"));
    const bytes = crypto.randomBytes(SIZE);
    const md5 = crypto.createHash("md5").update(bytes).digest("hex");
    const storage = createClient<Database>(API_URL, secrets().anonKey, {
      auth: { persistSession: false, autoRefreshToken: false },
      global: { headers: { Authorization: `Bearer ${(await tokenFor(admin, user.id)).token}` } },
    }).storage.from(BUCKET);

    const before = rssOf(gateway);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(gateway))), 20);
    const started = performance.now();
    const up = await storage.upload(`${user.id}/big.bin`, new Blob([bytes], { type: "application/octet-stream" }));
    const ms = performance.now() - started;
    clearInterval(sampler);
    expect(up.error).toBeNull();
    const grew = peak - before;
    console.log(
      JSON.stringify({
        upload_mb: SIZE / 2 ** 20,
        ms: Math.round(ms),
        gateway_rss_before_mb: Math.round(before / 2 ** 20),
        gateway_rss_peak_mb: Math.round(peak / 2 ** 20),
        grew_mb: Math.round(grew / 2 ** 20),
      }),
    );
    expect(grew).toBeLessThan(SIZE / 4); // reading the form whole took more than the upload's size
    const [o] = await admin`select metadata from storage.objects where bucket_id = ${BUCKET} and name = ${`${user.id}/big.bin`}`;
    expect(o.metadata).toMatchObject({ size: SIZE, eTag: `"${md5}"` });
    expect(fs.statSync(path.join(STATE, "storage", BUCKET, user.id, "big.bin")).size).toBe(SIZE);
  }, 120_000);
});
