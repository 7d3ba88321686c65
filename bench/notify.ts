// npm run bench:notify: one notification to an organization of 10,000 members, sent by a teacher
// through the send_notification RPC (in the request context PostgREST would set up, as the
// `authenticator` role; the local stack has no PostgREST): the time until every MQTT
// delivery is recorded as sent (the in-app delivery is the row itself, recorded when the RPC
// returns) and every message has reached a subscriber, and deliveries per second; next to raw
// mqtt.js publishing of the same number of QoS 1 messages to the same broker and topics, in the
// same run. E-mail is switched off for the members (a '*' preference): it goes out from the
// worker later and is not what this measures.
import crypto from "node:crypto";
import mqtt, { type MqttClient } from "mqtt";
import postgres from "postgres";
import { DB_URL, HOST, PORTS } from "../dev/stack/config.ts";
import { readSecrets } from "../dev/stack/secrets.ts";
import { withRequestContext } from "../supabase/functions/_shared/db.ts";

const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TIMEOUT_MS = Number(process.env.BENCH_TIMEOUT_MS ?? 300_000);
const log = (msg: string, f: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ ts: new Date().toISOString(), component: "bench:notify", msg, ...f }));

const secrets = readSecrets();
if (!secrets) throw new Error("start the stack first: npm start");
const sql = postgres(DB_URL, { max: 2, onnotice: () => {} });
const MQTT_URL = `mqtt://${HOST}:${PORTS.mqtt}`;

// An enterprise organization (its tier allows 60,000 notifications a minute) of MEMBERS students and a teacher
const suffix = crypto.randomUUID().slice(0, 8);
const teacher = crypto.randomUUID();
const [org] =
  await sql`insert into public.organizations (name, slug, tier) values ('Notify bench', ${`bench-notify-${suffix}`}, 'enterprise') returning id`;
const students = (await sql<{ id: string }[]>`
  insert into auth.users (id, aud, role, email, email_confirmed_at)
  select gen_random_uuid(), 'authenticated', 'authenticated', 'bench-' || ${suffix} || '-' || i || '@bench.local', now()
  from generate_series(1, ${MEMBERS}) i returning id`).map((r) => r.id);
await sql`insert into auth.users (id, aud, role, email, email_confirmed_at) values (${teacher}, 'authenticated', 'authenticated', ${`${teacher}@bench.local`}, now())`;
await sql`insert into public.organization_members (org_id, user_id, role)
          select ${org.id}::uuid, u, 'student'::public.org_role from unnest(${students}::uuid[]) u union all select ${org.id}::uuid, ${teacher}::uuid, 'teacher'`;
await sql`insert into public.notification_preferences (org_id, user_id, type, channel, enabled)
          select ${org.id}, u, '*', 'email', false from unnest(${students}::uuid[]) u`;
log("organization ready", { members: MEMBERS });

const authenticator = new URL(DB_URL);
authenticator.username = "authenticator";
authenticator.password = secrets.authenticatorPassword;
const api = postgres(authenticator.toString(), { max: 1, onnotice: () => {} });
const sendAsTeacher = (title: string) =>
  withRequestContext(
    api,
    { role: "authenticated", claims: { sub: teacher, role: "authenticated" } },
    (tx) =>
      tx<
        { batch_id: string; created: number }[]
      >`select * from public.send_notification(${org.id}, 'announcement.posted', ${title}, 'Hello',
                                                    '{}'::jsonb, '{"role": "student"}'::jsonb)`,
  );

function connect(): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(MQTT_URL, {
      username: "service",
      password: secrets!.serviceRoleKey,
      protocolVersion: 5,
      reconnectPeriod: 0,
      clean: true,
    });
    c.once("connect", () => resolve(c));
    c.once("error", (e) => {
      c.end(true);
      reject(e);
    });
  });
}

