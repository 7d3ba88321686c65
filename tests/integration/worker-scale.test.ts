// The worker scaled out: two worker processes (the project's worker, as bench:workers starts them)
// on one pg-boss schema share the jobs, and no job runs twice. The run has its own queue and table,
// so a bench:workers run meanwhile neither takes these jobs nor empties the table.
import { fork } from "node:child_process";
import crypto from "node:crypto";
import path from "node:path";
import { PgBoss } from "pg-boss";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRunTable, workerRun } from "../../bench/fixtures/worker-run.ts";
import { adminSql, DB_URL, waitUntil } from "../helpers/stack.ts";

const sql = adminSql();
const boss = new PgBoss({ connectionString: DB_URL, schedule: false, application_name: "worker-scale-test" });
// pg-boss emits its background errors (supervision) as events: logged, the assertions judge the run
boss.on("error", (e) => console.error("pg-boss error", e));
const children: ReturnType<typeof fork>[] = [];
const run = workerRun(`test_${crypto.randomUUID().slice(0, 8)}`);

beforeAll(async () => {
  await sql.unsafe(createRunTable(run.table));
  await boss.start();
  for (let i = 0; i < 2; i++) {
    children.push(
      await new Promise((resolve, reject) => {
        const child = fork(path.resolve("bench/fixtures/worker-process.ts"), {
          env: { ...process.env, DATABASE_URL: DB_URL, WORKER_RUN: run.id },
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
  await sql.unsafe(`drop table if exists ${run.table}`);
  await boss.deleteQueue(run.queue);
  await boss.stop({ graceful: false });
  await sql.end();
});

describe("two worker processes on one queue", () => {
  it("share 600 jobs, each run exactly once", async () => {
    await boss.insert(
      run.queue,
      Array.from({ length: 600 }, (_, i) => ({ data: { org_id: null, correlation_id: `scale-${i}` } })),
    );
    await waitUntil(
      "every job to run",
      async () => (await sql.unsafe(`select count(*)::int as n from ${run.table}`))[0].n >= 600 || null,
      30_000,
      50,
    );
    // every job settled in pg-boss (a job run twice would have recorded its second run before its
    // second completion), then the record holds each once
    await waitUntil(
      "every job to complete",
      async () =>
        (await sql`select count(*)::int as n from pgboss.job where name = ${run.queue} and state = 'completed'`)[0].n === 600,
      30_000,
      50,
    );
    const [runs] = await sql.unsafe(`select count(*)::int as runs, count(distinct job_id)::int as jobs,
                                            count(distinct pid)::int as processes from ${run.table}`);
    expect(runs).toEqual({ runs: 600, jobs: 600, processes: 2 });
  });
});
