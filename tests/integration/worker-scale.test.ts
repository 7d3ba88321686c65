// The worker scaled out: two worker processes (the project's worker, as bench:workers starts them)
// on one pg-boss schema share the jobs, and no job runs twice.
import { fork } from "node:child_process";
import path from "node:path";
import { PgBoss } from "pg-boss";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminSql, DB_URL, waitUntil } from "../helpers/stack.ts";

const sql = adminSql();
const boss = new PgBoss({ connectionString: DB_URL, schedule: false, application_name: "worker-scale-test" });
const children: ReturnType<typeof fork>[] = [];

beforeAll(async () => {
  await sql`create table if not exists public.bench_worker_runs (job_id uuid not null, pid integer not null, at timestamptz not null default now())`;
  await sql`revoke all on public.bench_worker_runs from anon, authenticated`;
  await sql`truncate public.bench_worker_runs`;
  await boss.start();
  for (let i = 0; i < 2; i++) {
    children.push(
      await new Promise((resolve, reject) => {
        const child = fork(path.resolve("bench/fixtures/worker-process.ts"), {
          env: { ...process.env, DATABASE_URL: DB_URL },
          stdio: ["ignore", "ignore", "inherit", "ipc"],
        });
        child.once("message", () => resolve(child));
        child.once("exit", (code) => reject(new Error(`a worker process exited with ${code}`)));
      }),
    );
  }
}, 60_000);

afterAll(async () => {
  for (const c of children) c.kill("SIGTERM");
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once("exit", r)))));
  await sql`drop table if exists public.bench_worker_runs`;
  await boss.stop({ graceful: false });
  await sql.end();
});

describe("two worker processes on one queue", () => {
  it("share 600 jobs, each run exactly once", async () => {
    await boss.insert(
      "bench.count",
      Array.from({ length: 600 }, (_, i) => ({ data: { org_id: null, correlation_id: `scale-${i}` } })),
    );
    await waitUntil(
      "every job to run",
      async () => (await sql`select count(*)::int as n from public.bench_worker_runs`)[0].n >= 600 || null,
      30_000,
      50,
    );
    await new Promise((r) => setTimeout(r, 500)); // a job run twice would show up now
    const [runs] =
      await sql`select count(*)::int as runs, count(distinct job_id)::int as jobs, count(distinct pid)::int as processes
                             from public.bench_worker_runs`;
    expect(runs).toEqual({ runs: 600, jobs: 600, processes: 2 });
  });
});
