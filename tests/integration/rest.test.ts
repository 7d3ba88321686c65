// /rest/v1: the real PostgREST behind the gateway, as supabase-js reaches it from a browser app.
// The project's API key is required and never reaches PostgREST; tenancy is PostgREST's role
// switch plus the project's RLS; the schema cache follows DDL at once; browser preflights of
// every client pass; errors keep PostgREST's shape and are never 5xx for a client's mistake.
import crypto from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminSql, API_URL, createUser, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";

const admin = adminSql();
let orgA: string, orgB: string, owner: string, outsider: string, ownerToken: string, outsiderToken: string;

const clientAs = (token?: string) =>
  createClient<Database>(API_URL, secrets().anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    global: token ? { headers: { Authorization: `Bearer ${token}` } } : {},
  });
const rest = (path: string, init: RequestInit = {}) => fetch(`${API_URL}/rest/v1${path}`, init);

beforeAll(async () => {
  const slug = () => `rest-${crypto.randomUUID().slice(0, 8)}`;
  [{ id: orgA }] = await admin`insert into public.organizations (name, slug) values ('Rest A', ${slug()}) returning id`;
  [{ id: orgB }] = await admin`insert into public.organizations (name, slug) values ('Rest B', ${slug()}) returning id`;
  owner = (await createUser(admin)).id;
  outsider = (await createUser(admin)).id;
  await admin`insert into public.organization_members (org_id, user_id, role) values (${orgA}, ${owner}, 'owner'), (${orgB}, ${outsider}, 'owner')`;
  ownerToken = (await tokenFor(admin, owner)).token;
  outsiderToken = (await tokenFor(admin, outsider)).token;
});
afterAll(async () => {
  await admin`update public.organizations set deleted_at = now() where id in (${orgA}, ${orgB})`;
  await admin.end();
});

describe("the project's API key", () => {
  it("is required, and a key this project did not issue is refused, as hosted's gateway answers", async () => {
    const none = await rest("/permissions?select=key", { headers: { Authorization: `Bearer ${ownerToken}` } });
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ message: "No API key found in request" });
    const forged = await rest("/permissions?select=key", {
      headers: { apikey: "not-a-key", Authorization: `Bearer ${ownerToken}` },
    });
    expect(forged.status).toBe(401);
    expect(await forged.json()).toMatchObject({ message: "Invalid API key" });
    expect(forged.headers.get("access-control-allow-origin")).toBe("*");
  });

  it("may come as ?apikey=, and is taken off the query before PostgREST reads it as a filter", async () => {
    const res = await rest(`/permissions?select=key&apikey=${secrets().anonKey}`, {
      headers: { Authorization: `Bearer ${ownerToken}` },
    });
    expect(res.status).toBe(200);
    expect((await res.json()).map((p: { key: string }) => p.key)).toContain("org.read");
  });

  it("without Authorization, the key is the token: the anon key reads as anon, which may read no tenant table", async () => {
    const res = await rest("/organizations?select=id", { headers: { apikey: secrets().anonKey } });
    expect(res.status).toBe(401); // PostgREST: permission denied for anon
    expect((await res.json()).code).toBe("42501");
  });
});

describe("supabase-js through the gateway", () => {
  it("reads only the caller's organizations; an outsider and anon see none of them", async () => {
    const mine = await clientAs(ownerToken).from("organizations").select("id, name").in("id", [orgA, orgB]);
    expect(mine.error).toBeNull();
    expect(mine.data!.map((o) => o.id)).toEqual([orgA]);
    const theirs = await clientAs(outsiderToken).from("organizations").select("id").eq("id", orgA);
    expect(theirs.data).toEqual([]);
    const anon = await clientAs().from("organizations").select("id").eq("id", orgA);
    expect(anon.error?.code).toBe("42501");
  });

  it("counts with content-range, exposed to the browser", async () => {
    const res = await rest(`/organization_members?select=user_id&org_id=eq.${orgA}`, {
      headers: {
        apikey: secrets().anonKey,
        Authorization: `Bearer ${ownerToken}`,
        Prefer: "count=exact",
        Origin: "https://app.example",
      },
    });
    expect(res.headers.get("content-range")).toBe("0-0/1");
    expect(res.headers.get("access-control-expose-headers")).toContain("content-range");
  });

  it("writes where RLS allows and refuses writes into another organization", async () => {
    const mine = clientAs(ownerToken);
    const renamed = await mine.from("organizations").update({ name: "Rest A renamed" }).eq("id", orgA).select("name");
    expect(renamed.data).toEqual([{ name: "Rest A renamed" }]);
    const intoB = await mine.from("exercises").insert({ org_id: orgB, title: "not mine" }).select();
    expect(intoB.error?.code).toBe("42501");
    const theirs = await mine.from("organizations").update({ name: "taken" }).eq("id", orgB).select();
    expect(theirs.data).toEqual([]); // no row the caller may change
    expect((await admin`select name from public.organizations where id = ${orgB}`)[0].name).toBe("Rest B");
  });

  it("calls RPCs, with the project's SQLSTATEs in PostgREST's error shape", async () => {
    const created = await clientAs(ownerToken).rpc("create_organization", {
      name: "Via RPC",
      slug: `rpc-${crypto.randomUUID().slice(0, 8)}`,
    });
    expect(created.error).toBeNull();
    expect(created.data).toMatchObject({ name: "Via RPC", tier: "free" });
    await admin`update public.organizations set deleted_at = now() where id = ${(created.data as { id: string }).id}`;
    const refused = await clientAs(outsiderToken).rpc("set_active_organization", { org_id: orgA });
    expect(refused.error).toMatchObject({ code: "TN003" });
  });
});

