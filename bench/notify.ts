// npm run bench:notify: one notification to an organization of 10,000 students, sent by a teacher
// through the send_notification RPC (in the request context PostgREST would set up, as the
// `authenticator` role, the connection PostgREST uses), next to raw mqtt.js publishing of
// 10,000 QoS 1 messages to the same broker, in the same run. Two paths, each timed from the RPC's
// call until every MQTT delivery is recorded and every message has reached its subscribers:
// - audience (the headline `ratio`): a type with audience delivery (announcement.broadcast), which
//   goes out as one message on the students' role topic, which the broker fans out. Its
//   subscribers are BENCH_SUBSCRIBERS students signed in with their own access tokens (the
//   broker's policy decides what they read) and the service's listener; the broker's fan-out to
//   all 10,000 connected members is not measured here (that needs 10,000 connections).
// - per recipient (`ratio_per_recipient`): announcement.posted, one message and one delivery row
//   per recipient, as for a list of users or when anyone's choices differ.
// Each path has its own organization of the same students, so neither spends the other's per-minute
// budget. E-mail is switched off for the members (a '*' preference): it goes out from the worker
// later and is not what this measures.
// The broker checks every delivery to a student as a read and caches the answer for cache_seconds,
// so the audience path is sent twice a round: cold (in round 1 the first publish after the
// subscribes, later only once cache_seconds have passed since the last delivery) and warm (at once
// after). BENCH_BROKER=own signs the students in to a broker of the bench's own instead, started
// with the working tree's plugin and fed what reaches the stack's broker on the role topic (one
// hop more), so a plugin change is measured without restarting the stack.
import crypto from "node:crypto";
import mqtt, { type MqttClient } from "mqtt";
import postgres from "postgres";
import { brokerInstance } from "../dev/stack/broker-instance.ts";
import { DB_URL, HOST, paths, PORTS } from "../dev/stack/config.ts";
import { readSecrets } from "../dev/stack/secrets.ts";
import { loadProjectConfig } from "../dev/platform/project-config.ts";
import { mintAccessToken } from "../dev/platform/auth/tokens.ts";
import { projectSigner } from "../dev/platform/auth/signing-keys.ts";
import { withRequestContext } from "../supabase/functions/_shared/db.ts";

const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 10_000);
const SUBSCRIBERS = Math.min(MEMBERS, Number(process.env.BENCH_SUBSCRIBERS ?? 200));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TIMEOUT_MS = Number(process.env.BENCH_TIMEOUT_MS ?? 300_000);
const CACHE_SECONDS = 5; // plugin_opt_cache_seconds in broker/mosquitto.conf
const log = (msg: string, f: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ ts: new Date().toISOString(), component: "bench:notify", msg, ...f }));

const secrets = readSecrets();
if (!secrets) throw new Error("start the stack first: npm start");
const sql = postgres(DB_URL, { max: 2, onnotice: () => {} });
const MQTT_URL = `mqtt://${HOST}:${PORTS.mqtt}`;

// Two enterprise organizations (each tier allows 60,000 notifications a minute) of the same MEMBERS
// students and a teacher: one per path.
const suffix = crypto.randomUUID().slice(0, 8);
const teacher = crypto.randomUUID();
const orgs = await sql<{ id: string; slug: string }[]>`
  insert into public.organizations (name, slug, tier)
  values ('Notify bench (audience)', ${`bench-notify-a-${suffix}`}, 'enterprise'), ('Notify bench (per recipient)', ${`bench-notify-r-${suffix}`}, 'enterprise')
  returning id, slug`;
const audienceOrg = orgs.find((o) => o.slug.startsWith("bench-notify-a-"))!.id;
const recipientOrg = orgs.find((o) => o.slug.startsWith("bench-notify-r-"))!.id;
const students = (await sql<{ id: string }[]>`
  insert into auth.users (id, aud, role, email, email_confirmed_at)
  select gen_random_uuid(), 'authenticated', 'authenticated', 'bench-' || ${suffix} || '-' || i || '@bench.local', now()
  from generate_series(1, ${MEMBERS}) i returning id`).map((r) => r.id);
