// Issue 31's attacker: every way a key could be misused over HTTP (and MQTT where it applies) is
// refused, from the functions a machine calls: a revoked key, an expired key, a key of another
// organization naming this one, a key without the scope, a key whose creator was demoted or
// removed (cut at its next request, while every function still holds its verification in memory),
// a key sent from a browser page, a guessed key (answered exactly as an unknown key, and guessing
// stopped per address), and a key trying to act as a user. The last test measures how soon a
// revocation stops a key that is in use.
import crypto from "node:crypto";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openApiDocument } from "../../supabase/functions/org-api/openapi.ts";
import { API_KEY_FAILURES_PER_MINUTE } from "../../supabase/functions/_shared/api-keys.ts";
import { launchChromium, serveSite } from "../helpers/browser.ts";
import {
  asMember,
  callAsMachine,
  clearOfMinuteEnd,
  createKey,
  freshAddress,
  FUNCTIONS_URL,
  type MachineCall,
} from "../helpers/machines.ts";
import { addMember, createOrg } from "../helpers/organizations.ts";
import { adminSql, API_URL, HOST, PORTS, secrets, tokenFor } from "../helpers/stack.ts";

const admin = adminSql();
// Refused keys count against their source address; this file's are its own, not the suite's.
const HERE = freshAddress();
const call = (key: string, path: string, init: MachineCall = {}) => callAsMachine(key, path, { from: HERE, ...init });
let orgA: string, orgB: string;
let owner: { id: string }, adminUser: { id: string }, teacher: { id: string }, teacher2: { id: string }, student: { id: string };
let ownerB: { id: string };
const now = () => new Date().toISOString();
const event = () => ({ events: [{ type: "page.viewed", occurred_at: now(), properties: { path: "/attack" } }] });

beforeAll(async () => {
  orgA = await createOrg(admin, "Attacked", "basic");
  orgB = await createOrg(admin, "Attacker", "basic");
  owner = await addMember(admin, orgA, "owner");
  adminUser = await addMember(admin, orgA, "admin");
  teacher = await addMember(admin, orgA, "teacher");
  teacher2 = await addMember(admin, orgA, "teacher");
  student = await addMember(admin, orgA, "student");
  ownerB = await addMember(admin, orgB, "owner");
  // a teacher trusted with keys and member management
  await admin`insert into public.member_permissions (org_id, user_id, permission, granted)
              values (${orgA}, ${teacher.id}, 'api_keys.manage', true), (${orgA}, ${teacher.id}, 'members.manage', true)`;
});
afterAll(async () => {
  await admin`update public.organizations set deleted_at = now() where id in (${orgA}, ${orgB})`;
  await admin.end();
});

/** One call to each function a machine uses, each as a key holding the scope would make it. */
const everyFunction = (org: string) =>
  [
    ["org-api/key", undefined],
    ["analytics-ingest", event()],
    ["file-upload", { org_id: org, name: "scan.pdf", size: 100, mime_type: "application/pdf" }],
    ["member-invite", { org_id: org, email: `x-${crypto.randomUUID().slice(0, 8)}@attack.test`, role: "student" }],
  ] as const;
const SCOPES = ["org.read", "events.write", "files.write", "files.read", "members.invite"];
const codes = async (key: string, org: string) =>
  Promise.all(
    everyFunction(org).map(async ([path, body]) => {
      const r = await call(key, path, { body });
      return `${path} ${r.status} ${r.json?.error?.code ?? ""}`.trim();
    }),
  );
const counts = async (org: string) => {
  const [c] = await admin`select (select count(*)::int from public.analytics_events where org_id = ${org}) as events,
                                 (select count(*)::int from public.files where org_id = ${org}) as files,
                                 (select count(*)::int from public.invitations where org_id = ${org}) as invitations`;
  return c;
};

