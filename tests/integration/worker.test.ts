// The pg-boss worker against the real Postgres: enqueue through app.enqueue_job, validation and
// dead letters, retries with backoff, tenant context, deleted organizations, graceful shutdown,
// the admin RPCs, and the stack worker's queues, schedules, health and metrics. A worker with the
// test registry (tests/fixtures/worker/jobs.ts, area `test`) runs in this process.
import crypto from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withRequestContext } from "../../supabase/functions/_shared/db.ts";
import { sendJob } from "../../supabase/functions/_shared/jobs.ts";
import { loadWorkerEnv } from "../../worker/src/env.ts";
import { startWorker, type Worker } from "../../worker/src/worker.ts";
import { flakyAttempts, restartProbe, slowForShutdown, TEST_JOBS, tick } from "../fixtures/worker/jobs.ts";
import { startPostgres, stopPostgres } from "../../dev/stack/postgres.ts";
import { adminSql, API_URL, createUser, DB_URL, HOST, PORTS, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";

const admin = adminSql(4);
// Job rows are polled through a Postgres restart on a connection of their own that fetches no
// array types: postgres.js runs that fetch first on every new connection, and a connection made
// while Postgres shuts down loses it as an unhandled rejection (porsager/postgres#1192, #1223).
// The polled columns hold no arrays.
const poller = postgres(DB_URL, { max: 1, fetch_types: false, onnotice: () => {} });
let worker: Worker;
let orgA: string, orgB: string, owner: { id: string }, student: { id: string };

async function jobRow(id: string) {
  // Polled through a Postgres restart: a dropped connection reads as "not yet".
  const [row] =
    await poller`select id, name, state::text, retry_count, output, data, source_name, source_output, started_on, created_on, completed_on
                            from pgboss.job where id = ${id}`.catch((e) => {
      if (/CONNECTION_|ECONNREFUSED|57P01|terminating connection/.test(`${e.code} ${e.message}`)) return [];
      throw e;
    });
  return row;
}
const settled = (id: string, timeoutMs = 15_000) =>
  waitUntil(
    `job ${id} to settle`,
    async () => {
      const r = await jobRow(id);
      return r && ["completed", "failed", "cancelled"].includes(r.state) ? r : null;
    },
    timeoutMs,
    50,
  );
const deadLetterOf = (sourceId: string, timeoutMs = 20_000) =>
  waitUntil(
    `dead letter of ${sourceId}`,
    async () => (await admin`select * from pgboss.job where source_id = ${sourceId}`)[0],
    timeoutMs,
    100,
  );

beforeAll(async () => {
  worker = await startWorker(
    loadWorkerEnv({ DATABASE_URL: DB_URL, WORKER_PORT: "0", WORKER_SCHEDULES: "off", WORKER_SHUTDOWN_GRACE_SECONDS: "5" }),
    TEST_JOBS,
  );
  owner = await createUser(admin);
  student = await createUser(admin);
  const outsider = await createUser(admin);
  const run = crypto.randomUUID().slice(0, 8);
  [{ id: orgA }] = await admin`insert into public.organizations (name, slug) values ('Jobs A', ${`jobs-a-${run}`}) returning id`;
  [{ id: orgB }] = await admin`insert into public.organizations (name, slug) values ('Jobs B', ${`jobs-b-${run}`}) returning id`;
  await admin`insert into public.organization_members (org_id, user_id, role) values
    (${orgA}, ${owner.id}, 'owner'), (${orgA}, ${student.id}, 'student'), (${orgB}, ${outsider.id}, 'owner')`;
  await admin`insert into public.invitations (org_id, email, role, token_hash, expires_at) values
    (${orgA}, ${`a-${run}@jobs.test`}, 'student', sha256(${`a-${run}`}::bytea), now() + interval '1 day'),
    (${orgB}, ${`b-${run}@jobs.test`}, 'student', sha256(${`b-${run}`}::bytea), now() + interval '1 day')`;
});
afterAll(async () => {
  await worker?.stop();
  await admin.end({ timeout: 5 });
  await poller.end({ timeout: 5 });
});

describe("enqueueing", () => {
  it("from TypeScript: sendJob (enqueueJob's core) queues a job pg-boss runs", async () => {
    const id = await sendJob(admin, "test.slow", { org_id: orgA, correlation_id: "ts-1", ms: 0 });
    expect((await settled(id!)).state).toBe("completed");
  });

  it("from SQL: app.enqueue_job writes the job pg-boss runs, adding a correlation id", async () => {
    const [{ id }] = await admin`select app.enqueue_job('test.slow', ${admin.json({ org_id: orgA, ms: 0 })}) as id`;
    const row = await settled(id);
    expect(row.state).toBe("completed");
    expect(row.data.correlation_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("from SQL: unknown queues and payloads without an organization are refused with JB codes", async () => {
    await expect(admin`select app.enqueue_job('test.nope', '{"org_id": null}')`).rejects.toMatchObject({ code: "JB001" });
    await expect(admin`select app.enqueue_job('test.slow', '{"ms": 1}')`).rejects.toMatchObject({ code: "JB002" });
    await expect(admin`select app.enqueue_job('test.slow', '[]')`).rejects.toMatchObject({ code: "JB002" });
  });

  it("from SQL: only the service may call it", async () => {
    const { claims } = await tokenFor(admin, owner.id);
    await expect(
      withRequestContext(
        admin,
        { role: "authenticated", claims },
        (tx) => tx`select app.enqueue_job('test.slow', '{"org_id": null}')`,
      ),
    )
      .rejects.toMatchObject({ code: "42501" });
  });
});

describe("faults", () => {
  it("an invalid payload fails once and goes to the dead-letter queue with the validation error", async () => {
    const [{ id }] = await admin`select app.enqueue_job('test.slow', ${admin.json({ org_id: orgA, ms: "soon" })}) as id`;
    const original = await settled(id);
    expect(original).toMatchObject({ state: "failed", retry_count: 0 });
    const dead = await deadLetterOf(id);
    expect(dead.name).toBe("test.dead-letter");
    expect(dead.source_output).toMatchObject({ error: "invalid_payload" });
    expect(JSON.stringify(dead.source_output.issues)).toContain("ms");
  });

  it("a handler that throws is retried with exponential backoff, then completes", async () => {
    const id = await sendJob(admin, "test.flaky", { org_id: orgA, correlation_id: "flaky-ok", fail_times: 2 });
    const [policy] = await admin`select retry_backoff, retry_delay, retry_limit from pgboss.job where id = ${id!}`;
    expect(policy).toEqual({ retry_backoff: true, retry_delay: 1, retry_limit: 2 });
    const row = await settled(id!, 20_000);
    expect(row).toMatchObject({ state: "completed", retry_count: 2, output: { attempts: 3 } });
    // the cause: each retry started at least its backoff after the attempt before it failed
    // (retry_delay * 2^n seconds, capped at retryDelayMax 2 s, with jitter upward)
    const starts = flakyAttempts.get(id!)!;
    expect(starts).toHaveLength(3);
    expect(starts[1] - starts[0]).toBeGreaterThanOrEqual(1_000);
    expect(starts[2] - starts[1]).toBeGreaterThanOrEqual(2_000);
  });

  it("a handler that keeps throwing ends in the dead-letter queue after its retries", async () => {
    const id = await sendJob(admin, "test.flaky", { org_id: orgA, correlation_id: "flaky-dead", fail_times: 9 });
    const dead = await deadLetterOf(id!, 30_000);
    expect(dead).toMatchObject({ name: "test.dead-letter", source_name: "test.flaky", source_retry_count: 2 });
    expect(dead.source_output).toMatchObject({ error: "handler_failed", message: "planned failure 3 of 9" });
    // the organization's job managers hear of the last failure, once; students do not
    const told =
      await admin`select recipient_id, title, body, data from public.notifications where type = 'job.failed' and data ->> 'job_id' = ${id!}`;
    expect(told).toEqual([{
      recipient_id: owner.id,
      title: "A background job failed: test.flaky",
      body: "Its last attempt failed and it will not be tried again on its own. Retry it from the Jobs screen.", // not the error
      data: { queue: "test.flaky", job_id: id },
    }]);
  });

  it("a job for a deleted organization completes as a no-op", async () => {
    const [{ id: gone }] = await admin`insert into public.organizations (name, slug, deleted_at)
                                       values ('Gone', ${`gone-${crypto.randomUUID().slice(0, 8)}`}, now()) returning id`;
    const id = await sendJob(admin, "test.slow", { org_id: gone, correlation_id: "gone", ms: 0 });
    expect(await settled(id!)).toMatchObject({ state: "completed", output: { skipped: "organization deleted" } });
  });
});

describe("tenant context", () => {
  it("a job sees and changes only its own organization, within its scopes", async () => {
    const id = await sendJob(admin, "test.see-tenant", { org_id: orgA, other_org_id: orgB, correlation_id: "see" });
    const row = await settled(id!);
    expect(row.state).toBe("completed");
    expect(row.output).toEqual({ orgs: [orgA], other: 0, invitationOrgs: [orgA], updated: 0 }); // no settings.manage scope
    const [audit] = await admin`select count(*)::int as n from audit.log where request_id = 'see'`;
    expect(audit.n).toBe(0);
  });
});

describe("admin RPCs", () => {
  const asUser = async <T>(userId: string, fn: (tx: postgres.TransactionSql) => Promise<T>) =>
    withRequestContext(admin, { role: "authenticated", claims: (await tokenFor(admin, userId)).claims }, fn);

  it("list, cancel, retry and replay the organization's own jobs", async () => {
    const later = await sendJob(admin, "test.slow", { org_id: orgA, correlation_id: "later", ms: 0 }, {
      startAfterSeconds: 3600,
    });
    const listed = await asUser(owner.id, (tx) => tx`select id, queue, state from public.list_jobs(${orgA})`);
    expect(listed).toEqual(expect.arrayContaining([{ id: later, queue: "test.slow", state: "created" }]));
    // this organization's jobs only: the tests' own, and the e-mail of the job.failed notifications earlier tests caused
    expect(listed.every((j) => j.queue.startsWith("test.") || j.queue === "notifications.email")).toBe(true);

    await asUser(owner.id, (tx) => tx`select public.cancel_job(${later!})`);
    expect((await jobRow(later!)).state).toBe("cancelled");
    await expect(asUser(owner.id, (tx) => tx`select public.cancel_job(${later!})`)).rejects.toMatchObject({ code: "JB004" });

    const failing = await sendJob(admin, "test.flaky", { org_id: orgA, correlation_id: "replay", fail_times: 3 });
    const dead = await deadLetterOf(failing!, 30_000);
    const replayed = await asUser(owner.id, (tx) => tx`select public.replay_dead_letter(${dead.id}) as id`);
    const again = await settled(replayed[0].id, 20_000);
    expect(again.name).toBe("test.flaky");

    await expect(asUser(owner.id, (tx) => tx`select public.retry_job(${later!})`)).rejects.toMatchObject({ code: "JB004" });
    await admin`update pgboss.job set state = 'failed', completed_on = now() where id = ${later!}`;
    await asUser(owner.id, (tx) => tx`select public.retry_job(${later!})`);
    expect((await jobRow(later!)).state).toBe("retry");
  });

  it("refuse members without jobs.manage and other organizations' jobs", async () => {
    const id = await sendJob(admin, "test.slow", { org_id: orgB, correlation_id: "b-job", ms: 0 }, { startAfterSeconds: 3600 });
    await expect(asUser(student.id, (tx) => tx`select * from public.list_jobs(${orgA})`)).rejects.toMatchObject({
      code: "42501",
    });
    await expect(asUser(owner.id, (tx) => tx`select * from public.list_jobs(${orgB})`)).rejects.toMatchObject({ code: "42501" });
    await expect(asUser(owner.id, (tx) => tx`select public.cancel_job(${id!})`)).rejects.toMatchObject({ code: "JB003" });
    expect((await jobRow(id!)).state).toBe("created");
  });
});

describe("graceful shutdown", () => {
  it("finishes the running job before stopping", async () => {
    const jobs = [slowForShutdown];
    const second = await startWorker(loadWorkerEnv({ DATABASE_URL: DB_URL, WORKER_PORT: "0", WORKER_SCHEDULES: "off" }), jobs);
    const id = await sendJob(admin, "test.slow-shutdown", { org_id: orgA, correlation_id: "slow-stop", ms: 1500 });
    await waitUntil("the slow job to start", async () => (await jobRow(id!))?.state === "active", 10_000, 20);
    await second.stop();
    expect((await jobRow(id!)).state).toBe("completed");
  });
});

describe("schedules", () => {
  it("a registry job's schedule sends jobs on time (an RRULE every 2 s)", async () => {
    const jobs = [{ ...tick, schedule: { cron: "FREQ=SECONDLY;INTERVAL=2" } }];
    const since = new Date();
    const own = await startWorker(
      loadWorkerEnv({
        DATABASE_URL: DB_URL,
        WORKER_PORT: "0",
        WORKER_SCHEDULES: "on",
        WORKER_CRON_MONITOR_SECONDS: "1",
        WORKER_SHUTDOWN_GRACE_SECONDS: "5",
      }),
      jobs,
    );
    try {
      // pg-boss evaluates schedules in passes (one instance claims each) and sends the latest due occurrence
      const done = await waitUntil(
        "a scheduled job to complete",
        async () => {
          const r =
            await admin`select output from pgboss.job where name = 'test.tick' and created_on >= ${since} and state = 'completed'`;
          return r.length ? r : null;
        },
        45_000,
        250,
      );
      expect(done[0].output).toEqual({ ticked: true });
    } finally {
      await own.boss.unschedule("test.tick");
      await own.stop();
    }
  }, 55_000);
});

describe("Postgres restarting mid-job", () => {
  it("the worker reconnects and the job finishes once in effect", async () => {
    const jobs = [restartProbe];
    const own = await startWorker(
      loadWorkerEnv({
        DATABASE_URL: DB_URL,
        WORKER_PORT: "0",
        WORKER_SCHEDULES: "off",
        WORKER_SUPERVISE_SECONDS: "1",
        WORKER_SHUTDOWN_GRACE_SECONDS: "5",
      }),
      jobs,
    );
    try {
      const id = await sendJob(admin, "test.restart-probe", { org_id: orgA, correlation_id: "restart-probe", ms: 1500 });
      await waitUntil("the probe to start", async () => (await jobRow(id!))?.state === "active", 10_000, 20);
      stopPostgres("fast"); // ends every connection, the job's included
      startPostgres();
      const row = await settled(id!, 40_000);
      expect(row.state).toBe("completed");
      const [org] = await admin`select settings ->> 'restart_probe' as probe from public.organizations where id = ${orgA}`;
      expect(org.probe).toBe(id);
      const changes = await admin`select 1 from audit.log where org_id = ${orgA} and request_id = 'restart-probe'`;
      expect(changes).toHaveLength(1); // a repeated attempt changes nothing, so leaves no second entry
    } finally {
      await own.stop();
    }
  }, 60_000);
});

describe("the stack's worker", () => {
  it("has every registry queue with its dead-letter queue, the maintenance schedules, health and metrics", async () => {
    const queues =
      await admin`select name, dead_letter, notify, retry_backoff from pgboss.queue where name like 'maintenance.%' or name like 'tenant.%'`;
    expect(queues).toEqual(expect.arrayContaining([
      { name: "maintenance.expire-invitations", dead_letter: "maintenance.dead-letter", notify: true, retry_backoff: true },
      { name: "tenant.delete", dead_letter: "tenant.dead-letter", notify: true, retry_backoff: true },
    ]));
    const schedules = await admin`select name, cron from pgboss.schedule order by name`;
    expect(schedules.map((s) => s.name)).toEqual(
      expect.arrayContaining(["maintenance.expire-invitations", "maintenance.purge-soft-deleted"]),
    );
    const health = await fetch(`http://${HOST}:${PORTS.worker}/health`);
    expect(await health.json()).toMatchObject({ status: "ok", database: true });
    const metrics = await (await fetch(`http://${HOST}:${PORTS.worker}/metrics`)).text();
    expect(metrics).toMatch(/worker_queue_jobs\{queue="tenant.delete",state="queued"\} \d+/);
  });

  it("has pg-boss's dashboard on localhost, behind the password npm start prints", async () => {
    const url = `http://${HOST}:${PORTS.jobDashboard}/queues/tenant.delete`;
    expect((await fetch(url)).status).toBe(401);
    const auth = `Basic ${Buffer.from(`admin:${secrets().dashboardPassword}`).toString("base64")}`;
    const page = await fetch(url, { headers: { authorization: auth } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("tenant.delete");
  });

  it("purges organizations past their retention through tenant.delete: stored objects gone, audit trail kept without row contents", async () => {
    const [{ id }] = await admin`insert into public.organizations (name, slug, deleted_at, coppa)
                                 values ('Long gone', ${`purge-${
      crypto.randomUUID().slice(0, 8)
    }`}, now() - interval '400 days', true) returning id`;
    // what a deleted organization leaves in storage: a file, a thumbnail, an export archive
    const storage = createClient(API_URL, secrets().serviceRoleKey, { auth: { persistSession: false } }).storage;
    const stored = [
      ["files", `${id}/2026/01/01/${crypto.randomUUID()}-roster.txt`, "text/plain"],
      ["thumbnails", `${id}/${crypto.randomUUID()}.webp`, "image/webp"],
      ["exports", `${id}/${crypto.randomUUID()}.json`, "application/json"],
    ] as const;
    for (const [bucket, name, type] of stored) {
      expect((await storage.from(bucket).upload(name, new Blob(["x"], { type }))).error).toBeNull();
    }
    const [{ id: sweep }] = await admin`select app.enqueue_job('maintenance.purge-soft-deleted', '{"org_id": null}') as id`;
    await settled(sweep);
    await waitUntil(
      "the organization to be purged",
      async () => (await admin`select 1 from public.organizations where id = ${id}`).length === 0,
      15_000,
    );
    const trail =
      await admin`select action from audit.log where org_id = ${id} and table_name = 'public.organizations' order by id`;
    expect(trail.map((r) => r.action)).toEqual(["INSERT", "DELETE"]);
    const [{ with_contents }] = await admin`select count(*)::int as with_contents from audit.log
                                            where org_id = ${id} and (old_values is not null or new_values is not null)`;
    expect(with_contents).toBe(0);
    const [{ left }] = await admin`select count(*)::int as left from storage.objects where name like ${id + "/%"}`;
    expect(left).toBe(0);
  });
});
