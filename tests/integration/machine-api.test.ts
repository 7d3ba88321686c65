// Issue 31: every scope an API key can hold has an HTTP path, run in the key's request context, and
// the machine API's OpenAPI description is what the functions accept. Each documented operation is
// called here with a key, its answer held to the documented schema (the zod schema the description
// is made from), its request body refused with an undeclared field; the last test fails if an
// operation was documented but never called successfully. The tier's request limit is enforced per
// key and per organization, 429 with Retry-After, and key calls count as API calls.
import crypto from "node:crypto";
import { Redis } from "@upstash/redis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { z } from "zod";
import { IngestResponse } from "../../supabase/functions/analytics-ingest/events.ts";
import { UploadResponse } from "../../supabase/functions/file-upload/upload.ts";
import { InviteResponse, openApiDocument } from "../../supabase/functions/org-api/openapi.ts";
import { ROUTES } from "../../supabase/functions/org-api/routes.ts";
import { asMember, callAsMachine, clearOfMinuteEnd, createKey, FUNCTIONS_URL } from "../helpers/machines.ts";
import { addMember, createOrg } from "../helpers/organizations.ts";
import { adminSql, API_URL, HOST, PORTS, secrets, waitUntil } from "../helpers/stack.ts";
import { apiCallSentinel, countedCalls } from "../helpers/api-calls.ts";

const admin = adminSql();
const ALL_SCOPES = [
  "org.read",
  "settings.manage",
  "members.invite",
  "members.manage",
  "files.read",
  "files.write",
  "analytics.read",
  "audit.read",
  "api_keys.manage",
  "notifications.send",
  "exercises.control",
  "jobs.manage",
  "data.export",
  "events.write",
];
let org: string, owner: { id: string }, teacher: { id: string }, student: { id: string };
let key: { id: string; key: string };

beforeAll(async () => {
  org = await createOrg(admin, "Machine API", "basic");
  owner = await addMember(admin, org, "owner");
  teacher = await addMember(admin, org, "teacher");
  student = await addMember(admin, org, "student");
  key = await createKey(admin, org, owner.id, ALL_SCOPES, { name: "sync server" });
});
afterAll(async () => {
  await admin`update public.organizations set deleted_at = now() where id = ${org}`;
  await admin.end();
});