describe("bad input", () => {
  it("a malformed select, filter, range or body is the client's 4xx, in PostgREST's shape, and writes nothing", async () => {
    const headers = { apikey: secrets().anonKey, Authorization: `Bearer ${ownerToken}`, "content-type": "application/json" };
    const cases: [string, RequestInit][] = [
      ["/organizations?select=id,(((", { headers }],
      ["/organizations?id=eq", { headers }],
      ["/organizations?id=notanop.5", { headers }],
      ["/organizations?select=id", { headers: { ...headers, Range: "9-1" } }],
      ["/exercises", { method: "POST", headers, body: "{not json" }],
      ["/no_such_table", { headers }],
      ["/rpc/no_such_function", { method: "POST", headers, body: "{}" }],
    ];
    const answers: Record<string, [number, string]> = {};
    for (const [path, init] of cases) {
      const res = await rest(path, init);
      const body = await res.json();
      expect(body, path).toHaveProperty("message");
      answers[path] = [res.status, body.code];
    }
    expect(answers).toEqual({
      "/organizations?select=id,(((": [400, "PGRST100"],
      "/organizations?id=eq": [400, "PGRST100"],
      "/organizations?id=notanop.5": [400, "PGRST100"],
      "/organizations?select=id": [416, "PGRST103"],
      "/exercises": [400, "PGRST102"],
      // PostgREST 12's code; 14 (hosted) answers PGRST205
      "/no_such_table": [404, expect.stringMatching(/^(42P01|PGRST205)$/)],
      "/rpc/no_such_function": [404, "PGRST202"],
    });
    expect((await admin`select count(*)::int as n from public.exercises where org_id = ${orgA}`)[0].n).toBe(0);
  });
});

describe("the schema cache", () => {
  it("follows DDL at once (the baseline's event triggers send NOTIFY pgrst)", async () => {
    const table = `rest_probe_${crypto.randomUUID().slice(0, 8)}`;
    await admin.unsafe(`create table public.${table} (id int primary key); alter table public.${table} enable row level security;
                        grant select on public.${table} to authenticated; create policy "all" on public.${table} for select to authenticated using (true);
                        insert into public.${table} values (1)`);
    try {
      const rows = await waitUntil("the new table served", async () => {
        const res = await rest(`/${table}?select=id`, {
          headers: { apikey: secrets().anonKey, Authorization: `Bearer ${ownerToken}` },
        });
        return res.status === 200 ? res.json() : null;
      }, 5000);
      expect(rows).toEqual([{ id: 1 }]);
    } finally {
      await admin.unsafe(`drop table public.${table}`);
    }
  });
});

describe("browser preflights (what supabase-js's clients send), on every route", () => {
  const preflights: [string, string, string][] = [
    ["/auth/v1/token?grant_type=password", "POST", "apikey, authorization, content-type, x-client-info, x-supabase-api-version"],
    ["/auth/v1/user", "GET", "apikey, authorization, x-client-info, x-supabase-api-version"],
    ["/rest/v1/organizations?select=*", "GET", "accept-profile, apikey, authorization, x-client-info"],
    ["/rest/v1/organizations", "PATCH", "apikey, authorization, content-profile, content-type, prefer, x-client-info"],
    ["/rest/v1/rpc/create_organization", "POST", "apikey, authorization, content-profile, content-type, prefer, x-client-info"],
    ["/storage/v1/object/files/a/b.txt", "POST", "apikey, authorization, cache-control, content-type, x-client-info, x-upsert"],
    [
      "/storage/v1/object/upload/sign/files/a/b.txt?token=t",
      "PUT",
      "authorization, cache-control, content-type, x-client-info, x-upsert, apikey",
    ],
    ["/functions/v1/analytics-ingest", "POST", "apikey, authorization, content-type, x-client-info, x-region"],
    ["/no/such/route", "GET", "apikey, authorization"],
  ];
  for (const [path, method, headers] of preflights) {
    it(`${method} ${path}`, async () => {
      const res = await fetch(`${API_URL}${path}`, {
        method: "OPTIONS",
        headers: {
          Origin: "https://app.example",
          "Access-Control-Request-Method": method,
          "Access-Control-Request-Headers": headers,
        },
      });
      expect(res.status).toBeGreaterThanOrEqual(200);
      expect(res.status).toBeLessThan(300);
      expect(res.headers.get("access-control-allow-origin")).toBe("*");
      expect(res.headers.get("access-control-allow-methods")).toContain(method);
      const allowed = (res.headers.get("access-control-allow-headers") ?? "").toLowerCase();
      for (const h of headers.split(",")) expect(allowed).toContain(h.trim());
    });
  }

  it("an unknown route is a 404 a browser can read", async () => {
    const res = await fetch(`${API_URL}/no/such/route`, { headers: { Origin: "https://app.example" } });
    expect(res.status).toBe(404);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect((await res.json()).error.code).toBe("not_found");
  });
});
