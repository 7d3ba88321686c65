// notification-dispatch and audience delivery: a batch of an audience type sent to a role goes out
// as one message per role, recorded once, charged to the organization's budget and the role's own
// limit (not a key per recipient); it becomes per-recipient deliveries when the budget cannot take
// it or a recipient changed role since the send, and waits whole for the next minute when the role
// is over its limit; a broker away means a retry of the same message, not a loss. The dispatcher runs in-process against the stack's Postgres, Redis and
// broker; batches are made with the insert trigger off, so the stack's own function does not race
// what each test sets up. (notifications.test.ts covers the same path end to end from the RPC.)
import crypto from "node:crypto";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RateLimiter } from "../../supabase/functions/_shared/rate-limit.ts";
import { makeEnvelope } from "../../supabase/functions/_shared/realtime/envelope.ts";
import type { Publish } from "../../supabase/functions/_shared/realtime/publisher.ts";
import {
  PER_RECIPIENT_PER_MINUTE,
  recipientLimitKey,
  roleLimitKey,
} from "../../supabase/functions/notification-dispatch/dispatch.ts";
import { dispatchOnce, servicePublisher, stackRateLimiter } from "../helpers/dispatch.ts";
import { adminSql, apiSql, createUser, HOST, PORTS, secrets, waitUntil } from "../helpers/stack.ts";

const STUDENTS = 6;
const admin = adminSql();
const api = apiSql(4);
const publish = servicePublisher("audience-test");
// Each test's own key prefix: limits taken here do not reach the stack's or another test's.
const freshLimiter = () => stackRateLimiter(`rl-audience-${crypto.randomUUID().slice(0, 8)}`);
let org: string, teacher: string;
let students: string[];
let listener: mqtt.MqttClient;
const received: { topic: string; id: string; batch_id?: string }[] = [];

beforeAll(async () => {
  [{ id: org }] = await admin`insert into public.organizations (name, slug, tier)
                              values ('Audience', ${`audience-${crypto.randomUUID().slice(0, 8)}`}, 'enterprise') returning id`;
  students = (await Promise.all(Array.from({ length: STUDENTS }, () => createUser(admin)))).map((u) => u.id);
  teacher = (await createUser(admin)).id;
  await admin`insert into public.organization_members (org_id, user_id, role)
              select ${org}::uuid, u, 'student'::public.org_role from unnest(${students}::uuid[]) u
              union all select ${org}::uuid, ${teacher}::uuid, 'teacher'`;
  listener = await mqtt.connectAsync(`mqtt://${HOST}:${PORTS.mqtt}`, {
    username: "service",
    password: secrets().serviceRoleKey,
    protocolVersion: 5,
    reconnectPeriod: 0,
  });
  listener.on("message", (topic, payload) => {
    const e = JSON.parse(payload.toString()) as { id: string; data: { batch_id?: string } };
    received.push({ topic, id: e.id, batch_id: e.data.batch_id });
  });
  await listener.subscribeAsync([`org/${org}/users/+/notifications`, `org/${org}/roles/+/notifications`], { qos: 1 });
});
afterAll(async () => {
  await listener?.endAsync();
  await admin`update public.organizations set deleted_at = now() where id = ${org}`;
  await Promise.all([admin.end(), api.end()]);
});

/** A batch of the audience type, MQTT only (e-mail is not what this is about), made without the dispatch trigger. */
async function makeBatch(title: string, recipients: unknown = { role: "student" }, orgId = org): Promise<string> {
  return await admin.begin(async (tx) => {
    await tx`set local session_replication_role = replica`;
    await tx`insert into public.notification_preferences (org_id, user_id, type, channel, enabled)
             select ${orgId}, m.user_id, 'announcement.broadcast', 'email', false from public.organization_members m where m.org_id = ${orgId}
             on conflict do nothing`;
    const [{ batch_id }] = await tx`select batch_id from app.notify(${orgId}, 'announcement.broadcast', ${title}, '', '{}',
                                                                    ${tx.json(recipients as never)}::jsonb)`;
    return batch_id as string;
  });
}

async function dispatch(batchId: string, deps: { limiter: RateLimiter; publish?: Publish }) {
  const res = await dispatchOnce(batchId, { sql: api, publish: deps.publish ?? publish, limiter: deps.limiter });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
}

const audienceRow = async (batchId: string) =>
  (await admin<{ status: string; attempts: number; roles: string[]; last_error: string | null }[]>`
    select status, attempts, roles::text[] as roles, last_error from public.notification_audience_deliveries where batch_id = ${batchId}`)[
    0
  ];
const perRecipient = (batchId: string) =>
  admin<{ recipient_id: string; status: string; last_error: string | null }[]>`
    select n.recipient_id, d.status, d.last_error from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
    where d.batch_id = ${batchId} and d.channel = 'mqtt' order by 1`;
