// npm run bench:notify: one notification to an organization of 10,000 students, sent by a teacher
// through the send_notification RPC (in the request context PostgREST sets up, as `authenticator`,
// the connection PostgREST uses), each path against a floor doing the same work by hand, in the
// same run, timed until the same end result:
// - audience (`ratio`): announcement.broadcast, the 10,000 inbox rows written and one message on
//   the students' role topic that the broker fans out. Its floor: a plain INSERT ... SELECT of the
//   same 10,000 rows into a copy of the inbox table (same columns, checks, indexes and durability;
//   no triggers, foreign keys or policies) and one QoS 1 publish on the same topic by the service.
//   Both are timed until every connected student has the message (and, for the path, the audience
//   delivery is recorded as sent).
// - per recipient (`ratio_per_recipient`): announcement.posted, a notification and an MQTT
//   delivery row per student, a message on each student's own topic, each delivery recorded. Its
//   floor: plain inserts of the same notification and delivery rows into copies of the tables,
//   10,000 QoS 1 publishes to the students' topics, and the one UPDATE recording them as sent. Both
//   are timed until every delivery is recorded and every connected student has their message.
// The connected students (BENCH_SUBSCRIBERS, default 200 then 2,000) sign in with their own access
// tokens and subscribe to their role's topic and their own, so the broker's read checks are paid
// on both sides of each ratio. The broker caches each read answer for cache_seconds: a cold round
// is the first publish after the subscribes, or after cache_seconds without deliveries; a warm one
// follows at once. Path and floor alternate which goes first. Each path has its own organization of
// the same students, so neither spends the other's budget; e-mail is off for the students.
// Last line: ratio=<audience floor / path, cold, at the largest subscriber count>
//   ratio_per_recipient=<…> cold_ms_<n>= warm_ms_<n>= (the audience path) floor_ms=<audience
//   floor, cold> subscribers=<n>, then the same figures for the smaller count and the load average.
import crypto from "node:crypto";
import os from "node:os";
import mqtt, { type MqttClient } from "mqtt";
import postgres from "postgres";
import { DB_URL, HOST, paths, PORTS } from "../dev/stack/config.ts";
import { readSecrets } from "../dev/stack/secrets.ts";
import { loadProjectConfig } from "../dev/platform/project-config.ts";
import { mintAccessToken } from "../dev/platform/auth/tokens.ts";
import { projectSigner } from "../dev/platform/auth/signing-keys.ts";
import { withRequestContext } from "../supabase/functions/_shared/db.ts";

const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 10_000);
const SIZES = (process.env.BENCH_SUBSCRIBERS ?? "200,2000").split(",").map(Number).filter((n) => n > 0)
  .map((n) => Math.min(n, MEMBERS)).sort((a, b) => a - b);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TIMEOUT_MS = Number(process.env.BENCH_TIMEOUT_MS ?? 300_000);
const CACHE_SECONDS = 5; // plugin_opt_cache_seconds in broker/mosquitto.conf
const log = (msg: string, f: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ ts: new Date().toISOString(), component: "bench:notify", msg, ...f }));

const secrets = readSecrets();
if (!secrets) throw new Error("start the stack first: npm start");
const sql = postgres(DB_URL, { max: 2, onnotice: () => {} });
const MQTT_URL = `mqtt://${HOST}:${PORTS.mqtt}`;

// Two enterprise organizations of the same MEMBERS students and a teacher: one per path.
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
// The floors' tables: the same columns, checks, defaults and indexes, logged like the real ones,
// in a schema of the bench's own that no API role can reach (a copy of the inbox in public would
// be exposed through PostgREST without RLS while the bench runs).
const floorSchema = `bench_notify_${suffix}`;
const floorNotifications = `${floorSchema}.notifications`;
const floorDeliveries = `${floorSchema}.deliveries`;
await sql.unsafe(`create schema ${floorSchema}`);
await sql.unsafe(`revoke all on schema ${floorSchema} from public`);
await sql.unsafe(`create table ${floorNotifications} (like public.notifications including all)`);
await sql.unsafe(`create table ${floorDeliveries} (like public.notification_deliveries including all)`);
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

