// Notifications end to end: a member with notifications.send sends (RPC, as PostgREST would call
// it), app.notify fans out, the trigger calls notification-dispatch, which publishes to each
// recipient's MQTT topic and hands e-mail to the worker, which sends it to the stack's SMTP sink.
// Preferences, idempotency, bad input, and SMTP and broker outages.
import crypto from "node:crypto";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readPid, spawnDetached, stopProcess } from "../../dev/stack/processes.ts";
import { services } from "../../dev/stack/services.ts";
import { withRequestContext } from "../../supabase/functions/_shared/db.ts";
import { connectRealtime, type RealtimeClient } from "../../supabase/functions/_shared/realtime/client.ts";
import { type Envelope, makeEnvelope } from "../../supabase/functions/_shared/realtime/envelope.ts";
import { topics } from "../../supabase/functions/_shared/realtime/topics.ts";
import { adminSql, apiSql, createUser, HOST, PORTS, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";

const admin = adminSql();
const api = apiSql(4);
const MAIL = `http://${HOST}:${PORTS.mailHttp}/messages`;
const open: RealtimeClient[] = [];
let orgA: string, orgB: string;
const u: Record<"teacher" | "s1" | "s2" | "ownerB", { id: string; email: string }> = {} as never;

const asUser = <T>(userId: string, fn: (tx: postgres.TransactionSql) => Promise<T>) =>
  withRequestContext(api, { role: "authenticated", claims: { sub: userId, role: "authenticated" } }, fn);
const send = (
  userId: string,
  args: { org: string; type?: string; title?: string; body?: string; recipients?: unknown; key?: string; priority?: string },
) =>
  asUser(
    userId,
    (tx) =>
      tx<{ batch_id: string; created: number }[]>`select * from public.send_notification(${args.org}, ${
        args.type ?? "announcement.posted"
      }, ${args.title ?? "Trip"},
                            ${args.body ?? "Bring lunch"}, '{}'::jsonb, ${
        tx.json((args.recipients ?? { role: "student" }) as never)
      }::jsonb, ${args.priority ?? null}, ${args.key ?? null})`,
  );
const mailTo = async (email: string) =>
  (await (await fetch(`${MAIL}?to=${encodeURIComponent(email)}`)).json()) as {
    subject: string;
    text: string;
    headers: Record<string, string>;
  }[];

/** What a member receives on a topic, signed in with their own access token. */
async function listenAs(userId: string, topic: string) {
  const { token } = await tokenFor(admin, userId);
  const c = connectRealtime({ url: `mqtt://${HOST}:${PORTS.mqtt}`, password: token, username: "user" });
  open.push(c);
  const got: Envelope[] = [];
  await c.subscribe(topic, (e) => void got.push(e));
  return got;
}
const inbox = (userId: string, org: string) => listenAs(userId, topics.notifications(org, userId));

async function restartService(name: string, whileDown: () => Promise<void>) {
  const svc = services(secrets()).find((s) => s.name === name)!;
  await stopProcess(name);
  try {
    await whileDown();
  } finally {
    if (!readPid(name)) spawnDetached(svc);
    await waitUntil(name, () => svc.healthy(), 30_000, 200);
  }
}

beforeAll(async () => {
  const suffix = crypto.randomUUID().slice(0, 8);
  [{ id: orgA }] =
    await admin`insert into public.organizations (name, slug) values ('Notify A', ${`notify-a-${suffix}`}) returning id`;
  [{ id: orgB }] =
    await admin`insert into public.organizations (name, slug) values ('Notify B', ${`notify-b-${suffix}`}) returning id`;
  for (const k of ["teacher", "s1", "s2", "ownerB"] as const) u[k] = await createUser(admin);
  await admin`insert into public.organization_members (org_id, user_id, role) values
    (${orgA}, ${u.teacher.id}, 'teacher'), (${orgA}, ${u.s1.id}, 'student'), (${orgA}, ${u.s2.id}, 'student'), (${orgB}, ${u.ownerB.id}, 'owner')`;
});
afterAll(async () => {
  await Promise.allSettled(open.map((c) => c.close()));
  await admin`update public.organizations set deleted_at = now() where id in (${orgA}, ${orgB})`;
  await Promise.all([admin.end(), api.end()]);
});

describe("sending to a role", () => {
  it("delivers over MQTT to each recipient only, mails them, and records every channel", async () => {
    const [s1, s2, teacher, other] = await Promise.all([
      inbox(u.s1.id, orgA),
      inbox(u.s2.id, orgA),
      inbox(u.teacher.id, orgA),
      inbox(u.ownerB.id, orgB),
    ]);
    const [{ batch_id, created }] = await send(u.teacher.id, { org: orgA, title: "Trip on Friday", body: "Bring lunch." });
    expect(created).toBe(2);
    await waitUntil("both students' messages", async () => s1.length === 1 && s2.length === 1, 10_000, 20);
    expect(s1[0]).toMatchObject({
      type: "announcement.posted",
      org_id: orgA,
      data: { title: "Trip on Friday", body: "Bring lunch." },
    });
    const [mine] = await asUser(u.s1.id, (tx) => tx`select id from public.notifications where batch_id = ${batch_id}`);
    expect(s1[0].id).toBe(mine.id); // the envelope's id is the notification's
    expect(teacher).toEqual([]);
    expect(other).toEqual([]);

    const mail = await waitUntil("the e-mail", async () => (await mailTo(u.s1.email))[0], 15_000, 100);
    expect(mail).toMatchObject({ subject: "Trip on Friday", headers: { "x-notification-id": mine.id } });
    expect(mail.text).toContain("Bring lunch.");
    const states = await waitUntil(
      "all deliveries recorded",
      async () => {
        const rows =
          await admin`select d.channel, d.status from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
                               where n.batch_id = ${batch_id} order by 1, 2`;
        return rows.every((r) => r.status === "sent") ? rows : null;
      },
      15_000,
      100,
    );
    expect(states.map((r) => `${r.channel}:${r.status}`)).toEqual(["email:sent", "email:sent", "mqtt:sent", "mqtt:sent"]);
  });

  it("reads and marks read only one's own", async () => {
    const [{ batch_id }] = await send(u.teacher.id, { org: orgA, recipients: { user_ids: [u.s1.id] }, title: "Just you" });
    const [n] = await admin`select id from public.notifications where batch_id = ${batch_id}`;
    expect(await asUser(u.s2.id, (tx) => tx`select 1 from public.notifications where id = ${n.id}`)).toEqual([]);
    expect(await asUser(u.s2.id, (tx) => tx`update public.notifications set read_at = now() where id = ${n.id} returning 1`))
      .toEqual([]);
    expect(await asUser(u.s1.id, (tx) => tx`update public.notifications set read_at = now() where id = ${n.id} returning 1`))
      .toHaveLength(1);
  });
});

describe("sending an announcement to a role's audience", () => {
  it("goes out once on the role's topic, which only that role's members read; each resolves it to their own notification", async () => {
    const listen = (userId: string, org: string, role: string) => listenAs(userId, topics.roleNotifications(org, role));
    const [s1, s2] = await Promise.all([listen(u.s1.id, orgA, "student"), listen(u.s2.id, orgA, "student")]);
    const s1Own = await inbox(u.s1.id, orgA);
    // a student's wildcards inside the organization: every delivery is judged as a read of its own topic
    const s2Wild = await listenAs(u.s2.id, `org/${orgA}/roles/+/notifications`);
    await expect(listen(u.teacher.id, orgA, "student")).rejects.toMatchObject({ code: "subscription_refused" });
    await expect(listen(u.ownerB.id, orgA, "student")).rejects.toMatchObject({ code: "subscription_refused" });

    const [{ batch_id, created }] = await send(u.teacher.id, {
      org: orgA,
      type: "announcement.broadcast",
      title: "Assembly",
      body: "At ten.",
    });
    expect(created).toBe(2);
    await waitUntil("both students' message", async () => s1.length === 1 && s2.length === 1, 10_000, 20);
    expect(s1[0]).toMatchObject({
      id: batch_id,
      type: "announcement.broadcast",
      org_id: orgA,
      data: { title: "Assembly", body: "At ten.", batch_id },
    });
    // the client resolves the batch to its own notification (RLS shows it only theirs), and marks it read
    const mine = await asUser(
      u.s1.id,
      (tx) => tx`select id, recipient_id from public.notifications where batch_id = ${s1[0].id}`,
    );
    expect(mine).toEqual([{ id: expect.any(String), recipient_id: u.s1.id }]);
    expect(
      await asUser(u.s1.id, (tx) => tx`update public.notifications set read_at = now() where id = ${mine[0].id} returning 1`),
    )
      .toHaveLength(1);
    const audience = await waitUntil(
      "the audience delivery recorded",
      async () => {
        const [row] = await asUser(
          u.s1.id,
          (tx) =>
            tx`select status, roles::text[] as roles from public.notification_audience_deliveries where batch_id = ${batch_id}`,
        );
        return row?.status === "sent" ? row : null;
      },
      10_000,
      50,
    );
    expect(audience).toEqual({ status: "sent", roles: ["student"] });
    // e-mail is still each recipient's own
    await waitUntil("s1's e-mail", async () => (await mailTo(u.s1.email)).some((m) => m.subject === "Assembly"), 15_000, 100);
    // to the teachers: their topic, which no student's subscription brings them
    const [toTeachers] = await send(u.teacher.id, {
      org: orgA,
      type: "announcement.broadcast",
      title: "Staff meeting",
      recipients: { role: "teacher" },
    });
    await waitUntil(
      "the teachers' delivery recorded",
      async () =>
        (await admin`select status from public.notification_audience_deliveries where batch_id = ${toTeachers.batch_id}`)[0]
          ?.status === "sent",
    );
    // The dispatch recorded the teachers' delivery after the broker took it, so sentinels the service
    // sends now reach each student's subscriptions after anything of it would have (Mosquitto routes
    // in the order it receives)
    const service = connectRealtime({
      url: `mqtt://${HOST}:${PORTS.mqtt}`,
      password: secrets().serviceRoleKey,
      username: "service",
    });
    open.push(service);
    const toStudents = makeEnvelope({ type: "test.sentinel", org_id: orgA, data: {} });
    const toS1 = makeEnvelope({ type: "test.sentinel", org_id: orgA, data: {} });
    await service.publish(topics.roleNotifications(orgA, "student"), toStudents);
    await service.publish(topics.notifications(orgA, u.s1.id), toS1);
    await waitUntil(
      "the sentinels",
      () =>
        Promise.resolve(
          [s1, s2Wild].every((got) => got.some((e) => e.id === toStudents.id)) && s1Own.some((e) => e.id === toS1.id),
        ),
      5000,
      20,
    );
    for (const got of [s1, s2Wild, s1Own]) got.splice(got.findIndex((e) => e.type === "test.sentinel"), 1);
    expect(s1).toHaveLength(1);
    expect(s2Wild.map((e) => e.id)).toEqual([batch_id]);
    expect(s1Own.filter((e) => e.type === "announcement.broadcast")).toEqual([]);
  });
});

describe("preferences and idempotency", () => {
  it("makes no delivery on the channels a member turned off, and makes one notification per key", async () => {
    await asUser(u.s2.id, (tx) =>
      tx`insert into public.notification_preferences (org_id, user_id, type, channel, enabled)
                                     values (${orgA}, ${u.s2.id}, 'announcement.posted', 'email', false)`);
    const key = `trip-${crypto.randomUUID()}`;
    const [first] = await send(u.teacher.id, { org: orgA, key, title: "Keyed" });
    const [again] = await send(u.teacher.id, { org: orgA, key, title: "Keyed" });
    expect([first.created, again.created]).toEqual([2, 0]);
    const rows = await admin`select n.recipient_id, d.channel, d.status from public.notification_deliveries d
                             join public.notifications n on n.id = d.notification_id where n.batch_id = ${first.batch_id} and d.channel = 'email'`;
    // a channel the member turned off makes no delivery; the other member's e-mail goes out
    expect(rows.map((r) => r.recipient_id)).toEqual([u.s1.id]);
    await waitUntil("s1's keyed mail", async () => (await mailTo(u.s1.email)).some((m) => m.subject === "Keyed"), 15_000, 100);
    expect((await mailTo(u.s2.email)).some((m) => m.subject === "Keyed")).toBe(false);
  });
});

describe("bad input", () => {
  it("refuses unknown types, outsiders, oversized bodies and senders without the permission, and sends nothing", async () => {
    const before = (await admin`select count(*)::int as n from public.notifications where org_id = ${orgA}`)[0].n;
    const code = (p: Promise<unknown>) => p.then(() => "ok", (e) => (e as { code?: string }).code);
    expect(await code(send(u.teacher.id, { org: orgA, type: "no.such_type" }))).toBe("NT001");
    expect(await code(send(u.teacher.id, { org: orgA, recipients: { user_ids: [u.ownerB.id] } }))).toBe("NT002");
    expect(await code(send(u.teacher.id, { org: orgA, body: "x".repeat(4001) }))).toBe("NT003");
    expect(await code(send(u.teacher.id, { org: orgA, recipients: { nobody: true } }))).toBe("NT004");
    expect(await code(send(u.s1.id, { org: orgA }))).toBe("42501");
    expect(await code(send(u.teacher.id, { org: orgB }))).toBe("42501");
    expect((await admin`select count(*)::int as n from public.notifications where org_id = ${orgA}`)[0].n).toBe(before);
  });
});

describe("quiet hours, digests and locales", () => {
  let org: string;
  const m: Record<"teacher" | "quiet" | "digest" | "french", { id: string; email: string }> = {} as never;
  const deliveries = (batch: string, userId: string) =>
    admin`select d.channel, d.status, d.digest from public.notification_deliveries d
    join public.notifications n on n.id = d.notification_id where d.batch_id = ${batch} and n.recipient_id = ${userId} order by d.channel`;
  beforeAll(async () => {
    [{ id: org }] = await admin`insert into public.organizations (name, slug) values ('Rules school', ${`rules-${
      crypto.randomUUID().slice(0, 8)
    }`}) returning id`;
    for (const k of ["teacher", "quiet", "digest", "french"] as const) m[k] = await createUser(admin);
    await admin`insert into public.organization_members (org_id, user_id, role) values
      (${org}, ${m.teacher.id}, 'teacher'), (${org}, ${m.quiet.id}, 'student'), (${org}, ${m.digest.id}, 'student'), (${org}, ${m.french.id}, 'student')`;
    // each member chooses their own settings, through their own request context
    await asUser(m.quiet.id, (tx) =>
      tx`insert into public.notification_settings (org_id, user_id, quiet_start, quiet_end)
      values (${org}, ${m.quiet.id}, (now() at time zone 'UTC' - interval '1 hour')::time, (now() at time zone 'UTC' + interval '1 hour')::time)`);
    await asUser(
      m.digest.id,
      (tx) =>
        tx`insert into public.notification_settings (org_id, user_id, email_digest) values (${org}, ${m.digest.id}, 'hourly')`,
    );
    await asUser(
      m.french.id,
      (tx) => tx`insert into public.notification_settings (org_id, user_id, locale) values (${org}, ${m.french.id}, 'fr-CA')`,
    );
  });
  afterAll(() => admin`update public.organizations set deleted_at = now() where id = ${org}`);

  it("a member in quiet hours gets nothing until they end, then everything; urgent ones at once", async () => {
    const [quiet, other] = await Promise.all([inbox(m.quiet.id, org), inbox(m.french.id, org)]);
    const [{ batch_id }] = await send(m.teacher.id, {
      org,
      recipients: { user_ids: [m.quiet.id, m.french.id] },
      title: "After school",
    });
    await waitUntil("the other member's message", async () => other.some((e) => e.data.title === "After school"), 10_000, 20);
    await send(m.teacher.id, { org, recipients: { user_ids: [m.quiet.id] }, title: "Fire drill", priority: "urgent" });
    await waitUntil("the urgent message", async () => quiet.some((e) => e.data.title === "Fire drill"), 10_000, 20);
    expect(quiet.map((e) => e.data.title)).toEqual(["Fire drill"]);
    expect(await deliveries(batch_id, m.quiet.id)).toEqual([
      { channel: "email", status: "pending", digest: false },
      { channel: "mqtt", status: "pending", digest: false },
    ]);

    // the hours end (here: the member clears them and the deliveries come due), the sweep sends
    await asUser(m.quiet.id, (tx) => tx`delete from public.notification_settings where user_id = ${m.quiet.id}`);
    await admin`update public.notification_deliveries set next_attempt_at = now() - interval '1 minute' where batch_id = ${batch_id}`;
    await admin`select app.sweep_notifications()`;
    await waitUntil("the message after quiet hours", async () => quiet.some((e) => e.data.title === "After school"), 15_000, 50);
    await waitUntil(
      "the mail after quiet hours",
      async () => (await mailTo(m.quiet.email)).some((x) => x.subject === "After school"),
      15_000,
      100,
    );
  }, 40_000);

  it("a member with a digest gets their e-mail as one message when it is due, MQTT at once", async () => {
    const rt = await inbox(m.digest.id, org);
    const batches: { batch_id: string }[] = [];
    for (const title of ["Homework 1", "Homework 2"]) {
      batches.push(
        (await send(m.teacher.id, {
          org,
          recipients: { user_ids: [m.digest.id, m.french.id] },
          title,
          body: `${title} is online.`,
        }))[0],
      );
    }
    await waitUntil(
      "both messages over MQTT",
      async () => rt.filter((e) => String(e.data.title).startsWith("Homework")).length === 2,
      10_000,
      20,
    );
    // the other recipient's mail has gone out; the digest member's waits
    await waitUntil(
      "the other member's mail",
      async () => (await mailTo(m.french.email)).filter((x) => x.subject.startsWith("Homework")).length === 2,
      15_000,
      100,
    );
    expect(await mailTo(m.digest.email)).toEqual([]);
    expect((await deliveries(batches[0].batch_id, m.digest.id))[0]).toEqual({
      channel: "email",
      status: "pending",
      digest: true,
    });

    // the next full hour, brought forward; the schedule's job (enqueued here rather than waited for)
    await admin`update public.notification_deliveries set next_attempt_at = now() where digest and org_id = ${org}`;
    await admin`select app.enqueue_job('notifications.digest', '{"org_id": null}'::jsonb)`;
    const [digest] = await waitUntil(
      "the digest",
      async () => {
        const mails = await mailTo(m.digest.email);
        return mails.length ? mails : null;
      },
      20_000,
      100,
    );
    expect(digest.subject).toBe("2 notifications from Rules school");
    expect(digest.text).toMatch(/Homework 1[^]*Homework 1 is online\.[^]*Homework 2[^]*Homework 2 is online\./);
    for (const b of batches) {
      expect((await deliveries(b.batch_id, m.digest.id))[0]).toMatchObject({ channel: "email", status: "sent" });
    }
    // sent once: another run finds nothing due (it has finished, so any mail it made is in the sink)
    const [{ id: again }] = await admin`select app.enqueue_job('notifications.digest', '{"org_id": null}'::jsonb) as id`;
    await waitUntil(
      "the second digest run",
      async () => (await admin`select 1 from pgboss.job where id = ${again} and state = 'completed'`).length > 0,
      20_000,
    );
    expect(await mailTo(m.digest.email)).toHaveLength(1);
  }, 60_000);

  it(
    "e-mail is written from the template for the member's locale: the organization's, then the default, then English",
    async () => {
      await admin`insert into public.notification_templates (org_id, type, locale, subject, body)
                values (${org}, 'announcement.posted', 'fr', 'Annonce : {{title}}', 'Bonjour, {{body}}')`;
      await send(m.teacher.id, {
        org,
        recipients: { user_ids: [m.french.id, m.quiet.id] },
        title: "Sortie",
        body: "apportez un repas.",
      });
      const fr = await waitUntil(
        "the French mail",
        async () => (await mailTo(m.french.email)).find((x) => x.subject === "Annonce : Sortie"),
        15_000,
        100,
      );
      expect(fr.text).toContain("Bonjour, apportez un repas.");
      await waitUntil(
        "the English mail",
        async () => (await mailTo(m.quiet.email)).find((x) => x.subject === "Sortie"),
        15_000,
        100,
      );
    },
    40_000,
  );
});

describe("rate limits", () => {
  const states = async (batch: string) =>
    admin`select d.status, d.last_error from public.notification_deliveries d
    join public.notifications n on n.id = d.notification_id where n.batch_id = ${batch} and d.channel = 'mqtt' order by d.status`;
  const makeDueAndSweep = async (batch: string) => {
    await admin`update public.notification_deliveries set next_attempt_at = now() - interval '1 minute'
                where status = 'pending' and notification_id in (select id from public.notifications where batch_id = ${batch})`;
    await admin`select app.sweep_notifications()`;
  };

  it("an organization over its tier's budget gets the rest in a later window: deferred, not lost", async () => {
    // an organization of its own, so no earlier test has used this minute's budget
    const [{ id: org }] = await admin`insert into public.organizations (name, slug, tier) values ('Budget', ${`budget-${
      crypto.randomUUID().slice(0, 8)
    }`}, 'basic') returning id`;
    const members = [await createUser(admin), await createUser(admin), await createUser(admin)];
    await admin`insert into public.organization_members (org_id, user_id, role) select ${org}, u, 'owner' from unnest(${
      members.map((m) => m.id)
    }::uuid[]) u`;
    const [{ per_minute }] =
      await admin`select notifications_per_minute as per_minute from public.subscription_tiers where tier = 'basic'`;
    await admin`update public.subscription_tiers set notifications_per_minute = 1 where tier = 'basic'`;
    let batch: string;
    try {
      [{ batch_id: batch }] = await send(members[0].id, { org, recipients: { everyone: true }, title: "Budget" });
      const rows = await waitUntil(
        "the dispatch",
        async () => {
          const r = await states(batch);
          return r.some((x) => x.status === "sent") ? r : null;
        },
        15_000,
        50,
      );
      expect(rows.filter((r) => r.status === "sent")).toHaveLength(1);
      expect(rows.filter((r) => r.status === "pending").map((r) => r.last_error)).toEqual(["rate_limited", "rate_limited"]);
    } finally {
      await admin`update public.subscription_tiers set notifications_per_minute = ${per_minute} where tier = 'basic'`;
    }
    await makeDueAndSweep(batch!);
    await waitUntil("the rest", async () => (await states(batch!)).every((r) => r.status === "sent"), 15_000, 100);
    await admin`update public.organizations set deleted_at = now() where id = ${org}`;
  }, 40_000);

  it("with Redis away, deliveries wait for it", async () => {
    let batch: string;
    await restartService("redis", async () => {
      [{ batch_id: batch }] = await send(u.teacher.id, { org: orgA, recipients: { user_ids: [u.s1.id] }, title: "No Redis" });
      await waitUntil(
        "the deferral",
        async () => (await states(batch)).some((r) => r.last_error === "rate_limiter_unavailable"),
        15_000,
        100,
      );
    });
    await makeDueAndSweep(batch!);
    await waitUntil(
      "the delivery after Redis is back",
      async () => (await states(batch!)).every((r) => r.status === "sent"),
      15_000,
      100,
    );
  }, 60_000);
});

describe("outages", () => {
  it("e-mail waits while SMTP is down and goes out once it is back", async () => {
    let batch: string;
    await restartService("smtp-sink", async () => {
      [{ batch_id: batch }] = await send(u.teacher.id, {
        org: orgA,
        recipients: { user_ids: [u.s1.id] },
        title: "While SMTP was down",
      });
      await waitUntil(
        "a failed send attempt",
        async () =>
          (await admin`select 1 from pgboss.job where name = 'notifications.email' and data ->> 'batch_id' = ${batch} and retry_count > 0`)
            .length > 0,
        20_000,
        200,
      );
    });
    await waitUntil(
      "the mail after SMTP is back",
      async () => (await mailTo(u.s1.email)).some((m) => m.subject === "While SMTP was down"),
      40_000,
      200,
    );
    const [d] =
      await admin`select d.status from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
                            where n.batch_id = ${batch!} and d.channel = 'email'`;
    expect(d.status).toBe("sent");
  }, 90_000);

  it("MQTT deliveries wait while the broker is down and go out from the sweep", async () => {
    let batch: string;
    await restartService("mosquitto", async () => {
      [{ batch_id: batch }] = await send(u.teacher.id, {
        org: orgA,
        recipients: { user_ids: [u.s2.id] },
        title: "While the broker was down",
      });
      await waitUntil(
        "a failed publish",
        async () =>
          (await admin`select d.attempts from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
                     where n.batch_id = ${batch} and d.channel = 'mqtt' and d.status = 'pending' and d.attempts > 0`).length > 0,
        30_000,
        200,
      );
    });
    const s2 = await inbox(u.s2.id, orgA);
    await admin`update public.notification_deliveries set next_attempt_at = now() - interval '1 minute'
                where notification_id in (select id from public.notifications where batch_id = ${batch!})`;
    await admin`select app.sweep_notifications()`;
    await waitUntil(
      "the message after the broker is back",
      async () => s2.some((e) => e.data.title === "While the broker was down"),
      20_000,
      50,
    );
  }, 90_000);
});
