// npm run bench:calls: what a function call costs against PostgREST's insert, and the API-key path
// against the user's, through the same gateway, each with 50 calls in flight for a fixed time,
// interleaved in rounds in one run (issues 32, item 4, and 31):
//   fn        a teacher's one-event analytics-ingest call (Authorization: the access token, apikey:
//             the publishable key): the gateway verifies the token, the function verifies it too,
//             counts the API call, reads the tier as the teacher, takes the events budget from
//             Redis and inserts the event as the service with a last membership check;
//   postgrest the same teacher's single-row insert into exercises (POST /rest/v1/exercises,
//             return=minimal): the gateway proxies to PostgREST, which runs the insert under RLS
//             (the exercises.control policy) with the row's triggers (stamp, audit);
//   key       the same one-event analytics-ingest call made with an API key (x-api-key beside the
//             publishable key): the gateway swaps the publishable key for an anon token, the
//             function admits the key (verification cached in memory; the key's and the
//             organization's requests a minute taken from Redis), counts the API call, reads the
//             tier with the key's life and events.write as the key, takes the events budget and
//             inserts as the service with a last check of the key.
// Each round of key calls uses four organizations with a key each, taken in turn, so the tier's
// 6,000 requests a minute (enterprise), per key and per organization, never refuse the bench (one
// key answered at most 1,200 calls a second over a 5 s phase). The last line:
//   ratio=<fn rps / postgrest rps> rps= postgrest_rps= p99_ms= postgrest_p99_ms= key_rps= key_p99_ms=
//   cold_p99_ms=<the function's p99 in the warm-up round, which the other figures leave out>
// The line before it gives the load average at the start and end of the run (2 shared cores).
// Each phase line also gives the CPU per call, in ms, of the processes a call passes (from /proc,
// process-cpu.ts): the gateway, the analytics-ingest process, PostgREST, the Redis bridge and
// Redis, Postgres's client backends (all of them: other work on the machine counts there too),
// and this benchmark's own client.
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";
import { mintAccessToken } from "../dev/platform/auth/tokens.ts";
import { projectSigner } from "../dev/platform/auth/signing-keys.ts";
import { loadProjectConfig } from "../dev/platform/project-config.ts";
import { DB_URL, HOST, paths, PORTS } from "../dev/stack/config.ts";
import { readSecrets } from "../dev/stack/secrets.ts";
import { cpuMeter } from "./process-cpu.ts";
import { summarize } from "./stats.ts";

const IN_FLIGHT = Number(process.env.BENCH_CALLS_IN_FLIGHT ?? 50);
const SECONDS = Number(process.env.BENCH_CALLS_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_CALLS_ROUNDS ?? 3);
const WARM_UP_SECONDS = 3;
const log = (msg: string, f: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ ts: new Date().toISOString(), component: "bench:calls", msg, ...f }));
const load = () => os.loadavg().map((x) => +x.toFixed(2));

const secrets = readSecrets();
if (!secrets) throw new Error("start the stack first: npm start");
const API = `http://${HOST}:${PORTS.gateway}`;
const sql = postgres(DB_URL, { max: 2, onnotice: () => {} });
const suffix = crypto.randomUUID().slice(0, 8);
const orgs: string[] = [];

