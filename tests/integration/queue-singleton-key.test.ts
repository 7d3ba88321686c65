// A singleton key keeps one waiting job per key only on a queue with pg-boss's `short` policy: the
// registry's queues enqueued with a key have it (worker/src/queues.ts), the others keep `standard`,
// where a key deduplicates nothing. Against the running Postgres and a real pg-boss instance, whose
// ensureQueues is the worker's: app.enqueue_job and enqueueJob skip a second job with a waiting
// job's key and answer null, as pg-boss's own send does.
import crypto from "node:crypto";
import { PgBoss } from "pg-boss";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { enqueueJob, sendJob } from "../../supabase/functions/_shared/jobs.ts";
import { JOBS } from "../../worker/src/jobs/index.ts";
import { ensureQueues } from "../../worker/src/queues.ts";
import type { JobDefinition } from "../../worker/src/registry.ts";
import { tick } from "../fixtures/worker/jobs.ts";
import { adminSql, DB_URL } from "../helpers/stack.ts";

const admin = adminSql(3);
const suffix = crypto.randomUUID().slice(0, 8);
const created: string[] = []; // jobs of the project's queues, deferred an hour so no worker takes them
const ownQueues: string[] = [];
let boss: PgBoss;

const LATER = { startAfterSeconds: 3600 };
const uuid = () => crypto.randomUUID();

async function enqueueSql(queue: string, payload: Record<string, unknown>, key: string | null) {
  const [{ id }] = await admin<{ id: string | null }[]>`
    select app.enqueue_job(${queue}, ${admin.json(payload as postgres.JSONValue)}, 0, 3600, ${key}) as id`;
  if (id) created.push(id);
  return id;
}
const remember = (id: string | null) => {
  if (id) created.push(id);
  return id;
};
async function waiting(queue: string, key: string | null) {
  const rows = await admin<{ id: string }[]>`
    select id from pgboss.job where name = ${queue} and state = 'created'
      and singleton_key is not distinct from ${key} and id = any(${created}::uuid[])`;
  return rows.map((r) => r.id);
}
/** A queue of this test (area `test`) with its own name, from the test registry's tick job. */
function ownQueue(name: string, policy?: "short"): JobDefinition {
  ownQueues.push(`test.${name}-${suffix}`);
  return { ...(tick as JobDefinition), queue: `test.${name}-${suffix}`, policy };
}

beforeAll(async () => {
  boss = new PgBoss({ connectionString: DB_URL, schedule: false, supervise: false, queueCacheIntervalSeconds: 1 });
  boss.on("error", () => {}); // a failure shows in the assertions
  await boss.start();
  await ensureQueues(boss, JOBS); // as the worker does on start: the running database's queues end as declared
});
afterAll(async () => {
  await admin`delete from pgboss.job where id = any(${created}::uuid[])`;
  for (const q of ownQueues) await boss?.deleteQueue(q).catch(() => {});
  await boss?.stop({ graceful: false });
  await admin.end({ timeout: 5 });
});