// ---------------------------------------------------------------------------------------------
// The documented operations, each with the schema its answer must fit.
const doc = openApiDocument(`${API_URL}/functions/v1`) as { paths: Record<string, Record<string, unknown>> };
const RESPONSES = new Map<string, z.ZodType | null>([
  ["POST /analytics-ingest", IngestResponse],
  ["POST /file-upload", UploadResponse],
  ["POST /member-invite", InviteResponse],
  ...ROUTES.map((r) => [`${r.method} /org-api${r.path}`, r.response] as [string, z.ZodType | null]),
]);
const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`))
  .filter((op) => op !== "GET /org-api/openapi.json");
const templateOf = (method: string, path: string) =>
  documented.find((op) => {
    const [m, template] = op.split(" ");
    return m === method && new RegExp(`^${template.replace(/\{[a-z_]+\}/g, "[^/]+")}$`).test(path.split("?")[0]);
  });
const succeeded = new Set<string>();

/** A machine's call, held to the description: a 2xx answer must fit the operation's documented schema. */
async function call(path: string, init: { method?: string; body?: unknown } = {}, as = key.key) {
  const answer = await callAsMachine(as, path, init);
  const method = init.method ?? (init.body === undefined ? "GET" : "POST");
  const op = templateOf(method, `/${path}`);
  if (!op) throw new Error(`${method} /${path} is not a documented operation`);
  if (answer.status < 300) {
    const schema = RESPONSES.get(op);
    if (schema === undefined) throw new Error(`no schema for ${op}`);
    if (schema === null) expect(answer.body).toBe("");
    else {
      const fit = schema.safeParse(answer.json);
      if (!fit.success) throw new Error(`${op} answered outside its schema: ${fit.error.message}\n${answer.body}`);
    }
    succeeded.add(op);
  }
  return answer;
}

describe("the description", () => {
  it("is served by org-api, as built from the functions' schemas", async () => {
    const served = await fetch(`${FUNCTIONS_URL}/org-api/openapi.json`, { headers: { apikey: secrets().publishableKey } });
    expect(served.status).toBe(200);
    expect(await served.json()).toEqual(doc);
    expect(documented.length).toBe(ROUTES.length + 3);
  });

  it("refuses, in each documented request body, a field it does not declare", async () => {
    const withBody = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.entries(ops).filter(([, op]) => (op as { requestBody?: unknown }).requestBody).map(([m]) => [m.toUpperCase(), p])
    );
    expect(withBody.length).toBeGreaterThanOrEqual(7);
    for (const [method, p] of withBody) {
      const path = p.slice(1).replace("{user_id}", student.id).replace("{permission}", "files.write");
      const answer = await callAsMachine(key.key, path, { method, body: { not_a_field: true } });
      expect([path, answer.status, answer.json?.error?.code]).toEqual([path, 400, "invalid_request"]);
    }
  });
});

describe("every scope has a path, run as the key", () => {
  it("any live key: GET /key names the key, its organization, its live scopes and limit", async () => {
    const k = await call("org-api/key");
    expect(k.json).toEqual({ api_key_id: key.id, org_id: org, scopes: [...ALL_SCOPES].sort(), requests_per_minute: 300 });
  });

  it("events.write: analytics-ingest stores the events for the key's organization and no user", async () => {
    const occurred = new Date().toISOString();
    const r = await call("analytics-ingest", {
      body: {
        events: [
          { type: "lesson.completed", occurred_at: occurred, properties: { lesson_id: "l-1", duration_seconds: 60, score: 90 } },
          { type: "no.such.type", occurred_at: occurred },
        ],
      },
    });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ accepted: 1, rejected: [{ index: 1, code: "unknown_event_type" }] });
    const rows = await admin`select user_id, event_type from public.analytics_events where org_id = ${org}`;
    expect(rows).toEqual([{ user_id: null, event_type: "lesson.completed" }]);
  });

  let fileId: string;
  it("files.write and files.read: an upload through file-upload, scanned, listed, read and downloaded", async () => {
    const bytes = `worksheet ${crypto.randomUUID()}\n`;
    const started = await call("file-upload", {
      body: { org_id: org, name: "worksheet.txt", size: bytes.length, mime_type: "text/plain" },
    });
    expect(started.status).toBe(201);
    fileId = started.json.file_id;
    const put = await fetch(started.json.signed_url, { method: "PUT", headers: { "content-type": "text/plain" }, body: bytes });
    expect(put.status).toBe(200);
    const file = await waitUntil(
      "the scan",
      async () => {
        const f = await call(`org-api/files/${fileId}`);
        return ["clean", "infected", "rejected", "failed"].includes(f.json.status) ? f.json : null;
      },
      20_000,
      200,
    );
    expect(file).toMatchObject({
      id: fileId,
      name: "worksheet.txt",
      status: "clean",
      size_bytes: bytes.length,
      mime_type: "text/plain",
    });
    const [row] = await admin`select uploaded_by from public.files where id = ${fileId}`;
    expect(row.uploaded_by).toBeNull();
    const [audited] = await admin`select actor_user_id, actor_api_key_id from audit.log
                                  where table_name = 'public.files' and row_id = ${fileId} and action = 'INSERT'`;
    expect(audited).toEqual({ actor_user_id: null, actor_api_key_id: key.id });

    const list = await call("org-api/files?limit=10&status=clean");
    expect(list.json.data.map((f: { id: string }) => f.id)).toContain(fileId);
    const link = await call(`org-api/files/${fileId}/download`);
    expect(link.json.expires_in).toBe(300);
    expect(await (await fetch(link.json.signed_url)).text()).toBe(bytes);
  });

  it("notifications.send: POST /org-api/notifications with the RPC's rules, audited as the key", async () => {
    const body = {
      type: "announcement.posted",
      title: "Lab closed",
      body: "The lab is closed today.",
      recipients: { user_ids: [student.id] },
      idempotency_key: `lab-${crypto.randomUUID()}`,
    };
    const sent = await call("org-api/notifications", { body });
    expect(sent.status).toBe(201);
    expect(sent.json.created).toBe(1);
    expect((await call("org-api/notifications", { body })).json.created).toBe(0);
    const outsider = await callAsMachine(key.key, "org-api/notifications", {
      body: { ...body, idempotency_key: undefined, recipients: { user_ids: [crypto.randomUUID()] } },
    });
    expect([outsider.status, outsider.json.error.code]).toEqual([400, "recipient_not_member"]);
    // the system's types are the system's: a usage alert with the key the usage check would use is refused
    const day = new Date().toISOString().slice(0, 10);
    const forged = await call("org-api/notifications", {
      body: { ...body, type: "usage.limit", idempotency_key: `usage.limit:members:${day}` },
    });
    expect([forged.status, forged.json.error.code]).toEqual([403, "system_notification_type"]);
    const [audited] = await admin`select actor_user_id, actor_api_key_id from audit.log
                                  where table_name = 'public.notifications' and row_id = ${sent.json.batch_id}`;
    expect(audited).toEqual({ actor_user_id: null, actor_api_key_id: key.id });
  });

  it("members.invite: member-invite invites as the key (as an admin at most)", async () => {
    const email = `invitee-${crypto.randomUUID().slice(0, 8)}@machines.test`;
    const invited = await call("member-invite", { body: { org_id: org, email, role: "teacher" } });
    expect(invited.status).toBe(201);
    expect(invited.json.mail).toBe("invite");
    const [inv] = await admin`select created_by, role::text from public.invitations where id = ${invited.json.invitation_id}`;
    expect(inv).toEqual({ created_by: null, role: "teacher" });
    const owner_ = await callAsMachine(key.key, "member-invite", {
      body: { org_id: org, email: `boss-${email}`, role: "owner" },
    });
    expect([owner_.status, owner_.json.error.code]).toEqual([403, "role_not_allowed"]);
    // the same address for another role is refused while the teacher invitation is open, not silently replaced
    const other = await callAsMachine(key.key, "member-invite", { body: { org_id: org, email, role: "student" } });
    expect([other.status, other.json.error.code]).toEqual([409, "invitation_pending"]);
    const [open] = await admin`select role::text from public.invitations
                               where org_id = ${org} and email = ${email} and revoked_at is null and accepted_at is null`;
    expect(open).toEqual({ role: "teacher" });
  });

  it("org.read: the organization, and its members page by page", async () => {
    expect((await call("org-api/organization")).json).toMatchObject({ id: org, name: "Machine API", tier: "basic" });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await call(`org-api/members?limit=1${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.json.data.length).toBe(1);
      seen.push(page.json.data[0].user_id);
      cursor = page.json.next_cursor;
    } while (cursor);
    expect(seen.sort()).toEqual([owner.id, teacher.id, student.id].sort());
    const bad = await callAsMachine(key.key, "org-api/members?cursor=bm90LWEtY3Vyc29y");
    expect([bad.status, bad.json.error.code]).toEqual([400, "invalid_cursor"]);
  });

  it("settings.manage: PATCH /org-api/organization", async () => {
    const changed = await call("org-api/organization", {
      method: "PATCH",
      body: { name: "Machine API", settings: { term: "spring" } },
    });
    expect(changed.json.settings).toEqual({ term: "spring" });
  });

  it("members.manage: a role, an override and its removal, for a member below the key's rank", async () => {
    const promoted = await call(`org-api/members/${student.id}`, { method: "PATCH", body: { role: "teacher" } });
    expect(promoted.json).toMatchObject({ user_id: student.id, role: "teacher" });
    await call(`org-api/members/${student.id}`, { method: "PATCH", body: { role: "student" } });
    const granted = await call(`org-api/members/${student.id}/permissions/files.write`, {
      method: "PUT",
      body: { granted: true },
    });
    expect(granted.json).toEqual({ user_id: student.id, permission: "files.write", granted: true });
    expect((await call(`org-api/members/${student.id}/permissions/files.write`, { method: "DELETE" })).status).toBe(204);
    const again = await callAsMachine(key.key, `org-api/members/${student.id}/permissions/files.write`, { method: "DELETE" });
    expect(again.status).toBe(404);
  });

  it("analytics.read: series, top events and usage", async () => {
    const from = new Date(Date.now() - 2 * 86400_000).toISOString(), to = new Date(Date.now() + 3600_000).toISOString();
    const series = await call(`org-api/analytics/series?event_type=lesson.completed&from=${from}&to=${to}&granularity=day`);
    expect(series.json.data.length).toBeGreaterThanOrEqual(2);
    expect((await call(`org-api/analytics/top-events?from=${from}&to=${to}`)).status).toBe(200);
    await admin`select app.track_usage()`;
    const usage = await call("org-api/usage");
    expect(usage.json.data.map((f: { metric: string }) => f.metric)).toContain("api_calls");
  });

  it("audit.read: the log, newest first, naming the key as the actor of its changes", async () => {
    const first = await call("org-api/audit?limit=5");
    expect(first.json.data.length).toBe(5);
    expect(first.json.next_cursor).toEqual(expect.any(String));
    const next = await call(`org-api/audit?limit=5&cursor=${first.json.next_cursor}`);
    expect(BigInt(next.json.data[0].id)).toBeLessThan(BigInt(first.json.data[4].id));
    const byKey = [...first.json.data, ...next.json.data].filter((e: { actor_api_key_id: string }) =>
      e.actor_api_key_id === key.id
    );
    expect(byKey.length).toBeGreaterThan(0);
    expect(byKey.every((e: { actor_user_id: string | null }) => e.actor_user_id === null)).toBe(true);
  });

  it("jobs.manage: the organization's jobs, retry and cancel", async () => {
    const [{ job_id }] = await admin`select app.enqueue_job('tenant.export', ${
      admin.json({ org_id: org, export_id: crypto.randomUUID(), correlation_id: "machine-test" })
    }::jsonb, 0, 3600) as job_id`;
    const jobs = await call("org-api/jobs?limit=50");
    expect(jobs.json.data.map((j: { id: string }) => j.id)).toContain(job_id);
    expect((await call(`org-api/jobs/${job_id}/cancel`, { method: "POST" })).status).toBe(204);
    const twice = await callAsMachine(key.key, `org-api/jobs/${job_id}/cancel`, { method: "POST" });
    expect([twice.status, twice.json.error.code]).toEqual([409, "job_state"]);
    await admin`update pgboss.job set state = 'failed' where id = ${job_id}`;
    expect((await call(`org-api/jobs/${job_id}/retry`, { method: "POST" })).status).toBe(204);
    await admin`update pgboss.job set state = 'cancelled' where id = ${job_id}`;
    const stranger = await callAsMachine(key.key, `org-api/jobs/${crypto.randomUUID()}/retry`, { method: "POST" });
    expect(stranger.status).toBe(404);
  });

  it("data.export: an owner's export, listed and downloaded with a key holding what the archive needed", async () => {
    const [requested] = await asMember(admin, owner.id, (tx) => tx`select id from public.request_data_export(${org})`);
    const done = await waitUntil(
      "the export",
      async () => {
        const page = await call("org-api/exports");
        const e = page.json.data.find((x: { id: string }) => x.id === requested.id);
        return e?.status === "completed" || e?.status === "failed" ? e : null;
      },
      25_000,
      250,
    );
    expect(done.status).toBe("completed");
    const link = await call(`org-api/exports/${requested.id}/download`);
    const archive = await (await fetch(link.json.signed_url)).json();
    expect(JSON.stringify(archive)).toContain(org);
  });

  it("api_keys.manage: the organization's keys without secrets, and revoking one", async () => {
    const other = await createKey(admin, org, owner.id, ["org.read"], { name: "old scanner" });
    const page = await call("org-api/api-keys?limit=100");
    const listed = page.json.data.find((k: { id: string }) => k.id === other.id);
    expect(listed).toMatchObject({ name: "old scanner", key_prefix: other.prefix, scopes: ["org.read"], revoked_at: null });
    expect(page.body).not.toContain(other.key);
    expect((await call(`org-api/api-keys/${other.id}/revoke`, { method: "POST" })).status).toBe(204);
    const refused = await callAsMachine(other.key, "org-api/key");
    expect([refused.status, refused.json.error.code]).toEqual([401, "api_key_revoked"]);
  });

  it("exercises.control: the exercises and teams a device's topics name", async () => {
    const [{ id: exercise }] =
      await admin`insert into public.exercises (org_id, title) values (${org}, 'Fire drill') returning id`;
    await admin`insert into public.exercise_teams (org_id, exercise_id, name) values (${org}, ${exercise}, 'Red')`;
    const page = await call("org-api/exercises");
    expect(page.json.data).toEqual([
      expect.objectContaining({ id: exercise, title: "Fire drill", teams: [expect.objectContaining({ name: "Red" })] }),
    ]);
  });

  it("members.manage removes a member (last: the organization keeps its other members for the tests above)", async () => {
    expect((await call(`org-api/members/${teacher.id}`, { method: "DELETE" })).status).toBe(204);
    expect(await admin`select 1 from public.organization_members where org_id = ${org} and user_id = ${teacher.id}`).toEqual([]);
  });

  it("every documented operation was called successfully above", () => {
    expect(documented.filter((op) => !succeeded.has(op))).toEqual([]);
  });
});

