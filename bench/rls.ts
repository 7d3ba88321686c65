// npm run bench:rls — what row-level security costs on a large tenant table.
//
// A throwaway Postgres 15 cluster (same setup as the stack: baseline, migrations) holds 1,000
// organizations and 1,000,000 rows in audit.log, a tenant table whose policy is the project's
// standard one (`org_id in (select app.org_ids_with_permission(...))`). A page of 50 rows for one
// organization is read as `authenticated` under RLS, and as the table owner with the same
// explicit `where org_id = ...`, in interleaved rounds. Only the query is timed; the request
// context (role and claims) is set up before the clock starts, as it is once per request.
// The data is kept between runs (.stack/bench-rls); BENCH_FRESH=1 rebuilds it.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Sql } from "postgres";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const STATE = path.join(ROOT, ".stack", "bench-rls");
process.env.STACK_STATE_DIR = STATE;
// its own cluster, kept between runs, on a port the kernel hands out (or BENCH_PG_PORT)
const { freePort } = await import("../dev/stack/ports.ts");
process.env.STACK_POSTGRES_PORT = process.env.BENCH_PG_PORT ?? String(await freePort());
process.env.PATH = `${path.join(ROOT, "node_modules", ".bin")}:${process.env.PATH}`;

const { DB_URL } = await import("../dev/stack/config.ts");
const pg = await import("../dev/stack/postgres.ts");
const { default: postgres } = await import("postgres");
const { fmt, summarize } = await import("./stats.ts");

const ORGS = 1000;
const ROWS = 1_000_000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const PER_ROUND = Number(process.env.BENCH_QUERIES ?? 200);
const PAGE = `select id, occurred_at, org_id, actor_user_id, table_name, row_id, action, changed_columns, new_values
              from audit.log where org_id = $1 order by occurred_at desc, id desc limit 50`;
const PAGE_RLS_ONLY = `select id, occurred_at, org_id, actor_user_id, table_name, row_id, action, changed_columns, new_values
              from audit.log order by occurred_at desc, id desc limit 50`;

const log = (msg: string, f: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ ts: new Date().toISOString(), component: "bench:rls", msg, ...f }));

