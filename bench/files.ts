// npm run bench:files: upload to `clean` through the whole path (file-upload function, signed
// upload to storage, the trigger's webhook, file-processing: download, sniff, sha256, clamd, PII,
// settle) for 1, 10 and 50 MB text files, next to clamd's own INSTREAM scan of the same bytes in
// the same run; then files per minute with 4 uploaders of 1 MB files.
import crypto from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import type { Database } from "../supabase/functions/_shared/database.types.ts";
import postgres from "postgres";
import { DB_URL, HOST, paths, PORTS } from "../dev/stack/config.ts";
import { mintAccessToken } from "../dev/platform/auth/tokens.ts";
import { projectSigner } from "../dev/platform/auth/signing-keys.ts";
import { loadProjectConfig } from "../dev/platform/project-config.ts";
import { readSecrets } from "../dev/stack/secrets.ts";
import { scanBytes } from "../supabase/functions/_shared/files/scan.ts";
import { textOf, uploadToClean as uploadToCleanAs } from "./fixtures/uploads.ts";
import { fmt, summarize } from "./stats.ts";

const SAMPLES: Record<string, number> = {
  "1": Number(process.env.BENCH_SAMPLES_1MB ?? 10),
  "10": Number(process.env.BENCH_SAMPLES_10MB ?? 5),
  "50": Number(process.env.BENCH_SAMPLES_50MB ?? 3),
};
const THROUGHPUT_SECONDS = Number(process.env.BENCH_THROUGHPUT_SECONDS ?? 30);
const UPLOADERS = 4;
const log = (msg: string, f: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ ts: new Date().toISOString(), component: "bench:files", msg, ...f }));

const secrets = readSecrets();
if (!secrets) throw new Error("start the stack first: npm start");
const API = `http://${HOST}:${PORTS.gateway}`;
const sql = postgres(DB_URL, { max: 2, onnotice: () => {} });

// An enterprise organization (500 MB files, 1 TB) with a teacher who uploads
const userId = crypto.randomUUID();
await sql`insert into auth.users (id, aud, role, email, email_confirmed_at) values (${userId}, 'authenticated', 'authenticated', ${`${userId}@bench.local`}, now())`;
const [org] = await sql`insert into public.organizations (name, slug, tier) values ('Files bench', ${`bench-files-${
  userId.slice(0, 8)
}`}, 'enterprise') returning id`;
await sql`insert into public.organization_members (org_id, user_id, role) values (${org.id}, ${userId}, 'teacher')`;
const { token } = await mintAccessToken(
  sql,
  projectSigner(loadProjectConfig(paths.supabase), secrets.jwtSecret),
  loadProjectConfig(paths.supabase),
  { userId, expiresIn: 3600 },
);
const client = createClient<Database>(API, secrets.anonKey, {
  global: { headers: { Authorization: `Bearer ${token}` } },
  auth: { persistSession: false },
});

const uploadToClean = (bytes: Uint8Array, name: string) => uploadToCleanAs(client, sql, org.id, bytes, name);

try {
  const rows: { size: string; p50: number; p95: number; processing: number; scan: number }[] = [];
  await uploadToClean(textOf(1), "warmup.txt");
  for (const [mb, n] of Object.entries(SAMPLES)) {
    const bytes = textOf(Number(mb));
    const times: number[] = [];
    const processing: number[] = [];
    const scans: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await uploadToClean(bytes.slice(), `bench-${mb}mb-${i}.txt`); // same bytes, a new file each time
      times.push(r.ms);
      processing.push(r.processingMs);
      const t = performance.now();
      const verdict = await scanBytes(HOST, PORTS.clamd, bytes);
      scans.push(performance.now() - t);
      if (verdict.verdict !== "clean") throw new Error(`clamd said ${JSON.stringify(verdict)}`);
    }
    const s = summarize(times);
    rows.push({ size: `${mb} MB`, p50: s.p50, p95: s.p95, processing: summarize(processing).p50, scan: summarize(scans).p50 });
    log("size done", {
      mb: Number(mb),
      samples: n,
      p50_ms: Math.round(s.p50),
      clamd_scan_p50_ms: Math.round(summarize(scans).p50),
    });
  }

  // Throughput: 4 uploaders of 1 MB files for THROUGHPUT_SECONDS
  const one = textOf(1);
  let done = 0;
  const deadline = Date.now() + THROUGHPUT_SECONDS * 1000;
  const throughputStart = performance.now();
  await Promise.all(Array.from({ length: UPLOADERS }, async (_, u) => {
    for (let i = 0; Date.now() < deadline; i++) {
      await uploadToClean(one.slice(), `tp-${u}-${i}.txt`);
      done++;
    }
  }));
  const perMinute = done / ((performance.now() - throughputStart) / 60_000);

  console.log(`\nupload → clean: file-upload, signed upload, webhook, processing; processing: the function's claim to settle`);
  console.log(`(download, sniff, sha256, clamd, PII, settle); clamd alone: an INSTREAM scan of the same bytes`);
  console.log(`size     upload→clean p50 ms   p95 ms   processing p50 ms   clamd alone p50 ms`);
  for (const r of rows) {
    console.log(
      `${r.size.padEnd(7)} ${fmt(r.p50).padStart(19)} ${fmt(r.p95).padStart(9)} ${fmt(r.processing).padStart(19)} ${
        fmt(r.scan).padStart(20)
      }`,
    );
  }
  console.log(
    `${UPLOADERS} uploaders of 1 MB files for ${THROUGHPUT_SECONDS} s: ${done} files, ${perMinute.toFixed(0)} files/min\n`,
  );
  const p50_10 = rows.find((r) => r.size === "10 MB")!.p50;
  const scan50 = rows.find((r) => r.size === "50 MB")!.processing;
  console.log(`p50_10mb_ms=${p50_10.toFixed(0)} scan_50mb_ms=${scan50.toFixed(0)} files_per_min=${perMinute.toFixed(0)}`);
} finally {
  await sql`update public.organizations set deleted_at = now() where id = ${org.id}`;
  await sql.end();
}
