// npm run bench:rest — what the gateway adds to the Data API. A page of 50 rows of a tenant table
// (public.exercises, RLS on, 50,000 rows over 100 organizations) read as a signed-in member three
// ways: through the gateway's /rest/v1 (API key check, proxy hop), straight to PostgREST, and the
// same SQL in the same request context on a pooled connection. Sequential requests on keep-alive
// connections, in interleaved rounds so drift on the machine hits every side alike; each figure
// is the median of the rounds' figures. Needs the stack (npm start).
import crypto from "node:crypto";
import { HOST, PORTS } from "../dev/stack/config.ts";
import { withRequestContext } from "../supabase/functions/_shared/db.ts";
import { adminSql, API_URL, apiSql, createUser, secrets, tokenFor } from "../tests/helpers/stack.ts";
import { fmt, summarize, timeRequests } from "./stats.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const PER_ROUND = Number(process.env.BENCH_REQUESTS ?? 300);
const ORGS = 100;
const PER_ORG = 500;
const log = (msg: string, f: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ ts: new Date().toISOString(), component: "bench:rest", msg, ...f }));

const admin = adminSql(4);
const api = apiSql(2);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

try {
  log("preparing data", { organizations: ORGS, rows_per_organization: PER_ORG });
  const orgs = await admin<{ id: string }[]>`
    insert into public.organizations (name, slug)
    select 'Bench REST ' || i, 'bench-rest-' || ${crypto.randomUUID().slice(0, 8)} || '-' || i from generate_series(1, ${ORGS}) i
    returning id`;
  await admin`insert into public.exercises (org_id, title)
              select o.id, 'Exercise ' || i from unnest(${
    orgs.map((o) => o.id)
  }::uuid[]) o(id), generate_series(1, ${PER_ORG}) i`;
  await admin`analyze public.exercises`;
  const member = (await createUser(admin)).id;
  const org = orgs[Math.floor(ORGS / 2)].id;
  await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${member}, 'teacher')`;
  const { token, claims } = await tokenFor(admin, member);

  const query = "select=id,title,status,created_at&order=created_at.desc,id&limit=50";
  const viaGateway = `${API_URL}/rest/v1/exercises?${query}`;
  const direct = `http://${HOST}:${PORTS.postgrest}/exercises?${query}`;
  const gatewayHeaders = { apikey: secrets().anonKey, Authorization: `Bearer ${token}` };
  const directHeaders = { Authorization: `Bearer ${token}` };
  const page = async (url: string, headers: Record<string, string>) => {
    const res = await fetch(url, { headers });
    const rows = await res.json();
    if (res.status !== 200 || rows.length !== 50) {
      throw new Error(`${url} answered ${res.status} with ${JSON.stringify(rows).slice(0, 200)}`);
    }
  };
  const hitGateway = () => page(viaGateway, gatewayHeaders);
  const hitDirect = () => page(direct, directHeaders);
  const hitSql = async () => {
    const rows = await withRequestContext(
      api,
      { role: "authenticated", claims },
      (tx) => tx`select id, title, status, created_at from public.exercises order by created_at desc, id limit 50`,
    );
    if (rows.length !== 50) throw new Error(`SQL returned ${rows.length} rows`);
  };

  log("warming up");
  for (const hit of [hitGateway, hitDirect, hitSql]) await timeRequests(200, hit);
  const rounds: Record<"gateway" | "direct" | "sql", { p50: number; p95: number; ms: number }[]> = {
    gateway: [],
    direct: [],
    sql: [],
  };
  for (let r = 1; r <= ROUNDS; r++) {
    for (const [side, hit] of [["gateway", hitGateway], ["direct", hitDirect], ["sql", hitSql]] as const) {
      const started = performance.now();
      const s = summarize(await timeRequests(PER_ROUND, hit));
      rounds[side].push({ p50: s.p50, p95: s.p95, ms: performance.now() - started });
    }
    log("round done", { round: r, of: ROUNDS });
  }
  const fig = (side: keyof typeof rounds) => ({
    p50: median(rounds[side].map((x) => x.p50)),
    p95: median(rounds[side].map((x) => x.p95)),
    rps: median(rounds[side].map((x) => (PER_ROUND * 1000) / x.ms)),
  });
  const g = fig("gateway"), d = fig("direct"), q = fig("sql");
  console.log(`\n                         p50 ms   p95 ms   req/s`);
  console.log(`gateway /rest/v1         ${fmt(g.p50)}    ${fmt(g.p95)}    ${g.rps.toFixed(0)}`);
  console.log(`PostgREST direct         ${fmt(d.p50)}    ${fmt(d.p95)}    ${d.rps.toFixed(0)}`);
  console.log(`same SQL, pooled         ${fmt(q.p50)}    ${fmt(q.p95)}    ${q.rps.toFixed(0)}`);
  console.log(
    `gateway adds: p50 ${fmt(g.p50 - d.p50)} ms, p95 ${fmt(g.p95 - d.p95)} ms; PostgREST adds over SQL: p50 ${
      fmt(d.p50 - q.p50)
    } ms\n`,
  );
  console.log(`ratio=${(g.p50 / d.p50).toFixed(2)} p95_added_ms=${fmt(g.p95 - d.p95)} rps=${g.rps.toFixed(0)}`);
  await admin`delete from public.organizations where id = any(${orgs.map((o) => o.id)}::uuid[])`;
} finally {
  await api.end();
  await admin.end();
}