/** A subscriber to every member's notification topic in the organization, counting per round. */
const listener = await connect();
const seen = new Map<string, number>();
listener.on("message", (_topic, payload) => {
  const type = (JSON.parse(payload.toString()) as { type: string }).type;
  seen.set(type, (seen.get(type) ?? 0) + 1);
});
// QoS 0 to this one listener: a QoS 1 subscriber that falls behind 10,000 messages at once would
// hit the broker's per-client queue (max_queued_messages) and lose messages, which is not what is measured.
await listener.subscribeAsync(`org/${org.id}/users/+/notifications`, { qos: 0 });
const waitFor = async (what: string, done: () => Promise<boolean> | boolean, t0: number) => {
  let last = 0;
  while (!(await done())) {
    if (performance.now() - t0 > TIMEOUT_MS) throw new Error(`timed out waiting for ${what}`);
    if (performance.now() - last > 2000) {
      last = performance.now();
      log("waiting", { for: what, elapsed_ms: Math.round(performance.now() - t0), received: [...seen.entries()] });
    }
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** Raw mqtt.js: the same number of QoS 1 envelopes to the same topics, all in flight at once. */
async function raw(round: number) {
  const pub = await connect();
  const type = `bench.raw_${round}`;
  const t0 = performance.now();
  await Promise.all(students.map((u) =>
    pub.publishAsync(
      `org/${org.id}/users/${u}/notifications`,
      JSON.stringify({
        v: 1,
        id: crypto.randomUUID(),
        ts: new Date().toISOString(),
        type,
        org_id: org.id,
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

/** The backend: the RPC, then every MQTT delivery recorded and received. */
async function notify(round: number) {
  const title = `Bench ${round}`;
  const t0 = performance.now();
  const [batch] = await sendAsTeacher(title);
  const rpcMs = performance.now() - t0;
  if (batch.created !== MEMBERS) throw new Error(`expected ${MEMBERS} notifications, got ${batch.created}`);
  await waitFor("every MQTT delivery to be recorded", async () => {
    const [{ n }] = await sql<
      { n: number }[]
    >`select count(*)::int as n from public.notification_deliveries d join public.notifications x on x.id = d.notification_id
                                                where x.batch_id = ${batch.batch_id} and d.channel = 'mqtt' and d.status = 'sent'`;
    return n === MEMBERS;
  }, t0);
  const recordedMs = performance.now() - t0;
  await waitFor("every message to arrive", () => seen.get("announcement.posted") === MEMBERS * round, t0);
  return { rpcMs, recordedMs, totalMs: performance.now() - t0 };
}

try {
  const results: { raw: number; rpc: number; total: number }[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    const rawMs = await raw(r);
    const n = await notify(r);
    results.push({ raw: rawMs, rpc: n.rpcMs, total: Math.max(n.recordedMs, n.totalMs) });
    log("round done", {
      round: r,
      of: ROUNDS,
      raw_ms: Math.round(rawMs),
      rpc_ms: Math.round(n.rpcMs),
      recorded_ms: Math.round(n.recordedMs),
      total_ms: Math.round(n.totalMs),
    });
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const [rawMs, rpcMs, totalMs] = [
    median(results.map((x) => x.raw)),
    median(results.map((x) => x.rpc)),
    median(results.map((x) => x.total)),
  ];
  const rawRate = MEMBERS / (rawMs / 1000);
  const rate = MEMBERS / (totalMs / 1000);
  console.log(`\none notification to ${MEMBERS} members (median of ${ROUNDS} rounds)`);
  console.log(`                                   ms     per second`);
  console.log(`raw mqtt.js QoS 1 publishes  ${rawMs.toFixed(0).padStart(8)}   ${rawRate.toFixed(0).padStart(10)}`);
  console.log(`send_notification RPC        ${rpcMs.toFixed(0).padStart(8)}              (fan-out: ${MEMBERS} rows in-app)`);
  console.log(`every delivery recorded      ${totalMs.toFixed(0).padStart(8)}   ${rate.toFixed(0).padStart(10)}\n`);
  console.log(`ratio=${(rate / rawRate).toFixed(2)} total_ms=${totalMs.toFixed(0)}`);
} finally {
  await listener.endAsync();
  await api.end();
  await sql`update public.organizations set deleted_at = now() where id = ${org.id}`;
  await sql`delete from public.organization_members where org_id = ${org.id}`;
  await sql`delete from auth.users where id = any(${[teacher, ...students]}::uuid[])`;
  await sql.end();
}