await sql`insert into auth.users (id, aud, role, email, email_confirmed_at) values (${teacher}, 'authenticated', 'authenticated', ${`${teacher}@bench.local`}, now())`;
for (const org of [audienceOrg, recipientOrg]) {
  await sql`insert into public.organization_members (org_id, user_id, role)
            select ${org}::uuid, u, 'student'::public.org_role from unnest(${students}::uuid[]) u union all select ${org}::uuid, ${teacher}::uuid, 'teacher'`;
  await sql`insert into public.notification_preferences (org_id, user_id, type, channel, enabled)
            select ${org}, u, '*', 'email', false from unnest(${students}::uuid[]) u`;
}
log("organizations ready", { members: MEMBERS });

const authenticator = new URL(DB_URL);
authenticator.username = "authenticator";
authenticator.password = secrets.authenticatorPassword;
const api = postgres(authenticator.toString(), { max: 1, onnotice: () => {} });
const sendAsTeacher = (org: string, type: string, title: string) =>
  withRequestContext(
    api,
    { role: "authenticated", claims: { sub: teacher, role: "authenticated" } },
    (tx) =>
      tx<{ batch_id: string; created: number }[]>`select * from public.send_notification(${org}, ${type}, ${title}, 'Hello',
                                                                                         '{}'::jsonb, '{"role": "student"}'::jsonb)`,
  );

function connect(username: string, password: string, clientId?: string, url = MQTT_URL): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, { username, password, clientId, protocolVersion: 5, reconnectPeriod: 0, clean: true });
    c.once("connect", () => resolve(c));
    c.once("error", (e) => {
      c.end(true);
      reject(e);
    });
  });
}

/** The service's listener: every member's notification topic and the students' role topic, counting per key. */
const listener = await connect("service", secrets.serviceRoleKey);
const seen = new Map<string, number>();
// per audience message: when the first and the last student had it, the broker's fan-out and read checks
const fanout = new Map<string, { first: number; last: number }>();
const count = (key: string) => seen.set(key, (seen.get(key) ?? 0) + 1);
listener.on("message", (_topic, payload) => {
  const e = JSON.parse(payload.toString()) as { id: string; type: string };
  count(e.type === "announcement.broadcast" ? `listener:${e.id}` : e.type);
});
// QoS 0 to this one listener: a QoS 1 subscriber that falls behind 10,000 messages at once would
// hit the broker's per-client queue (max_queued_messages) and lose messages, which is not what is measured.
await listener.subscribeAsync(
  [
    `org/${recipientOrg}/users/+/notifications`,
    `org/${audienceOrg}/users/+/notifications`,
    `org/${audienceOrg}/roles/student/notifications`,
  ],
  { qos: 0 },
);

const own = process.env.BENCH_BROKER === "own" ? brokerInstance("bench-notify-broker", null, secrets, { plugin: {} }) : null;
const relay: MqttClient[] = [];
if (own) {
  await own.start();
  const [from, to] = await Promise.all([
    connect("service", secrets.serviceRoleKey),
    connect("service", secrets.serviceRoleKey, undefined, own.url),
  ]);
  relay.push(from, to);
  from.on("message", (topic, payload) => to.publish(topic, payload, { qos: 1 }));
  await from.subscribeAsync(`org/${audienceOrg}/roles/student/notifications`, { qos: 1 });
}

/** Students signed in with their own access tokens, on their role's topic (QoS 1, as the client library subscribes). */
const config = loadProjectConfig(paths.supabase);
const subscribers: MqttClient[] = [];
for (let i = 0; i < SUBSCRIBERS; i += 50) {
  subscribers.push(
    ...await Promise.all(
      students.slice(i, Math.min(i + 50, SUBSCRIBERS)).map(async (id) => {
        const { token } = await mintAccessToken(sql, projectSigner(config, secrets.jwtSecret), config, {
          userId: id,
          supabaseUrl: `http://${HOST}:${PORTS.gateway}`,
        });
        const c = await connect("user", token, `${id}-bench-${suffix}`, own?.url);
        c.on("message", (_t, payload) => {
          const id = (JSON.parse(payload.toString()) as { id: string }).id;
          count(`student:${id}`);
          const at = performance.now();
          fanout.set(id, { first: fanout.get(id)?.first ?? at, last: at });
        });
        const [granted] = await c.subscribeAsync(`org/${audienceOrg}/roles/student/notifications`, { qos: 1 });
        if (granted.qos !== 1) {
          throw new Error(`the broker refused a student's subscription to their role's topic (reason ${granted.qos})`);
        }
        return c;
      }),
    ),
  );
}
log("subscribers ready", { subscribers: SUBSCRIBERS, broker: own ? "own" : "stack" });
let lastAudienceAt = 0;

