// API calls per organization: function requests served (an answer below 400) to a verified caller of
// an organization (a member's token naming it, its key) are counted in each function process, written to Redis (through the Upstash REST API) every
// API_CALLS_FLUSH_MS and at shutdown, and copied into usage_daily by analytics-aggregation, as
// pg_cron calls it.
import { Redis } from "@upstash/redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readApiCalls, utcDay } from "../../supabase/functions/_shared/usage/api-calls.ts";
import { UnsecuredJWT } from "jose";
import { callAsMachine, createKey } from "../helpers/machines.ts";
import { addMember, orgWithMember } from "../helpers/organizations.ts";
import { adminSql, API_URL, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";
import { apiCallSentinel, countedCalls, functionBootFailure, hostFunction } from "../helpers/api-calls.ts";
import { HOST, PORTS } from "../../dev/stack/config.ts";

const admin = adminSql();
const redis = new Redis({ url: `http://${HOST}:${PORTS.upstash}`, token: secrets().upstashToken });
let org: string, token: string, end: () => Promise<void>;
let sentinel: Awaited<ReturnType<typeof apiCallSentinel>>;
const today = () => utcDay(new Date());

const call = (fn: string, body: string, bearer = token) =>
  fetch(`${API_URL}/functions/v1/${fn}`, {
    method: "POST",
    body,
    headers: { "content-type": "application/json", authorization: `Bearer ${bearer}` },
  });
const pageView = () =>
  JSON.stringify({ events: [{ type: "page.viewed", occurred_at: new Date().toISOString(), properties: { path: "/" } }] });
const aggregate = async () => {
  const res = await call("analytics-aggregation", "{}", secrets().serviceRoleKey);
  expect(res.status).toBe(200);
  return res.json();
};
const recorded = async () =>
  (await admin`select api_calls, updated_at from public.usage_daily where org_id = ${org} and day = ${today()}::date`)[0] ?? null;

beforeAll(async () => {
  ({ org, token, end } = await orgWithMember(admin, "Usage", "student"));
  sentinel = await apiCallSentinel(admin, redis);
});
afterAll(async () => {
  await end?.();
  await sentinel.end();
  await admin.end();
});

describe("API calls", () => {
  it("counts each function request served to a signed-in member for the token's organization, not their mistakes", async () => {
    const event = pageView();
    expect((await call("analytics-ingest", event)).status).toBe(200);
    expect((await call("analytics-ingest", event)).status).toBe(200);
    expect((await call("analytics-ingest", "{ not json")).status).toBe(400);
    const refused = await call("file-upload", JSON.stringify({ org_id: org, name: "a.txt", size: 0, mime_type: "text/plain" }));
    expect([refused.status, ((await refused.json()) as { error: { code: string } }).error.code]).toEqual([
      400,
      "invalid_request",
    ]); // a size of 0
    // the service's own calls (cron, webhooks) name no organization and are not counted
    await aggregate();
    await sentinel.written("analytics-ingest");
    await sentinel.written("file-upload");
    expect((await readApiCalls(redis, today()))[org]).toBe(2);
  });

  it("are copied into usage_daily by analytics-aggregation, and copying again changes nothing", async () => {
    const body = await aggregate();
    expect(body.api_calls[today()]).toBeGreaterThanOrEqual(0);
    const first = await recorded();
    expect(Number(first?.api_calls)).toBe(2);
    await aggregate();
    const again = await recorded();
    expect(again).toEqual(first);
  });

  it("keep counting: the next copy brings the figure up to date", async () => {
    expect((await call("analytics-ingest", "[]")).status).toBe(400);
    expect((await call("analytics-ingest", pageView())).status).toBe(200);
    await sentinel.written("analytics-ingest");
    await aggregate();
    expect(Number((await recorded())?.api_calls)).toBe(3);
  });

  it("are not counted when the organization refuses the caller: a removed member's valid token, a forged one, a revoked key", async () => {
    const removed = await addMember(admin, org, "teacher");
    const { token: stillValid } = await tokenFor(admin, removed.id);
    await admin`delete from public.organization_members where org_id = ${org} and user_id = ${removed.id}`;
    const forged = new UnsecuredJWT({ role: "authenticated", sub: removed.id, org_id: org, aud: "authenticated" })
      .setExpirationTime("1h").encode();
    const { id: keyId, key } = await createKey(admin, org, (await addMember(admin, org, "owner")).id, ["org.read"]);
    await admin`update public.api_keys set revoked_at = now() where id = ${keyId}`;
    await sentinel.written("analytics-ingest");
    await sentinel.written("org-api");
    const before = await countedCalls(redis, org);

    const event = pageView();
    expect((await call("analytics-ingest", event, stillValid)).status).toBe(403);
    // a body the function reads before it asks who belongs: a mistake, not the organization's call either
    expect((await call("analytics-ingest", "{ not json", stillValid)).status).toBe(400);
    expect((await call("analytics-ingest", event, forged)).status).toBe(401);
    expect((await callAsMachine(key, "org-api/key")).status).toBe(401);
    expect((await call("org-api/key", "{}", stillValid)).status).toBe(403); // org-api takes no user tokens
    await sentinel.written("analytics-ingest");
    await sentinel.written("org-api");
    expect(await countedCalls(redis, org)).toBe(before);
  });

  it("a copy of the counters alone starts no roll-up; an empty task list is the caller's mistake", async () => {
    const only = await call("analytics-aggregation", JSON.stringify({ tasks: ["api_calls"] }), secrets().serviceRoleKey);
    expect(only.status).toBe(200);
    const body = await only.json();
    expect(Object.keys(body)).toEqual(["api_calls"]);
    const none = await call("analytics-aggregation", JSON.stringify({ tasks: [] }), secrets().serviceRoleKey);
    expect(none.status).toBe(400);
    expect((await none.json()).error.code).toBe("invalid_request");
  });

  it("are copied by the schedule too (pg_cron, net.http_post, Vault), without a call from here", async () => {
    await admin`update public.usage_daily set api_calls = 0 where org_id = ${org} and day = ${today()}::date`;
    const [job] = await admin`select jobid, command from cron.job where jobname = 'usage-api-calls'`;
    expect(job).toBeTruthy();
    // the schedule runs every five minutes; run its command now as pg_cron would
    await admin.unsafe(job.command);
    await waitUntil("the scheduled copy", async () => Number((await recorded())?.api_calls) === 3, 15_000);
  });

  it("still in a function's memory are written when the function is shut down", async () => {
    // an interval far longer than the test: only the shutdown can write them
    const fn = await hostFunction("analytics-ingest", { API_CALLS_FLUSH_MS: "60000" });
    const before = await countedCalls(redis, org);
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${fn.url}/analytics-ingest`, {
        method: "POST",
        body: pageView(),
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(200);
    }
    expect(await countedCalls(redis, org)).toBe(before); // answered before they were written
    expect(await fn.stop()).toBe(0);
    expect(await countedCalls(redis, org)).toBe(before + 3);
  });

  it("a flush interval that is not 10 to 60,000 whole ms stops the function at start", async () => {
    for (const bad of ["0", "1.5", "soon", "600000"]) {
      expect(await functionBootFailure("analytics-ingest", { API_CALLS_FLUSH_MS: bad })).toMatch(/API_CALLS_FLUSH_MS/);
    }
  });
});
