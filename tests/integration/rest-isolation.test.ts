// The isolation matrix at the Data API: every table PostgREST serves that names an organization, in
// every schema it serves (config.toml's [api] schemas and the stack's `storage`, each found in
// PostgREST's own OpenAPI description with Accept-Profile, so a new table is covered without
// editing this test), is attacked through the gateway by organization A's owner, a student of A,
// an outsider and anon: selects of B's rows, inserts of a copy of B's row, updates with a new value
// and deletes by key and by organization, the same without any filter, and upserts colliding with
// B's keys; the student also attacks the other members' rows of A. Every answer is pinned: an empty
// read, nothing reached (204), the role's refusal (42501), or for a write without a filter the
// 21000 hosted answers (safeupdate); anything else is a finding. The victims' rows are compared as
// the database has them, before and after. Each actor must first reach its own organization
// (anon: Postgres as anon), so a broken token cannot pass for isolation; and anon may call no
// function PostgREST serves outside the platform's storage helpers. pgTAP's matrix
// (17_isolation_matrix) asks the same of SQL as each role, including the writes only an UPDATE
// or DELETE policy stands in front of.
import crypto from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadProjectConfig } from "../../dev/platform/project-config.ts";
import { paths } from "../../dev/stack/config.ts";
import { withRequestContext } from "../../supabase/functions/_shared/db.ts";
import { adminSql, API_URL, createUser, rollUpAnalytics, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";

const admin = adminSql(4);
type Row = Record<string, unknown>;
type Role = "anon" | "authenticated";
interface Column {
  name: string;
  type: string;
  enumValues: string[] | null;
  mayInsert: Record<Role, boolean>;
  mayUpdate: Record<Role, boolean>;
  inUniqueKey: boolean;
}
interface Target {
  schema: string;
  name: string;
  /** the column naming the organization; storage.objects names it in the path's first folder */
  orgCol: string;
  byPath: boolean;
  key: string[];
  columns: Column[];
  /** the column naming the member a row belongs to, where there is one */
  userCol: string | null;
}

/** Schemas PostgREST is configured to serve: config.toml's [api] schemas, and `storage` as the stack adds it. */
const SCHEMAS = [...new Set([...loadProjectConfig(paths.supabase).api.schemas, "storage"])];
/** Functions anon may call: the Storage API's path helpers, which read nothing. */
const ANON_FUNCTIONS = ["storage.extension", "storage.filename", "storage.foldername"];

const targets: Target[] = [];
const functions: { schema: string; name: string; args: string[] }[] = [];
const unserved: { schema: string; status: number; code: string }[] = [];
let orgA: string, orgB: string, orgC: string;
const users: Record<string, { id: string; token?: string }> = {};

function openApi(schema: string) {
  return fetch(`${API_URL}/rest/v1/`, {
    headers: { apikey: secrets().serviceRoleKey, Accept: "application/openapi+json", "Accept-Profile": schema },
  });
}

/** What PostgREST serves in each schema (its OpenAPI), with the catalog's word on each table's columns. */
async function discover() {
  const existing = new Set((await admin`select nspname from pg_namespace`).map((r) => r.nspname as string));
  for (const schema of SCHEMAS) {
    const res = await openApi(schema);
    if (!existing.has(schema)) {
      // not in this database (graphql_public without pg_graphql): PostgREST must not serve it
      unserved.push({ schema, status: res.status, code: (await res.json()).code });
      continue;
    }
    expect(res.status, `PostgREST serves ${schema}`).toBe(200);
    const spec = await res.json() as {
      definitions: Record<string, { properties: Record<string, { description?: string }> }>;
      paths: Record<string, { post?: { parameters?: { in: string; schema?: { properties?: Record<string, unknown> } }[] } }>;
    };
    for (const [path, item] of Object.entries(spec.paths)) {
      if (!path.startsWith("/rpc/")) continue;
      const body = item.post?.parameters?.find((p) => p.in === "body");
      functions.push({ schema, name: path.slice(5), args: Object.keys(body?.schema?.properties ?? {}) });
    }
    for (const [name, def] of Object.entries(spec.definitions)) {
      const names = Object.keys(def.properties);
      const byPath = schema === "storage" && name === "objects";
      const orgCol = byPath
        ? "name"
        : name === "organizations" && schema === "public"
        ? "id"
        : names.includes("org_id")
        ? "org_id"
        : null;
      if (!orgCol) continue;
      const columns = (await admin`
        select a.attname as name, format_type(a.atttypid, a.atttypmod) as type,
               (select array_agg(e.enumlabel order by e.enumsortorder) from pg_enum e where e.enumtypid = a.atttypid) as enum_values,
               has_column_privilege('anon', a.attrelid, a.attnum, 'INSERT') as anon_insert,
               has_column_privilege('authenticated', a.attrelid, a.attnum, 'INSERT') as auth_insert,
               has_column_privilege('anon', a.attrelid, a.attnum, 'UPDATE') as anon_update,
               has_column_privilege('authenticated', a.attrelid, a.attnum, 'UPDATE') as auth_update,
               exists (select 1 from pg_index i where i.indrelid = a.attrelid and i.indisunique and a.attnum = any (i.indkey)) as in_unique
        from pg_attribute a
        where a.attrelid = ${`${schema}.${name}`}::regclass and a.attnum > 0 and not a.attisdropped
          and a.attidentity = '' and a.attgenerated = ''
        order by a.attnum`).map((c) => ({
        name: c.name as string,
        type: c.type as string,
        enumValues: c.enum_values as string[] | null,
        mayInsert: { anon: c.anon_insert as boolean, authenticated: c.auth_insert as boolean },
        mayUpdate: { anon: c.anon_update as boolean, authenticated: c.auth_update as boolean },
        inUniqueKey: c.in_unique as boolean,
      }));
      // PostgREST marks primary key columns in their description: "Note: This is a Primary Key.<pk/>"
      const key = names.filter((c) => def.properties[c].description?.includes("<pk/>"));
      const userCol = ["user_id", "recipient_id"].find((c) => names.includes(c)) ?? null;
      targets.push({ schema, name, orgCol, byPath, key, columns, userCol });
    }
  }
  targets.sort((a, b) => `${a.schema}.${a.name}`.localeCompare(`${b.schema}.${b.name}`));
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

/** The victims' rows in every target, as the database has them: an organization's, less one member's own. */
async function victimRows(org: string, exceptUser?: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const t of targets) {
    const drop = (VOLATILE[t.name] ?? []).map((c) => ` - '${c}'`).join("");
    const where = t.byPath ? `x.name like $1 || '/%'` : `x.${t.orgCol} = $1`;
    const others = exceptUser && t.userCol ? ` and x.${t.userCol} is distinct from $2` : "";
    const rows = await admin.unsafe(
      `select (to_jsonb(x)${drop})::text as j from ${t.schema}.${t.name} x where ${where}${others} order by 1`,
      exceptUser && t.userCol ? [org, exceptUser] : [org],
    );
    out[`${t.schema}.${t.name}`] = rows.map((r) => r.j as string);
  }
  return out;
}

interface Answer {
  status: number;
  body: unknown;
}
/** One request to the Data API through the gateway, as an app makes it (the anon key, the caller's token). */
async function rest(
  token: string | undefined,
  schema: string,
  method: string,
  pathAndQuery: string,
  body?: unknown,
  prefer = "return=minimal",
): Promise<Answer> {
  const res = await fetch(`${API_URL}/rest/v1/${pathAndQuery}`, {
    method,
    headers: {
      apikey: secrets().anonKey,
      Authorization: `Bearer ${token ?? secrets().anonKey}`,
      "Accept-Profile": schema,
      "Content-Profile": schema,
      "Content-Type": "application/json",
      Prefer: prefer,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch { /* not JSON: kept as text for the report */ }
  return { status: res.status, body: parsed };
}

const code = (a: Answer) => (a.body as { code?: string } | null)?.code;
const message = (a: Answer) => (a.body as { message?: string } | null)?.message ?? "";
/** The role's refusal: PostgREST answers 42501 with 401 to anon, 403 to a signed-in role. */
const refused = (a: Answer, role: Role) => a.status === (role === "anon" ? 401 : 403) && code(a) === "42501";
const emptyRead = (a: Answer) => a.status === 200 && Array.isArray(a.body) && a.body.length === 0;
const nothingReached = (a: Answer) => a.status === 204;
const whereRequired = (a: Answer, verb: "UPDATE" | "DELETE") =>
  a.status === 400 && code(a) === "21000" && message(a) === `${verb} requires a WHERE clause`;
const describeAnswer = (a: Answer) => `${a.status} ${JSON.stringify(a.body).slice(0, 160)}`;

/** A value of the column's type that differs from `current`, so an update that got through shows. */
function newValue(col: Column, current: unknown): unknown {
  const t = col.type;
  if (col.enumValues) return col.enumValues.find((v) => v !== current) ?? current;
  if (t.endsWith("[]")) return t.startsWith("uuid") ? [crypto.randomUUID()] : ["matrix"];
  if (t === "boolean") return !current;
  if (/^(smallint|integer|bigint|numeric|real|double precision)/.test(t)) return Number(current ?? 0) + 1;
  if (t === "uuid") return crypto.randomUUID();
  if (t.startsWith("timestamp")) return "2001-02-03T04:05:06Z";
  if (t === "date") return "2001-02-03";
  if (t.startsWith("time")) return "01:02:03";
  if (t === "interval") return "01:02:03";
  if (t === "jsonb" || t === "json") return { matrix: crypto.randomUUID() };
  if (t === "inet") return "192.0.2.1";
  if (t === "bytea") return "\\x00";
  return `matrix-${crypto.randomUUID().slice(0, 8)}`;
}

/** The column an attacker writes: one its role may update, outside any unique key, not a key or the organization. */
function columnToWrite(t: Target, role: Role): Column {
  const candidates = t.columns.filter((c) => !t.key.includes(c.name) && c.name !== t.orgCol);
  return candidates.find((c) => c.mayUpdate[role] && !c.inUniqueKey) ?? candidates.find((c) => c.mayUpdate[role]) ??
    candidates[0] ?? t.columns[0];
}

/** The filter that selects one row by its key, in PostgREST's query syntax. */
const byKey = (t: Target, row: Row) => t.key.map((k) => `${k}=eq.${encodeURIComponent(String(row[k]))}`).join("&");
/** The filter that selects an organization's rows. */
const byOrg = (t: Target, org: string) => t.byPath ? `name=like.${org}/*` : `${t.orgCol}=eq.${org}`;

/**
 * Every route to the victims' rows of every target, as one actor: what each answered that is not
 * a pinned refusal. `exceptUser` leaves a member's own rows out (the student's own-organization run).
 */
async function attack(token: string | undefined, role: Role, org: string, exceptUser?: string): Promise<string[]> {
  const findings: string[] = [];
  const victims = await victimRows(org, exceptUser);
  for (const t of targets) {
    const rows = victims[`${t.schema}.${t.name}`];
    if (!rows.length) continue;
    const one = JSON.parse(rows[0]) as Row;
    const call = (method: string, query: string, body?: unknown, prefer?: string) =>
      rest(token, t.schema, method, `${t.name}${query ? `?${query}` : ""}`, body, prefer);
    const expect = (cell: string, a: Answer, ok: boolean) => {
      if (!ok) findings.push(`${t.schema}.${t.name}: ${cell} answered ${describeAnswer(a)}`);
    };
    const mine = exceptUser && t.userCol ? `&${t.userCol}=neq.${exceptUser}` : "";

    if (!exceptUser) { // (a member reads their own organization's rows)
      const sel = await call("GET", `select=*&${byOrg(t, org)}`);
      expect("select by organization", sel, emptyRead(sel) || refused(sel, role));
      const selKey = await call("GET", `select=*&${byKey(t, one)}`);
      expect("select by key", selKey, emptyRead(selKey) || refused(selKey, role));
    }

    // a copy of a victim's row, in the columns the role may insert, under a fresh id where the table has one
    // (with no column the role may insert, every column a client could write: the table's grant refuses it)
    const insertable = t.columns.filter((c) => c.mayInsert[role]).map((c) => c.name);
    const writable = insertable.length ? insertable : t.columns.map((c) => c.name);
    const copy: Row = Object.fromEntries(Object.entries(one).filter(([k]) => writable.includes(k)));
    if (typeof copy.id === "string") copy.id = crypto.randomUUID();
    else if (typeof copy.id === "number") delete copy.id;
    const ins = await call("POST", "", copy);
    expect("insert of a copy of a victim's row", ins, refused(ins, role));

    const col = columnToWrite(t, role);
    const change = { [col.name]: newValue(col, one[col.name]) };
    const updOrg = await call("PATCH", `${byOrg(t, org)}${mine}`, change);
    expect(`update of ${col.name} by organization`, updOrg, nothingReached(updOrg) || refused(updOrg, role));
    const updKey = await call("PATCH", byKey(t, one), change);
    expect(`update of ${col.name} by key`, updKey, nothingReached(updKey) || refused(updKey, role));
    const updAll = await call("PATCH", "", change);
    expect(`update of ${col.name} without a filter`, updAll, whereRequired(updAll, "UPDATE") || refused(updAll, role));

    // an upsert that collides with a victim's key: it must neither update the row nor reveal it (no
    // client can name a key Postgres always generates, as audit.log's)
    if (t.key.every((k) => t.columns.some((c) => c.name === k))) {
      const collide = { ...copy, ...Object.fromEntries(t.key.map((k) => [k, one[k]])) };
      const ups = await call("POST", "", collide, "return=minimal,resolution=merge-duplicates");
      expect("upsert colliding with a victim's key", ups, refused(ups, role));
    }

    const delKey = await call("DELETE", byKey(t, one));
    expect("delete by key", delKey, nothingReached(delKey) || refused(delKey, role));
    const delOrg = await call("DELETE", `${byOrg(t, org)}${mine}`);
    expect("delete by organization", delOrg, nothingReached(delOrg) || refused(delOrg, role));
    const delAll = await call("DELETE", "");
    expect("delete without a filter", delAll, whereRequired(delAll, "DELETE") || refused(delAll, role));
  }
  // what the database says, not what the API answered
  const after = await victimRows(org, exceptUser);
  for (const [t, rows] of Object.entries(after)) {
    if (JSON.stringify(rows) !== JSON.stringify(victims[t])) findings.push(`${t}: the victims' rows changed`);
  }
  return findings;
}

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
  // the outsider's own organization: what it reaches, to show its token works
  [{ id: orgC }] = await admin`insert into public.organizations (name, slug) values ('Matrix C', ${slug()}) returning id`;
  await admin`insert into public.organization_members (org_id, user_id, role) values
    (${orgA}, ${users.ownerA.id}, 'owner'), (${orgA}, ${users.studentA.id}, 'student'),
    (${orgB}, ${users.ownerB.id}, 'owner'), (${orgB}, ${users.memberB.id}, 'teacher'), (${orgC}, ${users.outsider.id}, 'owner')`;
  await seed(orgA, users.ownerA.id, users.studentA.id, "A");
  await seed(orgB, users.ownerB.id, users.memberB.id, "B");
  await rollUpAnalytics(admin);
  // an export archive each, so storage.objects has rows of both organizations
  for (const [org, owner] of [[orgA, users.ownerA.id], [orgB, users.ownerB.id]]) {
    await admin`insert into storage.objects (bucket_id, name, owner, owner_id, metadata)
                values ('exports', ${`${org}/${crypto.randomUUID()}.zip`}, ${owner}, ${owner}, '{"size": 1}')`;
  }
  // the notifications go out first, so only an attacker could change the victims' rows from here on
  await waitUntil(
    "the deliveries settled",
    async () =>
      (await admin`select 1 from public.notification_deliveries where org_id in (${orgA}, ${orgB}) and status = 'pending'
                   union all select 1 from public.notification_audience_deliveries where org_id in (${orgA}, ${orgB}) and status = 'pending'`)
        .length === 0,
    20_000,
  );
  for (const u of Object.values(users)) u.token = (await tokenFor(admin, u.id)).token;
  await discover();
}, 60_000);

afterAll(async () => {
  await admin`update public.organizations set deleted_at = now() where id in (${orgA}, ${orgB}, ${orgC})`;
  await admin.end();
});

describe("the Data API's isolation matrix (every schema PostgREST serves, tables from its OpenAPI)", () => {
  it("covers every tenant table PostgREST serves in every exposed schema, each with rows of B to attack", async () => {
    expect([...new Set(targets.map((t) => t.schema))].sort()).toEqual(["audit", "public", "storage"]);
    expect(targets.length).toBeGreaterThanOrEqual(22);
    expect(targets.map((t) => `${t.schema}.${t.name}`)).toEqual(expect.arrayContaining(["audit.log", "storage.objects"]));
    const b = await victimRows(orgB);
    expect(Object.entries(b).filter(([, rows]) => rows.length === 0).map(([t]) => t), "tables without rows of B: seed them")
      .toEqual([]);
    // a schema config.toml exposes that this database lacks is not served at all
    expect(unserved).toEqual([{ schema: "graphql_public", status: 406, code: "PGRST106" }]);
  });

  it("each actor reaches its own organization (the positive control: a broken token would pass for isolation)", async () => {
    const org = async (token: string, id: string) =>
      (await rest(token, "public", "GET", `organizations?select=id&id=eq.${id}`)).body;
    expect(await org(users.ownerA.token!, orgA)).toEqual([{ id: orgA }]);
    expect(await org(users.studentA.token!, orgA)).toEqual([{ id: orgA }]);
    expect(await org(users.outsider.token!, orgC)).toEqual([{ id: orgC }]);
    // the audit schema too: its own organization's entries, for a holder of audit.read
    const audit = await rest(users.ownerA.token, "audit", "GET", `log?select=org_id&org_id=eq.${orgA}&limit=1`);
    expect(audit.body).toEqual([{ org_id: orgA }]);
    // anon reaches Postgres as anon: refused by privileges on a table, served where it may read
    const anonTable = await rest(undefined, "public", "GET", "organizations?select=id");
    expect([anonTable.status, code(anonTable), message(anonTable)]).toEqual([
      401,
      "42501",
      "permission denied for table organizations",
    ]);
    const anonBuckets = await rest(undefined, "storage", "GET", "buckets?select=id");
    expect([anonBuckets.status, anonBuckets.body]).toEqual([200, []]);
  });

  for (const actor of ["ownerA", "studentA", "outsider", "anon"] as const) {
    it(`${actor} can read no row of B and change none, by any route`, async () => {
      const role: Role = actor === "anon" ? "anon" : "authenticated";
      expect(await attack(actor === "anon" ? undefined : users[actor].token, role, orgB)).toEqual([]);
    }, 120_000);
  }

  it("a student can change no other member's rows of their own organization", async () => {
    expect(await attack(users.studentA.token, "authenticated", orgA, users.studentA.id)).toEqual([]);
  }, 120_000);

  it("anon may call no function PostgREST serves but the storage path helpers", async () => {
    expect(functions.length).toBeGreaterThanOrEqual(20);
    const findings: string[] = [];
    for (const f of functions) {
      if (ANON_FUNCTIONS.includes(`${f.schema}.${f.name}`)) continue;
      const a = await rest(undefined, f.schema, "POST", `rpc/${f.name}`, Object.fromEntries(f.args.map((k) => [k, null])), "");
      if (!(refused(a, "anon") && message(a) === `permission denied for function ${f.name}`)) {
        findings.push(`${f.schema}.${f.name}: ${describeAnswer(a)}`);
      }
    }
    expect(findings).toEqual([]);
  });
});
