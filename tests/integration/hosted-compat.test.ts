// A migration written for hosted Supabase applies unchanged with the supabase CLI and behaves:
// auth.uid()/auth.jwt() policies, storage policies on storage.foldername(), a database webhook
// reaching an Edge Function with the hosted payload, net.http_post with Vault secrets (sent only
// after commit), and a pg_cron job that fires.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withRequestContext } from "../../supabase/functions/_shared/db.ts";
import { startFixtureGateway } from "../helpers/fixture-gateway.ts";
import { migrationUpWith } from "../helpers/migrations.ts";
import { adminSql, createUser, secrets, waitUntil } from "../helpers/stack.ts";

const FIXTURE = "29990101000000_hosted_compat_fixture.sql";
const BROKEN = "29990101000001_broken.sql";
const sql = adminSql(4);
let gateway: Awaited<ReturnType<typeof startFixtureGateway>>;

async function cleanup() {
  await sql`select cron.unschedule(jobid) from cron.job where jobname = 'compat-fixture-tick'`;
  await sql`delete from supabase_functions.hooks where hook_name = 'orders-webhook'`;
  await sql`drop schema if exists compat_fixture cascade`;
  await sql`drop table if exists public.compat_broken_marker`;
  await sql`drop policy if exists "compat: users read their own folder" on storage.objects`;
  await sql`drop policy if exists "compat: users write their own folder" on storage.objects`;
  await sql`delete from storage.objects where bucket_id = 'compat-fixture'`;
  await sql`delete from storage.buckets where id = 'compat-fixture'`;
  await sql`delete from vault.secrets where name like 'compat_fixture_%'`;
  await sql`delete from supabase_migrations.schema_migrations where version like '2999%'`.catch(() => {});
}

const claimsOf = (id: string, extra: Record<string, unknown> = {}) => ({
  sub: id,
  role: "authenticated",
  aud: "authenticated",
  ...extra,
});

beforeAll(async () => {
  await cleanup();
  gateway = await startFixtureGateway("hosted-compat");
  await sql`select vault.create_secret(${gateway.url + "/functions/v1/webhook-sink"}, 'compat_fixture_url')`;
  await sql`select vault.create_secret(${secrets().serviceRoleKey}, 'compat_fixture_key')`;
}, 60_000);

afterAll(async () => {
  await cleanup();
  await gateway?.stop();
  await sql.end();
});