function connectMqtt(keyId: string, password: string) {
  return new Promise<mqtt.MqttClient>((resolve, reject) => {
    const c = mqtt.connect(`mqtt://${HOST}:${PORTS.mqtt}`, {
      username: "device",
      password,
      clientId: `${keyId}-attack-${crypto.randomUUID().slice(0, 6)}`,
      reconnectPeriod: 0,
      connectTimeout: 3000,
    });
    c.once("connect", () => resolve(c));
    c.once("error", (e) => {
      c.end(true);
      reject(e);
    });
  });
}

describe("a revoked or expired key", () => {
  it("is refused by every function at its next request, although each still holds its verification", async () => {
    const k = await createKey(admin, orgA, owner.id, SCOPES, { mqttTopics: ["events"] });
    expect(await codes(k.key, orgA)).toEqual(["org-api/key 200", "analytics-ingest 200", "file-upload 201", "member-invite 201"]);
    (await connectMqtt(k.id, k.key)).end(true);
    const before = await counts(orgA);
    await asMember(admin, owner.id, (tx) => tx`select public.revoke_api_key(${k.id})`);
    expect(await codes(k.key, orgA)).toEqual([
      "org-api/key 401 api_key_revoked",
      "analytics-ingest 401 api_key_revoked",
      "file-upload 401 api_key_revoked",
      "member-invite 401 api_key_revoked",
    ]);
    expect(await counts(orgA)).toEqual(before);
    await expect(connectMqtt(k.id, k.key)).rejects.toBeTruthy();
  });

  it("an expired key likewise", async () => {
    const k = await createKey(admin, orgA, owner.id, SCOPES);
    expect((await call(k.key, "org-api/key")).status).toBe(200);
    expect((await call(k.key, "analytics-ingest", { body: event() })).status).toBe(200);
    await admin`update public.api_keys set expires_at = now() - interval '1 second' where id = ${k.id}`;
    const before = await counts(orgA);
    expect(await codes(k.key, orgA)).toEqual([
      "org-api/key 401 api_key_expired",
      "analytics-ingest 401 api_key_expired",
      "file-upload 401 api_key_expired",
      "member-invite 401 api_key_expired",
    ]);
    expect(await counts(orgA)).toEqual(before);
  });
});

describe("a key of another organization", () => {
  it("naming this one starts no upload, sends no invitation, reads no file, and subscribes to nothing of it", async () => {
    const [{ id: fileOfA }] = await asMember(
      admin,
      owner.id,
      (tx) => tx`select id from public.request_file_upload(${orgA}, 'secret.pdf', 100, 'application/pdf')`,
    );
    const k = await createKey(admin, orgB, ownerB.id, SCOPES, { mqttTopics: ["events"] });
    const before = await counts(orgA);
    const upload = await call(k.key, "file-upload", {
      body: { org_id: orgA, name: "x.pdf", size: 100, mime_type: "application/pdf" },
    });
    expect([upload.status, upload.json.error.code]).toEqual([403, "forbidden"]);
    const invite = await call(k.key, "member-invite", { body: { org_id: orgA, email: "spy@attack.test", role: "student" } });
    expect([invite.status, invite.json.error.code]).toEqual([403, "forbidden"]);
    expect((await call(k.key, `org-api/files/${fileOfA}`)).status).toBe(404);
    expect((await call(k.key, "org-api/organization")).json.id).toBe(orgB);
    expect((await call(k.key, "analytics-ingest", { body: event() })).status).toBe(200); // lands in B
    expect(await counts(orgA)).toEqual(before);
    const device = await connectMqtt(k.id, k.key);
    await expect(device.subscribeAsync(`org/${orgA}/events`, { qos: 1 })).rejects.toThrow(/Subscribe error/);
    await expect(device.subscribeAsync(`org/${orgB}/events`, { qos: 1 })).resolves.toEqual([expect.objectContaining({ qos: 1 })]);
    device.end(true);
  });
});

