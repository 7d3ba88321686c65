// npm run bench:workers — the worker scaled out: 1, 2 and 3 worker processes (the project's
// worker, bench/fixtures/worker-process.ts) on one pg-boss schema, each run with the same jobs.
// Jobs per second from the first insert to the last completion, and whether any job ran twice
// (every run is recorded with its job id; pg-boss must hand each job to one process only).
// Last line: workers_1=<jobs/s> workers_2=<jobs/s> workers_3=<jobs/s> duplicates=<n> missing=<n>
import { fork } from "node:child_process";
import path from "node:path";
import { PgBoss } from "pg-boss";
import postgres from "postgres";
import { DB_URL } from "../dev/stack/config.ts";
import { createRunTable, workerRun } from "./fixtures/worker-run.ts";

const N = Number(process.env.BENCH_JOBS ?? 3000);
const log = (msg: string, f: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ ts: new Date().toISOString(), component: "bench:workers", msg, ...f }));
const sql = postgres(DB_URL, { max: 2, onnotice: () => {} });
const boss = new PgBoss({ connectionString: DB_URL, schedule: false, application_name: "bench-workers" });
await boss.start();

async function run(workers: number) {
  const run = workerRun(`bench_${process.pid}_${workers}`);
  await sql.unsafe(createRunTable(run.table)); // (the worker processes make the queue)
  const children = await Promise.all(
    Array.from({ length: workers }, () =>
      new Promise<ReturnType<typeof fork>>((resolve, reject) => {
        const child = fork(path.join(import.meta.dirname, "fixtures", "worker-process.ts"), {
          env: { ...process.env, DATABASE_URL: DB_URL, WORKER_RUN: run.id },
          stdio: ["ignore", "ignore", "inherit", "ipc"],
        });
        child.once("message", () => resolve(child));
        child.once("exit", (code) => reject(new Error(`a worker process exited with ${code}`)));
      })),
  );
  try {
    const started = performance.now();
    for (let i = 0; i < N; i += 500) {
      await boss.insert(
        run.queue,
        Array.from({ length: Math.min(500, N - i) }, (_, j) => ({
          data: { org_id: null, correlation_id: `bench-${workers}-${i + j}` },
        })),
      );
    }
    let runs = 0;
    while (runs < N && performance.now() - started < 120_000) {
      [{ runs }] = await sql.unsafe<{ runs: number }[]>(`select count(*)::int as runs from ${run.table}`);
      if (runs < N) await new Promise((r) => setTimeout(r, 20));
    }
    const ms = performance.now() - started;
    const [{ distinct_jobs, processes }] = await sql.unsafe<{ distinct_jobs: number; processes: number }[]>(
      `select count(distinct job_id)::int as distinct_jobs, count(distinct pid)::int as processes from ${run.table}`,
    );
    const figures = {
      workers,
      jobs: N,
      jobs_per_s: Math.round((distinct_jobs / ms) * 1000),
      ms: Math.round(ms),
      duplicates: runs - distinct_jobs,
      missing: N - distinct_jobs,
      processes_that_ran_jobs: processes,
    };
    log("run", figures);
    return figures;
  } finally {
    for (const c of children) c.kill("SIGTERM");
    await Promise.all(children.map((c) => new Promise((r) => c.exitCode !== null ? r(null) : c.once("exit", r))));
    await sql.unsafe(`drop table if exists ${run.table}`);
    await boss.deleteQueue(run.queue);
  }
}

try {
  const results = [];
  for (const n of [1, 2, 3]) results.push(await run(n));
  console.log(
    `workers_1=${results[0].jobs_per_s} workers_2=${results[1].jobs_per_s} workers_3=${results[2].jobs_per_s} duplicates=${
      results.reduce((a, r) => a + r.duplicates, 0)
    } missing=${results.reduce((a, r) => a + r.missing, 0)}`,
  );
} finally {
  await boss.stop({ graceful: false });
  await sql.end();
}