async function organization(name: string) {
  const [o] = await sql<{ id: string }[]>`
    insert into public.organizations (name, slug, tier) values (${name}, ${`bench-calls-${suffix}-${orgs.length}`}, 'enterprise') returning id`;
  orgs.push(o.id);
  return o.id;
}
async function member(org: string, role: string) {
  const id = crypto.randomUUID();
  await sql`insert into auth.users (id, aud, role, email, email_confirmed_at)
            values (${id}, 'authenticated', 'authenticated', ${`${id}@bench.local`}, now())`;
  await sql`insert into public.organization_members (org_id, user_id, role) values (${org}, ${id}, ${role}::public.org_role)`;
  return id;
}
/** A key with events.write, made by the organization's owner as create_api_key makes it. */
async function keyFor(org: string) {
  const owner = await member(org, "owner");
  return sql.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true),
                    set_config('request.jwt.claims', ${JSON.stringify({ sub: owner, role: "authenticated" })}, true)`;
    const [k] = await tx<
      { api_key: string }[]
    >`select api_key from public.create_api_key(${org}, 'bench', array['events.write'])`;
    return k.api_key;
  }) as Promise<string>;
}

/** A round's keys: KEYS_PER_ROUND organizations of their own, a key each. */
const KEYS_PER_ROUND = 4;
async function keysFor(name: string) {
  const keys: string[] = [];
  for (let i = 0; i < KEYS_PER_ROUND; i++) keys.push(await keyFor(await organization(`${name} (${i + 1})`)));
  return keys;
}

const org = await organization("Calls bench");
const teacher = await member(org, "teacher");
const config = loadProjectConfig(paths.supabase);
const { token } = await mintAccessToken(sql, projectSigner(config, secrets.jwtSecret), config, {
  userId: teacher,
  expiresIn: 3600,
});
const oneEvent = () =>
  JSON.stringify({ events: [{ type: "page.viewed", occurred_at: new Date().toISOString(), properties: { path: "/bench" } }] });

// The calls go out through node:http on kept-alive connections, one per call in flight: this
// client shares the two cores with what it measures, and fetch (undici) cost it 0.3-0.5 ms of CPU
// a call, more than the gateway. Both sides use it alike.
const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
/** A POST through the gateway; resolves with the status once the whole answer has arrived. */
function post(path: string, headers: Record<string, string>, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${API}${path}`, {
      method: "POST",
      agent,
      headers: { ...headers, "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) },
    }, (res) => {
      res.on("error", reject);
      res.on("end", () => resolve(res.statusCode ?? 0));
      res.resume();
    });
    req.on("error", reject);
    req.end(body);
  });
}

type Send = () => Promise<number>;
const sides: Record<"fn" | "postgrest" | "key", (keys: string[]) => Send> = {
  fn: () => () =>
    post("/functions/v1/analytics-ingest", { authorization: `Bearer ${token}`, apikey: secrets.publishableKey }, oneEvent()),
  postgrest: () => () =>
    post(
      "/rest/v1/exercises",
      { authorization: `Bearer ${token}`, apikey: secrets.publishableKey, prefer: "return=minimal" },
      JSON.stringify({ org_id: org, title: "Bench exercise" }),
    ),
  key: (keys) => {
    let next = 0;
    return () =>
      post(
        "/functions/v1/analytics-ingest",
        { "x-api-key": keys[next++ % keys.length], apikey: secrets.publishableKey },
        oneEvent(),
      );
  },
};

const stackPid = (name: string) => Number(fs.readFileSync(path.join(paths.pids, `${name}.pid`), "utf8").trim());
/** The analytics-ingest process the gateway started (after the warm-up). */
function ingestPids() {
  return fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, "utf8");
      return cmd.includes("function-host.ts") && cmd.includes("supabase/functions/analytics-ingest/index.ts");
    } catch {
      return false;
    }
  }).map(Number);
}
async function processes() {
  const backends = await sql<{ pid: number }[]>`select pid from pg_stat_activity where backend_type = 'client backend'`;
  return {
    gateway: [stackPid("gateway")],
    function: ingestPids(),
    postgrest: [stackPid("postgrest")],
    bridge: [stackPid("upstash-bridge")],
    redis: [stackPid("redis")],
    postgres: backends.map((b) => b.pid),
  };
}

/** IN_FLIGHT loops sending for `seconds`: each answered call's latency, the calls that were not 2xx, and CPU per call. */
async function phase(send: Send, seconds: number) {
  const stop = cpuMeter(await processes());
  const self = process.cpuUsage();
  const latencies: number[] = [];
  const startedAt: number[] = []; // each answered call's start, ms into the phase
  const failures = new Map<number, number>();
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (performance.now() < end) {
      const t = performance.now();
      const status = await send();
      if (status >= 300) failures.set(status, (failures.get(status) ?? 0) + 1);
      else {
        latencies.push(performance.now() - t);
        startedAt.push(t - t0);
      }
    }
  }));
  const ms = performance.now() - t0;
  const used = stop();
  const client = process.cpuUsage(self);
  used.client = (client.user + client.system) * 1000; // this benchmark, on the same cores
  const calls = Math.max(1, latencies.length + [...failures.values()].reduce((a, b) => a + b, 0));
  const cpuPerCall = Object.fromEntries(Object.entries(used).map(([k, ns]) => [k, +(ns / 1e6 / calls).toFixed(2)]));
  return { latencies, startedAt, failures, ms, cpuPerCall };
}

