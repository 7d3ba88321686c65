// Analytics end to end: browser apps send batches to analytics-ingest with their access tokens;
// analytics-aggregation (as pg_cron calls it, and on demand) rolls them up; the figures must equal
// a GROUP BY over the raw events after random batches, late events, repeated and concurrent runs.
import crypto from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EVENT_SCHEMAS } from "../../supabase/functions/analytics-ingest/events.ts";
import { clearOfMinuteEnd } from "../helpers/machines.ts";
import { adminSql, API_URL, createUser, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";

const admin = adminSql();
let orgA: string, orgB: string;
const tokens: Record<string, string> = {};
const users: Record<string, string> = {};

const ingest = (token: string | null, body: unknown) =>
  fetch(`${API_URL}/functions/v1/analytics-ingest`, {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
  });
const aggregate = (body: unknown = {}) =>
  fetch(`${API_URL}/functions/v1/analytics-aggregation`, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json", authorization: `Bearer ${secrets().serviceRoleKey}` },
  });
const ago = (ms: number) => new Date(Date.now() - ms).toISOString();
const HOUR = 3600_000;
/** A roll-up run of our own: pg_cron's every-minute run takes the same lock, and a caller that
 * meets it is told `busy` at once (its work then lands when that run commits). */
const aggregateOwnRun = () =>
  waitUntil(
    "a roll-up run that is not busy",
    async () => {
      const r = await (await aggregate()).json();
      return r.busy ? null : r;
    },
    15_000,
    100,
  );

/** What the roll-ups must say: a GROUP BY over the raw events of the organization. */
async function expected(org: string, grain: "hour" | "day") {
  return admin`select event_type, date_trunc(${grain}, occurred_at, 'UTC') as bucket, count(*)::int as events, count(distinct user_id)::int as users,
                      sum((properties ->> 'score')::numeric)::float8 as score
               from public.analytics_events where org_id = ${org} group by 1, 2 order by 1, 2`;
}
async function actual(org: string, grain: "hour" | "day") {
  const table = grain === "hour" ? admin`public.analytics_hourly` : admin`public.analytics_daily`;
  return admin`select event_type, bucket, events::int, users::int, (sums ->> 'score')::float8 as score from ${table}
               where org_id = ${org} order by 1, 2`;
}

function randomEvent(rnd: () => number) {
  const kinds = [
    () => ({ type: "page.viewed", properties: { path: `/p/${Math.floor(rnd() * 20)}` } }),
    () => ({
      type: "lesson.completed",
      properties: { lesson_id: "l1", duration_seconds: Math.floor(rnd() * 600), score: Math.floor(rnd() * 101) },
    }),
    () => ({
      type: "exercise.submitted",
      properties: { exercise_id: "e1", attempt: 1 + Math.floor(rnd() * 3), score: Math.floor(rnd() * 101) },
    }),
  ];
  return { ...kinds[Math.floor(rnd() * kinds.length)](), occurred_at: ago(rnd() * 3 * 24 * HOUR) };
}

beforeAll(async () => {
  const run = crypto.randomUUID().slice(0, 8);
  [{ id: orgA }] =
    await admin`insert into public.organizations (name, slug, tier) values ('Analytics A', ${`an-a-${run}`}, 'enterprise') returning id`;
  [{ id: orgB }] =
    await admin`insert into public.organizations (name, slug) values ('Analytics B', ${`an-b-${run}`}) returning id`;
  for (const k of ["teacher", "s1", "s2", "ownerB"]) users[k] = (await createUser(admin)).id;
  await admin`insert into public.organization_members (org_id, user_id, role) values
    (${orgA}, ${users.teacher}, 'teacher'), (${orgA}, ${users.s1}, 'student'), (${orgA}, ${users.s2}, 'student'), (${orgB}, ${users.ownerB}, 'owner')`;
  for (const k of Object.keys(users)) tokens[k] = (await tokenFor(admin, users[k])).token;
});
afterAll(async () => {
  await admin`update public.organizations set deleted_at = now() where id in (${orgA}, ${orgB})`;
  await admin.end();
});