function connect(username: string, password: string, clientId?: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(MQTT_URL, { username, password, clientId, protocolVersion: 5, reconnectPeriod: 0, clean: true });
    c.once("connect", () => resolve(c));
    c.once("error", (e) => {
      c.end(true);
      reject(e);
    });
  });
}

// Per message title (each send's is its own): how many connected students have it.
const received = new Map<string, number>();
const publisher = await connect("service", secrets.serviceRoleKey);

/** Connected students, each on their role's topic and their own (QoS 1, as the client library subscribes). */
const config = loadProjectConfig(paths.supabase);
const subscribers: MqttClient[] = [];
async function connectStudents(upTo: number) {
  for (let i = subscribers.length; i < upTo; i += 50) {
    subscribers.push(
      ...await Promise.all(
        students.slice(i, Math.min(i + 50, upTo)).map(async (id) => {
          const { token } = await mintAccessToken(sql, projectSigner(config, secrets!.jwtSecret), config, {
            userId: id,
            supabaseUrl: `http://${HOST}:${PORTS.gateway}`,
          });
          const c = await connect("user", token, `${id}-bench-${suffix}`);
          c.on("message", (_t, payload) => {
            const key = (JSON.parse(payload.toString()) as { data?: { title?: string } }).data?.title ?? "";
            received.set(key, (received.get(key) ?? 0) + 1);
          });
          const granted = await c.subscribeAsync([
            `org/${audienceOrg}/roles/student/notifications`,
            `org/${recipientOrg}/users/${id}/notifications`,
          ], { qos: 1 });
          if (granted.some((g) => g.qos !== 1)) {
            throw new Error("the broker refused a student's subscription to their own topics");
          }
          return c;
        }),
      ),
    );
  }
}

const waitFor = async (what: string, done: () => Promise<boolean> | boolean, t0: number) => {
  let last = 0;
  while (!(await done())) {
    if (performance.now() - t0 > TIMEOUT_MS) throw new Error(`timed out waiting for ${what}`);
    if (performance.now() - last > 2000) {
      last = performance.now();
      log("waiting", { for: what, elapsed_ms: Math.round(performance.now() - t0) });
    }
    await new Promise((r) => setTimeout(r, 5));
  }
};
const allConnectedHave = (key: string) => (received.get(key) ?? 0) >= subscribers.length;

let lastDeliveryAt = 0;
/** Waits until the broker's cached read answers have expired: the next publish is cold. */
async function coolDown() {
  const idle = lastDeliveryAt && CACHE_SECONDS * 1000 + 1000 - (performance.now() - lastDeliveryAt);
  if (idle > 0) await new Promise((r) => setTimeout(r, idle));
}
const done = <T>(value: T) => {
  lastDeliveryAt = performance.now();
  return value;
};

// Each audience send takes from the organization's per-minute budget (enterprise: 60,000): sends
// that do not fit would go out per recipient instead, so a round waits for a minute with room.
const ORG_PER_MINUTE = 60_000;
const taken = new Map<number, number>();
const minute = () => Math.floor(Date.now() / 60_000);
async function roomFor(cost: number) {
  while ((taken.get(minute()) ?? 0) + cost > ORG_PER_MINUTE) {
    await new Promise((r) => setTimeout(r, 60_000 - (Date.now() % 60_000) + 50));
  }
  taken.set(minute(), (taken.get(minute()) ?? 0) + cost);
}

/** The audience path: the RPC, the delivery recorded as sent, the message at every connected student. */
async function audiencePath(label: string) {
  await roomFor(MEMBERS);
  const t0 = performance.now();
  const [batch] = await sendAsTeacher(audienceOrg, "announcement.broadcast", label);
  const sentAt = performance.now();
  if (batch.created !== MEMBERS) throw new Error(`expected ${MEMBERS} notifications, got ${batch.created}`);
  await waitFor("the audience delivery to be recorded", async () => {
    const [row] = await sql<{ status: string }[]>`
      select status from public.notification_audience_deliveries where batch_id = ${batch.batch_id}`;
    if (row && row.status !== "pending" && row.status !== "sent") throw new Error(`the audience delivery went ${row.status}`);
    return row?.status === "sent";
  }, t0);
  const recordedAt = performance.now();
  await waitFor("every connected student to have it", () => allConnectedHave(label), t0);
  // where the path's time goes: the send (app.notify and its commit), then dispatch until the
  // delivery is recorded, then until the last connected student has it
  log("audience path", {
    send_ms: Math.round(sentAt - t0),
    recorded_ms: Math.round(recordedAt - t0),
    delivered_ms: Math.round(performance.now() - t0),
  });
  return done(performance.now() - t0);
}