/**
 * Whether the slowest calls (over the phase's p90) come in bursts, as a pause of some process
 * would make them, or spread over the phase, as queueing does: the share of the phase's quarter
 * seconds in which such a call started.
 */
function slowSpread(latencies: number[], startedAt: number[], ms: number, p90: number) {
  const windows = new Set(startedAt.filter((_, i) => latencies[i] > p90).map((t) => Math.floor(t / 250)));
  return +(windows.size / Math.ceil(ms / 250)).toFixed(2);
}

const totals = {
  fn: { latencies: [] as number[], ms: 0, failed: 0 },
  postgrest: { latencies: [] as number[], ms: 0, failed: 0 },
  key: { latencies: [] as number[], ms: 0, failed: 0 },
};
const loadAtStart = load();
let coldP99 = NaN;
try {
  // A warm-up round first, reported apart (round 0, cold_p99_ms): the function processes start,
  // their connections and caches fill, and V8 compiles the hot paths of the gateway, the function,
  // the bridge and this client (right after npm start a call costs well over its later CPU).
  const warmKeys = await keysFor("Calls bench warm-up");
  for (const side of ["fn", "postgrest", "key"] as const) {
    const r = await phase(sides[side](warmKeys), WARM_UP_SECONDS);
    const s = summarize(r.latencies);
    if (side === "fn") coldP99 = s.p99;
    log("phase", {
      round: 0,
      side,
      rps: Math.round(r.latencies.length / (r.ms / 1000)),
      p50_ms: +s.p50.toFixed(1),
      p99_ms: +s.p99.toFixed(1),
      failed: Object.fromEntries(r.failures),
      cpu_ms_per_call: r.cpuPerCall,
    });
  }

  const orders = [["fn", "postgrest", "key"], ["postgrest", "key", "fn"], ["key", "fn", "postgrest"]] as const;
  for (let round = 1; round <= ROUNDS; round++) {
    const keys = await keysFor(`Calls bench round ${round}`);
    for (const side of orders[(round - 1) % orders.length]) {
      const before = load()[0];
      const r = await phase(sides[side](keys), SECONDS);
      const s = summarize(r.latencies);
      const failed = [...r.failures.values()].reduce((a, b) => a + b, 0);
      totals[side].latencies.push(...r.latencies);
      totals[side].ms += r.ms;
      totals[side].failed += failed;
      log("phase", {
        round,
        side,
        rps: Math.round(r.latencies.length / (r.ms / 1000)),
        p50_ms: +s.p50.toFixed(1),
        p90_ms: +s.p90.toFixed(1),
        p99_ms: +s.p99.toFixed(1),
        // share of quarter seconds in which a call over p90 started (near 1: queueing, low: bursts)
        slow_spread: slowSpread(r.latencies, r.startedAt, r.ms, s.p90),
        failed: Object.fromEntries(r.failures),
        cpu_ms_per_call: r.cpuPerCall,
        load1_before: before,
        load1_after: load()[0],
      });
    }
  }
} finally {
  agent.destroy();
  await sql`update public.organizations set deleted_at = now() where id = any (${orgs}::uuid[])`;
  await sql.end();
}

const figure = (side: keyof typeof totals) => ({
  rps: totals[side].latencies.length / (totals[side].ms / 1000),
  p99: summarize(totals[side].latencies).p99,
});
const fn = figure("fn"), rest = figure("postgrest"), key = figure("key");
log("load", {
  load_at_start: loadAtStart,
  load_at_end: load(),
  failed: Object.fromEntries(Object.entries(totals).map(([k, v]) => [k, v.failed])),
});
console.log(
  `ratio=${(fn.rps / rest.rps).toFixed(2)} rps=${fn.rps.toFixed(0)} postgrest_rps=${rest.rps.toFixed(0)} ` +
    `p99_ms=${fn.p99.toFixed(0)} postgrest_p99_ms=${rest.p99.toFixed(0)} key_rps=${key.rps.toFixed(0)} key_p99_ms=${
      key.p99.toFixed(0)
    } cold_p99_ms=${coldP99.toFixed(0)}`,
);
