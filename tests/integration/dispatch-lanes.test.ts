// notification-dispatch works a large batch in lanes (chunks claimed, limited, published and
// recorded side by side) and may meet another dispatch of the same batch (the sweep, a retried
// webhook). Whatever the overlap, each recipient's message is published once and each delivery
// recorded once. The dispatcher runs here in-process against the stack's Postgres, Redis and
// broker; the batch is made with the insert trigger off, so the stack's own function does not race
// the lanes this test means to exercise.
import crypto from "node:crypto";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeEnvelope } from "../../supabase/functions/_shared/realtime/envelope.ts";
import { dispatchOnce, servicePublisher, stackRateLimiter } from "../helpers/dispatch.ts";
import { adminSql, apiSql, createUser, HOST, PORTS, secrets, waitUntil } from "../helpers/stack.ts";

const MEMBERS = 40;
const admin = adminSql();
const api = apiSql(8);
const publish = servicePublisher("dispatch-lanes-test");
const limiter = stackRateLimiter();
let org: string;
let listener: mqtt.MqttClient;
const received: string[] = [];

beforeAll(async () => {
  [{ id: org }] = await admin`insert into public.organizations (name, slug, tier)
                              values ('Lanes', ${`lanes-${crypto.randomUUID().slice(0, 8)}`}, 'enterprise') returning id`;
  const members = await Promise.all(Array.from({ length: MEMBERS }, () => createUser(admin)));
  await admin`insert into public.organization_members (org_id, user_id, role)
              select ${org}, u, 'student' from unnest(${members.map((m) => m.id)}::uuid[]) u`;
  listener = await mqtt.connectAsync(`mqtt://${HOST}:${PORTS.mqtt}`, {
    username: "service",
    password: secrets().serviceRoleKey,
    protocolVersion: 5,
    reconnectPeriod: 0,
  });
  listener.on("message", (_t, payload) => received.push((JSON.parse(payload.toString()) as { id: string }).id));
  await listener.subscribeAsync(`org/${org}/users/+/notifications`, { qos: 1 });
});
afterAll(async () => {
  await listener?.endAsync();
  await admin`update public.organizations set deleted_at = now() where id = ${org}`;
  await Promise.all([admin.end(), api.end()]);
});

/** A batch to every member, MQTT only, made without the trigger that would call the stack's dispatcher. */
async function makeBatch(title: string): Promise<string> {
  return await admin.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    const [{ batch_id }] =
      await tx`select batch_id from app.notify(${org}, 'invitation.sent', ${title}, '', '{}', '{"role": "student"}')`;
    return batch_id as string;
  });
}

const dispatch = (batchId: string, opts: { chunk: number; lanes: number }) =>
  dispatchOnce(batchId, { sql: api, publish, limiter, ...opts });

async function outcome(batchId: string) {
  const ids = (await admin<{ id: string }[]>`select id from public.notifications where batch_id = ${batchId}`).map((r) => r.id);
  const want = new Set(ids);
  await waitUntil("every message", async () => received.filter((id) => want.has(id)).length >= MEMBERS, 10_000, 50);
  // a duplicate would arrive before a sentinel sent after it on the dispatcher's connection
  // (Mosquitto routes one connection's messages to a subscriber in the order it received them)
  const sentinel = makeEnvelope({ type: "test.sentinel", org_id: org, data: {} });
  await publish(`org/${org}/users/${crypto.randomUUID()}/notifications`, sentinel);
  await waitUntil("the sentinel", () => Promise.resolve(received.includes(sentinel.id)), 5000, 20);
  const counts = new Map<string, number>();
  for (const id of received) if (want.has(id)) counts.set(id, (counts.get(id) ?? 0) + 1);
  const rows = await admin<{ status: string; attempts: number }[]>`
    select status, attempts from public.notification_deliveries where batch_id = ${batchId} and channel = 'mqtt'`;
  return { ids, counts, rows };
}

describe("dispatch lanes", () => {
  it("publishes each recipient's message once and records each delivery once, in lanes of small chunks", async () => {
    const batch = await makeBatch("Lanes");
    const res = await dispatch(batch, { chunk: 3, lanes: 4 });
    expect(await res.json()).toMatchObject({ mqtt_sent: MEMBERS, mqtt_retrying: 0, mqtt_deferred: 0 });
    const { ids, counts, rows } = await outcome(batch);
    expect(ids).toHaveLength(MEMBERS);
    expect([...counts.values()]).toEqual(Array(MEMBERS).fill(1));
    expect(rows.map((r) => ({ ...r }))).toEqual(Array(MEMBERS).fill({ status: "sent", attempts: 1 }));
  });

  it("two dispatches of the same batch at once share the work: still once each", async () => {
    const batch = await makeBatch("Twice");
    const answers = await Promise.all([dispatch(batch, { chunk: 2, lanes: 3 }), dispatch(batch, { chunk: 5, lanes: 2 })]);
    const sent = (await Promise.all(answers.map((r) => r.json()))).map((b) => (b as { mqtt_sent: number }).mqtt_sent);
    expect(sent[0] + sent[1]).toBe(MEMBERS);
    const { counts, rows } = await outcome(batch);
    expect([...counts.values()]).toEqual(Array(MEMBERS).fill(1));
    expect(rows.map((r) => ({ ...r }))).toEqual(Array(MEMBERS).fill({ status: "sent", attempts: 1 }));
  });
});
