// app.enqueue_job (supabase/schemas/080_jobs.sql) writes pg-boss's job rows itself, since pg-boss
// has no SQL API: it copies pg-boss's insert and its NOTIFY channel. This holds it to the pg-boss
// the worker installs (worker/package.json), read from pg-boss's own code at run time (its insert
// statement, its channel expression, its schema): an upgrade that changes the job table, the
// columns pg-boss writes or the channel it listens on fails here; a job a queue's policy refuses
// (a singleton key already waiting under `short`) is skipped by both, and both answer null; and a
// plain pg-boss instance must fetch and complete a job the SQL path wrote, woken by its NOTIFY.
import crypto from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import { PgBoss } from "pg-boss";
import * as plans from "pg-boss/dist/plans.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminSql, DB_URL, waitUntil } from "../helpers/stack.ts";

const admin = adminSql(3);
const SCHEMA = plans.DEFAULT_SCHEMA;
const queue = `contract.sql-path-${crypto.randomUUID().slice(0, 8)}`;
let boss: PgBoss;

/** Columns and their types that app.enqueue_job writes into the job table. */
const WRITTEN: Record<string, string> = {
  id: "uuid",
  name: "text",
  data: "jsonb",
  priority: "integer",
  start_after: "timestamp with time zone",
  created_on: "timestamp with time zone",
  singleton_key: "text",
  expire_seconds: "integer",
  deletion_seconds: "integer",
  keep_until: "timestamp with time zone",
  retry_limit: "integer",
  retry_delay: "integer",
  retry_backoff: "boolean",
  retry_delay_max: "integer",
  policy: "text",
  dead_letter: "text",
  heartbeat_seconds: "integer",
};
/** Columns of pgboss.queue it reads (the queue's options become the job's, as in pg-boss's insert). */
const READ_FROM_QUEUE: Record<string, string> = {
  name: "text",
  table_name: "text",
  notify: "boolean",
  retention_seconds: "integer",
  ...Object.fromEntries(
    [
      "expire_seconds",
      "deletion_seconds",
      "retry_limit",
      "retry_delay",
      "retry_backoff",
      "retry_delay_max",
      "policy",
      "dead_letter",
      "heartbeat_seconds",
    ]
      .map((c) => [c, WRITTEN[c]]),
  ),
};
/**
 * What pg-boss's insert writes and the SQL path leaves to the column's default: options it does not
 * offer (throttling slots, groups, flows' dependencies, tracing). A column pg-boss starts writing
 * is not here, and fails the test until app.enqueue_job is updated or the column is listed.
 */
const LEFT_TO_DEFAULTS = [
  "singleton_on",
  "group_id",
  "group_tier",
  "blocked",
  "blocking",
  "pending_dependencies",
  "trace_context",
];

/** The column list of the first `insert into <table> (...)` in a statement. */
function insertedColumns(statement: string): string[] {
  const list = /insert\s+into\s+\S+\s*\(([^)]*)\)/i.exec(statement);
  if (!list) throw new Error(`no insert column list in: ${statement.slice(0, 200)}`);
  return list[1].split(",").map((c) => c.trim()).filter(Boolean);
}

async function columnsOf(table: string) {
  const rows = await admin<{ column_name: string; data_type: string; nullable: boolean; has_default: boolean }[]>`
    select column_name, data_type, is_nullable = 'YES' as nullable, column_default is not null as has_default
    from information_schema.columns where table_schema = ${SCHEMA} and table_name = ${table}`;
  return new Map(rows.map((r) => [r.column_name, r]));
}

beforeAll(async () => {
  boss = new PgBoss({
    connectionString: DB_URL,
    schedule: false,
    supervise: false,
    useListenNotify: true,
    queueCacheIntervalSeconds: 1,
  });
  boss.on("error", () => {}); // a failure shows in the assertions
  await boss.start(); // installs or migrates the schema to this version, as the worker does
  await boss.createQueue(queue, { notify: true, retryLimit: 0 });
});
afterAll(async () => {
  await boss?.deleteQueue(queue).catch(() => {});
  await boss?.stop({ graceful: false });
  await admin.end({ timeout: 5 });
});