describe("a key without the scope", () => {
  // a valid request for each documented operation, so only the scope stands in the way
  const doc = openApiDocument(`${API_URL}/functions/v1`) as {
    paths: Record<string, Record<string, { "x-required-scope": string | null }>>;
  };
  const bodies: Record<string, unknown> = {
    "POST /analytics-ingest": event(),
    "POST /file-upload": "upload",
    "POST /member-invite": "invite",
    "PATCH /org-api/organization": { name: "Renamed" },
    "PATCH /org-api/members/{user_id}": { role: "teacher" },
    "PUT /org-api/members/{user_id}/permissions/{permission}": { granted: true },
    "POST /org-api/notifications": { type: "announcement.posted", title: "Hi" },
  };

  it("is refused with missing_scope by every operation that needs another, and does nothing", async () => {
    const k = await createKey(admin, orgA, owner.id, ["org.read"]);
    const before = await counts(orgA);
    const answers: string[] = [];
    for (const [template, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const scope = op["x-required-scope"];
        if (!scope || scope === "org.read") continue;
        const name = `${method.toUpperCase()} ${template}`;
        let body = bodies[name];
        if (body === "upload") body = { org_id: orgA, name: "x.pdf", size: 100, mime_type: "application/pdf" };
        if (body === "invite") body = { org_id: orgA, email: "nobody@attack.test", role: "student" };
        const path = template.slice(1).replace("{user_id}", student.id).replace("{permission}", "files.write")
          .replace(/\{[a-z_]+\}/g, crypto.randomUUID()) +
          (template === "/org-api/analytics/series" ? `?event_type=page.viewed&from=${now()}&to=${now()}` : "") +
          (template === "/org-api/analytics/top-events" ? `?from=${now()}&to=${now()}` : "");
        const r = await call(k.key, path, { method: method.toUpperCase(), body });
        answers.push(`${name} ${r.status} ${r.json?.error?.code}`);
      }
    }
    expect(answers.length).toBeGreaterThanOrEqual(20);
    expect(answers.filter((a) => !a.endsWith(" 403 missing_scope"))).toEqual([]);
    expect(await counts(orgA)).toEqual(before);
    const [student_] = await admin`select role::text from public.organization_members where user_id = ${student.id}`;
    expect(student_.role).toBe("student");
  });
});

describe("a key whose creator was demoted or removed", () => {
  it("loses what the creator lost at its next request, and everything when the creator leaves", async () => {
    const k = await createKey(admin, orgA, adminUser.id, ["org.read", "audit.read", "events.write"]);
    expect((await call(k.key, "org-api/audit?limit=1")).status).toBe(200);
    expect((await call(k.key, "analytics-ingest", { body: event() })).status).toBe(200);
    await asMember(
      admin,
      owner.id,
      (tx) => tx`update public.organization_members set role = 'teacher' where org_id = ${orgA} and user_id = ${adminUser.id}`,
    );
    const audit = await call(k.key, "org-api/audit?limit=1");
    expect([audit.status, audit.json.error.code]).toEqual([403, "missing_scope"]);
    expect((await call(k.key, "org-api/organization")).status).toBe(200); // teachers keep org.read
    expect((await call(k.key, "analytics-ingest", { body: event() })).status).toBe(200); // and events.write
    expect((await call(k.key, "org-api/key")).json.scopes).toEqual(["events.write", "org.read"]);

    await asMember(
      admin,
      owner.id,
      (tx) => tx`delete from public.organization_members where org_id = ${orgA} and user_id = ${adminUser.id}`,
    );
    const gone = await call(k.key, "analytics-ingest", { body: event() });
    expect([gone.status, gone.json.error.code]).toEqual([401, "api_key_revoked"]);
    expect((await call(k.key, "org-api/organization")).status).toBe(401);
  });
});

