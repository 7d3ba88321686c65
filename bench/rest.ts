// npm run bench:rest — what the gateway adds to the Data API. A page of 50 rows of a tenant table
// (public.exercises, RLS on, 50,000 rows over 100 organizations) read as a signed-in member three
// ways: through the gateway's /rest/v1 (API key check, proxy hop), straight to PostgREST, and the
// same SQL in the same request context on a pooled connection. Sequential requests on keep-alive
// connections, in interleaved rounds so drift on the machine hits every side alike; each figure
// is the median of the rounds' figures. Sequential requests measure latency (their req/s is
// 1/latency); what saturates first is measured apart: BENCH_REST_IN_FLIGHT requests in flight (50)
// for BENCH_REST_SECONDS (5) through the gateway and straight to PostgREST, interleaved over 3
// rounds, with the CPU each process used meanwhile, in cores (process-cpu.ts): the gateway is one
// Node thread, so it is saturated at 1 core; PostgREST and Postgres use both. The benchmark's own
// client runs on the same 2 cores and is counted too. Needs the stack (npm start).
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { HOST, paths, PORTS } from "../dev/stack/config.ts";
import { withRequestContext } from "../supabase/functions/_shared/db.ts";
import { adminSql, API_URL, apiSql, createUser, secrets, tokenFor } from "../tests/helpers/stack.ts";
import { cpuMeter } from "./process-cpu.ts";
import { fmt, summarize, timeRequests } from "./stats.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const PER_ROUND = Number(process.env.BENCH_REQUESTS ?? 300);
const IN_FLIGHT = Number(process.env.BENCH_REST_IN_FLIGHT ?? 50);
const SECONDS = Number(process.env.BENCH_REST_SECONDS ?? 5);
const ORGS = 100;
const PER_ORG = 500;
const log = (msg: string, f: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ ts: new Date().toISOString(), component: "bench:rest", msg, ...f }));

const admin = adminSql(4);
const api = apiSql(2);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const stackPid = (name: string) => Number(fs.readFileSync(path.join(paths.pids, `${name}.pid`), "utf8").trim());

/** IN_FLIGHT loops for SECONDS: req/s, p99, and the CPU (cores) of the gateway, PostgREST, its Postgres backends and this process. */
async function saturate(hit: () => Promise<void>) {
  const backends = (await admin<{ pid: number }[]>`
    select pid from pg_stat_activity where application_name like 'PostgREST%'`).map((r) => r.pid);
  const stop = cpuMeter({ gateway: [stackPid("gateway")], postgrest: [stackPid("postgrest")], postgres: backends });
  const self = process.cpuUsage();
  const latencies: number[] = [];
  const t0 = performance.now();
  const end = t0 + SECONDS * 1000;
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (performance.now() < end) {
      const t = performance.now();
      await hit();
      latencies.push(performance.now() - t);
    }
  }));
  const wallNs = (performance.now() - t0) * 1e6;
  const used = stop();
  const bench = process.cpuUsage(self);
  const cores = (ns: number) => +(ns / wallNs).toFixed(2);
  return {
    rps: latencies.length / (wallNs / 1e9),
    p99: summarize(latencies).p99,
    gateway: cores(used.gateway),
    postgrest: cores(used.postgrest),
    postgres: cores(used.postgres),
    bench: cores((bench.user + bench.system) * 1000),
  };
}

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

  // what saturates first: many requests in flight
  log("in flight", { in_flight: IN_FLIGHT, seconds: SECONDS });
  for (const hit of [hitGateway, hitDirect]) await Promise.all(Array.from({ length: IN_FLIGHT }, () => hit())); // the pools fill
  const loaded: Record<"gateway" | "direct", Awaited<ReturnType<typeof saturate>>[]> = { gateway: [], direct: [] };
  for (let r = 1; r <= 3; r++) {
    const order = r % 2 ? (["gateway", "direct"] as const) : (["direct", "gateway"] as const);
    for (const side of order) {
      const load1 = os.loadavg()[0];
      const m = await saturate(side === "gateway" ? hitGateway : hitDirect);
      loaded[side].push(m);
      log("in flight round", { round: r, side, ...m, rps: Math.round(m.rps), p99: +m.p99.toFixed(1), load1 });
    }
  }
  const mid = <K extends keyof Awaited<ReturnType<typeof saturate>>>(side: "gateway" | "direct", k: K) =>
    median(loaded[side].map((x) => x[k]));
  console.log(`\n                         p50 ms   p95 ms   req/s`);
  console.log(`gateway /rest/v1         ${fmt(g.p50)}    ${fmt(g.p95)}    ${g.rps.toFixed(0)}`);
  console.log(`PostgREST direct         ${fmt(d.p50)}    ${fmt(d.p95)}    ${d.rps.toFixed(0)}`);
  console.log(`same SQL, pooled         ${fmt(q.p50)}    ${fmt(q.p95)}    ${q.rps.toFixed(0)}`);
  console.log(
    `gateway adds: p50 ${fmt(g.p50 - d.p50)} ms, p95 ${fmt(g.p95 - d.p95)} ms; PostgREST adds over SQL: p50 ${
      fmt(d.p50 - q.p50)
    } ms\n`,
  );
  console.log(
    `with ${IN_FLIGHT} in flight (medians of 3): gateway ${mid("gateway", "rps").toFixed(0)} req/s (p99 ${
      mid("gateway", "p99").toFixed(0)
    } ms), PostgREST direct ${mid("direct", "rps").toFixed(0)} req/s; CPU in cores through the gateway: gateway ${
      mid("gateway", "gateway")
    }, PostgREST ${mid("gateway", "postgrest")}, Postgres ${mid("gateway", "postgres")}, this client ${mid("gateway", "bench")}`,
  );
  console.log(`load average at the end: ${os.loadavg().map((x) => x.toFixed(2)).join(" ")} (2 shared cores)\n`);
  console.log(
    `ratio=${(g.p50 / d.p50).toFixed(2)} p95_added_ms=${fmt(g.p95 - d.p95)} rps=${g.rps.toFixed(0)} ` +
      `concurrent_rps=${mid("gateway", "rps").toFixed(0)} direct_concurrent_rps=${mid("direct", "rps").toFixed(0)} ` +
      `gateway_cores=${mid("gateway", "gateway")} postgrest_cores=${mid("gateway", "postgrest")} postgres_cores=${
        mid("gateway", "postgres")
      }`,
  );
  await admin`delete from public.organizations where id = any(${orgs.map((o) => o.id)}::uuid[])`;
} finally {
  await api.end();
  await admin.end();
}
