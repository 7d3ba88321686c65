// The broker plugin's cache of ACL answers, counted where it costs: answers of mqtt.allows (rows)
// and round trips (calls) in pg_stat_statements, made by a broker of the test's own that signs in
// to Postgres as a role of the test's own (a member of mqtt_broker), so no other broker's are
// counted. Its answers are trusted for 60 s here: whatever is asked again within a test was
// dropped by an announcement.
// - a subscription to a concrete topic answers the read of its first delivery;
// - the first delivery after a topic's readers' answers were dropped renews them in one round trip;
// - a tenant changing a member's role in a loop cuts that member's delivery at once each time, and
//   never makes another organization's answers cold (issue 30, item 15);
// - a user's change drops that user's answers only; an announcement the plugin cannot attribute
//   drops all of them;
// - every change behind an answer names its organization or principal on channel mqtt_acl.
import crypto from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRealtime, type RealtimeClient } from "../../supabase/functions/_shared/realtime/client.ts";
import { makeEnvelope } from "../../supabase/functions/_shared/realtime/envelope.ts";
import { topics } from "../../supabase/functions/_shared/realtime/topics.ts";
import { testBroker } from "../helpers/broker.ts";
import { adminSql, createUser, DB_URL, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";

const admin = adminSql();
const role = `mqtt_broker_cache_test_${crypto.randomBytes(4).toString("hex")}`;
const rolePassword = crypto.randomBytes(18).toString("base64url");
const dbUrl = new URL(DB_URL);
dbUrl.username = role;
dbUrl.password = rolePassword;
dbUrl.searchParams.set("connect_timeout", "2");
const broker = testBroker("test-broker-cache", { MQTT_AUTH_DB_URL: dbUrl.toString() }, { cache_seconds: 60 });

const open: RealtimeClient[] = [];
let orgA: string, orgB: string, flipper: string, service: RealtimeClient;
const bStudents: string[] = [];
let bInboxes: Inbox[] = [];
let bClients: RealtimeClient[] = [];

type Inbox = Awaited<ReturnType<typeof inbox>>;

/** Answers of mqtt.allows this test's broker has had so far, and the round trips they took. */
async function asked() {
  const [row] = await admin<{ answers: number; trips: number }[]>`
    select coalesce(sum(s.rows), 0)::int as answers, coalesce(sum(s.calls), 0)::int as trips
    from pg_stat_statements s join pg_roles r on r.oid = s.userid
    where r.rolname = ${role} and s.query like '%mqtt.allows%'`;
  return row;
}
const allowsCalls = async () => (await asked()).answers;

async function client(userId: string) {
  const c = connectRealtime({
    url: broker.url,
    password: (await tokenFor(admin, userId)).token,
    username: "test",
    minReconnectMs: 100,
    maxReconnectMs: 500,
  });
  open.push(c);
  await c.connected();
  return c;
}

async function inbox(c: RealtimeClient, filter: string) {
  const types: string[] = [];
  await c.subscribe(filter, (envelope) => void types.push(envelope.type));
  return {
    types,
    waitFor: (type: string) => waitUntil(`a ${type} message`, () => Promise.resolve(types.includes(type)), 5000, 5),
  };
}

const say = (orgId: string, type: string) => makeEnvelope({ type, org_id: orgId, data: {} });

let sent = 0;
/** One event to organization B's students, received by all of them; the answers it asked Postgres for. */
async function deliverToB() {
  const before = await allowsCalls();
  const type = `test.b_${++sent}`;
  await service.publish(topics.events(orgB), say(orgB, type));
  await Promise.all(bInboxes.map((b) => b.waitFor(type)));
  return (await allowsCalls()) - before;
}

beforeAll(async () => {
  await admin.unsafe(`create role ${role} login password '${rolePassword}' in role mqtt_broker`);
  const suffix = crypto.randomUUID().slice(0, 8);
  [{ id: orgA }] =
    await admin`insert into public.organizations (name, slug) values ('Cache A', ${`cache-a-${suffix}`}) returning id`;
  [{ id: orgB }] =
    await admin`insert into public.organizations (name, slug) values ('Cache B', ${`cache-b-${suffix}`}) returning id`;
  flipper = (await createUser(admin)).id;
  for (let i = 0; i < 5; i++) bStudents.push((await createUser(admin)).id);
  await admin`insert into public.organization_members (org_id, user_id, role)
              select ${orgB}::uuid, u, 'student'::public.org_role from unnest(${bStudents}::uuid[]) u
              union all select ${orgA}::uuid, ${flipper}::uuid, 'student'`;
  await broker.start();
  service = connectRealtime({ url: broker.url, password: secrets().serviceRoleKey, username: "service" });
  open.push(service);
  await service.connected();
  bClients = await Promise.all(bStudents.map((id) => client(id)));
  bInboxes = await Promise.all(bClients.map((c) => inbox(c, topics.events(orgB))));
});

afterAll(async () => {
  await Promise.allSettled(open.map((c) => c.close()));
  await broker.stop();
  await admin`update public.organizations set deleted_at = now() where id in (${orgA}, ${orgB})`;
  await admin.unsafe(`drop role if exists ${role}`);
  await admin.end();
});

describe("the broker's cached answers", () => {
  it("a subscription to a concrete topic answers its first delivery; a filter's deliveries are asked one by one", async () => {
    const student = await client(bStudents[0]);
    const before = await allowsCalls();
    const mine = await inbox(student, topics.notifications(orgB, bStudents[0]));
    expect(await allowsCalls() - before, "the subscription").toBe(1);
    await service.publish(topics.notifications(orgB, bStudents[0]), say(orgB, "test.mine"));
    await mine.waitFor("test.mine");
    expect(await allowsCalls() - before, "its first delivery asks nothing").toBe(1);

    const roles = await inbox(student, `org/${orgB}/roles/+/notifications`);
    expect(await allowsCalls() - before, "the filter's subscription").toBe(2);
    await service.publish(topics.roleNotifications(orgB, "student"), say(orgB, "test.role"));
    await roles.waitFor("test.role");
    expect(await allowsCalls() - before, "a delivery through a filter is judged as a read of its topic").toBe(3);
  });

  it("reads skip the topic's shape check, yet a junk topic the service publishes reaches no member through a filter", async () => {
    const student = await client(bStudents[1]);
    const all = await inbox(student, `org/${orgB}/#`);
    for (const junk of [`org/${orgB}/a b`, `org/${orgB}//events`, `org/${orgB}/exercise/${"-".repeat(36)}/control`]) {
      await service.mqtt.publishAsync(junk, JSON.stringify(say(orgB, "test.junk")), { qos: 1 }); // the client library refuses junk
    }
    await service.publish(topics.events(orgB), say(orgB, "test.after_junk"));
    await all.waitFor("test.after_junk");
    expect(all.types).toEqual(["test.after_junk"]);
  });

  it("a tenant changing a member's role in a loop: the member's delivery follows each change at once, and another organization's answers stay cached", async () => {
    expect(await deliverToB(), "organization B's answers are cached").toBe(0);
    const member = await client(flipper);
    const roleTopics = await inbox(member, `org/${orgA}/roles/+/notifications`);
    let k = 0;
    let askedForB = 0;
    for (let i = 1; i <= 10; i++) {
      const [from, to] = i % 2 ? ["student", "teacher"] : ["teacher", "student"];
      await admin`update public.organization_members set role = ${to}::public.org_role where org_id = ${orgA} and user_id = ${flipper}`;
      const changedAt = Date.now();
      await waitUntil(
        `the member's delivery to follow the change to ${to}`,
        async () => {
          k++;
          await service.publish(topics.roleNotifications(orgA, from), say(orgA, `test.old_${k}`));
          await service.publish(topics.roleNotifications(orgA, to), say(orgA, `test.new_${k}`));
          await roleTopics.waitFor(`test.new_${k}`);
          return !roleTopics.types.includes(`test.old_${k}`);
        },
        3000,
        10,
      );
      // the announcement's bound (poll_ms, 50 ms, and a tick), far inside the 60 s the answers live
      expect(Date.now() - changedAt).toBeLessThan(500);
      askedForB += await deliverToB();
    }
    expect(askedForB, "organization B's answers were asked again").toBe(0);
  });

  it("a change to a user drops that user's answers, no one else's", async () => {
    expect(await deliverToB()).toBe(0);
    await admin`update auth.users set banned_until = null where id = ${bStudents[2]}`;
    let asked = 0;
    await waitUntil("the user's answer to be asked again", async () => (asked += await deliverToB()) > 0, 3000, 20);
    asked += await deliverToB();
    expect(asked, "calls for B's five students").toBe(1);
  });

  it("an announcement the plugin cannot attribute drops every answer", async () => {
    for (const payload of ["flush", "org not-a-uuid", `org ${orgB.toUpperCase()}`, "principal service", "rename everything"]) {
      expect(await deliverToB(), payload).toBe(0);
      await admin`select pg_notify('mqtt_acl', ${payload})`;
      let asked = 0;
      await waitUntil(`every answer dropped after '${payload}'`, async () => (asked += await deliverToB()) >= 5, 3000, 20);
    }
  });
  it("the first delivery after a topic's readers' answers were dropped renews them in one round trip; a reader gone since is left out after once", async () => {
    expect(await deliverToB()).toBe(0);
    const before = await asked();
    await admin`select pg_notify('mqtt_acl', ${`org ${orgB}`})`;
    let answers = 0;
    await waitUntil("B's answers to be renewed", async () => (answers += await deliverToB()) >= 5, 3000, 20);
    const after = await asked();
    expect(after.answers - before.answers, "one answer per student").toBe(5);
    expect(after.trips - before.trips, "in one round trip").toBe(1);

    // a student disconnects: the broker cannot tell, so their answer is renewed once more, then no longer
    await bClients.pop()!.close();
    bInboxes.pop();
    for (const expected of [5, 4]) {
      await admin`select pg_notify('mqtt_acl', ${`org ${orgB}`})`;
      let renewed = 0;
      await waitUntil("B's answers to be renewed", async () => (renewed += await deliverToB()) >= 4, 3000, 20);
      expect(renewed, "answers renewed").toBe(expected);
    }
  });
});

describe("announcements on mqtt_acl", () => {
  it("every change behind an answer names its organization or principal; a statement touching over 100 organizations, or role defaults, asks for a flush", async () => {
    const got: string[] = [];
    const listener = adminSql(1);
    await listener.listen("mqtt_acl", (payload) => void got.push(payload));
    const expectAnnounced = (what: string, payloads: string[]) =>
      waitUntil(what, () => Promise.resolve(payloads.every((p) => got.includes(p))), 5000, 20);
    try {
      const suffix = crypto.randomUUID().slice(0, 8);
      const [{ id: org }] = await admin`insert into public.organizations (name, slug) values ('Cache C', ${`cache-c-${suffix}`})
                                        returning id`;
      const [{ id: other }] = await admin`insert into public.organizations (name, slug) values ('Cache D', ${`cache-d-${suffix}`})
                                          returning id`;
      const user = (await createUser(admin)).id;
      const owner = (await createUser(admin)).id;

      got.length = 0;
      await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${user}, 'student'),
                  (${org}, ${owner}, 'owner'), (${other}, ${user}, 'student')`;
      await expectAnnounced("a membership in each organization", [`org ${org}`, `org ${other}`]);

      const changes: [string, () => Promise<unknown>][] = [
        [
          "a role",
          () => admin`update public.organization_members set role = 'teacher' where org_id = ${org} and user_id = ${user}`,
        ],
        [
          "a member's permission",
          () =>
            admin`insert into public.member_permissions (org_id, user_id, permission, granted) values (${org}, ${user}, 'exercises.control', false)`,
        ],
        ["an exercise", () => admin`insert into public.exercises (org_id, title) values (${org}, 'Drill')`],
        [
          "a team",
          () =>
            admin`insert into public.exercise_teams (org_id, exercise_id, name)
                  select ${org}, id, 'Red' from public.exercises where org_id = ${org}`,
        ],
        [
          "a team's member",
          () =>
            admin`insert into public.exercise_team_members (org_id, team_id, user_id)
                  select ${org}, id, ${user} from public.exercise_teams where org_id = ${org}`,
        ],
        [
          "a membership removed",
          () => admin`delete from public.organization_members where org_id = ${org} and user_id = ${user}`,
        ],
      ];
      for (const [what, change] of changes) {
        got.length = 0;
        await change();
        await expectAnnounced(what, [`org ${org}`]);
        expect(got, `${what} names no other organization`).not.toContain(`org ${other}`);
      }

      got.length = 0;
      const secret = `sk_${crypto.randomBytes(24).toString("base64url")}`;
      const [key] = await admin.begin(async (tx) => {
        await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: owner, role: "authenticated" })}, true)`;
        return tx`insert into public.api_keys (org_id, name, key_prefix, key_hash, scopes, mqtt_topics)
          values (${org}, 'sensor', ${secret.slice(0, 11)}, sha256(convert_to(${secret}, 'UTF8')), '{org.read}', '{sensors/#}')
          returning id`;
      });
      await admin`update public.api_keys set mqtt_topics = '{sensors/+}' where id = ${key.id}`;
      await expectAnnounced("a key's topics", [`principal device:${key.id}`]);
      await admin`update public.api_keys set revoked_at = now() where id = ${key.id}`;
      await expectAnnounced("a key revoked", [`kick device:${key.id}`]);

      got.length = 0;
      await admin`update auth.users set banned_until = now() + interval '1 hour' where id = ${user}`;
      await expectAnnounced("a user banned", [`principal user:${user}`, `kick user:${user}`]);

      got.length = 0;
      await admin`update public.organizations set deleted_at = now() where id = ${other}`;
      await expectAnnounced("an organization deleted", [`org ${other}`]);

      // role defaults hold for every organization: inserted and removed in one transaction, so
      // no one else sees the change, but it is announced
      got.length = 0;
      await admin.begin(async (tx) => {
        await tx`insert into public.role_permissions (role, permission) values ('student', 'exercises.control')`;
        await tx`delete from public.role_permissions where role = 'student' and permission = 'exercises.control'`;
      });
      await expectAnnounced("role defaults", ["flush"]);

      const many = await admin<{ id: string }[]>`
        insert into public.organizations (name, slug)
        select 'Cache many', ${`cache-many-${suffix}-`} || i from generate_series(1, 101) i returning id`;
      got.length = 0;
      await admin`insert into public.organization_members (org_id, user_id, role)
                  select id, ${owner}::uuid, 'owner' from unnest(${many.map((o) => o.id)}::uuid[]) id`;
      await expectAnnounced("101 organizations at once", ["flush"]);
      expect(got.filter((p) => many.some((o) => p === `org ${o.id}`))).toEqual([]);
      await admin`update public.organizations set deleted_at = now() where id = any(${[org, ...many.map((o) => o.id)]}::uuid[])`;
    } finally {
      await listener.end();
    }
  });
});