describe("a hosted-style migration", () => {
  it("applies unchanged with `supabase migration up`", () => {
    // the webhook's URL is written into the trigger, as the dashboard writes it
    const r = migrationUpWith([FIXTURE], { "http://fixture-gateway.invalid": gateway.url });
    expect(r.output).toContain(FIXTURE);
    expect(r.status).toBe(0);
  });

  it("enforces policies written with auth.uid() and auth.jwt()", async () => {
    const a = await createUser(sql);
    const b = await createUser(sql);
    const note = await withRequestContext(sql, {
      role: "authenticated",
      claims: claimsOf(a.id, { app_metadata: { tier: "gold" } }),
    }, (tx) => tx`insert into compat_fixture.notes (body) values ('mine') returning owner_id, tier`);
    expect(note[0]).toEqual({ owner_id: a.id, tier: "gold" });
    const seenByB = await withRequestContext(
      sql,
      { role: "authenticated", claims: claimsOf(b.id) },
      (tx) => tx`select * from compat_fixture.notes`,
    );
    expect(seenByB).toHaveLength(0);
    await expect(
      withRequestContext(
        sql,
        { role: "authenticated", claims: claimsOf(b.id) },
        (tx) => tx`insert into compat_fixture.notes (owner_id, body) values (${a.id}, 'forged')`,
      ),
    ).rejects.toMatchObject({ code: "42501" });
    await expect(withRequestContext(sql, { role: "anon", claims: {} }, (tx) => tx`select * from compat_fixture.notes`))
      .rejects.toMatchObject({ code: "42501" });
  });

  it("enforces storage policies keyed on storage.foldername()", async () => {
    const a = await createUser(sql);
    const b = await createUser(sql);
    await withRequestContext(
      sql,
      { role: "authenticated", claims: claimsOf(a.id) },
      (tx) =>
        tx`insert into storage.objects (bucket_id, name, owner) values ('compat-fixture', ${`${a.id}/report.pdf`}, ${a.id})`,
    );
    await expect(
      withRequestContext(
        sql,
        { role: "authenticated", claims: claimsOf(a.id) },
        (tx) => tx`insert into storage.objects (bucket_id, name) values ('compat-fixture', ${`${b.id}/planted.pdf`})`,
      ),
    ).rejects.toMatchObject({ code: "42501" });
    const [mine, theirs] = await Promise.all(
      [a, b].map((u) =>
        withRequestContext(
          sql,
          { role: "authenticated", claims: claimsOf(u.id) },
          (tx) => tx`select name from storage.objects where bucket_id = 'compat-fixture'`,
        )
      ),
    );
    expect(mine.map((r) => r.name)).toEqual([`${a.id}/report.pdf`]);
    expect(theirs).toHaveLength(0);
  });

  it("delivers a database webhook to the Edge Function with the hosted payload shape", async () => {
    const [order] = await sql`insert into compat_fixture.orders (item) values ('chalk') returning id`;
    await sql`update compat_fixture.orders set item = 'more chalk' where id = ${order.id}`;
    const rows = await waitUntil("both webhooks", async () => {
      const r = await sql`select payload, auth_header from compat_fixture.webhook_log
                          where payload->>'table' = 'orders' and payload->'record'->>'id' = ${String(order.id)} order by id`;
      return r.length >= 2 ? r : null;
    });
    // Like pg_net, delivery is concurrent and at least once: no order between the two requests.
    const byType = Object.fromEntries(rows.map((r) => [r.payload.type, r]));
    expect(byType.INSERT.payload).toEqual({
      type: "INSERT",
      table: "orders",
      schema: "compat_fixture",
      record: { id: Number(order.id), item: "chalk" },
      old_record: null,
    });
    expect(byType.UPDATE.payload).toEqual({
      type: "UPDATE",
      table: "orders",
      schema: "compat_fixture",
      record: { id: Number(order.id), item: "more chalk" },
      old_record: { id: Number(order.id), item: "chalk" },
    });
    expect(byType.INSERT.auth_header).toBe("Bearer compat-placeholder");
    // the function logs each payload before it answers, so the responses may be recorded a moment later
    const hooks = await waitUntil("both responses recorded", async () => {
      const r = await sql`select h.request_id, r.status_code from supabase_functions.hooks h
                          join net._http_response r on r.id = h.request_id
                          where h.hook_table_id = 'compat_fixture.orders'::regclass::oid and h.hook_name = 'orders-webhook'`;
      return r.length >= 2 ? r : null;
    });
    expect(hooks.map((h) => h.status_code)).toEqual([200, 200]);
  });

  it("sends net.http_post with Vault secrets only after the transaction commits", async () => {
    const tx = await sql.reserve();
    try {
      await tx`begin`;
      const [{ id }] = await tx`select compat_fixture.call_sink('after-commit') as id`;
      // a call committed later arrives while this one waits for its transaction
      await sql`select compat_fixture.call_sink('committed-meanwhile')`;
      await waitUntil(
        "the committed call",
        async () =>
          (await sql`select 1 from compat_fixture.webhook_log where payload->>'message' = 'committed-meanwhile'`).length > 0,
      );
      expect(await sql`select 1 from compat_fixture.webhook_log where payload->>'message' = 'after-commit'`).toHaveLength(0);
      await tx`commit`;
      const [row] = await waitUntil("the call", async () => {
        const r = await sql`select auth_header from compat_fixture.webhook_log where payload->>'message' = 'after-commit'`;
        return r.length ? r : null;
      });
      expect(row.auth_header).toBe(`Bearer ${secrets().serviceRoleKey}`);
      const [resp] = await waitUntil("the response row", async () => {
        const r = await sql`select status_code, timed_out from net._http_response where id = ${id}`;
        return r.length ? r : null;
      });
      expect(resp).toEqual({ status_code: 200, timed_out: false });
    } finally {
      await tx`rollback`.catch(() => {}); // no-op after commit; ends an aborted one on failure
      tx.release();
    }
  });

  it("never sends a request from a rolled-back transaction", async () => {
    class Rollback extends Error {}
    let queued = "";
    await expect(sql.begin(async (tx) => {
      const [{ id }] = await tx`select compat_fixture.call_sink('rolled-back') as id`;
      queued = id;
      // queued within its transaction, and then rolled back with it (nothing else may end it)
      expect(await tx`select 1 from net.http_request_queue where id = ${id}`).toHaveLength(1);
      throw new Rollback();
    })).rejects.toBeInstanceOf(Rollback);
    expect(await sql`select 1 from net.http_request_queue where id = ${queued}`).toHaveLength(0);
    // a call committed after the rolled-back one has arrived: the other would have by now
    await sql`select compat_fixture.call_sink('committed-after-rollback')`;
    await waitUntil(
      "the committed call",
      async () =>
        (await sql`select 1 from compat_fixture.webhook_log where payload->>'message' = 'committed-after-rollback'`).length > 0,
    );
    expect(await sql`select 1 from compat_fixture.webhook_log where payload->>'message' = 'rolled-back'`).toHaveLength(0);
  });

  it("runs the cron.schedule job", async () => {
    const [job] = await sql`select schedule, command from cron.job where jobname = 'compat-fixture-tick'`;
    expect(job.schedule).toBe("* * * * *");
    // pg_cron 1.4 (Debian 12) schedules by the minute: the first run is at most ~60 s away.
    await waitUntil(
      "a cron tick",
      async () => (await sql`select count(*)::int as n from compat_fixture.ticks`)[0].n > 0,
      70_000,
      1000,
    );
  }, 80_000);
});

describe("a failing migration", () => {
  it("is refused with its file and statement named, and leaves nothing behind", () => {
    const r = migrationUpWith([FIXTURE, BROKEN]);
    expect(r.status).not.toBe(0);
    expect(r.output).toContain(BROKEN);
    expect(r.output).toContain("no_such_table");
  });

  it("rolled back every statement of that migration", async () => {
    expect((await sql`select to_regclass('public.compat_broken_marker') as t`)[0].t).toBeNull();
    expect(await sql`select 1 from supabase_migrations.schema_migrations where version = '29990101000001'`).toHaveLength(0);
  });
});
