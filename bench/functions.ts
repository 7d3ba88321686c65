// npm run bench:functions: what each function with a size-dependent input costs per request, in
// CPU time and memory of its Deno process, and where the hosted edge runtime's per-request limits
// would stop it (supabase.com/docs/guides/functions/limits: 2 s of CPU time, 256 MB of memory,
// 150 s wall clock on the free plan, 400 s on paid ones). Each function runs in its own process in
// the local stack, so its CPU time (the scheduler's nanoseconds over all its threads,
// process-cpu.ts) and peak resident memory (VmHWM, reset before each request through clear_refs)
// belong to that request alone. Each size is measured BENCH_FUNCTIONS_SAMPLES times (5 by
// default); the table gives the medians and the CPU range.
//   notification-dispatch: one notification to 1,000, 5,000 and 10,000 members (MQTT only)
//   file-processing: 1, 5 and 10 MB text files (above FILES_LARGE_FILE_BYTES, 10 MB, the worker
//   processes them instead)
//   analytics-ingest: batches of 500 events (the most one request may carry)
// The limits are reached where a straight line through the smallest and largest measured size
// crosses them: an extrapolation, printed as such.
import crypto from "node:crypto";
import fs from "node:fs";
import { createClient } from "@supabase/supabase-js";
import postgres from "postgres";
import { mintAccessToken } from "../dev/platform/auth/tokens.ts";
import { projectSigner } from "../dev/platform/auth/signing-keys.ts";
import { loadProjectConfig } from "../dev/platform/project-config.ts";
import { DB_URL, HOST, paths, PORTS } from "../dev/stack/config.ts";
import { readSecrets } from "../dev/stack/secrets.ts";
import type { Database } from "../supabase/functions/_shared/database.types.ts";
import { textOf, uploadToClean } from "./fixtures/uploads.ts";
import { cpuNsSince, threadCpuNs } from "./process-cpu.ts";
import { summarize } from "./stats.ts";

const HOSTED = { cpuMs: 2000, memoryMb: 256, wallMs: 150_000 };
const RECIPIENTS = [1000, 5000, 10_000];
const FILE_MB = [1, 5, 10];
const INGEST_REQUESTS = Number(process.env.BENCH_INGEST_REQUESTS ?? 20);
const SAMPLES = Number(process.env.BENCH_FUNCTIONS_SAMPLES ?? 5);
if (!Number.isInteger(SAMPLES) || SAMPLES < 1) throw new Error("BENCH_FUNCTIONS_SAMPLES must be a whole number, at least 1");
const log = (msg: string, f: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ ts: new Date().toISOString(), component: "bench:functions", msg, ...f }));

const secrets = readSecrets();
if (!secrets) throw new Error("start the stack first: npm start");
const API = `http://${HOST}:${PORTS.gateway}`;
const sql = postgres(DB_URL, { max: 2, onnotice: () => {} });

/** The Deno process that serves one function (the function host starts it at its first request). */
function functionPid(name: string): number {
  const entry = `supabase/functions/${name}/index.ts`;
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, "utf8");
      if (cmd.includes("function-host.ts") && cmd.includes(entry)) return Number(d);
    } catch { /* gone meanwhile */ }
  }
  throw new Error(`no process serves ${name}: call it once first`);
}
const statusKb = (pid: number, key: "VmHWM" | "VmRSS") =>
  Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]);

/** CPU time, peak memory and wall time of one piece of work in the named function's process. */
async function measure(name: string, work: () => Promise<unknown>) {
  const pid = functionPid(name);
  fs.writeFileSync(`/proc/${pid}/clear_refs`, "5"); // the peak (VmHWM) starts again from now
  const cpu0 = threadCpuNs(pid);
  const t0 = performance.now();
  await work();
  return { cpuMs: cpuNsSince(pid, cpu0) / 1e6, wallMs: performance.now() - t0, peakMb: statusKb(pid, "VmHWM") / 1024 };
}

type Sample = Awaited<ReturnType<typeof measure>>;
/** SAMPLES measurements of the same work: the medians, and the CPU's lowest and highest. */
async function sampled(name: string, work: (i: number) => Promise<unknown>) {
  const samples: Sample[] = [];
  for (let i = 0; i < SAMPLES; i++) samples.push(await measure(name, () => work(i)));
  const med = (key: keyof Sample) => summarize(samples.map((x) => x[key])).p50;
  const cpu = samples.map((x) => x.cpuMs);
  return {
    cpuMs: med("cpuMs"),
    wallMs: med("wallMs"),
    peakMb: med("peakMb"),
    cpuMin: Math.min(...cpu),
    cpuMax: Math.max(...cpu),
  };
}

/** Where a line through two measured points (size, value) reaches the limit. */
const reaches = (a: [number, number], b: [number, number], limit: number) => {
  const slope = (b[1] - a[1]) / (b[0] - a[0]);
  return slope > 0 ? Math.floor(a[0] + (limit - a[1]) / slope) : Infinity;
};

