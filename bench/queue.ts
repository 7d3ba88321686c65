// npm run bench:queue — the worker's job path against plain pg-boss, in the same run, on the
// stack's Postgres. Both sides use the same queue settings and fetch options (batches, burst,
// LISTEN/NOTIFY); "plain" has an empty pg-boss handler, "tenant" runs the project's runner
// (zod validation, deleted-organization check, the job's tenant context handed to the handler)
// with an empty handler, as the issue asks. A job's request context is a transaction opened when
// its handler does database work, so an empty handler opens none; a third side, "tenant + tx",
// opens an empty transaction in the organization's context per job, to show what the first
// database statement of a job costs against pg-boss's batched fetch and complete. The fair pair
// for jobs that touch the database: plain pg-boss whose handler runs one statement on a pooled
// connection, against the runner whose handler runs the same statement in its tenant context
// (ratio_db on the last line). The runner's way for one statement is tenantStatement: the context
// and the statement as prepared statements before one Sync, one round trip, on node-postgres;
// ratio_db_pg is against the plain statement on node-postgres too (the driver's difference out);
// ratio_db_tx is the same statement in a request-context transaction (inTenantContext, for
// handlers that need several statements). BENCH_ROUNDS (9): the median of that many rounds.
//   throughput: N jobs inserted at once, time from the insert to the last completion
//   latency: jobs sent one at a time, enqueue (created_on) to start (started_on), from the job rows
// BENCH_POOL: connections for the handlers' database work (10, as the worker's). A job's
// transaction holds its connection for its round trips while pooled statements share theirs, so
// the transaction side gains from more (measured: ratio_db_tx 0.52 at 10, 0.61 at 20, 0.63 at 40).
// BENCH_POOLER: how both sides reach Postgres, the ways docs/worker.md gives a worker: `direct`
// (default) or `session`, through a session-mode PgBouncer of the bench's own (hosted: Supavisor's
// session mode, for a worker without IPv6). Never the transaction pooler: tenantStatement's prepared
// statements and pg-boss's LISTEN do not work through it (tests/integration/transaction-pooler.test.ts).
import crypto from "node:crypto";
import { PgBoss } from "pg-boss";
import postgres from "postgres";
import { DB_URL } from "../dev/stack/config.ts";
import { startOwnPooler } from "../dev/stack/pooler.ts";
import { batchLogWrites, flushLogWrites } from "../supabase/functions/_shared/log.ts";
import { createMetrics } from "../worker/src/metrics.ts";
import { BasePayload, DEFAULT_OPTIONS, defineJob } from "../worker/src/registry.ts";
import { OrganizationLiveness, runBatch, workOptions } from "../worker/src/runner.ts";
import { inTenantContext } from "../worker/src/tenant-context.ts";
import { createStatementPool, tenantStatement } from "../worker/src/tenant-statement.ts";
import { fmt, summarize } from "./stats.ts";

const N = Number(process.env.BENCH_JOBS ?? 2000);
const LATENCY_SAMPLES = Number(process.env.BENCH_LATENCY_SAMPLES ?? 300);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 9);
const log = (msg: string, f: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ ts: new Date().toISOString(), component: "bench:queue", msg, ...f }));
// The runner logs as in the worker process (worker/src/main.ts).
batchLogWrites();
process.on("exit", flushLogWrites);

const tenantJob = defineJob({
  queue: "bench.tenant",
  payload: BasePayload.extend({ n: BasePayload.shape.correlation_id.optional() }),
  scopes: ["org.read"],
  tenancy: "organization",
  options: { ...DEFAULT_OPTIONS, concurrency: 4, batchSize: 10 },
  async handler() {},
});
const tenantTxJob = defineJob({
  ...tenantJob,
  queue: "bench.tenant-tx",
  async handler(ctx) {
    await inTenantContext(ctx.sql, ctx.tenant!, async () => {});
  },
});
// The fair pair for jobs that touch the database: the same one statement, on a pooled connection
// (plain pg-boss) or in the job's tenant context (the runner).
const STATEMENT = (db: postgres.Sql | postgres.TransactionSql, org: string) =>
  db`select count(*)::int as n from public.exercises where org_id = ${org}`;
const tenantDbJob = defineJob({
  ...tenantJob,
  queue: "bench.tenant-db",
  async handler(ctx, data) {
    await tenantStatement(ctx.pool, ctx.tenant!)`select count(*)::int as n from public.exercises where org_id = ${data.org_id}`;
  },
});
const tenantDbTxJob = defineJob({
  ...tenantJob,
  queue: "bench.tenant-db-tx",
  async handler(ctx, data) {
    await inTenantContext(ctx.sql, ctx.tenant!, (tx) => STATEMENT(tx, data.org_id!));
  },
});
const plainQueue = "bench.plain";
const plainDbQueue = "bench.plain-db";
const plainDbPgQueue = "bench.plain-db-pg";
const QUEUES = [
  plainQueue,
  tenantJob.queue,
  tenantTxJob.queue,
  plainDbQueue,
  plainDbPgQueue,
  tenantDbJob.queue,
  tenantDbTxJob.queue,
];

