// tenantStatement: one statement in a job's tenant context, sent with its context as one
// extended-protocol pipeline (one Sync) of prepared statements. Against the stack's Postgres, as
// the worker connects: what the job sees and may change, that the context ends with the statement
// (checked on the same connection), values as bind parameters, prepared plans reused by jobs of
// other organizations, and what Postgres refuses.
import crypto from "node:crypto";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TenantJob } from "../../worker/src/tenant-context.ts";
import { createStatementPool, tenantStatement } from "../../worker/src/tenant-statement.ts";
import { adminSql, DB_URL } from "../helpers/stack.ts";

const admin = adminSql(2);
// One connection, so "the same connection afterwards" is certain.
const one = createStatementPool(DB_URL, 1);
let orgA: string, orgB: string;
const job = (orgId: string, scopes: string[] = ["org.read"], correlationId = crypto.randomUUID()): TenantJob => ({
  id: crypto.randomUUID(),
  orgId,
  scopes,
  correlationId,
});

beforeAll(async () => {
  const run = crypto.randomUUID().slice(0, 8);
  [{ id: orgA }] =
    await admin`insert into public.organizations (name, slug) values ('Statement A', ${`st-a-${run}`}) returning id`;
  [{ id: orgB }] =
    await admin`insert into public.organizations (name, slug) values ('Statement B', ${`st-b-${run}`}) returning id`;
});
afterAll(async () => {
  await admin`update public.organizations set deleted_at = now() where id = any(${[orgA, orgB]}::uuid[])`;
  await admin.end({ timeout: 5 });
  await one.end();
});

const sessionOf = async (pool: pg.Pool) =>
  (await pool.query(
    "select current_user as role, coalesce(current_setting('request.jwt.claims', true), '') as claims, " +
      "(select count(*)::int from pg_prepared_statements) as prepared",
  )).rows[0];
const CLEAN = { role: "postgres", claims: "", prepared: expect.any(Number) };

describe("what a job's statement sees and changes", () => {
  it("only its own organization", async () => {
    const rows = await tenantStatement(one, job(orgA))<{ id: string }[]>`select id from public.organizations order by id`;
    expect(rows.map((r) => r.id)).toEqual([orgA]);
    expect(await tenantStatement(one, job(orgA))`select id from public.organizations where id = ${orgB}`).toEqual([]);
  });

  it("changes only within its organization and its scopes, and the audit log names its correlation id", async () => {
    const readOnly = await tenantStatement(
      one,
      job(orgA),
    )`update public.organizations set name = 'read-only job' where id = ${orgA} returning id`;
    expect(readOnly).toHaveLength(0); // org.read only: no settings.manage
    const other = await tenantStatement(one, job(orgA, ["settings.manage"]))`
      update public.organizations set name = 'other org' where id = ${orgB} returning id`;
    expect(other).toHaveLength(0);
    const correlationId = crypto.randomUUID();
    const own = await tenantStatement(one, job(orgA, ["settings.manage"], correlationId))`
      update public.organizations set name = 'renamed by a job' where id = ${orgA} returning id`;
    expect(own).toHaveLength(1);
    const names = await admin`select id, name from public.organizations where id = any(${[orgA, orgB]}::uuid[]) order by name`;
    expect(Object.fromEntries(names.map((r) => [r.id, r.name]))).toEqual({ [orgA]: "renamed by a job", [orgB]: "Statement B" });
    const [audit] =
      await admin`select count(*)::int as n from audit.log where request_id = ${correlationId} and org_id = ${orgA}`;
    expect(audit.n).toBe(1);
  });

  it("its context ends with the statement, on the same connection", async () => {
    await tenantStatement(one, job(orgA))`select 1`;
    expect(await sessionOf(one)).toEqual(CLEAN);
  });

  it("a failing statement rejects with Postgres's error and leaves the connection clean", async () => {
    await expect(tenantStatement(one, job(orgA))`select 1 / ${0}::int`).rejects.toMatchObject({ code: "22012" });
    expect(await sessionOf(one)).toEqual(CLEAN);
  });

  it("statements of two organizations on the same connections each see their own (one prepared plan, RLS per job)", async () => {
    const pool = createStatementPool(DB_URL, 2);
    try {
      const seen = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
        const org = i % 2 ? orgA : orgB;
        const [row] = await tenantStatement(pool, job(org))<{ ids: string[] }[]>`
          select coalesce(array_agg(id), '{}') as ids from public.organizations`;
        return row.ids.length === 1 && row.ids[0] === org;
      }));
      expect(seen.every(Boolean)).toBe(true);
      // Both connections ran the statement from one generic plan (chosen after five custom ones),
      // while each execution saw its own organization.
      const clients = [await pool.connect(), await pool.connect()];
      for (const client of clients) {
        const { rows: [plans] } = await client.query(
          "select generic_plans::int, custom_plans::int from pg_prepared_statements where statement like '%array_agg(id)%'",
        );
        expect(plans.generic_plans).toBeGreaterThan(50);
        client.release();
      }
    } finally {
      await pool.end();
    }
  });
});