const envelope = (id: string, org: string, type: string, title: string) =>
  JSON.stringify({
    v: 1,
    id,
    ts: new Date().toISOString(),
    type,
    org_id: org,
    correlation_id: "bench",
    data: { title, body: "Hello" },
  });

/** The audience floor: the same inbox rows by one INSERT ... SELECT, one QoS 1 publish on the role topic. */
async function audienceFloor() {
  const id = crypto.randomUUID(), title = `floor ${id}`;
  const t0 = performance.now();
  await sql.unsafe(
    `insert into ${floorNotifications} (org_id, recipient_id, batch_id, type, title, body, priority, created_by)
     select $1, u, $2, 'announcement.broadcast', $3, 'Hello', 'normal', $4 from unnest($5::uuid[]) u`,
    [audienceOrg, id, title, teacher, students],
  );
  const insertedAt = performance.now();
  await publisher.publishAsync(
    `org/${audienceOrg}/roles/student/notifications`,
    envelope(id, audienceOrg, "announcement.broadcast", title),
    { qos: 1 },
  );
  const publishedAt = performance.now();
  await waitFor("every connected student to have the floor's message", () => allConnectedHave(title), t0);
  log("audience floor", {
    insert_ms: Math.round(insertedAt - t0),
    published_ms: Math.round(publishedAt - t0),
    delivered_ms: Math.round(performance.now() - t0),
  });
  return done(performance.now() - t0);
}

/** The per-recipient path: the RPC, every MQTT delivery recorded as sent, every connected student's message. */
async function perRecipientPath(label: string) {
  const t0 = performance.now();
  const [batch] = await sendAsTeacher(recipientOrg, "announcement.posted", label);
  if (batch.created !== MEMBERS) throw new Error(`expected ${MEMBERS} notifications, got ${batch.created}`);
  await waitFor("every MQTT delivery to be recorded", async () => {
    const [{ n }] = await sql<{ n: number }[]>`
      select count(*)::int as n from public.notification_deliveries d
      where d.batch_id = ${batch.batch_id} and d.channel = 'mqtt' and d.status = 'sent'`;
    return n === MEMBERS;
  }, t0);
  await waitFor("every connected student to have theirs", () => allConnectedHave(label), t0);
  return done(performance.now() - t0);
}

/** The per-recipient floor: plain inserts of both kinds of row, a publish per student, one UPDATE. */
async function perRecipientFloor() {
  const batchId = crypto.randomUUID(), title = `floor ${batchId}`;
  const t0 = performance.now();
  const rows = await sql.unsafe<{ id: string; recipient_id: string }[]>(
    `with n as (
       insert into ${floorNotifications} (org_id, recipient_id, batch_id, type, title, body, priority, created_by)
       select $1, u, $2, 'announcement.posted', $3, 'Hello', 'normal', $4 from unnest($5::uuid[]) u
       returning id, recipient_id)
     , d as (insert into ${floorDeliveries} (notification_id, org_id, channel, batch_id) select id, $1, 'mqtt', $2 from n)
     select id, recipient_id from n`,
    [recipientOrg, batchId, title, teacher, students],
  );
  await Promise.all(rows.map((r) =>
    publisher.publishAsync(
      `org/${recipientOrg}/users/${r.recipient_id}/notifications`,
      envelope(r.id, recipientOrg, "announcement.posted", title),
      { qos: 1 },
    )
  ));
  await sql.unsafe(
    `update ${floorDeliveries} set status = 'sent', delivered_at = now(), attempts = attempts + 1
     where batch_id = $1 and channel = 'mqtt' and status = 'pending'`,
    [batchId],
  );
  await waitFor("every connected student to have the floor's message", () => allConnectedHave(title), t0);
  return done(performance.now() - t0);
}