const waitFor = async (what: string, done: () => Promise<boolean> | boolean, t0: number) => {
  let last = 0;
  while (!(await done())) {
    if (performance.now() - t0 > TIMEOUT_MS) throw new Error(`timed out waiting for ${what}`);
    if (performance.now() - last > 2000) {
      last = performance.now();
      log("waiting", { for: what, elapsed_ms: Math.round(performance.now() - t0) });
    }
    await new Promise((r) => setTimeout(r, 10));
  }
};

/** Raw mqtt.js: MEMBERS QoS 1 envelopes to the members' topics, all in flight at once. */
async function raw(round: number) {
  const pub = await connect("service", secrets!.serviceRoleKey);
  const type = `bench.raw_${round}`;
  const t0 = performance.now();
  await Promise.all(students.map((u) =>
    pub.publishAsync(
      `org/${audienceOrg}/users/${u}/notifications`,
      JSON.stringify({
        v: 1,
        id: crypto.randomUUID(),
        ts: new Date().toISOString(),
        type,
        org_id: audienceOrg,
        correlation_id: "bench",
        data: { title: "Raw" },
      }),
      { qos: 1 },
    )
  ));
  await waitFor("raw messages to arrive", () => seen.get(type) === MEMBERS, t0);
  const ms = performance.now() - t0;
  await pub.endAsync();
  return ms;
}

// Each audience send takes MEMBERS from the organization's budget, 60,000 a minute (enterprise):
// one that does not fit goes per recipient instead, so a round's two sends wait for a minute with room.
const ORG_PER_MINUTE = 60_000;
const taken = new Map<number, number>();
const minute = () => Math.floor(Date.now() / 60_000);
async function roomForSends(n: number) {
  while ((taken.get(minute()) ?? 0) + n * MEMBERS > ORG_PER_MINUTE) {
    await new Promise((r) => setTimeout(r, 60_000 - (Date.now() % 60_000) + 50));
  }
}

/** Audience delivery: the RPC, then the audience delivery recorded and its one message at every subscriber. */
async function audience(round: number) {
  const sentIn = minute();
  const t0 = performance.now();
  const [batch] = await sendAsTeacher(audienceOrg, "announcement.broadcast", `Broadcast ${round}`);
  const rpcMs = performance.now() - t0;
  if (batch.created !== MEMBERS) throw new Error(`expected ${MEMBERS} notifications, got ${batch.created}`);
  await waitFor("the audience delivery to be recorded", async () => {
    const [row] = await sql<{ status: string }[]>`
      select status from public.notification_audience_deliveries where batch_id = ${batch.batch_id}`;
    if (row && row.status !== "pending" && row.status !== "sent") throw new Error(`the audience delivery went ${row.status}`);
    return row?.status === "sent";
  }, t0);
  const recordedMs = performance.now() - t0;
  await waitFor(
    "every subscriber to receive it",
    // at least: a publish dispatch retried (its broker slow to answer) arrives twice
    () => (seen.get(`student:${batch.batch_id}`) ?? 0) >= SUBSCRIBERS && (seen.get(`listener:${batch.batch_id}`) ?? 0) >= 1,
    t0,
  );
  lastAudienceAt = performance.now();
  for (const m of new Set([sentIn, minute()])) taken.set(m, (taken.get(m) ?? 0) + MEMBERS);
  const f = fanout.get(batch.batch_id)!;
  return { rpcMs, totalMs: Math.max(recordedMs, performance.now() - t0), fanoutMs: f.last - f.first };
}

/** Per recipient: the RPC, then every MQTT delivery recorded and received. */
async function perRecipient(round: number) {
  const t0 = performance.now();
  const [batch] = await sendAsTeacher(recipientOrg, "announcement.posted", `Bench ${round}`);
  const rpcMs = performance.now() - t0;
  if (batch.created !== MEMBERS) throw new Error(`expected ${MEMBERS} notifications, got ${batch.created}`);
  await waitFor("every MQTT delivery to be recorded", async () => {
    const [{ n }] = await sql<{ n: number }[]>`
      select count(*)::int as n from public.notification_deliveries d
      where d.batch_id = ${batch.batch_id} and d.channel = 'mqtt' and d.status = 'sent'`;
    return n === MEMBERS;
  }, t0);
  const recordedMs = performance.now() - t0;
  await waitFor("every message to arrive", () => (seen.get("announcement.posted") ?? 0) >= MEMBERS * round, t0);
  return { rpcMs, totalMs: Math.max(recordedMs, performance.now() - t0) };
}