/**
 * Whatever the dispatcher published has arrived: a sentinel sent after it on the same connection
 * comes after it (Mosquitto routes one connection's messages to a subscriber in the order it
 * received them), so a late or duplicate message would be here first.
 */
async function settle() {
  const sentinel = makeEnvelope({ type: "test.sentinel", org_id: org, data: {} });
  await publish(`org/${org}/roles/teacher/notifications`, sentinel);
  await waitUntil("the sentinel", () => Promise.resolve(received.some((m) => m.id === sentinel.id)), 5000, 20);
}

/** Waits, when needed, so that what a test takes from the rate limiter falls in the same minute as its dispatch. */
async function awayFromMinuteEdge() {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 5000) await new Promise((r) => setTimeout(r, left + 100));
}

describe("audience delivery", () => {
  it("publishes one message on the role's topic, whose id is the batch's, and records it once", async () => {
    const batch = await makeBatch("To the students");
    const res = await dispatch(batch, { limiter: freshLimiter() });
    expect(res).toMatchObject({ status: 200, body: { mqtt_sent: STUDENTS, mqtt_audience: "sent", mqtt_retrying: 0 } });
    await waitUntil("the audience message", async () => received.some((m) => m.id === batch), 5000, 20);
    await settle();
    const mine = received.filter((m) => m.id === batch || m.batch_id === batch);
    expect(mine).toEqual([{ topic: `org/${org}/roles/student/notifications`, id: batch, batch_id: batch }]);
    expect(await audienceRow(batch)).toMatchObject({ status: "sent", attempts: 1, roles: ["student"] });
    expect(await perRecipient(batch)).toEqual([]);

    // the sweep or a retried webhook dispatching it again sends nothing more
    expect((await dispatch(batch, { limiter: freshLimiter() })).body).toMatchObject({ mqtt_sent: 0, mqtt_audience: "none" });
    await settle();
    expect(received.filter((m) => m.id === batch)).toHaveLength(1);
  });

  it("to everyone: one message per role", async () => {
    const batch = await makeBatch("To everyone", { everyone: true });
    expect((await dispatch(batch, { limiter: freshLimiter() })).body).toMatchObject({
      mqtt_sent: STUDENTS + 1,
      mqtt_audience: "sent",
    });
    await waitUntil("both roles' messages", async () => received.filter((m) => m.id === batch).length === 2, 5000, 20);
    expect(received.filter((m) => m.id === batch).map((m) => m.topic).sort()).toEqual([
      `org/${org}/roles/student/notifications`,
      `org/${org}/roles/teacher/notifications`,
    ]);
  });

  it("one message is charged as one: the organization's budget for every recipient, the role's limit once, no key per recipient", async () => {
    const batch = await makeBatch("Busy student");
    const limiter = freshLimiter();
    await awayFromMinuteEdge();
    // a student over their own limit (direct messages) still gets the role's message: it is not theirs alone
    expect(await limiter.take(recipientLimitKey(org, students[0]), 30, 30)).toBe(30);
    const res = await dispatch(batch, { limiter });
    expect(res.body).toMatchObject({ mqtt_audience: "sent", mqtt_sent: STUDENTS, mqtt_deferred: 0 });
    expect(await audienceRow(batch)).toMatchObject({ status: "sent", last_error: null });
    expect(await perRecipient(batch)).toEqual([]);
    expect(await limiter.used(`notify:org:${org}`)).toBe(STUDENTS);
    expect(await limiter.used(roleLimitKey(org, "student"))).toBe(1);
    expect(await limiter.used(recipientLimitKey(org, students[1]))).toBe(0);
    await waitUntil("the role's message", async () => received.some((m) => m.id === batch), 5000, 20);
  });

  it("a role over its limit: the whole delivery waits for the next minute, then goes out once", async () => {
    const batch = await makeBatch("Too many announcements");
    const limiter = freshLimiter();
    await awayFromMinuteEdge();
    await limiter.takeEach(Array(PER_RECIPIENT_PER_MINUTE).fill(roleLimitKey(org, "student")), PER_RECIPIENT_PER_MINUTE);
    const res = await dispatch(batch, { limiter });
    expect(res.body).toMatchObject({ mqtt_audience: "deferred", mqtt_sent: 0, mqtt_deferred: STUDENTS });
    const [row] = await admin<{ status: string; attempts: number; last_error: string; wait_s: number }[]>`
      select status, attempts, last_error, extract(epoch from next_attempt_at - date_trunc('minute', now()))::int as wait_s
      from public.notification_audience_deliveries where batch_id = ${batch}`;
    expect(row).toMatchObject({ status: "pending", attempts: 0, last_error: "rate_limited", wait_s: 60 });
    expect(await perRecipient(batch)).toEqual([]);
    expect(await limiter.used(`notify:org:${org}`)).toBe(0); // the budget is not spent on a message that waits
    await settle();
    expect(received.filter((m) => m.id === batch)).toEqual([]);

    // the next window: due again, it goes out as one message
    await admin`update public.notification_audience_deliveries set next_attempt_at = now() where batch_id = ${batch}`;
    const next = await dispatch(batch, { limiter: freshLimiter() });
    expect(next.body).toMatchObject({ mqtt_audience: "sent", mqtt_sent: STUDENTS });
    await waitUntil("the role's message", async () => received.some((m) => m.id === batch), 5000, 20);
  });

  it("an audience larger than the organization's budget for a minute: per recipient, the budget taken once", async () => {
    const [{ id: small }] = await admin`insert into public.organizations (name, slug, tier)
                                        values ('Small budget', ${`audience-small-${
      crypto.randomUUID().slice(0, 8)
    }`}, 'basic') returning id`;
    await admin`insert into public.organization_members (org_id, user_id, role)
                select ${small}::uuid, u, 'student'::public.org_role from unnest(${students}::uuid[]) u`;
    const [{ per_minute }] =
      await admin`select notifications_per_minute as per_minute from public.subscription_tiers where tier = 'basic'`;
    await admin`update public.subscription_tiers set notifications_per_minute = 3 where tier = 'basic'`;
    try {
      const batch = await makeBatch("More than the budget", { role: "student" }, small);
      await awayFromMinuteEdge();
      const res = await dispatch(batch, { limiter: freshLimiter() });
      // had the audience attempt taken 6 from a budget of 3 first, the recipients would get none this minute
      expect(res.body).toMatchObject({ mqtt_audience: "expanded", mqtt_sent: 3, mqtt_deferred: 3 });
      expect(await audienceRow(batch)).toMatchObject({ status: "expanded", last_error: "rate_limited" });
    } finally {
      await admin`update public.subscription_tiers set notifications_per_minute = ${per_minute} where tier = 'basic'`;
      await admin`update public.organizations set deleted_at = now() where id = ${small}`;
    }
  });

  it("a recipient who changed role since the send: per recipient, so they still get it", async () => {
    const batch = await makeBatch("Before the promotion");
    const moved = students[STUDENTS - 1];
    await admin`update public.organization_members set role = 'teacher' where org_id = ${org} and user_id = ${moved}`;
    try {
      const res = await dispatch(batch, { limiter: freshLimiter() });
      expect(res.body).toMatchObject({ mqtt_audience: "expanded", mqtt_sent: STUDENTS });
      expect(await audienceRow(batch)).toMatchObject({ status: "expanded", last_error: "recipient_changed_role" });
      expect((await perRecipient(batch)).map((r) => r.status)).toEqual(Array(STUDENTS).fill("sent"));
      await waitUntil(
        "the moved member's own message",
        async () => received.some((m) => m.topic === `org/${org}/users/${moved}/notifications`),
        5000,
        20,
      );
    } finally {
      await admin`update public.organization_members set role = 'student' where org_id = ${org} and user_id = ${moved}`;
    }
  });

  it("the broker away: retried later with the same message, rate limits taken once", async () => {
    const batch = await makeBatch("Through an outage");
    const limiter = freshLimiter();
    const away: Publish = () => Promise.reject(new Error("broker: timed out"));
    const first = await dispatch(batch, { limiter, publish: away });
    expect(first).toMatchObject({ status: 503, body: { mqtt_audience: "retrying", mqtt_retrying: STUDENTS, mqtt_sent: 0 } });
    expect(await audienceRow(batch)).toMatchObject({ status: "pending", attempts: 1, last_error: "Error: broker: timed out" });

    // Not due yet: a dispatch now leaves it alone.
    expect((await dispatch(batch, { limiter })).body).toMatchObject({ mqtt_audience: "none" });
    await admin`update public.notification_audience_deliveries set next_attempt_at = now() where batch_id = ${batch}`;
    // The role and the organization are now over their limits: a retry does not ask again, the first attempt took them.
    await awayFromMinuteEdge();
    await limiter.takeEach(Array(PER_RECIPIENT_PER_MINUTE).fill(roleLimitKey(org, "student")), PER_RECIPIENT_PER_MINUTE);
    await limiter.take(`notify:org:${org}`, 60_000, 60_000);
    const second = await dispatch(batch, { limiter });
    expect(second).toMatchObject({ status: 200, body: { mqtt_audience: "sent", mqtt_sent: STUDENTS } });
    expect(await audienceRow(batch)).toMatchObject({ status: "sent", attempts: 2, last_error: null });
    await waitUntil("the message", async () => received.some((m) => m.id === batch), 5000, 20);
  });
});
