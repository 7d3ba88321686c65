// Hosted Storage's `?download=`, as storage-js asks for it (`{ download: true | name }` on signed
// and public URLs, the query on an authenticated GET): Content-Disposition makes a browser save the
// object under that name instead of replacing the page with it. Against a gateway of its own, so the
// stand-in under test is the one in this tree.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { createClient } from "@supabase/supabase-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, STATE } from "../../dev/stack/config.ts";
import { type FixtureGateway, startFixtureGateway } from "../helpers/fixture-gateway.ts";
import { adminSql, secrets } from "../helpers/stack.ts";

const admin = adminSql();
const BUCKET = `download-${crypto.randomUUID().slice(0, 8)}`;
const PUBLIC = `${BUCKET}-public`;
let gateway: FixtureGateway;
let url: string;

beforeAll(async () => {
  await admin`insert into storage.buckets (id, name, public) values (${BUCKET}, ${BUCKET}, false), (${PUBLIC}, ${PUBLIC}, true)`;
  gateway = await startFixtureGateway("storage-download", path.join(ROOT, "supabase"));
  url = gateway.url;
}, 60_000);
afterAll(async () => {
  await gateway?.stop();
  await admin`delete from storage.objects where bucket_id in (${BUCKET}, ${PUBLIC})`;
  await admin`delete from storage.buckets where id in (${BUCKET}, ${PUBLIC})`;
  for (const b of [BUCKET, PUBLIC]) fs.rmSync(path.join(STATE, "storage", b), { recursive: true, force: true });
  await admin.end();
});

describe("?download= on the storage stand-in", () => {
  it("answers Content-Disposition: attachment, named as asked, on signed, public and authenticated GETs", async () => {
    const service = createClient(url, secrets().secretKey, { auth: { persistSession: false } }).storage;
    const body = new Blob(["<h1>report</h1>"], { type: "text/html" });
    expect((await service.from(BUCKET).upload("a/report.html", body)).error).toBeNull();
    expect((await service.from(PUBLIC).upload("a/report.html", body)).error).toBeNull();
    const signedNamed = await service.from(BUCKET).createSignedUrl("a/report.html", 60, { download: "Term report 1.html" });
    const a = await fetch(signedNamed.data!.signedUrl);
    expect(a.status).toBe(200);
    expect(a.headers.get("content-disposition")).toBe(
      "attachment; filename=Term%20report%201.html; filename*=UTF-8''Term%20report%201.html;",
    );
    expect(await a.text()).toBe("<h1>report</h1>");
    // storage-js's createSignedUrl encodes the query twice (encodeURI over URLSearchParams), so a
    // name with %-escapes arrives escaped; an app appends its own `download=` for such names
    const named = "Term report (Ünïcode).html";
    const encoded = encodeURIComponent(named);
    const plainUrl = (await service.from(BUCKET).createSignedUrl("a/report.html", 60)).data!.signedUrl;
    const own = await fetch(`${plainUrl}&download=${encodeURIComponent(named)}`);
    expect(own.headers.get("content-disposition")).toBe(`attachment; filename=${encoded}; filename*=UTF-8''${encoded};`);

    const signedTrue = await service.from(BUCKET).createSignedUrl("a/report.html", 60, { download: true });
    const b = await fetch(signedTrue.data!.signedUrl);
    expect(b.headers.get("content-disposition")).toBe("attachment;"); // the browser names it from the URL

    // without ?download= only active content (HTML here) is made an attachment, as before
    expect((await fetch(plainUrl)).headers.get("content-disposition")).toBe("attachment");

    const pub = service.from(PUBLIC).getPublicUrl("a/report.html", { download: "r.html" });
    expect((await fetch(pub.data.publicUrl)).headers.get("content-disposition")).toBe(
      "attachment; filename=r.html; filename*=UTF-8''r.html;",
    );

    const authed = await fetch(`${url}/storage/v1/object/${BUCKET}/a/report.html?download=x.html`, {
      headers: { apikey: secrets().secretKey, authorization: `Bearer ${secrets().serviceRoleKey}` },
    });
    expect(authed.status).toBe(200);
    expect(authed.headers.get("content-disposition")).toBe("attachment; filename=x.html; filename*=UTF-8''x.html;");

    // a range of a download is still a download
    const ranged = await fetch(signedNamed.data!.signedUrl, { headers: { range: "bytes=0-3" } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get("content-disposition")).toContain("attachment; filename=");

    // storage-js's own download() is unchanged: the bytes
    const blob = await service.from(BUCKET).download("a/report.html");
    expect(await blob.data!.text()).toBe("<h1>report</h1>");
  });
});
