// npm run bench:mqtt: the Postgres-backed plugin against Mosquitto's own static password_file and
// acl_file for the same users and topics, in the same run, each broker on its own ports.
//   throughput: a teacher publishes N QoS 0 messages to an exercise's control topic, S students
//     receive them (one ACL WRITE check per publish, one READ check per delivery); messages/s from
//     the first publish to the last delivery, median of the rounds
//   connect: sequential connects of one student to CONNACK (the plugin verifies the token and asks
//     Postgres whether the user may connect), p50/p95 after a warm-up
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import mqtt, { type MqttClient } from "mqtt";
import postgres from "postgres";
import { type BrokerInstance, brokerInstance } from "../dev/stack/broker-instance.ts";
import { DB_URL, STATE } from "../dev/stack/config.ts";
import { loadProjectConfig } from "../dev/platform/project-config.ts";
import { mintAccessToken } from "../dev/platform/auth/tokens.ts";
import { projectSigner } from "../dev/platform/auth/signing-keys.ts";
import { readSecrets } from "../dev/stack/secrets.ts";
import { paths } from "../dev/stack/config.ts";
import { execFileSync } from "node:child_process";
import { fmt, summarize } from "./stats.ts";
import { defaultClientId } from "../supabase/functions/_shared/realtime/client.ts";

const N = Number(process.env.BENCH_MESSAGES ?? 20000);
const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONNECTS = Number(process.env.BENCH_CONNECTS ?? 300);
const log = (msg: string, f: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ ts: new Date().toISOString(), component: "bench:mqtt", msg, ...f }));

const secrets = readSecrets();
if (!secrets) throw new Error("start the stack first: npm start");
const sql = postgres(DB_URL, { max: 2, onnotice: () => {} });

// The same people and topics for both brokers
const suffix = crypto.randomUUID().slice(0, 8);
const ids = { teacher: crypto.randomUUID(), students: Array.from({ length: SUBSCRIBERS }, () => crypto.randomUUID()) };
const [org] =
  await sql`insert into public.organizations (name, slug) values ('MQTT bench', ${`bench-mqtt-${suffix}`}) returning id`;
for (const id of [ids.teacher, ...ids.students]) {
  await sql`insert into auth.users (id, aud, role, email, email_confirmed_at) values (${id}, 'authenticated', 'authenticated', ${`${id}@bench.local`}, now())`;
}
await sql`insert into public.organization_members (org_id, user_id, role)
          select ${org.id}, u, case when u = ${ids.teacher}::uuid then 'teacher' else 'student' end::public.org_role
          from unnest(${[ids.teacher, ...ids.students]}::uuid[]) u`;
const [exercise] = await sql`insert into public.exercises (org_id, title) values (${org.id}, 'Bench') returning id`;
const topic = `org/${org.id}/exercise/${exercise.id}/control`;

const config = loadProjectConfig(paths.supabase);
const token = async (userId: string) =>
  (await mintAccessToken(sql, projectSigner(config, secrets.jwtSecret), config, { userId, expiresIn: 3600 })).token;
const pluginCreds = { teacher: await token(ids.teacher), students: await Promise.all(ids.students.map(token)) };

// Static baseline: a password and an ACL line per user, for the same topic
const staticDir = path.join(STATE, "bench-mqtt-static-files");
fs.mkdirSync(staticDir, { recursive: true });
const passwordFile = path.join(staticDir, "passwords");
const aclFile = path.join(staticDir, "acl");
const staticPassword = crypto.randomBytes(12).toString("base64url");
fs.writeFileSync(passwordFile, "");
for (const id of [ids.teacher, ...ids.students]) execFileSync("mosquitto_passwd", ["-b", passwordFile, id, staticPassword]);
fs.writeFileSync(
  aclFile,
  [`user ${ids.teacher}`, `topic readwrite ${topic}`, ...ids.students.flatMap((id) => [`user ${id}`, `topic read ${topic}`])]
    .join("\n") + "\n",
);
fs.chmodSync(passwordFile, 0o600);