describe("values are bind parameters", () => {
  it("a value that tries to end a literal and run a statement stays one value", async () => {
    const attack = `x'); update public.organizations set name = 'pwned' where id = '${orgB}'; select ('`;
    const rows = await tenantStatement(one, job(orgA, ["settings.manage"]))`
      select id from public.organizations where name = ${attack}`;
    expect(rows).toEqual([]);
    const [b] = await admin`select name from public.organizations where id = ${orgB}`;
    expect(b.name).toBe("Statement B");
    expect(await sessionOf(one)).toEqual(CLEAN);
  });

  it("strings, numbers, booleans, null, dates, arrays and objects arrive as they were", async () => {
    const nasty = `it's a \\ back'slash "quoted" $$dollar$$ -- not a comment\n/* nor this */ ;`;
    const at = new Date("2026-12-01T12:34:56.789Z");
    const [row] = await tenantStatement(one, job(orgA))`
      select ${nasty}::text as s, 1 - ${-1}::int as n, ${2.5}::numeric as d, ${10n}::bigint as big, ${true}::boolean as b,
             ${null}::text as nothing, ${at}::timestamptz as at, ${["a", "b'c"]}::text[] as arr,
             ${["x", null]}::text[] as with_null, ${[]}::text[] as empty, ${{ k: "v'", n: [1, 2] }}::jsonb as obj`;
    expect(row).toEqual({
      s: nasty,
      n: 2,
      d: "2.5",
      big: "10",
      b: true,
      nothing: null,
      at,
      arr: ["a", "b'c"],
      with_null: ["x", null],
      empty: [],
      obj: { k: "v'", n: [1, 2] },
    });
  });

  it("an undefined value is refused before anything is sent", async () => {
    await expect(tenantStatement(one, job(orgA))`select ${undefined as unknown as string}`).rejects.toThrow(/undefined/);
  });
});

describe("what Postgres refuses, and the connection afterwards", () => {
  it("a second statement in the text (it could run outside the context)", async () => {
    await expect(tenantStatement(one, job(orgA))`commit; select id from public.organizations`)
      .rejects.toMatchObject({ code: "42601" }); // cannot insert multiple commands into a prepared statement
    expect(await sessionOf(one)).toEqual(CLEAN);
  });

  it("a value written inside a quoted string, identifier or dollar quote is not a parameter: refused, nothing runs", async () => {
    const st = tenantStatement(one, job(orgA, ["settings.manage"]));
    const escape = `x'; update public.organizations set name = 'pwned' where id = '${orgA}'; select '`;
    // bind message supplies 1 parameters, but prepared statement requires 0
    await expect(st`select id from public.organizations where name like '%${escape}%'`).rejects.toMatchObject({ code: "08P01" });
    await expect(st`select 1 as "${escape}"`).rejects.toMatchObject({ code: "08P01" });
    await expect(st`select $$${escape}$$`).rejects.toMatchObject({ code: "08P01" });
    const [a] = await admin`select name from public.organizations where id = ${orgA}`;
    expect(a.name).not.toBe("pwned");
    expect(await sessionOf(one)).toEqual(CLEAN);
  });

  it("a statement that failed to parse fails the same way again, and the connection goes on", async () => {
    const st = tenantStatement(one, job(orgA));
    await expect(st`select from public.no_such_table where id = ${1}`).rejects.toMatchObject({ code: "42P01" });
    await expect(st`select from public.no_such_table where id = ${1}`).rejects.toMatchObject({ code: "42P01" });
    expect(await st`select ${"still here"}::text as s`).toEqual([{ s: "still here" }]);
    expect(await sessionOf(one)).toEqual(CLEAN);
  });

  it("a statement that failed at execution runs again from its prepared form", async () => {
    const st = tenantStatement(one, job(orgA));
    await expect(st`select 10 / ${0}::int as q`).rejects.toMatchObject({ code: "22012" });
    expect(await st`select 10 / ${5}::int as q`).toEqual([{ q: 2 }]);
  });

  it("each statement text is prepared once per connection", async () => {
    const st = tenantStatement(one, job(orgA));
    await st`select 1`; // (the context's statement is prepared by now)
    const before = (await sessionOf(one)).prepared;
    for (let i = 0; i < 5; i++) await st`select ${i}::int + 0 as once_per_connection`;
    expect((await sessionOf(one)).prepared - before).toBe(1);
  });

  it("a value that cannot be serialized is refused before anything is sent; the connection's next statement gets its own rows", async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const st = tenantStatement(one, job(orgA));
    await expect(st`select ${"first"}::text as s, ${circular}::jsonb as j`).rejects.toThrow(/circular/);
    expect(await st`select ${"next"}::text as s`).toEqual([{ s: "next" }]);
    expect(await st`select ${"after"}::text as s`).toEqual([{ s: "after" }]);
    expect(await sessionOf(one)).toEqual(CLEAN);
  });

  it("a connection lost mid-statement fails that statement only; the pool opens another", async () => {
    const pool = createStatementPool(DB_URL, 1);
    try {
      const st = tenantStatement(pool, job(orgA));
      const [{ pid }] = await st<{ pid: number }[]>`select pg_backend_pid() as pid`;
      // (its outcome is taken at once: the rejection can arrive before the terminating query returns)
      const sleeping = st`select pg_sleep(10)`.then(() => null, (e: unknown) => e);
      await new Promise((r) => setTimeout(r, 200));
      await admin`select pg_terminate_backend(${pid})`;
      expect(await sleeping).toMatchObject({ code: "57P01" }); // terminating connection due to administrator command
      const [again] = await st<{ pid: number; ids: string[] }[]>`
        select pg_backend_pid() as pid, array(select id from public.organizations) as ids`;
      expect(again.pid).not.toBe(pid);
      expect(again.ids).toEqual([orgA]);
    } finally {
      await pool.end();
    }
  });
});