describe("the SQL enqueue path against the installed pg-boss", () => {
  it("runs against the pg-boss the worker pins", () => {
    const installed = JSON.parse(fs.readFileSync(createRequire(import.meta.url).resolve("pg-boss/package.json"), "utf8"));
    const worker = JSON.parse(fs.readFileSync(new URL("../../worker/package.json", import.meta.url), "utf8"));
    expect(installed.version).toBe(worker.dependencies["pg-boss"]);
  });

  it("writes only columns pg-boss's own insert writes, of the types it expects, and every one pg-boss requires", async () => {
    const [{ body }] = await admin`
      select pg_get_functiondef('app.enqueue_job(text, jsonb, integer, integer, text)'::regprocedure) as body`;
    const ours = insertedColumns(body);
    expect(ours.sort()).toEqual(Object.keys(WRITTEN).sort());
    const theirs = insertedColumns(plans.insertJobs(SCHEMA, { table: "job", name: queue }));
    expect(theirs.filter((c) => !ours.includes(c)).sort()).toEqual([...LEFT_TO_DEFAULTS].sort());
    expect(ours.filter((c) => !theirs.includes(c))).toEqual([]);

    const job = await columnsOf("job");
    for (const [column, type] of Object.entries(WRITTEN)) expect([column, job.get(column)?.data_type]).toEqual([column, type]);
    for (const column of LEFT_TO_DEFAULTS) {
      const c = job.get(column);
      expect([column, !!c && (c.nullable || c.has_default)]).toEqual([column, true]);
    }
    // a new required column (no default) that the SQL path does not write would make its insert fail
    const required = [...job.values()].filter((c) => !c.nullable && !c.has_default).map((c) => c.column_name);
    expect(required.filter((c) => !ours.includes(c))).toEqual([]);

    const queueTable = await columnsOf("queue");
    for (const [column, type] of Object.entries(READ_FROM_QUEUE)) {
      expect([column, queueTable.get(column)?.data_type]).toEqual([column, type]);
    }
    const [{ job_now }] = await admin`select to_regprocedure(${`${SCHEMA}.job_now()`}) is not null as job_now`;
    expect(job_now).toBe(true);
  });

  it("skips a job its queue's policy refuses, as pg-boss's insert does, and answers null as pg-boss's send", async () => {
    const [{ body }] = await admin`
      select pg_get_functiondef('app.enqueue_job(text, jsonb, integer, integer, text)'::regprocedure) as body`;
    const skips = /\bon\s+conflict\s+do\s+nothing\b/i;
    expect(plans.insertJobs(SCHEMA, { table: "job", name: queue })).toMatch(skips);
    expect(body).toMatch(skips);

    const short = `${queue}-short`;
    await boss.createQueue(short, { policy: "short" });
    try {
      const enqueue = async (key: string) =>
        (await admin<{ id: string | null }[]>`
          select app.enqueue_job(${short}, ${admin.json({ org_id: null })}, 0, 3600, ${key}) as id`)[0].id;
      const sent = await boss.send(short, { org_id: null }, { singletonKey: "a", startAfter: 3600 });
      expect(sent).not.toBeNull();
      expect(await enqueue("a")).toBeNull();
      expect(await boss.send(short, { org_id: null }, { singletonKey: "a", startAfter: 3600 })).toBeNull();
      const ours = await enqueue("b");
      expect(ours).not.toBeNull();
      expect(await boss.send(short, { org_id: null }, { singletonKey: "b", startAfter: 3600 })).toBeNull();
      const rows = await admin`select id, singleton_key from ${admin(SCHEMA)}.job where name = ${short} order by singleton_key`;
      expect(rows).toEqual([{ id: sent, singleton_key: "a" }, { id: ours, singleton_key: "b" }]);
    } finally {
      await boss.deleteQueue(short);
    }
  });

  it("notifies on the channel pg-boss listens on, with the queue's name", async () => {
    const [{ channel }] = await admin.unsafe<{ channel: string }[]>(`select ${plans.notifyChannelSql(SCHEMA)} as channel`);
    const heard: string[] = [];
    const listening = await admin.listen(channel, (payload) => heard.push(payload));
    try {
      await admin`select app.enqueue_job(${queue}, ${admin.json({ org_id: null })}, 0, 3600) as id`;
      await admin`select app.enqueue_job(${queue}, ${admin.json({ org_id: null })}) as id`;
      await waitUntil(
        `a notification for ${queue} on ${channel}`,
        () => Promise.resolve(heard.includes(queue) || null),
        5_000,
        20,
      );
      // only the job that can start now notifies, as pg-boss's insert does
      expect(heard.filter((q) => q === queue)).toHaveLength(1);
    } finally {
      await admin`delete from ${admin(SCHEMA)}.job where name = ${queue}`; // no worker has run yet

      await listening.unlisten();
    }
  });

  it("writes a job a plain pg-boss instance fetches at once (NOTIFY, not its poll) and completes", async () => {
    const received: { id: string; data: Record<string, unknown> }[] = [];
    // a 30 s poll: a job done within seconds was fetched because the NOTIFY woke the worker
    await boss.work<Record<string, unknown>>(queue, { pollingIntervalSeconds: 30 }, ([job]) => {
      received.push({ id: job.id, data: job.data });
      return Promise.resolve({ ok: true });
    });
    await new Promise((r) => setTimeout(r, 1_500)); // its first, empty fetch is behind it
    const [{ id }] = await admin`
      select app.enqueue_job(${queue}, ${admin.json({ org_id: null, correlation_id: "contract" })}, 5) as id`;
    const done = await waitUntil(
      `job ${id} to complete`,
      async () => (await boss.getJobById(queue, id))?.state === "completed" || null,
      10_000,
      50,
    );
    expect(done).toBe(true);
    expect(received).toEqual([{ id, data: { org_id: null, correlation_id: "contract" } }]);
    const job = await boss.getJobById(queue, id);
    expect(job).toMatchObject({ priority: 5, retryLimit: 0, output: { ok: true } });
  });
});