describe("a key sent from a browser", () => {
  it("is refused like a secret key in a browser: with an Origin, or a browser's User-Agent", async () => {
    const k = await createKey(admin, orgA, owner.id, SCOPES);
    const before = await counts(orgA);
    for (
      const extra of [
        { origin: "https://school.example" } as Record<string, string>,
        { "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36" },
      ]
    ) {
      for (const [path, body] of everyFunction(orgA)) {
        const r = await call(k.key, path, { body, headers: extra });
        expect([path, r.status, r.json.error.code]).toEqual([path, 401, "api_key_in_browser"]);
      }
    }
    expect(await counts(orgA)).toEqual(before);
  });

  it("from a real page on another origin (headless Chromium), the function answers api_key_in_browser", async () => {
    const k = await createKey(admin, orgA, owner.id, SCOPES);
    const site = await serveSite("<!doctype html><title>page</title>");
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(site.origin);
      const seen = await page.evaluate(async ({ url, publishable, key, body }) => {
        const r = await fetch(url, {
          method: "POST",
          headers: { apikey: publishable, "x-api-key": key, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        return { status: r.status, body: await r.json() };
      }, { url: `${FUNCTIONS_URL}/analytics-ingest`, publishable: secrets().publishableKey, key: k.key, body: event() });
      expect(seen).toMatchObject({ status: 401, body: { error: { code: "api_key_in_browser" } } });
    } finally {
      await browser.close();
      await site.close();
    }
  });
});

describe("a guessed key", () => {
  const unknownKey = () => `sk_${crypto.randomBytes(24).toString("base64url")}`;
  const shape = (r: { status: number; headers: Headers; json: Record<string, unknown> }) => ({
    status: r.status,
    type: r.headers.get("content-type"),
    body: { ...r.json, request_id: "-" },
  });

  it("with a real key's prefix answers exactly as an unknown key does", async () => {
    const k = await createKey(admin, orgA, owner.id, ["org.read"]);
    const from = freshAddress();
    const guessed = k.key.slice(0, 11) + crypto.randomBytes(24).toString("base64url").slice(0, k.key.length - 11);
    expect(guessed).not.toBe(k.key);
    expect(guessed.length).toBe(k.key.length);
    for (const path of ["org-api/organization", "analytics-ingest"]) {
      const body = path === "analytics-ingest" ? event() : undefined;
      const a = shape(await callAsMachine(guessed, path, { body, from }));
      const b = shape(await callAsMachine(unknownKey(), path, { body, from }));
      expect(a).toEqual(b);
      expect(a).toMatchObject({ status: 401, body: { error: { code: "invalid_api_key" } } });
    }
  });

  it("is stopped per address: past the refused keys a minute allows, every key from there is refused, a good one too", async () => {
    const k = await createKey(admin, orgA, owner.id, ["org.read"]);
    await clearOfMinuteEnd(15_000);
    const attacker = freshAddress();
    const prefix = k.key.slice(0, 11);
    const guesses = await Promise.all(
      Array.from(
        { length: API_KEY_FAILURES_PER_MINUTE },
        () =>
          callAsMachine(prefix + crypto.randomBytes(24).toString("base64url").slice(0, 32), "org-api/key", { from: attacker }),
      ),
    );
    expect(new Set(guesses.map((g) => g.status))).toEqual(new Set([401]));
    const stopped = await callAsMachine(unknownKey(), "org-api/key", { from: attacker });
    expect(stopped.status).toBe(429);
    const retryAfter = Number(stopped.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // the right key from the attacker's address learns nothing either
    expect((await callAsMachine(k.key, "org-api/key", { from: attacker })).status).toBe(429);
    expect((await callAsMachine(k.key, "analytics-ingest", { body: event(), from: attacker })).status).toBe(429);
    // while the same key from its device's own address works
    expect((await callAsMachine(k.key, "org-api/key", { from: freshAddress() })).status).toBe(200);
  });
});

describe("a key trying to act as a user", () => {
  it("has no user: a user's token beside it changes nothing, and its writes name the key", async () => {
    const k = await createKey(admin, orgA, owner.id, ["events.write", "org.read"]);
    const ownersToken = (await tokenFor(admin, owner.id)).token;
    const r = await call(k.key, "analytics-ingest", {
      body: { events: [{ type: "page.viewed", occurred_at: now(), properties: { path: `/as-user-${k.id}` } }] },
      headers: { authorization: `Bearer ${ownersToken}` },
    });
    expect(r.status).toBe(200);
    const rows =
      await admin`select user_id from public.analytics_events where org_id = ${orgA} and properties->>'path' = ${`/as-user-${k.id}`}`;
    expect(rows).toEqual([{ user_id: null }]);
  });

  it("is never an owner: it makes, unmakes and removes no owner", async () => {
    const k = await createKey(admin, orgA, owner.id, ["members.manage", "org.read"]);
    const make = await call(k.key, `org-api/members/${student.id}`, { method: "PATCH", body: { role: "owner" } });
    expect([make.status, make.json.error.code]).toEqual([403, "owners_only"]);
    const unmake = await call(k.key, `org-api/members/${owner.id}`, { method: "PATCH", body: { role: "admin" } });
    expect([unmake.status, unmake.json.error.code]).toEqual([403, "owners_only"]);
    const remove = await call(k.key, `org-api/members/${owner.id}`, { method: "DELETE" });
    expect([remove.status, remove.json.error.code]).toEqual([403, "owners_only"]);
    const roles =
      await admin`select user_id, role::text from public.organization_members where org_id = ${orgA} and role = 'owner'`;
    expect(roles).toEqual([{ user_id: owner.id, role: "owner" }]);
  });

  it("never writes overrides for its creator, nor for anyone its creator could not", async () => {
    const k = await createKey(admin, orgA, teacher.id, ["members.manage", "org.read"]);
    const self = await call(k.key, `org-api/members/${teacher.id}/permissions/audit.read`, {
      method: "PUT",
      body: { granted: true },
    });
    expect([self.status, self.json.error.code]).toEqual([403, "forbidden"]);
    const peer = await call(k.key, `org-api/members/${teacher2.id}/permissions/audit.read`, {
      method: "PUT",
      body: { granted: true },
    });
    expect([peer.status, peer.json.error.code]).toEqual([403, "forbidden"]);
    const below = await call(k.key, `org-api/members/${student.id}/permissions/files.write`, {
      method: "PUT",
      body: { granted: true },
    });
    expect(below.status).toBe(200);
    const overrides = await admin`select user_id, permission from public.member_permissions
                                  where org_id = ${orgA} and permission in ('audit.read', 'files.write') order by permission`;
    expect(overrides).toEqual([{ user_id: student.id, permission: "files.write" }]);
  });
});

describe("revocation, measured", () => {
  it("stops a key in use for every request sent after the revocation commits", async () => {
    const k = await createKey(admin, orgA, owner.id, ["org.read"]);
    const from = freshAddress();
    const seen: { sent: number; answered: number; status: number }[] = [];
    let revokedAt = Infinity;
    const stopAt = Date.now() + 3000;
    const loop = async () => {
      while (Date.now() < stopAt) {
        const sent = performance.now();
        const r = await callAsMachine(k.key, "org-api/organization", { from });
        seen.push({ sent, answered: performance.now(), status: r.status });
      }
    };
    const loops = Promise.all([loop(), loop(), loop(), loop()]);
    await new Promise((r) => setTimeout(r, 1000));
    await asMember(admin, owner.id, (tx) => tx`select public.revoke_api_key(${k.id})`);
    revokedAt = performance.now();
    await loops;
    const after = seen.filter((s) => s.sent > revokedAt);
    expect(after.length).toBeGreaterThan(10);
    // refused: 401 api_key_revoked, then 429 once the address has sent its minute's refused keys
    expect(after.filter((s) => s.status !== 401 && s.status !== 429)).toEqual([]);
    const served = seen.filter((s) => s.status === 200);
    const refused = seen.filter((s) => s.status === 401);
    console.log(JSON.stringify({
      measured: "revocation",
      requests: seen.length,
      served_before: served.length,
      last_served_answered_ms_after_commit: +(Math.max(...served.map((s) => s.answered)) - revokedAt).toFixed(1),
      first_refusal_answered_ms_after_commit: +(Math.min(...refused.map((s) => s.answered)) - revokedAt).toFixed(1),
      served_after_commit_sent: after.filter((s) => s.status === 200).length,
    }));
  });
});
