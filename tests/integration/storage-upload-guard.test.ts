// The storage stand-in's uploads under attack: a caller the policies refuse is answered before its
// body is read (as hosted Storage's testPermission does), so a publishable key alone cannot park
// bytes on the stack's disk; and one caller's uploads in flight are bounded, so it cannot fill the
// disk others share. The bound is tested on a gateway of the test's own with a small limit.
import crypto from "node:crypto";
import http from "node:http";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../dev/stack/config.ts";
import { type FixtureGateway, startFixtureGateway } from "../helpers/fixture-gateway.ts";
import { adminSql, API_URL, createUser, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";
import fs from "node:fs";

/** A temporary upload file made since `since` that holds at least `bytes`. */
function tmpFileOf(since: number, bytes: number) {
  const dir = path.join(ROOT, ".stack", "storage", ".tmp");
  if (!fs.existsSync(dir)) return false;
  return fs.readdirSync(dir).some((f) => {
    const st = fs.statSync(path.join(dir, f), { throwIfNoEntry: false });
    return !!st && st.mtimeMs >= since - 1000 && st.size >= bytes;
  });
}

const admin = adminSql();
let org: string, teacher: string;
let gateway: FixtureGateway;
const MB = 1024 * 1024;

/**
 * Starts an upload of `declared` bytes, sends `sendFirst` of them, and resolves with the answer
 * if one comes while the body is still open (`early: true`), or after sending the rest.
 */
function upload(base: string, object: string, headers: Record<string, string>, declared: number, sendFirst: number) {
  return new Promise<{ status: number; early: boolean; body: string; finish: () => void }>((resolve, reject) => {
    const url = new URL(`${base}/storage/v1/object/${object}`);
    let ended = false;
    const req = http.request({
      host: url.hostname,
      port: url.port,
      path: url.pathname,
      method: "POST",
      headers: { ...headers, "content-length": String(declared) },
    }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, early: !ended, body, finish: rest }));
    });
    req.on("error", (e) => (ended ? reject(e) : undefined));
    const chunk = Buffer.alloc(64 * 1024, 7);
    let sent = 0;
    function rest() {
      if (ended) return;
      ended = true;
      const write = () => {
        while (sent < declared) {
          const n = Math.min(chunk.length, declared - sent);
          sent += n;
          if (!req.write(chunk.subarray(0, n))) return void req.once("drain", write);
        }
        req.end();
      };
      write();
    }
    while (sent < sendFirst) {
      req.write(chunk);
      sent += chunk.length;
    }
    // the test decides when the rest goes; an early answer arrives without it
    uploadsOpen.push(rest);
  });
}
const uploadsOpen: (() => void)[] = [];

beforeAll(async () => {
  [{ id: org }] = await admin`insert into public.organizations (name, slug) values ('Upload guard', ${`ug-${
    crypto.randomUUID().slice(0, 8)
  }`}) returning id`;
  teacher = (await createUser(admin)).id;
  await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${teacher}, 'teacher')`;
  gateway = await startFixtureGateway("upload-guard", path.join(ROOT, "supabase"), {
    STORAGE_MAX_INFLIGHT_BYTES_PER_CALLER: String(2 * MB),
    SUPABASE_PUBLISHABLE_KEY: secrets().publishableKey,
  });
});
afterAll(async () => {
  for (const finish of uploadsOpen) finish();
  await gateway?.stop();
  await admin`delete from storage.objects where bucket_id = 'exports' and name like ${`${org}/%`}`;
  await admin`update public.organizations set deleted_at = now() where id = ${org}`;
  await admin.end();
});

describe("an upload the policies refuse", () => {
  it("is answered 403 before its body is sent, for anon with the publishable key and for a member without a pending upload", async () => {
    const anon = await upload(
      API_URL,
      `files/${org}/${crypto.randomUUID()}/big.txt`,
      {
        apikey: secrets().publishableKey,
        "content-type": "text/plain",
      },
      48 * MB,
      MB,
    );
    expect([anon.status, anon.early]).toEqual([403, true]);
    const token = (await tokenFor(admin, teacher)).token;
    const member = await upload(
      API_URL,
      `files/${org}/${crypto.randomUUID()}/big.txt`,
      {
        apikey: secrets().publishableKey,
        authorization: `Bearer ${token}`,
        "content-type": "text/plain",
      },
      48 * MB,
      MB,
    );
    expect([member.status, member.early, JSON.parse(member.body).error]).toEqual([403, true, "Unauthorized"]);
  });
});

describe("uploads in flight", () => {
  it("are bounded per caller: the next one over the bound answers 429, and once one ends the caller may upload again", async () => {
    const key = secrets().serviceRoleKey;
    const service = { apikey: key, authorization: `Bearer ${key}`, "content-type": "application/json" };
    const since = Date.now();
    const first = upload(gateway.url, `exports/${org}/a.json`, service, Math.floor(1.5 * MB), MB);
    // the first holds 1 MB on disk, unfinished; the second takes the caller past 2 MB
    await waitUntil("the first upload's megabyte on disk", () => Promise.resolve(tmpFileOf(since, MB)), 10_000, 20);
    const second = await upload(gateway.url, `exports/${org}/b.json`, service, Math.floor(1.5 * MB), Math.floor(1.5 * MB));
    expect(second.status).toBe(429);
    expect(JSON.parse(second.body).error).toBe("TooManyRequests");
    uploadsOpen.at(-2)!();
    expect((await first).status).toBe(200);
    const third = upload(gateway.url, `exports/${org}/c.json`, service, MB, 0);
    uploadsOpen.at(-1)!();
    expect((await third).status).toBe(200);
  });
});