if (process.env.BENCH_FRESH === "1" && fs.existsSync(STATE)) {
  if (pg.pgIsRunning()) pg.stopPostgres("immediate");
  fs.rmSync(STATE, { recursive: true, force: true });
}
if (!pg.clusterExists()) {
  log("creating the benchmark cluster", { dir: path.relative(ROOT, STATE) });
  pg.initCluster();
}
if (!pg.pgIsRunning()) pg.startPostgres();
const authenticatorPassword = crypto.randomBytes(18).toString("base64url");
try {
  pg.applyBaseline();
  pg.setLoginPassword("authenticator", authenticatorPassword);
  pg.applyMigrations();
  const owner = postgres(DB_URL, { max: 1, onnotice: () => {} });
  const apiUrl = new URL(DB_URL);
  apiUrl.username = "authenticator";
  apiUrl.password = authenticatorPassword;
  const api = postgres(apiUrl.toString(), { max: 1, onnotice: () => {} });
  try {
    await ensureData(owner);
    const orgs = await owner`select o.id as org_id, m.user_id from public.organizations o
                             join public.organization_members m on m.org_id = o.id and m.role = 'owner'
                             where o.slug like 'bench-%' order by o.slug`;

    const asOwner = async (org: string, text = PAGE) => {
      return owner.begin(async (tx) => {
        const t = performance.now();
        const rows = await tx.unsafe(text, [org], { prepare: true });
        return { ms: performance.now() - t, n: rows.length };
      });
    };
    const asMember = async (org: string, user: string, text = PAGE) => {
      return api.begin(async (tx) => {
        await tx`select set_config('role', 'authenticated', true),
                        set_config('request.jwt.claims', ${JSON.stringify({ sub: user, role: "authenticated" })}, true)`;
        const t = performance.now();
        const rows = text === PAGE
          ? await tx.unsafe(text, [org], { prepare: true })
          : await tx.unsafe(text, [], { prepare: true });
        return { ms: performance.now() - t, n: rows.length };
      });
    };

    // Sanity: both sides return the same full page, and RLS alone confines a member to their org.
    const probe = orgs[7];
    const [a, b] = [await asOwner(probe.org_id), await asMember(probe.org_id, probe.user_id)];
    if (a.n !== 50 || b.n !== 50) throw new Error(`expected pages of 50, got owner ${a.n}, member ${b.n}`);
    const leak = await api.begin(async (tx) => {
      await tx`select set_config('role', 'authenticated', true),
                      set_config('request.jwt.claims', ${JSON.stringify({ sub: probe.user_id, role: "authenticated" })}, true)`;
      return tx`select count(*)::int as n from (${tx.unsafe(PAGE_RLS_ONLY)}) p where p.org_id <> ${probe.org_id}`;
    });
    if (leak[0].n !== 0) throw new Error("RLS let another organization's rows through");

    log("warming up");
    for (let i = 0; i < 300; i++) {
      const o = orgs[i % orgs.length];
      await asOwner(o.org_id);
      await asMember(o.org_id, o.user_id);
      await asMember(o.org_id, o.user_id, PAGE_RLS_ONLY);
    }
    const ownerMs: number[] = [];
    const rlsMs: number[] = [];
    const rlsOnlyMs: number[] = [];
    for (let r = 1; r <= ROUNDS; r++) {
      for (let i = 0; i < PER_ROUND; i++) {
        const o = orgs[Math.floor(Math.random() * orgs.length)];
        ownerMs.push((await asOwner(o.org_id)).ms);
        rlsMs.push((await asMember(o.org_id, o.user_id)).ms);
        rlsOnlyMs.push((await asMember(o.org_id, o.user_id, PAGE_RLS_ONLY)).ms);
      }
      log("round done", { round: r, of: ROUNDS });
    }

    const plan = await api.begin(async (tx) => {
      await tx`select set_config('role', 'authenticated', true),
                      set_config('request.jwt.claims', ${JSON.stringify({ sub: probe.user_id, role: "authenticated" })}, true)`;
      const withFilter = await tx.unsafe(
        `explain (analyze, buffers, costs off, summary off) ${PAGE.replace("$1", `'${probe.org_id}'`)}`,
      );
      const rlsOnly = await tx.unsafe(`explain (analyze, buffers, costs off, summary off) ${PAGE_RLS_ONLY}`);
      return {
        withFilter: withFilter.map((r) => r["QUERY PLAN"]).join("\n"),
        rlsOnly: rlsOnly.map((r) => r["QUERY PLAN"]).join("\n"),
      };
    });

    const o = summarize(ownerMs);
    const m = summarize(rlsMs);
    const x = summarize(rlsOnlyMs);
    console.log(`\nPlan, as authenticated, page with where org_id = ...:\n${plan.withFilter}`);
    console.log(`\nPlan, as authenticated, page with no filter (RLS alone):\n${plan.rlsOnly}`);
    console.log(`\n${ORGS} organizations, ${ROWS} rows in audit.log, pages of 50; query time only`);
    console.log(`                                   n      p50 ms   p95 ms   p99 ms`);
    console.log(`owner, where org_id = ...          ${o.n}   ${fmt(o.p50)}    ${fmt(o.p95)}    ${fmt(o.p99)}`);
    console.log(`authenticated (RLS) + where        ${m.n}   ${fmt(m.p50)}    ${fmt(m.p95)}    ${fmt(m.p99)}`);
    console.log(`authenticated (RLS alone)          ${x.n}   ${fmt(x.p50)}    ${fmt(x.p95)}    ${fmt(x.p99)}`);
    console.log(`RLS alone / owner p50: ${(x.p50 / o.p50).toFixed(2)}\n`);
    console.log(`ratio=${(m.p50 / o.p50).toFixed(2)} p50_ms=${fmt(m.p50)} p95_ms=${fmt(m.p95)}`);
  } finally {
    await api.end();
    await owner.end();
  }
} finally {
  pg.stopPostgres();
}

async function ensureData(sql: Sql) {
  const [{ n }] = await sql`select count(*)::int as n from audit.log where table_name = 'bench.synthetic'`;
  if (n >= ROWS) {
    log("reusing benchmark data", { rows: n });
    return;
  }
  log("creating organizations and owners", { organizations: ORGS });
  await sql.begin(async (tx) => {
    await tx`insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data)
             select gen_random_uuid(), 'authenticated', 'authenticated', format('owner-%s@bench.test', g), now(), '{}', '{}'
             from generate_series(1, ${ORGS}) g`;
    await tx`insert into public.organizations (name, slug)
             select format('Bench %s', g), format('bench-%s', lpad(g::text, 4, '0')) from generate_series(1, ${ORGS}) g`;
    await tx`insert into public.organization_members (org_id, user_id, role)
             select o.id, u.id, 'owner' from public.organizations o
             join auth.users u on u.email = format('owner-%s@bench.test', ltrim(substr(o.slug, 7), '0'))`;
  });
  const orgIds = (await sql`select id from public.organizations where slug like 'bench-%' order by slug`).map((r) =>
    r.id as string
  );
  const chunk = 100_000;
  for (let done = n; done < ROWS; done += chunk) {
    // Rows interleaved across organizations in time, as real activity is.
    await sql`insert into audit.log (occurred_at, org_id, db_role, table_name, row_id, action, changed_columns, new_values)
              select now() - make_interval(secs => g), (${orgIds}::uuid[])[1 + g % ${ORGS}], 'authenticated', 'bench.synthetic',
                     g::text, 'UPDATE', '{name}', jsonb_build_object('name', 'row ' || g)
              from generate_series(${done + 1}::int, ${Math.min(ROWS, done + chunk)}::int) g`;
    log("rows written", { rows: Math.min(ROWS, done + chunk), of: ROWS });
  }
  await sql`vacuum analyze audit.log`;
  await sql`analyze`;
}
