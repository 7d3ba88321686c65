// The isolation matrix at the Data API: every table PostgREST serves that names an organization
// (found in PostgREST's own OpenAPI description, so a new table is covered without editing this
// test) is attacked through the gateway with supabase-js by organization A's owner, a student of
// A, an outsider and anon: selects of B's rows, inserts carrying B's id, updates and deletes by id
// and by org_id, and upserts colliding with B's keys. None may see a row of B or change any, which
// is checked against the database itself (every row of B, before and after). pgTAP's matrix
// (17_isolation_matrix) asks the same of SQL as each role; this one asks PostgREST, the way a
// browser app reaches it.
import crypto from "node:crypto";
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { withRequestContext } from "../../supabase/functions/_shared/db.ts";
import { adminSql, API_URL, createUser, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";

const admin = adminSql(4);
type Row = Record<string, unknown>;
interface TenantTable {
  name: string;
  orgCol: string;
  columns: string[];
  key: string[];
}

let tables: TenantTable[] = [];
let orgA: string, orgB: string;
const users: Record<string, { id: string; token?: string }> = {};

/** The tables PostgREST's OpenAPI lists (public schema) that carry an organization column. */
async function tenantTablesFromOpenApi(): Promise<TenantTable[]> {
  const res = await fetch(`${API_URL}/rest/v1/`, {
    headers: { apikey: secrets().serviceRoleKey, Accept: "application/openapi+json" },
  });
  expect(res.status).toBe(200);
  const spec = await res.json() as { definitions: Record<string, { properties: Record<string, { description?: string }> }> };
  const out: TenantTable[] = [];
  for (const [name, def] of Object.entries(spec.definitions)) {
    const columns = Object.keys(def.properties);
    const orgCol = name === "organizations" ? "id" : columns.includes("org_id") ? "org_id" : null;
    if (!orgCol) continue;
    // PostgREST marks primary key columns in their description: "Note: This is a Primary Key.<pk/>"
    const key = columns.filter((c) => def.properties[c].description?.includes("<pk/>"));
    out.push({ name, orgCol, columns, key });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Columns the platform itself rewrites meanwhile (usage tracking each hour, the broker's message
 * counts each minute, delivery state): no API role writes them, and they may move while the
 * matrix runs (seen once: mqtt_messages 0 → 7 from the seed's notifications).
 */
const VOLATILE: Record<string, string[]> = {
  usage_daily: ["updated_at", "mqtt_messages", "api_calls", "events", "active_users", "jobs", "storage_bytes", "members"],
  notification_deliveries: ["status", "attempts", "next_attempt_at", "last_error", "delivered_at"],
};

/** Every row of organization B in every tenant table, as the database has them. */
async function rowsOfB(): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const t of tables) {
    const drop = (VOLATILE[t.name] ?? []).map((c) => ` - '${c}'`).join("");
    const rows = await admin.unsafe(
      `select (to_jsonb(x)${drop})::text as j from public.${t.name} x where ${t.orgCol} = $1 order by 1`,
      [orgB],
    );
    out[t.name] = rows.map((r) => r.j as string);
  }
  return out;
}

const as = (token?: string): SupabaseClient<Database> =>
  createClient<Database>(API_URL, secrets().anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    global: token ? { headers: { Authorization: `Bearer ${token}` } } : {},
  });

/** What one organization's owner makes in every tenant table, through the project's own RPCs and as its members. */
async function seed(org: string, ownerId: string, memberId: string, tag: string) {
  const asOwner = <T>(fn: (tx: import("postgres").TransactionSql) => Promise<T>) =>
    withRequestContext(admin, { role: "authenticated", claims: { sub: ownerId, role: "authenticated" } }, fn);
  await asOwner(async (tx) => {
    await tx`insert into public.member_permissions (org_id, user_id, permission, granted) values (${org}, ${memberId}, 'audit.read', true)`;
    await tx`select public.create_invitation(${org}, ${`invitee-${tag}@rest-matrix.test`}, 'student')`;
    await tx`select public.create_api_key(${org}, ${`${tag} sync`}, array['org.read'])`;
    const [e] = await tx`insert into public.exercises (org_id, title) values (${org}, ${`${tag} drill`}) returning id`;
    const [t] =
      await tx`insert into public.exercise_teams (org_id, exercise_id, name) values (${org}, ${e.id}, 'Team') returning id`;
    await tx`insert into public.exercise_team_members (org_id, team_id, user_id) values (${org}, ${t.id}, ${memberId})`;
    const [f] = await tx`select id from public.request_file_upload(${org}, ${`${tag} notes.txt`}, 10, 'text/plain')`;
    await tx`insert into public.file_shares (org_id, file_id, grantee_role, access) values (${org}, ${f.id}, 'student', 'read')`;
  });
  await admin`insert into public.data_exports (org_id) values (${org})`;
  await admin`update public.files set status = 'clean', sha256 = repeat('0', 64) where org_id = ${org}`;
  await admin`insert into public.file_versions (org_id, file_id, version, object_path, size_bytes, sha256)
              select org_id, id, 1, object_path, size_bytes, sha256 from public.files where org_id = ${org}`;
  await admin`insert into public.file_texts (file_id, org_id, content) select id, org_id, 'notes' from public.files where org_id = ${org}`;
  await admin`select app.notify(${org}, 'announcement.posted', 'Hello', 'Welcome', '{}', '{"everyone": true}')`;
  await admin`select app.notify(${org}, 'announcement.broadcast', 'Hello all', 'Welcome', '{}', '{"everyone": true}')`;
  await admin`insert into public.notification_preferences (org_id, user_id, type, channel, enabled)
              select org_id, user_id, '*', 'email', false from public.organization_members where org_id = ${org}`;
  await admin`insert into public.notification_settings (org_id, user_id, quiet_start, quiet_end)
              select org_id, user_id, '22:00', '07:00' from public.organization_members where org_id = ${org}`;
  await admin`insert into public.notification_templates (org_id, type, subject, body) values (${org}, 'announcement.posted', 'News: {{title}}', '{{body}}')`;
  await admin`insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
              select org_id, user_id, 'page.viewed', now(), '{"path": "/"}' from public.organization_members where org_id = ${org}`;
  await admin`insert into public.usage_daily (org_id, day, members) values (${org}, current_date, 2) on conflict do nothing`;
  await admin`insert into public.user_active_org (user_id, org_id) values (${memberId}, ${org}) on conflict (user_id) do update set org_id = excluded.org_id`;
}

beforeAll(async () => {
  for (const name of ["ownerA", "studentA", "ownerB", "memberB", "outsider"]) users[name] = { id: (await createUser(admin)).id };
  const slug = () => `rest-matrix-${crypto.randomUUID().slice(0, 8)}`;
  [{ id: orgA }] = await admin`insert into public.organizations (name, slug) values ('Matrix A', ${slug()}) returning id`;
  [{ id: orgB }] = await admin`insert into public.organizations (name, slug) values ('Matrix B', ${slug()}) returning id`;
  await admin`insert into public.organization_members (org_id, user_id, role) values
    (${orgA}, ${users.ownerA.id}, 'owner'), (${orgA}, ${users.studentA.id}, 'student'),
    (${orgB}, ${users.ownerB.id}, 'owner'), (${orgB}, ${users.memberB.id}, 'teacher')`;
  await seed(orgA, users.ownerA.id, users.studentA.id, "A");
  await seed(orgB, users.ownerB.id, users.memberB.id, "B");
  await admin`select app.rollup_analytics()`;
  // B's notifications go out first, so only an attacker could change B's rows from here on
  await waitUntil(
    "B's deliveries settled",
    async () =>
      (await admin`select 1 from public.notification_deliveries where org_id = ${orgB} and status = 'pending'
                   union all select 1 from public.notification_audience_deliveries where org_id = ${orgB} and status = 'pending'`)
        .length === 0,
    20_000,
  );
  for (const u of Object.values(users)) u.token = (await tokenFor(admin, u.id)).token;
  tables = await tenantTablesFromOpenApi();
}, 60_000);

afterAll(async () => {
  await admin`update public.organizations set deleted_at = now() where id in (${orgA}, ${orgB})`;
  await admin.end();
});

describe("the Data API's isolation matrix (tables from PostgREST's OpenAPI)", () => {
  it("covers every tenant table PostgREST serves, each with rows of B to attack", async () => {
    expect(tables.length).toBeGreaterThanOrEqual(20);
    const b = await rowsOfB();
    expect(Object.entries(b).filter(([, rows]) => rows.length === 0).map(([t]) => t), "tables without rows of B: seed them")
      .toEqual([]);
  });

  for (const actor of ["ownerA", "studentA", "outsider", "anon"] as const) {
    it(`${actor} can read no row of B and change none, by any route`, async () => {
      const client = as(actor === "anon" ? undefined : users[actor].token);
      const before = await rowsOfB();
      const leaks: string[] = [];
      for (const t of tables) {
        const one = JSON.parse(before[t.name][0]) as Row;
        const byKey = (q: any) => t.key.reduce((acc, k) => acc.eq(k, one[k]), q);
        const from = () => client.from(t.name as never) as any;

        const sel = await from().select("*").eq(t.orgCol, orgB);
        if (sel.data?.length) leaks.push(`${t.name}: select by ${t.orgCol} saw ${sel.data.length} rows`);
        const selKey = await byKey(from().select("*"));
        if (selKey.data?.length) leaks.push(`${t.name}: select by key saw ${selKey.data.length} rows`);

        // a copy of one of B's rows, under a fresh id where the table has one, carrying B's organization
        const copy: Row = { ...one };
        if (typeof copy.id === "string") copy.id = crypto.randomUUID();
        else if (typeof copy.id === "number") delete copy.id;
        const ins = await from().insert(copy).select();
        if (ins.data?.length) leaks.push(`${t.name}: insert carrying B's ${t.orgCol} made a row`);

        const someCol = t.columns.find((c) => !t.key.includes(c) && c !== t.orgCol && typeof one[c] === "string") ?? t.columns[0];
        const updOrg = await from().update({ [someCol]: one[someCol] }).eq(t.orgCol, orgB).select();
        if (updOrg.data?.length) leaks.push(`${t.name}: update by ${t.orgCol} touched ${updOrg.data.length} rows`);
        const updKey = await byKey(from().update({ [someCol]: one[someCol] })).select();
        if (updKey.data?.length) leaks.push(`${t.name}: update by key touched ${updKey.data.length} rows`);

        // an upsert that collides with B's key: it must neither update B's row nor reveal it
        const ups = await from().upsert(one).select();
        if (ups.data?.length) leaks.push(`${t.name}: upsert colliding with B's key answered ${ups.data.length} rows`);

        const delKey = await byKey(from().delete()).select();
        if (delKey.data?.length) leaks.push(`${t.name}: delete by key removed ${delKey.data.length} rows`);
        const delOrg = await from().delete().eq(t.orgCol, orgB).select();
        if (delOrg.data?.length) leaks.push(`${t.name}: delete by ${t.orgCol} removed ${delOrg.data.length} rows`);

        for (const r of [sel, selKey, ins, updOrg, updKey, ups, delKey, delOrg]) {
          if (r.status >= 500) leaks.push(`${t.name}: a ${r.status} (${r.error?.message}) for a client's request`);
        }
      }
      expect(leaks).toEqual([]);
      expect(await rowsOfB()).toEqual(before); // what the database says, not what the API answered
    }, 120_000);
  }
});