try {
  const results: {
    raw: number;
    aRpc: number;
    aTotal: number;
    aWarm: number;
    aFanout: number;
    aWarmFanout: number;
    rRpc: number;
    rTotal: number;
  }[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const rawMs = await raw(r);
    const idle = lastAudienceAt && CACHE_SECONDS * 1000 + 1000 - (performance.now() - lastAudienceAt);
    if (idle > 0) await new Promise((res) => setTimeout(res, idle)); // the students' read answers expire
    await roomForSends(2);
    const a = await audience(r);
    const warm = await audience(r + 0.5);
    const p = await perRecipient(r);
    results.push({
      raw: rawMs,
      aRpc: a.rpcMs,
      aTotal: a.totalMs,
      aWarm: warm.totalMs,
      aFanout: a.fanoutMs,
      aWarmFanout: warm.fanoutMs,
      rRpc: p.rpcMs,
      rTotal: p.totalMs,
    });
    log("round done", {
      round: r,
      of: ROUNDS,
      raw_ms: Math.round(rawMs),
      audience_rpc_ms: Math.round(a.rpcMs),
      audience_total_ms: Math.round(a.totalMs),
      audience_cold_after: r === 1 ? "the subscribes" : `${CACHE_SECONDS + 1} s without deliveries`,
      audience_warm_total_ms: Math.round(warm.totalMs),
      audience_fanout_ms: Math.round(a.fanoutMs),
      audience_warm_fanout_ms: Math.round(warm.fanoutMs),
      per_recipient_rpc_ms: Math.round(p.rpcMs),
      per_recipient_total_ms: Math.round(p.totalMs),
    });
  }
  const median = (k: keyof (typeof results)[number]) =>
    results.map((x) => x[k]).sort((a, b) => a - b)[Math.floor(results.length / 2)];
  const rawMs = median("raw");
  const rate = (ms: number) => MEMBERS / (ms / 1000);
  const row = (label: string, ms: number, perSecond = true) =>
    console.log(`${label.padEnd(44)}${ms.toFixed(0).padStart(8)}   ${perSecond ? rate(ms).toFixed(0).padStart(10) : ""}`);
  console.log(`\none notification to ${MEMBERS} students (median of ${ROUNDS} rounds)`);
  console.log(`${"".padEnd(44)}      ms     per second`);
  row("raw mqtt.js QoS 1 publishes", rawMs);
  row("audience: send_notification RPC", median("aRpc"), false);
  row(`audience: recorded, at ${SUBSCRIBERS} subscribers + listener`, median("aTotal"));
  row("audience, warm: the same at once after", median("aWarm"));
  row("audience: first to last student, cold", median("aFanout"), false);
  row("audience: first to last student, warm", median("aWarmFanout"), false);
  row("per recipient: send_notification RPC", median("rRpc"), false);
  row("per recipient: every delivery recorded", median("rTotal"));
  console.log(
    `\nratio=${(rawMs / median("aTotal")).toFixed(2)} total_ms=${
      median("aTotal").toFixed(0)
    } path=audience subscribers=${SUBSCRIBERS} ` +
      `ratio_per_recipient=${(rawMs / median("rTotal")).toFixed(2)} total_ms_per_recipient=${
        median("rTotal").toFixed(0)
      } raw_ms=${rawMs.toFixed(0)} cold_ms_${SUBSCRIBERS}=${median("aTotal").toFixed(0)} warm_ms_${SUBSCRIBERS}=${
        median("aWarm").toFixed(0)
      } cold_fanout_ms=${median("aFanout").toFixed(0)} warm_fanout_ms=${median("aWarmFanout").toFixed(0)}`,
  );
} finally {
  await Promise.allSettled([listener.endAsync(), ...relay.map((c) => c.endAsync()), ...subscribers.map((c) => c.endAsync())]);
  await own?.stop();
  await api.end();
  await sql`update public.organizations set deleted_at = now() where id in (${audienceOrg}, ${recipientOrg})`;
  await sql`delete from public.organization_members where org_id in (${audienceOrg}, ${recipientOrg})`;
  await sql`delete from auth.users where id = any(${[teacher, ...students]}::uuid[])`;
  await sql.end();
}