// An enterprise organization (60,000 notifications a minute, 500 MB files) with a teacher
const suffix = crypto.randomUUID().slice(0, 8);
const teacher = crypto.randomUUID();
const [org] =
  await sql`insert into public.organizations (name, slug, tier) values ('Functions bench', ${`bench-fn-${suffix}`}, 'enterprise') returning id`;
await sql`insert into auth.users (id, aud, role, email, email_confirmed_at) values (${teacher}, 'authenticated', 'authenticated', ${`${teacher}@bench.local`}, now())`;
await sql`insert into public.organization_members (org_id, user_id, role) values (${org.id}, ${teacher}, 'teacher')`;
const { token } = await mintAccessToken(
  sql,
  projectSigner(loadProjectConfig(paths.supabase), secrets.jwtSecret),
  loadProjectConfig(paths.supabase),
  {
    userId: teacher,
    expiresIn: 3600,
  },
);
const client = createClient<Database>(API, secrets.anonKey, {
  global: { headers: { Authorization: `Bearer ${token}` } },
  auth: { persistSession: false },
});
const members: string[] = [];

/** Grows the organization to n students (e-mail off for them). */
async function growTo(n: number) {
  const ids = (await sql<{ id: string }[]>`
    insert into auth.users (id, aud, role, email, email_confirmed_at)
    select gen_random_uuid(), 'authenticated', 'authenticated', 'bench-fn-' || ${suffix} || '-' || i || '@bench.local', now()
    from generate_series(${members.length + 1}::int, ${n}::int) i returning id`).map((r) => r.id);
  await sql`insert into public.organization_members (org_id, user_id, role) select ${org.id}, u, 'student' from unnest(${ids}::uuid[]) u`;
  await sql`insert into public.notification_preferences (org_id, user_id, type, channel, enabled)
            select ${org.id}, u, '*', 'email', false from unnest(${ids}::uuid[]) u`;
  members.push(...ids);
}