describe("ingestion", () => {
  it("keeps the good events of a batch, stamped with the token's organization and user, and says why each other one was refused", async () => {
    const res = await ingest(tokens.s1, {
      events: [
        { type: "lesson.started", occurred_at: ago(1000), properties: { lesson_id: "intro" } },
        { type: "no.such_event", occurred_at: ago(1000), properties: {} },
        { type: "page.viewed", occurred_at: ago(8 * 24 * HOUR), properties: { path: "/old" } },
        { type: "page.viewed", occurred_at: new Date(Date.now() + HOUR).toISOString(), properties: { path: "/future" } },
        { type: "page.viewed", occurred_at: ago(1000), properties: { path: "/x", extra: "y".repeat(5000) } },
        { type: "lesson.completed", occurred_at: ago(1000), properties: { lesson_id: "intro", duration_seconds: "long" } },
        { type: "page.viewed", occurred_at: ago(1000), properties: { path: "/home" }, org_id: orgB },
        "not an event",
        { type: "video.watched", occurred_at: ago(2000), properties: { video_id: "v1", seconds: 42.5 } },
      ],
    });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.accepted).toBe(2);
    expect(body.rejected.map((r: { index: number; code: string }) => [r.index, r.code])).toEqual([
      [1, "unknown_event_type"],
      [2, "too_old"],
      [3, "in_the_future"],
      [4, "properties_too_large"],
      [5, "invalid_properties"],
      [6, "invalid_event"],
      [7, "invalid_event"],
    ]);
    const rows =
      await admin`select org_id, user_id, event_type from public.analytics_events where user_id = ${users.s1} order by event_type`;
    expect(rows).toEqual([{ org_id: orgA, user_id: users.s1, event_type: "lesson.started" }, {
      org_id: orgA,
      user_id: users.s1,
      event_type: "video.watched",
    }]);
  });

  it("refuses an event with text Postgres cannot store (NUL, a lone surrogate) and keeps the rest of its batch", async () => {
    const res = await ingest(tokens.s1, {
      events: [
        { type: "page.viewed", occurred_at: ago(1000), properties: { path: "/nul\u0000" } },
        { type: "page.viewed", occurred_at: ago(1000), properties: { path: "/half-\ud83d" } },
        { type: "lesson.started", occurred_at: ago(1000), properties: { ["lesson\u0000"]: "x" } },
        { type: "page.viewed", occurred_at: ago(1000), properties: { path: "/whole-\ud83d\ude00" } },
      ],
    });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body.accepted).toBe(1);
    expect(body.rejected.map((r: { index: number; code: string }) => [r.index, r.code])).toEqual([
      [0, "invalid_properties"],
      [1, "invalid_properties"],
      [2, "invalid_properties"],
    ]);
    expect(body.rejected[0].message).toMatch(/properties\.path: contains a NUL character/);
    const [row] =
      await admin`select properties from public.analytics_events where user_id = ${users.s1} and properties ->> 'path' like '/whole-%'`;
    expect(row.properties.path).toBe("/whole-\u{1F600}");
  });

  it("cannot be bypassed: a member's token gets no INSERT on the events table through the Data API", async () => {
    const res = await fetch(`${API_URL}/rest/v1/analytics_events`, {
      method: "POST",
      headers: { apikey: secrets().anonKey, authorization: `Bearer ${tokens.s1}`, "content-type": "application/json" },
      body: JSON.stringify({
        org_id: orgA,
        user_id: users.s1,
        event_type: "lesson.completed",
        occurred_at: ago(0),
        properties: { lesson_id: "l", duration_seconds: 9e300 },
      }),
    });
    expect([res.status, (await res.json()).code]).toEqual([403, "42501"]);
  });

  it("refuses bad requests whole, with stable codes, and records nothing", async () => {
    const before = (await admin`select count(*)::int as n from public.analytics_events where org_id = ${orgA}`)[0].n;
    const code = async (res: Response) => [res.status, (await res.json()).error?.code];
    expect(await code(await ingest(tokens.s1, { events: [] }))).toEqual([400, "invalid_request"]);
    expect(await code(await ingest(tokens.s1, { events: Array.from({ length: 501 }, () => ({})) }))).toEqual([
      400,
      "invalid_request",
    ]);
    expect(await code(await ingest(tokens.s1, "{not json"))).toEqual([400, "invalid_json"]);
    expect(await code(await ingest(null, { events: [{}] }))).toEqual([401, "missing_authorization"]); // the gateway (verify_jwt)
    expect(await code(await ingest(secrets().serviceRoleKey, { events: [{}] }))).toEqual([403, "forbidden"]);
    const allBad = await ingest(tokens.s1, { events: [{ type: "no.such_event", occurred_at: ago(0) }] });
    expect(allBad.status).toBe(422);
    expect((await admin`select count(*)::int as n from public.analytics_events where org_id = ${orgA}`)[0].n).toBe(before);
  });

  it("meters each organization by its tier: what is over the minute's budget is refused as rate_limited", async () => {
    const [{ id: org }] = await admin`insert into public.organizations (name, slug, tier) values ('Metered', ${`an-m-${
      crypto.randomUUID().slice(0, 8)
    }`}, 'basic') returning id`;
    const member = (await createUser(admin)).id;
    await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${member}, 'student')`;
    const token = (await tokenFor(admin, member)).token;
    const [{ per_minute }] =
      await admin`select events_per_minute as per_minute from public.subscription_tiers where tier = 'basic'`;
    await admin`update public.subscription_tiers set events_per_minute = 3 where tier = 'basic'`;
    try {
      const events = Array.from(
        { length: 5 },
        (_, i) => ({ type: "page.viewed", occurred_at: ago(0), properties: { path: `/${i}` } }),
      );
      await clearOfMinuteEnd(5_000); // both calls in one minute's budget
      const first = await (await ingest(token, { events })).json();
      expect([first.accepted, first.rejected.map((r: { code: string }) => r.code)]).toEqual([3, [
        "rate_limited",
        "rate_limited",
      ]]);
      const second = await ingest(token, { events });
      expect(second.status).toBe(429);
    } finally {
      await admin`update public.subscription_tiers set events_per_minute = ${per_minute} where tier = 'basic'`;
      await admin`update public.organizations set deleted_at = now() where id = ${org}`;
    }
  });

  it("answers 503 events_unavailable, storing nothing, when the events' partition stays locked past 3 s; sent again, they are stored", async () => {
    const occurredAt = ago(6 * 24 * HOUR);
    const partition = `analytics.events_${occurredAt.slice(0, 10).replaceAll("-", "")}`;
    const event = { type: "page.viewed", occurred_at: occurredAt, properties: { path: "/while-locked" } };
    const holder = await admin.reserve(); // someone else's long transaction that blocks writers of that day
    try {
      await holder`begin`;
      await holder.unsafe(`lock table ${partition} in share mode`);
      const res = await ingest(tokens.ownerB, { events: [event] });
      expect(res.status).toBe(503);
      expect((await res.json()).error.code).toBe("events_unavailable");
      expect(res.headers.get("retry-after")).toBe("5");
    } finally {
      await holder`rollback`;
      holder.release();
    }
    const stored = () =>
      admin`select 1 from public.analytics_events where org_id = ${orgB} and properties ->> 'path' = '/while-locked'`;
    expect(await stored()).toHaveLength(0);
    expect((await ingest(tokens.ownerB, { events: [event] })).status).toBe(200);
    expect(await stored()).toHaveLength(1);
  });

  it("the partition job gives up after 2 s on a table a long transaction holds, instead of stopping every insert behind it", async () => {
    const ahead = 20; // days the daily job (a week ahead) has not made yet
    const asking = await admin.reserve();
    await asking`begin`;
    const [{ made: missing }] = await asking`select app.create_analytics_partitions(0, ${ahead}) as made`;
    await asking`rollback`; // only asked: nothing is kept
    asking.release();
    expect(missing).toBeGreaterThan(0);
    const holder = await admin.reserve(); // a long transaction writing events
    try {
      await holder`begin`;
      await holder`lock table public.analytics_events in row exclusive mode`;
      const maker = await admin.reserve();
      try {
        const job = maker`select app.create_analytics_partitions(0, ${ahead}) as made`;
        // while the job waits, an insert is held behind its lock request, and goes on once it gives up
        await new Promise((r) => setTimeout(r, 300));
        const res = await ingest(tokens.ownerB, {
          events: [{ type: "page.viewed", occurred_at: ago(0), properties: { path: "/during-partition-job" } }],
        });
        expect(res.status).toBe(200);
        expect((await job)[0].made).toBe(0);
      } finally {
        maker.release();
      }
    } finally {
      await holder`rollback`;
      holder.release();
    }
  });

  it("validates against the same event types as the database's catalog", async () => {
    const rows = await admin`select key from public.analytics_event_types order by key`;
    expect(rows.map((r) => r.key)).toEqual(Object.keys(EVENT_SCHEMAS).sort());
  });
});

describe("roll-ups", () => {
  it("equal a GROUP BY over the raw events after random batches, late events, and repeated and concurrent runs", async () => {
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let b = 0; b < 6; b++) {
      const who = ["teacher", "s1", "s2"][b % 3];
      const res = await ingest(tokens[who], { events: Array.from({ length: 150 }, () => randomEvent(rnd)) });
      expect((await res.json()).accepted).toBe(150);
    }
    const first = await aggregateOwnRun();
    expect(first).toMatchObject({ busy: false, pending: 0 });
    expect(await actual(orgA, "hour")).toEqual(await expected(orgA, "hour"));
    expect(await actual(orgA, "day")).toEqual(await expected(orgA, "day"));

    // late events into hours and days already rolled up, then two runs at once
    const late = Array.from({ length: 40 }, () => ({ ...randomEvent(rnd), occurred_at: ago(2 * 24 * HOUR + rnd() * HOUR) }));
    expect((await (await ingest(tokens.s2, { events: late })).json()).accepted).toBe(40);
    const both = await Promise.all([aggregate(), aggregate()].map(async (p) => (await p).json()));
    expect(both.every((r) => r.pending === 0 || r.busy)).toBe(true);
    await aggregateOwnRun(); // whatever a busy one left
    expect(await actual(orgA, "hour")).toEqual(await expected(orgA, "hour"));
    expect(await actual(orgA, "day")).toEqual(await expected(orgA, "day"));

    // another run changes nothing
    const [{ stamp }] = await admin`select max(updated_at) as stamp from public.analytics_hourly where org_id = ${orgA}`;
    expect(await aggregateOwnRun()).toMatchObject({ hours: 0, days: 0 });
    expect((await admin`select max(updated_at) as stamp from public.analytics_hourly where org_id = ${orgA}`)[0].stamp).toEqual(
      stamp,
    );
  }, 60_000);

  it("a run that dies midway leaves the figures as they were, and the next one finishes the work", async () => {
    await ingest(tokens.teacher, {
      events: [{
        type: "lesson.completed",
        occurred_at: ago(HOUR),
        properties: { lesson_id: "l9", duration_seconds: 1, score: 99 },
      }],
    });
    const before = await actual(orgA, "hour");
    // a client of its own: a connection whose backend is terminated must not go back to the pool
    // the other queries use (postgres.js then hands it out again and the next query waits forever)
    const runner = adminSql(1);
    const conn = await runner.reserve();
    try {
      // the run holds the roll-up lock; pg_cron's runs take it too, so wait for a turn of our own
      await waitUntil(
        "a run that is not busy",
        async () => {
          await conn`begin`;
          const [{ busy }] = await conn`select busy from app.rollup_analytics()`;
          if (busy) await conn`rollback`;
          return !busy;
        },
        15_000,
        250,
      );
      // inside its transaction the run has made the figures it is about to lose
      const inside = await conn`select event_type, bucket, events::int, users::int, (sums ->> 'score')::float8 as score
                                from public.analytics_hourly where org_id = ${orgA} order by 1, 2`;
      expect(inside).toEqual(await expected(orgA, "hour"));
      expect(inside).not.toEqual(before);
      const [{ pid }] = await conn`select pg_backend_pid() as pid`;
      expect(await admin`select pg_terminate_backend(${pid}) as ended`).toEqual([{ ended: true }]); // dies before it commits
      await waitUntil(
        "the run's backend to be gone",
        async () => (await admin`select 1 from pg_stat_activity where pid = ${pid}`).length === 0,
      );
    } finally {
      conn.release();
      await runner.end({ timeout: 1 });
    }
    expect(await actual(orgA, "hour")).toEqual(before);
    await (await aggregate()).json();
    expect(await actual(orgA, "hour")).toEqual(await expected(orgA, "hour"));
  });

  it("runs from pg_cron through net.http_post with the Vault secrets, as on hosted Supabase", async () => {
    await ingest(tokens.s1, {
      events: [{ type: "search.performed", occurred_at: ago(0), properties: { query_length: 4, results: 7 } }],
    });
    const [job] = await admin`select schedule, command from cron.job where jobname = 'analytics-rollup'`;
    expect(job.schedule).toBe("* * * * *");
    await admin.unsafe(job.command); // what pg_cron runs each minute
    await waitUntil(
      "the roll-up by the scheduled call",
      async () =>
        (await admin`select 1 from public.analytics_hourly where org_id = ${orgA} and event_type = 'search.performed' and sums = '{"results": 7}'`)
          .length > 0,
      20_000,
      200,
    );
  }, 30_000);

  it("only the service runs roll-ups", async () => {
    const res = await fetch(`${API_URL}/functions/v1/analytics-aggregation`, {
      method: "POST",
      body: "{}",
      headers: { "content-type": "application/json", authorization: `Bearer ${tokens.teacher}` },
    });
    expect(res.status).toBe(403);
    expect((await aggregate({ max_buckets: 0 })).status).toBe(400);
  });
});