// BENCH_CACHE_SECONDS=0 shows what the cache is worth: every check then asks Postgres.
const cacheSeconds = process.env.BENCH_CACHE_SECONDS;
const plugin = brokerInstance("bench-mqtt-plugin", null, secrets, {
  plugin: cacheSeconds === undefined ? {} : { cache_seconds: Number(cacheSeconds) },
});
const baseline = brokerInstance("bench-mqtt-static", null, secrets, { passwordFile, aclFile });
type Side = { name: string; broker: BrokerInstance; cred: (who: "teacher" | number) => { username: string; password: string } };
const sides: Side[] = [
  {
    name: "static",
    broker: baseline,
    cred: (w) => ({ username: w === "teacher" ? ids.teacher : ids.students[w], password: staticPassword }),
  },
  {
    name: "plugin",
    broker: plugin,
    cred: (w) => ({ username: "bench", password: w === "teacher" ? pluginCreds.teacher : pluginCreds.students[w] }),
  },
];

function connect(url: string, cred: { username: string; password: string }): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    // a user's client id starts with their id: the broker refuses any other
    const c = mqtt.connect(url, {
      ...cred,
      clientId: defaultClientId(cred.password),
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

async function throughput(side: Side) {
  const subs = await Promise.all(ids.students.map((_, i) => connect(side.broker.url, side.cred(i))));
  let received = 0;
  for (const s of subs) {
    s.on("message", () => received++);
    await s.subscribeAsync(topic, { qos: 0 });
  }
  const pub = await connect(side.broker.url, side.cred("teacher"));
  const payload = JSON.stringify({
    v: 1,
    id: crypto.randomUUID(),
    ts: new Date().toISOString(),
    type: "bench.tick",
    org_id: org.id,
    correlation_id: "bench",
    data: {},
  });
  const expected = N * subs.length;
  const started = performance.now();
  for (let i = 0; i < N; i++) {
    pub.publish(topic, payload, { qos: 0 });
    if (i % 500 === 499) await new Promise((r) => setImmediate(r)); // let the socket drain
  }
  const deadline = Date.now() + 60_000;
  while (received < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  const seconds = (performance.now() - started) / 1000;
  await Promise.all([pub, ...subs].map((c) => c.endAsync()));
  if (received < expected) log("deliveries missing", { side: side.name, received, expected });
  return received / subs.length / seconds; // messages per second, each delivered to every subscriber
}

async function connectTimes(side: Side) {
  const times: number[] = [];
  for (let i = 0; i < CONNECTS + 20; i++) {
    const t = performance.now();
    const c = await connect(side.broker.url, side.cred(i % SUBSCRIBERS));
    if (i >= 20) times.push(performance.now() - t); // the first ones warm the cache and the connections
    await c.endAsync();
  }
  return summarize(times);
}

try {
  await Promise.all(sides.map((s) => s.broker.start()));
  log("brokers up", { messages: N, subscribers: SUBSCRIBERS, rounds: ROUNDS });
  const rates: Record<string, number[]> = { static: [], plugin: [] };
  for (const s of sides) await throughput(s); // warm-up
  for (let r = 1; r <= ROUNDS; r++) {
    for (const s of sides) rates[s.name].push(await throughput(s));
    log("round done", {
      round: r,
      of: ROUNDS,
      static_msgs_per_s: Math.round(rates.static.at(-1)!),
      plugin_msgs_per_s: Math.round(rates.plugin.at(-1)!),
    });
  }
  const conn = { static: await connectTimes(sides[0]), plugin: await connectTimes(sides[1]) };
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const [st, pl] = [median(rates.static), median(rates.plugin)];
  console.log(
    `\n${N} QoS 0 messages to ${SUBSCRIBERS} subscribers per round (median of ${ROUNDS}); ${CONNECTS} sequential connects`,
  );
  console.log(`                  msgs/s   deliveries/s   connect p50 ms   p95 ms`);
  console.log(
    `static files   ${st.toFixed(0).padStart(8)}   ${(st * SUBSCRIBERS).toFixed(0).padStart(12)}   ${
      fmt(conn.static.p50).padStart(14)
    }   ${fmt(conn.static.p95)}`,
  );
  console.log(
    `plugin         ${pl.toFixed(0).padStart(8)}   ${(pl * SUBSCRIBERS).toFixed(0).padStart(12)}   ${
      fmt(conn.plugin.p50).padStart(14)
    }   ${fmt(conn.plugin.p95)}\n`,
  );
  console.log(`ratio=${(pl / st).toFixed(2)} connect_p95_ms=${fmt(conn.plugin.p95)}`);
} finally {
  await Promise.all(sides.map((s) => s.broker.stop()));
  await sql`update public.organizations set deleted_at = now() where id = ${org.id}`;
  await sql`delete from auth.users where id = any(${[ids.teacher, ...ids.students]}::uuid[])`;
  await sql.end();
}