/** One notification to every student, dispatched by the stack (trigger, webhook, function), until all is recorded. */
async function notifyAll(title: string) {
  const t0 = performance.now();
  const [{ batch_id }] =
    await sql`select batch_id from app.notify(${org.id}, 'announcement.posted', ${title}, 'Hello', '{}', '{"role": "student"}')`;
  log("sent", { title, rpc_ms: Math.round(performance.now() - t0) });
  for (;;) {
    const [{ pending }] = await sql`select count(*)::int as pending from public.notification_deliveries
                                   where batch_id = ${batch_id} and channel = 'mqtt' and status = 'pending'`;
    if (pending === 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

const ingest = (events: unknown[]) =>
  fetch(`${API}/functions/v1/analytics-ingest`, {
    method: "POST",
    body: JSON.stringify({ events }),
    headers: { "content-type": "application/json", authorization: `Bearer ${token}`, apikey: secrets.anonKey },
  }).then(async (r) => {
    if (r.status !== 200) throw new Error(`analytics-ingest answered ${r.status}: ${await r.text()}`);
  });
const batchOf = (n: number) =>
  Array.from({ length: n }, (_, i) => ({
    type: "page.viewed",
    occurred_at: new Date(Date.now() - i * 1000).toISOString(),
    properties: { path: `/lessons/${i % 50}` },
  }));

try {
  const rows: {
    fn: string;
    size: string;
    n: number;
    cpuMs: number;
    wallMs: number;
    peakMb: number;
    cpuMin: number;
    cpuMax: number;
  }[] = [];

  // Warm-ups: each function's process started and its connections open
  await growTo(100);
  await notifyAll("warm-up");
  await uploadToClean(client, sql, org.id, textOf(1), "warm-up.txt");
  await ingest(batchOf(10));

  for (const n of RECIPIENTS) {
    await growTo(n);
    const m = await sampled("notification-dispatch", (i) => notifyAll(`To ${n}, ${i + 1}`));
    rows.push({ fn: "notification-dispatch", size: `${n} recipients`, n, ...m });
    log("measured", rows.at(-1)!);
  }
  for (const mb of FILE_MB) {
    const bytes = textOf(mb);
    const m = await sampled("file-processing", (i) => uploadToClean(client, sql, org.id, bytes, `bench-${mb}mb-${i + 1}.txt`));
    rows.push({ fn: "file-processing", size: `${mb} MB`, n: mb, ...m });
    log("measured", rows.at(-1)!);
  }
  const ingestCpu: number[] = [];
  const ingestPeak: number[] = [];
  for (let i = 0; i < INGEST_REQUESTS; i++) {
    const m = await measure("analytics-ingest", () => ingest(batchOf(500)));
    ingestCpu.push(m.cpuMs);
    ingestPeak.push(m.peakMb);
  }
  const ingestRow = {
    fn: "analytics-ingest",
    size: "500 events",
    n: 500,
    cpuMs: summarize(ingestCpu).p50,
    wallMs: 0,
    peakMb: Math.max(...ingestPeak),
  };
  log("measured", { ...ingestRow, requests: INGEST_REQUESTS });

  console.log(
    `\nper request, in the function's own process, medians of ${SAMPLES} (CPU: all threads, ns clock; memory: peak resident)`,
  );
  console.log(`function                size              CPU ms   (range)     wall ms*   peak MB`);
  for (const r of rows) {
    const range = `(${r.cpuMin.toFixed(0)}-${r.cpuMax.toFixed(0)})`;
    console.log(
      `${r.fn.padEnd(23)} ${r.size.padEnd(16)} ${r.cpuMs.toFixed(0).padStart(7)}   ${range.padEnd(11)} ${
        r.wallMs.toFixed(0).padStart(8)
      } ${r.peakMb.toFixed(0).padStart(9)}`,
    );
  }
  console.log(
    `${ingestRow.fn.padEnd(23)} ${ingestRow.size.padEnd(16)} ${
      ingestRow.cpuMs.toFixed(0).padStart(7)
    }   (median of ${INGEST_REQUESTS})  ${ingestRow.peakMb.toFixed(0).padStart(6)}`,
  );
  const point = (fn: string, n: number, key: "cpuMs" | "peakMb" | "wallMs") => {
    const r = rows.find((x) => x.fn === fn && x.n === n)!;
    return [r.n, r[key]] as [number, number];
  };
  const [r0, r1] = [RECIPIENTS[0], RECIPIENTS.at(-1)!];
  const [f0, f1] = [FILE_MB[0], FILE_MB.at(-1)!];
  const limits = {
    dispatch: {
      cpu: reaches(point("notification-dispatch", r0, "cpuMs"), point("notification-dispatch", r1, "cpuMs"), HOSTED.cpuMs),
      memory: reaches(
        point("notification-dispatch", r0, "peakMb"),
        point("notification-dispatch", r1, "peakMb"),
        HOSTED.memoryMb,
      ),
      wall: reaches(point("notification-dispatch", r0, "wallMs"), point("notification-dispatch", r1, "wallMs"), HOSTED.wallMs),
    },
    processing: {
      cpu: reaches(point("file-processing", f0, "cpuMs"), point("file-processing", f1, "cpuMs"), HOSTED.cpuMs),
      memory: reaches(point("file-processing", f0, "peakMb"), point("file-processing", f1, "peakMb"), HOSTED.memoryMb),
      wall: reaches(point("file-processing", f0, "wallMs"), point("file-processing", f1, "wallMs"), HOSTED.wallMs),
    },
  };
  const fmtN = (n: number) => (Number.isFinite(n) ? n.toLocaleString("en") : "never");
  console.log(`* from the send (dispatch: the fan-out and the webhook included) or the upload (processing: the upload included)`);
  console.log(`peak MB: the process's high-water mark, which V8's lazy collection can raise above what is live`);
  console.log(`\nwhere the hosted limits would be reached (a line through the smallest and largest size):`);
  console.log(
    `notification-dispatch: 2 s CPU at ${fmtN(limits.dispatch.cpu)} recipients, 256 MB at ${
      fmtN(limits.dispatch.memory)
    }, 150 s wall at ${fmtN(limits.dispatch.wall)}`,
  );
  console.log(
    `file-processing: 2 s CPU at ${fmtN(limits.processing.cpu)} MB, 256 MB at ${
      fmtN(limits.processing.memory)
    } MB, 150 s wall at ${fmtN(limits.processing.wall)} MB\n`,
  );
  const at = (fn: string, n: number) => rows.find((x) => x.fn === fn && x.n === n)!;
  console.log(
    [
      `dispatch_cpu_ms_10k=${at("notification-dispatch", r1).cpuMs.toFixed(0)}`,
      `dispatch_peak_mb_10k=${at("notification-dispatch", r1).peakMb.toFixed(0)}`,
      `dispatch_max_recipients_cpu=${limits.dispatch.cpu}`,
      `processing_cpu_ms_10mb=${at("file-processing", f1).cpuMs.toFixed(0)}`,
      `processing_peak_mb_10mb=${at("file-processing", f1).peakMb.toFixed(0)}`,
      `processing_max_mb_memory=${limits.processing.memory}`,
      `ingest_cpu_ms_500=${ingestRow.cpuMs.toFixed(0)}`,
    ].join(" "),
  );
} finally {
  await sql`update public.organizations set deleted_at = now() where id = ${org.id}`;
  await sql`delete from public.organization_members where org_id = ${org.id}`;
  await sql`delete from auth.users where email like ${`bench-fn-${suffix}-%`}`;
  await sql.end();
}
