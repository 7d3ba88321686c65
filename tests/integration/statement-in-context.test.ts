// statementInContext (supabase/functions/_shared/db.ts): one statement in the caller's request
// context, BEGIN, context, statement and COMMIT sent together. What it must keep from a
// transaction awaited step by step: the statement runs as the caller with the caller's claims, a
// failure (of the statement, or of COMMIT itself) is the answer and leaves nothing written, and the
// connection goes back to the pool with no transaction open.
import crypto from "node:crypto";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { serviceStatement, statementInContext } from "../../supabase/functions/_shared/db.ts";
import { adminSql, apiSql } from "../helpers/stack.ts";

const api = apiSql(1);
const admin = adminSql(1); // one connection: what a failure leaves on it, the next call meets
const observer = adminSql(1);
// a temporary table: on the one connection only, gone with it, never seen by the catalog's checks
const table = `statement_ctx_${crypto.randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  // deferred: a duplicate is found only at COMMIT
  await admin.unsafe(`create temporary table ${table} (n int unique deferrable initially deferred)`);
  await admin.unsafe(`grant select, insert on ${table} to service_role`);
});
afterAll(async () => {
  await Promise.all([api.end(), admin.end(), observer.end()]);
});

/** The state of a one-connection client's session, seen from another: "idle", or "idle in transaction" when one was left open. */
async function sessionState(sql: postgres.Sql) {
  const [{ pid }] = await sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
  const [s] = await observer<{ state: string }[]>`select state from pg_stat_activity where pid = ${pid}`;
  return s.state;
}
const rows = async () => (await admin.unsafe(`select n from ${table} order by n`)).map((r) => r.n);

describe("statementInContext", () => {
  it("runs the statement as the caller, with the caller's claims and headers, from the API's login role", async () => {
    const sub = crypto.randomUUID();
    const requestId = crypto.randomUUID();
    const [row] = await statementInContext(
      api,
      { role: "authenticated", claims: { sub }, headers: { "x-request-id": requestId } },
      (db) =>
        db<{ role: string; uid: string; request_id: string }[]>`
        select current_user as role, auth.uid()::text as uid, current_setting('request.headers')::jsonb ->> 'x-request-id' as request_id`,
    );
    expect(row).toEqual({ role: "authenticated", uid: sub, request_id: requestId });
    // the context was the transaction's: the session is back to the login role with no claims
    const [after] = await api<{ role: string; claims: string | null }[]>`
      select current_user as role, nullif(current_setting('request.jwt.claims', true), '') as claims`;
    expect(after).toEqual({ role: "authenticator", claims: null });
  });

  it("gives the caller's refusal as the answer: authenticated holds no insert on analytics events", async () => {
    const err = await statementInContext(
      api,
      { role: "authenticated", claims: { sub: crypto.randomUUID() } },
      (db) => db`insert into public.analytics_events (org_id, event_type) values (${crypto.randomUUID()}, 'page.viewed')`,
    ).catch((e) => e);
    expect(err.code).toBe("42501");
    expect(await sessionState(api)).toBe("idle");
  });

  it("commits what the statement wrote", async () => {
    const [{ n }] = await serviceStatement(
      admin,
      crypto.randomUUID(),
      (db) => db<{ n: number }[]>`insert into ${db(table)} (n) values (1) returning n`,
    );
    expect(n).toBe(1);
    expect(await rows()).toEqual([1]);
  });

  it("a failing statement writes nothing, answers with its own error, and leaves no transaction open", async () => {
    const err = await serviceStatement(admin, crypto.randomUUID(), (db) => db`insert into ${db(table)} (n) values (2), (1 / 0)`)
      .catch((e) => e);
    expect(err.code).toBe("22012"); // division by zero, not 25P02 "transaction is aborted"
    expect(await rows()).toEqual([1]);
    expect(await sessionState(admin)).toBe("idle");
  });

  it("a COMMIT that fails (a deferred unique key) rejects, writes nothing, and leaves no transaction open", async () => {
    const err = await serviceStatement(admin, crypto.randomUUID(), (db) => db`insert into ${db(table)} (n) values (3), (3)`)
      .catch((e) => e);
    expect(err.code).toBe("23505");
    expect(await rows()).toEqual([1]);
    expect(await sessionState(admin)).toBe("idle");
  });

  it("a statement builder that throws sends nothing and leaves no transaction open", async () => {
    const err = await serviceStatement(admin, crypto.randomUUID(), () => {
      throw new Error("builder failed");
    }).catch((e) => e);
    expect(err.message).toBe("builder failed");
    expect(await sessionState(admin)).toBe("idle");
    expect(await rows()).toEqual([1]);
  });
});