describe("queues enqueued with a singleton key", () => {
  it("have pg-boss's short policy; files.place, also enqueued without a key, keeps standard", async () => {
    const rows = await admin<{ name: string; policy: string }[]>`
      select name, policy from pgboss.queue where name = any(${JOBS.map((j) => j.queue)}) order by name`;
    const policies = Object.fromEntries(rows.map((r) => [r.name, r.policy]));
    expect(policies).toMatchObject({
      "notifications.email": "short",
      "tenant.delete": "short",
      "analytics.rollup": "short",
      "files.place": "standard",
      "tenant.export": "standard",
    });
  });

  it("take one waiting job per key through app.enqueue_job, enqueueJob and pg-boss's send; the others answer null", async () => {
    const org = uuid(), batch = uuid();
    const key = `notifications.email:${batch}`;
    const payload = { org_id: org, batch_id: batch, correlation_id: "singleton" };
    const first = await enqueueSql("notifications.email", payload, key);
    expect(first).not.toBeNull();
    expect(await enqueueSql("notifications.email", payload, key)).toBeNull();
    expect(remember(await enqueueJob(admin, "notifications.email", payload, { singletonKey: key, ...LATER }))).toBeNull();
    expect(remember(await boss.send("notifications.email", payload, { singletonKey: key, startAfter: 3600 }))).toBeNull();
    expect(await waiting("notifications.email", key)).toEqual([first]);

    // another key is another job, through either path
    const other = `notifications.email:${uuid()}`;
    const second = remember(await enqueueJob(admin, "notifications.email", payload, { singletonKey: other, ...LATER }));
    expect(second).not.toBeNull();
    expect(await enqueueSql("notifications.email", payload, other)).toBeNull();
    expect(await waiting("notifications.email", other)).toEqual([second]);

    const deletion = `tenant.delete:${org}`;
    const purge = remember(
      await enqueueJob(admin, "tenant.delete", { org_id: org, correlation_id: "s" }, { singletonKey: deletion, ...LATER }),
    );
    expect(purge).not.toBeNull();
    expect(await enqueueSql("tenant.delete", { org_id: org }, deletion)).toBeNull();
    expect(await waiting("tenant.delete", deletion)).toEqual([purge]);
  });

  it("take a new job for a key once the waiting one has started, and after it completed", async () => {
    const def = ownQueue("short", "short");
    await ensureQueues(boss, [def]);
    const key = `k-${uuid()}`;
    const first = await sendJob(admin, def.queue, { org_id: null }, { singletonKey: key });
    expect(await sendJob(admin, def.queue, { org_id: null }, { singletonKey: key })).toBeNull();
    const [fetched] = await boss.fetch(def.queue);
    expect(fetched.id).toBe(first);
    // started: the key is free for one new waiting job, and only one
    const second = await sendJob(admin, def.queue, { org_id: null }, { singletonKey: key });
    expect(second).not.toBeNull();
    expect(await sendJob(admin, def.queue, { org_id: null }, { singletonKey: key })).toBeNull();
    await boss.complete(def.queue, first!);
    const [next] = await boss.fetch(def.queue);
    expect(next.id).toBe(second);
    await boss.complete(def.queue, second!);
    // every earlier job completed
    const third = await sendJob(admin, def.queue, { org_id: null }, { singletonKey: key });
    expect(third).not.toBeNull();
    expect([first, second]).not.toContain(third);
  });

  it("switch a queue created standard to short in place, for the jobs enqueued from then on", async () => {
    const def = ownQueue("switched", "short");
    await boss.createQueue(def.queue); // as the worker created it before the job chose a policy
    const key = `k-${uuid()}`;
    const before = [
      await sendJob(admin, def.queue, { org_id: null }, { singletonKey: key }),
      await sendJob(admin, def.queue, { org_id: null }, { singletonKey: key }),
    ];
    expect(before.every((id) => id !== null)).toBe(true);
    await ensureQueues(boss, [def]);
    expect((await boss.getQueue(def.queue))?.policy).toBe("short");
    await ensureQueues(boss, [def]); // a second start changes nothing
    // the jobs written standard keep their policy; the first job written short holds the key
    const after = await sendJob(admin, def.queue, { org_id: null }, { singletonKey: key });
    expect(after).not.toBeNull();
    expect(await sendJob(admin, def.queue, { org_id: null }, { singletonKey: key })).toBeNull();
    const [{ n }] = await admin`select count(*)::int as n from pgboss.job where name = ${def.queue} and state = 'created'`;
    expect(n).toBe(3);
  });
});

describe("a standard queue", () => {
  it("takes every job, with the same key or none (files.place)", async () => {
    const payload = { org_id: uuid(), file_id: uuid(), correlation_id: "standard" };
    const key = `files.place:${payload.file_id}`;
    const keyed = [
      remember(await enqueueJob(admin, "files.place", payload, { singletonKey: key, ...LATER })),
      await enqueueSql("files.place", payload, key),
    ];
    expect(keyed.every((id) => id !== null)).toBe(true);
    expect((await waiting("files.place", key)).sort()).toEqual([...keyed].sort());
    const keyless = [await enqueueSql("files.place", payload, null), await enqueueSql("files.place", payload, null)];
    expect(keyless.every((id) => id !== null)).toBe(true);
    expect((await waiting("files.place", null)).sort()).toEqual([...keyless].sort());
  });
});