type Round = {
  cold: number;
  warm: number;
  floorCold: number;
  floorWarm: number;
  perRecipient: number;
  perRecipientFloor: number;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const figures = new Map<number, Round>();
try {
  for (const size of SIZES) {
    await connectStudents(size);
    log("subscribers ready", { subscribers: subscribers.length });
    const rounds: Round[] = [];
    for (let r = 1; r <= ROUNDS; r++) {
      const pathFirst = r % 2 === 1;
      const round = {} as Round;
      for (const side of pathFirst ? ["path", "floor"] : ["floor", "path"]) {
        await coolDown();
        if (side === "path") {
          round.cold = await audiencePath(`Broadcast ${size}/${r}`);
          round.warm = await audiencePath(`Broadcast ${size}/${r}, warm`);
        } else {
          round.floorCold = await audienceFloor();
          round.floorWarm = await audienceFloor();
        }
      }
      for (const side of pathFirst ? ["path", "floor"] : ["floor", "path"]) {
        await coolDown();
        if (side === "path") round.perRecipient = await perRecipientPath(`Bench ${size}/${r}`);
        else round.perRecipientFloor = await perRecipientFloor();
      }
      rounds.push(round);
      log("round done", {
        subscribers: size,
        round: r,
        of: ROUNDS,
        ...Object.fromEntries(Object.entries(round).map(([k, v]) => [k, Math.round(v)])),
      });
    }
    const m = Object.fromEntries(
      (Object.keys(rounds[0]) as (keyof Round)[]).map((k) => [k, median(rounds.map((x) => x[k]))]),
    ) as Round;
    figures.set(size, m);
  }

  console.log(`\none notification to ${MEMBERS} students, median of ${ROUNDS} rounds (ms)`);
  console.log(`${"connected students".padEnd(52)}${SIZES.map((s) => String(s).padStart(8)).join("")}`);
  const row = (label: string, k: keyof Round) =>
    console.log(`${label.padEnd(52)}${SIZES.map((s) => figures.get(s)![k].toFixed(0).padStart(8)).join("")}`);
  row("audience path, cold", "cold");
  row("audience floor (INSERT ... SELECT + 1 publish), cold", "floorCold");
  row("audience path, warm", "warm");
  row("audience floor, warm", "floorWarm");
  row("per-recipient path, cold", "perRecipient");
  row("per-recipient floor (inserts, publishes, UPDATE)", "perRecipientFloor");
  const line = (size: number, named: boolean) => {
    const f = figures.get(size)!;
    const head = named
      ? `ratio=${(f.floorCold / f.cold).toFixed(2)} ratio_per_recipient=${(f.perRecipientFloor / f.perRecipient).toFixed(2)} `
      : `ratio_${size}=${(f.floorCold / f.cold).toFixed(2)} ratio_per_recipient_${size}=${
        (f.perRecipientFloor / f.perRecipient).toFixed(2)
      } `;
    return head + `cold_ms_${size}=${f.cold.toFixed(0)} warm_ms_${size}=${f.warm.toFixed(0)} ` +
      (named ? `floor_ms=${f.floorCold.toFixed(0)} subscribers=${size}` : `floor_ms_${size}=${f.floorCold.toFixed(0)}`);
  };
  const largest = SIZES[SIZES.length - 1];
  console.log(
    `\n${[line(largest, true), ...SIZES.slice(0, -1).map((s) => line(s, false))].join(" ")} load=${os.loadavg()[0].toFixed(2)}`,
  );
} finally {
  await Promise.allSettled([publisher.endAsync(), ...subscribers.map((c) => c.endAsync())]);
  await api.end();
  await sql.unsafe(`drop schema if exists ${floorSchema} cascade`);
  await sql`update public.organizations set deleted_at = now() where id in (${audienceOrg}, ${recipientOrg})`;
  await sql`delete from public.organization_members where org_id in (${audienceOrg}, ${recipientOrg})`;
  await sql`delete from auth.users where id = any(${[teacher, ...students]}::uuid[])`;
  await sql.end();
}