describe("the tier's request limit", () => {
  const redis = new Redis({ url: `http://${HOST}:${PORTS.upstash}`, token: secrets().upstashToken, enableTelemetry: false });

  it("holds each key and all of an organization's keys to api_requests_per_minute, with Retry-After, and counts them as API calls", async () => {
    const free = await createOrg(admin, "Limited", "free"); // 60 a minute
    const boss = await addMember(admin, free, "owner");
    const a = await createKey(admin, free, boss.id, ["org.read"]);
    const b = await createKey(admin, free, boss.id, ["org.read"]);
    await clearOfMinuteEnd(15_000);
    const counted = () => countedCalls(redis, free);
    const before = await counted();
    const burst = async (k: string, n: number) =>
      (await Promise.all(Array.from({ length: n }, () => callAsMachine(k, "org-api/key")))).map((r) => r.status);
    expect(new Set(await burst(a.key, 40))).toEqual(new Set([200]));
    expect(new Set(await burst(b.key, 20))).toEqual(new Set([200]));
    const overOrg = await callAsMachine(b.key, "org-api/key");
    expect([overOrg.status, overOrg.json.error.code, overOrg.json.error.details.limit]).toEqual([
      429,
      "rate_limited",
      "requests_per_organization",
    ]);
    const retryAfter = Number(overOrg.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(new Set(await burst(a.key, 20))).toEqual(new Set([429]));
    const overKey = await callAsMachine(a.key, "org-api/key");
    expect(overKey.json.error.details.limit).toBe("requests_per_key");
    // the 60 admitted calls were served and count; the 22 over the limit were refused
    const sentinel = await apiCallSentinel(admin, redis);
    await sentinel.written("org-api");
    expect((await counted()) - before).toBe(60);
    await admin`update public.organizations set deleted_at = now() where id = ${free}`;
    await sentinel.end();
  });
});