const POOLER = process.env.BENCH_POOLER ?? "direct";
if (POOLER !== "direct" && POOLER !== "session") throw new Error(`BENCH_POOLER must be direct or session, got ${POOLER}`);
// a server connection per client in session mode: room for pg-boss's pool, its listener and both pools below
const pooler = POOLER === "session"
  ? await startOwnPooler({ poolMode: "session", defaultPoolSize: 60, maxClientConn: 200 })
  : null;
const DATABASE_URL = pooler?.plainUrl ?? DB_URL;

const boss = new PgBoss({
  connectionString: DATABASE_URL,
  schedule: false,
  useListenNotify: true,
  application_name: "bench-queue",
  queueCacheIntervalSeconds: 5,
});
boss.on("error", (e) => log("pg-boss error", { error: String(e) }));
const sql = postgres(DATABASE_URL, { max: Number(process.env.BENCH_POOL ?? 10), onnotice: () => {} });
const pool = createStatementPool(DATABASE_URL, Number(process.env.BENCH_POOL ?? 10));
await boss.start();
try {
  for (const q of [...QUEUES, "bench.dead-letter"]) {
    await boss.deleteQueue(q).catch(() => {});
  }
  await boss.createQueue("bench.dead-letter");
  const queueSpec = { notify: true, retryLimit: 0, deadLetter: "bench.dead-letter", deleteAfterSeconds: 3600 };
  for (const q of QUEUES) await boss.createQueue(q, queueSpec);
  // Earlier runs leave dead rows behind; both sides start from a vacuumed job table.
  await sql`delete from pgboss.job where name = any(${[...QUEUES, "bench.dead-letter"]}::text[])`;
  await sql.unsafe("vacuum pgboss.job");
  const [org] = await sql`insert into public.organizations (name, slug) values ('Queue bench', ${`bench-q-${
    crypto.randomUUID().slice(0, 8)
  }`}) returning id`;

  const metrics = createMetrics(boss, () => [tenantJob.queue, tenantTxJob.queue, tenantDbJob.queue, tenantDbTxJob.queue]);
  const options = workOptions(tenantJob);
  const liveness = new OrganizationLiveness();
  let done = 0;
  await boss.work(plainQueue, options, async (batch) => {
    done += batch.length;
    return batch.map((j) => ({ id: j.id, status: "completed" as const }));
  });
  await boss.work(plainDbQueue, options, async (batch) => {
    await Promise.all(batch.map((j) => STATEMENT(sql, (j.data as { org_id: string }).org_id)));
    done += batch.length;
    return batch.map((j) => ({ id: j.id, status: "completed" as const }));
  });
  // The same statement on node-postgres's pool, the driver tenantStatement runs on (a named
  // prepared statement, as postgres.js prepares it): the baseline without the driver's difference.
  const plainPg = "select count(*)::int as n from public.exercises where org_id = $1";
  await boss.work(plainDbPgQueue, options, async (batch) => {
    await Promise.all(
      batch.map((j) => pool.query({ name: "bench_plain", text: plainPg, values: [(j.data as { org_id: string }).org_id] })),
    );
    done += batch.length;
    return batch.map((j) => ({ id: j.id, status: "completed" as const }));
  });
  for (const def of [tenantJob, tenantTxJob, tenantDbJob, tenantDbTxJob]) {
    await boss.work(def.queue, options, async (batch) => {
      const results = await runBatch(def, batch as never, { sql, pool, metrics, concurrency: {}, liveness });
      done += batch.length;
      return results;
    });
  }

  const payload = (i: number) => ({ org_id: org.id, correlation_id: `bench-${i}` });
  async function throughput(queue: string) {
    done = 0;
    const started = performance.now();
    await boss.insert(queue, Array.from({ length: N }, (_, i) => ({ data: payload(i) })));
    while (done < N) await new Promise((r) => setTimeout(r, 5));
    return N / ((performance.now() - started) / 1000);
  }
  async function latency(queue: string) {
    const ids: string[] = [];
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const before = done;
      ids.push((await boss.send(queue, payload(i)))!);
      while (done === before) await new Promise((r) => setTimeout(r, 0));
    }
    const rows =
      await sql`select extract(epoch from (started_on - created_on)) * 1000 as ms from pgboss.job where id = any(${ids}::uuid[])`;
    return rows.map((r) => Number(r.ms));
  }

  await new Promise((r) => setTimeout(r, 6000)); // the queue cache sees the new queues (as the worker's does)
  log("warming up");
  await throughput(plainQueue);
  await throughput(tenantJob.queue);
  await throughput(tenantTxJob.queue);
  await throughput(plainDbQueue);
  await throughput(plainDbPgQueue);
  await throughput(tenantDbJob.queue);
  await throughput(tenantDbTxJob.queue);
  // Statistics that reflect a busy queue (an empty table's would steer pg-boss's fetch to poor plans
  // until autovacuum caught up, several rounds in).
  await sql.unsafe("analyze pgboss.job");
  const plainRates: number[] = [];
  const tenantRates: number[] = [];
  const txRates: number[] = [];
  const plainDbRates: number[] = [];
  const plainDbPgRates: number[] = [];
  const tenantDbRates: number[] = [];
  const tenantDbTxRates: number[] = [];
  const plainLat: number[] = [];
  const tenantLat: number[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    plainRates.push(await throughput(plainQueue));
    tenantRates.push(await throughput(tenantJob.queue));
    txRates.push(await throughput(tenantTxJob.queue));
    plainDbRates.push(await throughput(plainDbQueue));
    plainDbPgRates.push(await throughput(plainDbPgQueue));
    tenantDbRates.push(await throughput(tenantDbJob.queue));
    tenantDbTxRates.push(await throughput(tenantDbTxJob.queue));
    plainLat.push(...(await latency(plainQueue)));
    tenantLat.push(...(await latency(tenantJob.queue)));
    log("round done", {
      round: r,
      of: ROUNDS,
      plain_jobs_per_s: Math.round(plainRates.at(-1)!),
      tenant_jobs_per_s: Math.round(tenantRates.at(-1)!),
      tenant_tx_jobs_per_s: Math.round(txRates.at(-1)!),
      plain_db_jobs_per_s: Math.round(plainDbRates.at(-1)!),
      plain_db_pg_jobs_per_s: Math.round(plainDbPgRates.at(-1)!),
      tenant_db_jobs_per_s: Math.round(tenantDbRates.at(-1)!),
      tenant_db_tx_jobs_per_s: Math.round(tenantDbTxRates.at(-1)!),
    });
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const plainRate = median(plainRates);
  const tenantRate = median(tenantRates);
  const txRate = median(txRates);
  const plainDbRate = median(plainDbRates);
  const plainDbPgRate = median(plainDbPgRates);
  const tenantDbRate = median(tenantDbRates);
  const tenantDbTxRate = median(tenantDbTxRates);
  const pl = summarize(plainLat);
  const tl = summarize(tenantLat);
  console.log(`\n${N} jobs per throughput run (median of ${ROUNDS}), ${LATENCY_SAMPLES} sequential sends per latency run`);
  console.log(`                 jobs/s    enqueue->start p50 ms   p95 ms`);
  console.log(`plain pg-boss    ${plainRate.toFixed(0).padStart(6)}    ${fmt(pl.p50).padStart(8)}              ${fmt(pl.p95)}`);
  console.log(`tenant context   ${tenantRate.toFixed(0).padStart(6)}    ${fmt(tl.p50).padStart(8)}              ${fmt(tl.p95)}`);
  console.log(
    `tenant + tx      ${txRate.toFixed(0).padStart(6)}    (one empty request-context transaction per job: ratio ${
      (txRate / plainRate).toFixed(2)
    })\n`,
  );
  console.log(`plain + 1 stmt  ${plainDbRate.toFixed(0).padStart(6)}    (the statement on a pooled connection: postgres.js)`);
  console.log(`plain + 1 stmt  ${plainDbPgRate.toFixed(0).padStart(6)}    (the same on node-postgres's pool: ratio_db_pg)`);
  console.log(
    `tenant + 1 stmt ${tenantDbRate.toFixed(0).padStart(6)}    (the same statement in the job's tenant context: tenantStatement)`,
  );
  console.log(
    `tenant + tx     ${tenantDbTxRate.toFixed(0).padStart(6)}    (the same statement in a request-context transaction)\n`,
  );
  console.log(
    `ratio=${(tenantRate / plainRate).toFixed(2)} ratio_db=${(tenantDbRate / plainDbRate).toFixed(2)} ratio_db_tx=${
      (tenantDbTxRate / plainDbRate).toFixed(2)
    } ratio_db_pg=${(tenantDbRate / plainDbPgRate).toFixed(2)} jobs_per_s=${tenantRate.toFixed(0)} jobs_per_s_db=${
      tenantDbRate.toFixed(0)
    } p50_ms=${fmt(tl.p50)} pooler=${POOLER}`,
  );
  await sql`update public.organizations set deleted_at = now() where id = ${org.id}`;
} finally {
  await boss.stop({ graceful: false });
  for (const q of QUEUES) await sql`delete from pgboss.job where name = ${q}`.catch(() => {});
  await sql.end();
  await pool.end();
  await pooler?.stop();
}
