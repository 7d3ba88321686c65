// tenantStatement: one statement in a job's tenant context, sent with its context as one
// simple-protocol message. Against the stack's Postgres, as the worker connects: what the job
// sees and may change, that the context ends with the statement (checked on the same
// connection), values that try to leave their literal, statements pipelined for two
// organizations at once, and the refusals that happen before anything is sent.
import crypto from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LiteralSqlError } from "../../worker/src/sql-literal.ts";
import type { TenantJob } from "../../worker/src/tenant-context.ts";
import { tenantStatement } from "../../worker/src/tenant-statement.ts";
import { adminSql, DB_URL } from "../helpers/stack.ts";

const admin = adminSql(2);
// One connection, so "the same connection afterwards" is certain.
const one = postgres(DB_URL, { max: 1, onnotice: () => {} });
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
  await one.end({ timeout: 5 });
});

const sessionOf = async (sql: postgres.Sql) =>
  (await sql`select current_user as role, coalesce(current_setting('request.jwt.claims', true), '') as claims`)[0];

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
    expect(await sessionOf(one)).toEqual({ role: "postgres", claims: "" });
  });

  it("a failing statement rejects with Postgres's error and leaves the connection clean", async () => {
    await expect(tenantStatement(one, job(orgA))`select 1 / ${0}::int`).rejects.toMatchObject({ code: "22012" });
    expect(await sessionOf(one)).toEqual({ role: "postgres", claims: "" });
  });

  it("statements of two organizations pipelined on the same connections each see their own", async () => {
    const pool = postgres(DB_URL, { max: 2, onnotice: () => {} });
    try {
      const seen = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
        const org = i % 2 ? orgA : orgB;
        const [row] = await tenantStatement(pool, job(org))<{ ids: string[] }[]>`
          select coalesce(array_agg(id), '{}') as ids from public.organizations`;
        return row.ids.length === 1 && row.ids[0] === org;
      }));
      expect(seen.every(Boolean)).toBe(true);
    } finally {
      await pool.end({ timeout: 5 });
    }
  });
});

describe("values are literals", () => {
  it("a value that tries to end its literal and run a statement stays one value", async () => {
    const attack = `x'); update public.organizations set name = 'pwned' where id = '${orgB}'; select ('`;
    const rows = await tenantStatement(one, job(orgA, ["settings.manage"]))`
      select id from public.organizations where name = ${attack}`;
    expect(rows).toEqual([]);
    const [b] = await admin`select name from public.organizations where id = ${orgB}`;
    expect(b.name).toBe("Statement B");
    expect(await sessionOf(one)).toEqual({ role: "postgres", claims: "" });
  });

  it("strings, numbers, booleans, null, dates, arrays and objects arrive as they were", async () => {
    const nasty = `it's a \\ back'slash "quoted" $$dollar$$ -- not a comment\n/* nor this */ ;`;
    const at = new Date("2026-12-01T12:34:56.789Z");
    const [row] = await tenantStatement(one, job(orgA))`
      select ${nasty}::text as s, 1 - ${-1} as n, ${2.5}::numeric as d, ${10n}::bigint as big, ${true}::boolean as b,
             ${null}::text as nothing, ${at}::timestamptz as at, ${["a", "b'c"]}::text[] as arr, (${[
      "x",
      null,
    ]}::text[])[2] is null as null_element,
             ${[]}::text[] as empty, ${{ k: "v'", n: [1, 2] }}::jsonb as obj`;
    expect(row).toEqual({
      s: nasty,
      n: 2,
      d: "2.5",
      big: "10",
      b: true,
      nothing: null,
      at,
      arr: ["a", "b'c"],
      null_element: true,
      empty: [],
      obj: { k: "v'", n: [1, 2] },
    });
  });
});

describe("refused before anything is sent", () => {
  it("a statement text with ';' (a second statement could run outside the context)", async () => {
    await expect(tenantStatement(one, job(orgA))`commit; select id from public.organizations`)
      .rejects.toBeInstanceOf(LiteralSqlError);
  });

  it("a value inside a quoted string, a quoted identifier, a comment or a dollar quote of the statement text", async () => {
    const st = tenantStatement(one, job(orgA, ["settings.manage"]));
    // each would let a crafted value run as SQL: here, one that renames the organization
    const escape = `x'; update public.organizations set name = 'pwned' where id = '${orgA}'; select '`;
    await expect(st`select id from public.organizations where name like '%${escape}%'`).rejects.toThrow(/quoted string/);
    await expect(st`select 1 as "${escape}"`).rejects.toThrow(/quoted identifier/);
    await expect(st`select 1 -- ${`\nupdate public.organizations set name = 'pwned' where id = '${orgA}'`}`).rejects
      .toThrow(/comment/);
    await expect(st`select 1 /* /* nested */ ${"*/ select 2"}`).rejects.toThrow(/comment/);
    await expect(st`select $$${escape}$$`).rejects.toThrow(/dollar/);
    await expect(st`select E'\\'' || ${"x"}`).rejects.toThrow(/backslash/);
    await expect(st`select ${undefined as unknown as string}`).rejects.toThrow(/undefined/);
    const [a] = await admin`select name from public.organizations where id = ${orgA}`;
    expect(a.name).not.toBe("pwned");
  });

  it("quotes, comments and ';' that close within the text are fine", async () => {
    const [row] = await tenantStatement(one, job(orgA))`
      select ${"a"} || 'it''s; fine' || ${"b"} as s, /* a /* nested */ comment */ ${1}::int as n -- to the end of the line
      , "current_user"() as "who's"`;
    expect(row).toEqual({ s: "ait's; fineb", n: 1, "who's": "authenticated" });
  });

  it("values Postgres could not hold as text: NUL, NaN, Infinity, an invalid date", async () => {
    const st = tenantStatement(one, job(orgA));
    await expect(st`select ${"a\0b"}`).rejects.toBeInstanceOf(LiteralSqlError);
    await expect(st`select ${Number.NaN}`).rejects.toBeInstanceOf(LiteralSqlError);
    await expect(st`select ${Number.POSITIVE_INFINITY}`).rejects.toBeInstanceOf(LiteralSqlError);
    await expect(st`select ${new Date("nope")}`).rejects.toBeInstanceOf(LiteralSqlError);
  });
});
