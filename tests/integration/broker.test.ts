// Mosquitto with the Postgres-backed plugin, through mqtt.js: two organizations and each role,
// wildcard attacks, devices, refused credentials, token expiry, signing keys from a JWKS (rotation,
// removal, refetch rate, forged headers, the JWKS down), revocation within the bound, Postgres and
// broker restarts, WebSockets, malformed and oversized messages, the container's environment
// check. Most tests use a broker of their own (same config and plugin, 2 s cache) so they can
// restart it; one checks the stack's own broker over WebSockets.
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { exportJWK, exportSPKI, generateKeyPair, type JWK, type JWTHeaderParameters, SignJWT } from "jose";
import mqtt, { type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BrokerInstance } from "../../dev/stack/broker-instance.ts";
import { freePort } from "../../dev/stack/ports.ts";
import { startPostgres, stopPostgres } from "../../dev/stack/postgres.ts";
import { makeEnvelope } from "../../supabase/functions/_shared/realtime/envelope.ts";
import { connectRealtime, defaultClientId, type RealtimeClient } from "../../supabase/functions/_shared/realtime/client.ts";
import { topics } from "../../supabase/functions/_shared/realtime/topics.ts";
import type { Envelope } from "../../supabase/functions/_shared/realtime/envelope.ts";
import { testBroker } from "../helpers/broker.ts";
import { adminSql, createUser, HOST, PORTS, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";

const admin = adminSql();
const broker = testBroker();
const open: { close(): Promise<void> }[] = [];

let orgA: string, orgB: string, exercise: string, red: string, blue: string;
const u: Record<"owner" | "teacher" | "student" | "teamer" | "ownerB", string> = {} as never;
let service: RealtimeClient;

const token = async (userId: string, expiresIn?: number) => (await tokenFor(admin, userId, expiresIn)).token;

/** A client of the backend's own module; closed after the file. */
function client(password: string, url = broker.url, clientId?: string) {
  const c = connectRealtime({ url, password, username: "test", minReconnectMs: 100, maxReconnectMs: 500, clientId });
  open.push(c);
  return c;
}

/** A bare mqtt.js connection: resolves when accepted, rejects with the CONNACK code when refused. */
function rawConnect(password: string, url = broker.url, clientId = defaultClientId(password)): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const c = mqtt.connect(url, {
      username: "test",
      password,
      clientId,
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    c.once("connect", () => {
      open.push({ close: () => c.endAsync() });
      resolve(c);
    });
    c.once("error", (e) => {
      c.end(true);
      reject(e);
    });
  });
}

/** Subscribes and records what arrives. */
async function inbox(c: RealtimeClient, filter: string) {
  const got: { topic: string; envelope: Envelope }[] = [];
  await c.subscribe(filter, (envelope, topic) => void got.push({ topic, envelope }));
  return {
    got,
    types: () => got.map((m) => m.envelope.type),
    waitFor: (type: string, ms = 5000) =>
      waitUntil(`a ${type} message`, async () => got.some((m) => m.envelope.type === type), ms, 10),
  };
}

const say = (orgId: string | null, type: string) => makeEnvelope({ type, org_id: orgId, data: {} });

beforeAll(async () => {
  for (const k of Object.keys({ owner: 1, teacher: 1, student: 1, teamer: 1, ownerB: 1 }) as (keyof typeof u)[]) {
    u[k] = (await createUser(admin)).id;
  }
  const suffix = crypto.randomUUID().slice(0, 8);
  [{ id: orgA }] =
    await admin`insert into public.organizations (name, slug) values ('Broker A', ${`broker-a-${suffix}`}) returning id`;
  [{ id: orgB }] =
    await admin`insert into public.organizations (name, slug) values ('Broker B', ${`broker-b-${suffix}`}) returning id`;
  await admin`insert into public.organization_members (org_id, user_id, role) values
    (${orgA}, ${u.owner}, 'owner'), (${orgA}, ${u.teacher}, 'teacher'), (${orgA}, ${u.student}, 'student'),
    (${orgA}, ${u.teamer}, 'student'), (${orgB}, ${u.ownerB}, 'owner')`;
  [{ id: exercise }] = await admin`insert into public.exercises (org_id, title) values (${orgA}, 'Drill') returning id`;
  [{ id: red }, { id: blue }] = await admin`insert into public.exercise_teams (org_id, exercise_id, name)
    values (${orgA}, ${exercise}, 'Red'), (${orgA}, ${exercise}, 'Blue') returning id`;
  await admin`insert into public.exercise_team_members (org_id, team_id, user_id) values (${orgA}, ${red}, ${u.teamer})`;
  await broker.start();
  service = client(secrets().serviceRoleKey);
  await service.connected();
});

afterAll(async () => {
  await Promise.allSettled(open.map((c) => c.close()));
  await broker.stop();
  await admin`update public.organizations set deleted_at = now() where id in (${orgA}, ${orgB})`;
  await admin.end();
});

describe("organizations and roles", () => {
  it("members receive their organization's events, and another organization's owner cannot subscribe to them", async () => {
    const student = client(await token(u.student));
    const events = await inbox(student, topics.events(orgA));
    await service.publish(topics.events(orgA), say(orgA, "test.a_event"));
    await events.waitFor("test.a_event");
    const outsider = client(await token(u.ownerB));
    await expect(outsider.subscribe(topics.events(orgA), () => {})).rejects.toMatchObject({ code: "subscription_refused" });
  });

  it("a user receives only their own notifications, even through users/+/notifications", async () => {
    const student = client(await token(u.student));
    const mine = await inbox(student, `org/${orgA}/users/+/notifications`);
    await service.publish(topics.notifications(orgA, u.teamer), say(orgA, "test.for_teamer"));
    await service.publish(topics.notifications(orgA, u.student), say(orgA, "test.for_student"));
    await mine.waitFor("test.for_student");
    expect(mine.types()).toEqual(["test.for_student"]);
  });

  it("teachers write exercise control, students receive it but their writes are dropped", async () => {
    const student = client(await token(u.student));
    const teacher = client(await token(u.teacher));
    const control = await inbox(student, topics.control(orgA, exercise));
    await expect(student.publish(topics.control(orgA, exercise), say(orgA, "test.student_control"))).rejects.toMatchObject({
      code: "publish_refused",
    });
    await teacher.publish(topics.control(orgA, exercise), say(orgA, "test.teacher_control"));
    await control.waitFor("test.teacher_control");
    expect(control.types()).toEqual(["test.teacher_control"]);
  });

  it("team members read and write their team's feeds; others do not receive them; teachers read all", async () => {
    const teamer = client(await token(u.teamer));
    const teacher = client(await token(u.teacher));
    const student = client(await token(u.student));
    const teacherView = await inbox(teacher, `org/${orgA}/exercise/${exercise}/team/+/feeds/#`);
    const studentView = await inbox(student, `org/${orgA}/#`);
    await teamer.publish(topics.feed(orgA, exercise, blue, "gps"), say(orgA, "test.wrong_team")); // QoS 0: dropped without an answer
    await teamer.publish(topics.feed(orgA, exercise, red, "gps"), say(orgA, "test.red_feed"));
    await teacherView.waitFor("test.red_feed");
    expect(teacherView.types()).toEqual(["test.red_feed"]);
    await service.publish(topics.events(orgA), say(orgA, "test.after_feeds"));
    await studentView.waitFor("test.after_feeds");
    expect(studentView.types()).not.toContain("test.red_feed");
  });

  it("only the service writes system/health, which everyone may read", async () => {
    const owner = client(await token(u.owner));
    const health = await inbox(owner, topics.health());
    await owner.publish(topics.health(), say(null, "test.fake_health")); // QoS 0: dropped without an answer
    await service.publish(topics.health(), say(null, "test.health"));
    await health.waitFor("test.health");
    expect(health.types()).toEqual(["test.health"]);
  });
});

describe("wildcard attacks", () => {
  it("refuses #, org/+/events, org/# and another organization's # as subscriptions", async () => {
    const owner = client(await token(u.owner));
    for (const filter of ["#", "org/+/events", "org/#", `org/${orgB}/#`, "$SYS/#", "+/+/events"]) {
      await expect(owner.subscribe(filter, () => {}), filter).rejects.toMatchObject({ code: "subscription_refused" });
    }
    // ...and never delivers another organization's message through any of them
    const watcher = await inbox(owner, `org/${orgA}/#`);
    await service.publish(topics.events(orgB), say(orgB, "test.b_event"));
    await service.publish(topics.events(orgA), say(orgA, "test.a_sentinel"));
    await watcher.waitFor("test.a_sentinel");
    expect(watcher.types()).not.toContain("test.b_event");
  });
});

describe("credentials", () => {
  const refused = expect.objectContaining({ code: expect.toSatisfy((c: number) => c === 134 || c === 135) });

  it("refuses a forged signature, an expired token, the anon key, a deleted user and garbage", async () => {
    const { jwtSecret, anonKey } = secrets();
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims: Record<string, unknown>, secret = jwtSecret) =>
      new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(secret));
    await expect(rawConnect(await sign({ sub: u.student, role: "authenticated", exp: now + 600 }, "x".repeat(40)))).rejects
      .toEqual(refused);
    await expect(rawConnect(await sign({ sub: u.student, role: "authenticated", exp: now - 1 }))).rejects.toEqual(refused);
    await expect(rawConnect(await sign({ sub: u.student, role: "authenticated" }))).rejects.toEqual(refused);
    await expect(rawConnect(anonKey)).rejects.toEqual(refused);
    await expect(rawConnect("not.a.token")).rejects.toEqual(refused);
    const gone = (await createUser(admin)).id;
    const goneToken = await token(gone);
    await admin`update auth.users set deleted_at = now() where id = ${gone}`;
    await expect(rawConnect(goneToken)).rejects.toEqual(refused);
    expect(broker.log()).toMatch(/"reason":"bad_signature"/);
    expect(broker.log()).toMatch(/"reason":"expired"/);
    expect(broker.log()).toMatch(/"reason":"user_gone_or_banned"/);
  });

  it("disconnects a client when its token expires", async () => {
    const id = `${u.student}-expiring-${crypto.randomUUID().slice(0, 8)}`;
    const short = await token(u.student, 2);
    const exp = (JSON.parse(Buffer.from(short.split(".")[1], "base64url").toString()) as { exp: number }).exp;
    const c = await rawConnect(short, broker.url, id);
    const closedAt = await new Promise<number>((resolve) => c.once("close", () => resolve(Date.now())));
    // the cause: the broker ended this client's session for its credentials, and not before they expired
    await waitUntil(
      "the broker's word on it",
      () => Promise.resolve(broker.log().includes(`"msg":"credentials expired, disconnecting","client_id":"${id}"`)),
    );
    expect(closedAt).toBeGreaterThanOrEqual(exp * 1000);
  });

  it("devices connect with an API key, publish where their patterns allow, and are cut off when the key is revoked", async () => {
    const secret = `sk_${crypto.randomBytes(24).toString("base64url")}`;
    // made by the owner (a key acts with what its creator still holds), as the exercise's controller
    const [key] = await admin.begin(async (tx) => {
      await tx`select set_config('request.jwt.claims', ${JSON.stringify({ sub: u.owner, role: "authenticated" })}, true)`;
      return tx`insert into public.api_keys (org_id, name, key_prefix, key_hash, scopes, mqtt_topics)
        values (${orgA}, 'sensor', ${secret.slice(0, 11)}, sha256(convert_to(${secret}, 'UTF8')), '{org.read,exercises.control}',
                '{exercise/+/team/+/feeds/sensor}')
        returning id`;
    });
    const device = client(secret, broker.url, `${key.id}-sensor`);
    await device.connected();
    const teacher = client(await token(u.teacher));
    const feeds = await inbox(teacher, `org/${orgA}/exercise/${exercise}/team/+/feeds/#`);
    await device.publish(topics.feed(orgA, exercise, red, "gps"), say(orgA, "test.device_gps"));
    await device.publish(topics.feed(orgA, exercise, red, "sensor"), say(orgA, "test.device_sensor"));
    await feeds.waitFor("test.device_sensor");
    expect(feeds.types()).toEqual(["test.device_sensor"]);
    await expect(device.subscribe(topics.events(orgB), () => {})).rejects.toMatchObject({ code: "subscription_refused" });

    const closed = new Promise<void>((r) => device.mqtt.once("close", () => r()));
    await admin`update public.api_keys set revoked_at = now() where id = ${key.id}`;
    await closed;
    await expect(rawConnect(secret, broker.url, `${key.id}-sensor`)).rejects.toEqual(refused);
    expect(broker.log()).toMatch(/"credential":"api_key","reason":"revoked"/);
  });
});

describe("hardening", () => {
  const refused = expect.objectContaining({ code: expect.toSatisfy((c: number) => c === 134 || c === 135) });

  it("binds client ids to their principal: another tenant cannot take over a client's id and session", async () => {
    const victimId = `${u.student}-tablet`;
    const victim = await rawConnect(await token(u.student), broker.url, victimId);
    let victimClosed = false;
    victim.once("close", () => (victimClosed = true));
    await expect(rawConnect(await token(u.ownerB), broker.url, victimId)).rejects.toEqual(refused);
    await expect(rawConnect(await token(u.ownerB), broker.url, "mqttjs_1234abcd")).rejects.toEqual(refused);
    // a round trip on the victim's session after both refusals: a takeover would have ended it first
    await victim.subscribeAsync(topics.events(orgA), { qos: 1 });
    expect(victimClosed).toBe(false);
    expect(victim.connected).toBe(true);
    expect(broker.log()).toMatch(/"reason":"client_id_not_bound"/);
    await rawConnect(await token(u.ownerB), broker.url, `${u.ownerB}:laptop`); // one's own is fine
  });

  it("refuses junk topics in the broker itself: no Postgres round trip and no cache work, however many packets", async () => {
    // a broker of its own, so its closing statistics count this test's ACL decisions only
    const own = testBroker("test-broker-junk");
    await own.start();
    try {
      const student = await rawConnect(await token(u.student), own.url);
      const junk = [
        `org/${orgA}/exercise/${"-".repeat(36)}/control`,
        `org/${"-".repeat(36)}/events`,
        `org/${orgA}/a b`,
        `org/${orgA}//events`,
        `org/${orgA}/${"x".repeat(65)}`,
        "sys/anything",
      ];
      for (let i = 0; i < 50; i++) {
        for (const t of junk) student.publish(t, "junk", { qos: 0 });
      }
      // an UNSUBSCRIBE is answered in order and asks no one: once it is, every packet before it was judged
      await student.unsubscribeAsync("org/none");
      expect(student.connected).toBe(true);
      await student.endAsync();
    } finally {
      await own.stop();
    }
    const stats = [...own.log().matchAll(/"cache_hits":(\d+),"cache_misses":(\d+)/g)].at(-1); // this run's
    expect(stats, "the broker's closing statistics").not.toBeNull();
    // 300 junk packets: none was looked up, none asked Postgres
    expect(Number(stats![1]) + Number(stats![2])).toBeLessThan(5);
  });
});

describe("signing keys from a JWKS", () => {
  const refused = expect.objectContaining({ code: expect.toSatisfy((c: number) => c === 134 || c === 135) });
  type Key = { kid: string; alg: "ES256" | "RS256"; privateKey: CryptoKey; publicKey: CryptoKey; jwk: JWK };

  async function signingKey(alg: "ES256" | "RS256" = "ES256"): Promise<Key> {
    const { publicKey, privateKey } = await generateKeyPair(alg);
    const kid = crypto.randomUUID();
    return {
      kid,
      alg,
      privateKey,
      publicKey,
      jwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig", key_ops: ["verify"] },
    };
  }

  /** A JWKS as Supabase Auth publishes it, on a port of its own; counts the requests it gets. */
  async function jwksServer(port = 0) {
    let keys: JWK[] = [];
    let requests = 0;
    let failing = false;
    const server = http.createServer((req, res) => {
      requests++;
      if (failing) return void res.writeHead(503).end();
      if (req.url !== "/auth/v1/.well-known/jwks.json") return void res.writeHead(404).end();
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys }));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, HOST, () => resolve());
    });
    const jwks = {
      url: `http://${HOST}:${(server.address() as AddressInfo).port}/auth/v1/.well-known/jwks.json`,
      publish: (...ks: Key[]) => void (keys = ks.map((k) => k.jwk)),
      fail: (on: boolean) => void (failing = on),
      requests: () => requests,
      close: () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    };
    open.push(jwks);
    return jwks;
  }

  const inMinutes = (m: number) => Math.floor(Date.now() / 1000) + m * 60;
  const userClaims = (sub: string, exp = inMinutes(10)) => ({ sub, role: "authenticated", aud: "authenticated", exp });
  const signed = (key: Key, sub: string, header: Partial<JWTHeaderParameters> = {}, exp?: number) =>
    new SignJWT(userClaims(sub, exp)).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "JWT", ...header }).sign(
      key.privateKey,
    );
  const legacy = (sub: string) =>
    new SignJWT(userClaims(sub)).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(
      new TextEncoder().encode(secrets().jwtSecret),
    );
  const idFor = (what: string) => `${u.student}-${what}-${crypto.randomUUID().slice(0, 8)}`;

  /** The reason the broker logged for refusing this client id. */
  const reasonFor = (b: BrokerInstance, clientId: string) =>
    b.log().split("\n").findLast((l) => l.includes(`"client_id":"${clientId}"`) && l.includes("connection refused"))
      ?.match(/"reason":"([a-z_]+)"/)?.[1];

  async function accepted(password: string, url: string) {
    try {
      await (await rawConnect(password, url)).endAsync();
      return true;
    } catch {
      return false;
    }
  }

  // Keys from a JWKS only, as a project that revoked its legacy secret; fetched every 2 s.
  let jwks: Awaited<ReturnType<typeof jwksServer>>;
  let jw: BrokerInstance;
  let a: Key, b: Key, rsa: Key;
  beforeAll(async () => {
    [a, b, rsa] = await Promise.all([signingKey(), signingKey(), signingKey("RS256")]);
    jwks = await jwksServer();
    jwks.publish(a);
    jw = testBroker("test-broker-jwks", { MQTT_AUTH_JWKS_URL: jwks.url, MQTT_AUTH_JWT_SECRET: "" }, {
      jwks_seconds: 2,
      jwks_refetch_seconds: 1,
    });
    await jw.start();
  });
  afterAll(() => jw?.stop());

  it("a token of a published key signs in over MQTT and WebSockets, and its user is still held to their organization", async () => {
    const token = await signed(a, u.student);
    await rawConnect(token, jw.url);
    await rawConnect(token, jw.wsUrl);
    for (const url of [jw.url, jw.wsUrl]) {
      const c = client(token, url);
      await c.subscribe(topics.events(orgA), () => {});
      await expect(c.subscribe(topics.events(orgB), () => {}), url).rejects.toMatchObject({ code: "subscription_refused" });
      await expect(c.subscribe(`org/${orgB}/#`, () => {}), url).rejects.toMatchObject({ code: "subscription_refused" });
    }
    expect(jw.log()).toMatch(/"jwks":true,"jwks_keys":1/);
  });

  it("refuses alg none, HS256 made with the public key, an algorithm the key does not have, an unknown or missing kid, a forged signature and an expired token", async () => {
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    const stranger = await signingKey(); // never published
    // PEM as OpenSSL writes it (what the broker holds), ending in a newline
    const pem = `${await exportSPKI(a.publicKey)}\n`;
    const hmac = (secret: string) =>
      new SignJWT(userClaims(u.student)).setProtectedHeader({ alg: "HS256", kid: a.kid, typ: "JWT" }).sign(
        new TextEncoder().encode(secret),
      );
    // A header naming alg twice: a parser that keeps the first sees ES256 (A's key is chosen), one
    // that keeps the last sees HS256 (A's PEM as the HMAC secret).
    const twoAlgs = (() => {
      const header = Buffer.from(`{"alg":"ES256","kid":"${a.kid}","alg":"HS256"}`).toString("base64url");
      const signingInput = `${header}.${b64(userClaims(u.student))}`;
      return `${signingInput}.${crypto.createHmac("sha256", pem).update(signingInput).digest("base64url")}`;
    })();
    const rsaOfTheirs = await generateKeyPair("RS256");
    const es384 = await generateKeyPair("ES384");
    const cases: [string, string, string][] = [
      ["none", `${b64({ alg: "none", kid: a.kid, typ: "JWT" })}.${b64(userClaims(u.student))}.`, "algorithm_not_allowed"],
      ["hs256-pem", await hmac(pem), "algorithm_not_allowed"],
      ["hs256-pem-trimmed", await hmac(pem.trim()), "algorithm_not_allowed"],
      ["hs256-jwk", await hmac(JSON.stringify(a.jwk)), "algorithm_not_allowed"],
      ["two-algs", twoAlgs, "malformed"],
      // A's kid, with an algorithm A's key does not have
      [
        "rs256-on-es-key",
        await new SignJWT(userClaims(u.student)).setProtectedHeader({ alg: "RS256", kid: a.kid }).sign(rsaOfTheirs.privateKey),
        "algorithm_not_allowed",
      ],
      [
        "es384",
        await new SignJWT(userClaims(u.student)).setProtectedHeader({ alg: "ES384", kid: a.kid }).sign(es384.privateKey),
        "algorithm_not_allowed",
      ],
      ["unknown-kid", await signed(stranger, u.student), "unknown_signing_key"],
      // A's own signature, but no kid to choose a key by
      [
        "no-kid",
        await new SignJWT(userClaims(u.student)).setProtectedHeader({ alg: "ES256" }).sign(a.privateKey),
        "unknown_signing_key",
      ],
      ["forged", await signed(stranger, u.student, { kid: a.kid }), "bad_signature"],
      ["expired", await signed(a, u.student, {}, inMinutes(-1)), "expired"],
    ];
    for (const [what, token, reason] of cases) {
      const id = idFor(what);
      await expect(rawConnect(token, jw.url, id), what).rejects.toEqual(refused);
      expect(reasonFor(jw, id), what).toBe(reason);
    }
    await rawConnect(await signed(a, u.student), jw.url); // and the good token still works
  });

  it("rotation: keys added to the JWKS are accepted, and a key removed from it is refused within jwks_seconds", async () => {
    jwks.publish(a, b, rsa);
    const [tokenA, tokenB, tokenRsa] = await Promise.all([signed(a, u.student), signed(b, u.teacher), signed(rsa, u.owner)]);
    await waitUntil("B's token to be accepted", () => accepted(tokenB, jw.url), 5000, 200);
    expect(await accepted(tokenRsa, jw.url)).toBe(true);
    expect(await accepted(tokenA, jw.url)).toBe(true);

    jwks.publish(b, rsa);
    const fetchesBefore = jwks.requests();
    // within jwks_seconds (2 s) after the last fetch, plus a tick and the fetch
    await waitUntil("A's token to be refused", async () => !(await accepted(tokenA, jw.url)), 8000, 100);
    // the cause: the broker fetched the key set again and found A gone
    expect(jwks.requests()).toBeGreaterThan(fetchesBefore);
    const id = idFor("removed");
    await expect(rawConnect(tokenA, jw.url, id)).rejects.toEqual(refused);
    expect(reasonFor(jw, id)).toBe("unknown_signing_key");
    expect(await accepted(tokenB, jw.url)).toBe(true);
    expect(await accepted(tokenRsa, jw.url)).toBe(true);
    jwks.publish(a); // as the other tests expect
    await waitUntil("A's token to be accepted again", () => accepted(tokenA, jw.url), 5000, 200);
  });

  it("unknown kids fetch the JWKS at most once per refetch period, which picks up a key published since", async () => {
    const server = await jwksServer();
    server.publish(a);
    const own = testBroker("test-broker-jwks-flood", { MQTT_AUTH_JWKS_URL: server.url, MQTT_AUTH_JWT_SECRET: "" }, {
      jwks_seconds: 600,
      jwks_refetch_seconds: 3,
    });
    await own.start();
    try {
      const started = Date.now();
      expect(server.requests()).toBe(1); // the fetch at start
      const stranger = await signingKey();
      for (let i = 0; i < 30; i++) {
        await expect(rawConnect(await signed(stranger, u.student, { kid: crypto.randomUUID() }), own.url)).rejects.toEqual(
          refused,
        );
      }
      // one fetch at start, then at most one per started 3 s
      const periods = () => Math.ceil((Date.now() - started) / 3000);
      expect(server.requests()).toBeLessThanOrEqual(1 + periods());

      const c = await signingKey();
      server.publish(a, c);
      const tokenC = await signed(c, u.student);
      // the timer is 10 minutes away: only an unknown kid's fetch can find C
      await waitUntil("C to be found by a refetch", () => accepted(tokenC, own.url), 8000, 250);
      expect(server.requests()).toBeGreaterThan(1);
      expect(server.requests()).toBeLessThanOrEqual(1 + periods());
    } finally {
      await own.stop();
    }
  }, 20_000);

  it("a fetch that fails keeps the last good keys, and says so", async () => {
    const tokenA = await signed(a, u.student);
    const from = jw.log().length;
    jwks.fail(true);
    try {
      const failedRefresh =
        /JWKS fetch failed; keeping the last good keys.*"trigger":"refresh".*"error":"HTTP status 503","keys_kept":1/;
      await waitUntil("a refresh to fail", () => Promise.resolve(failedRefresh.test(jw.log().slice(from))), 8000, 200);
      expect(await accepted(tokenA, jw.url)).toBe(true);
    } finally {
      jwks.fail(false);
    }
  });

  it(
    "with the JWKS down at start the broker says so and takes HS256 with the secret, and takes the keys within seconds once the JWKS is up",
    async () => {
      const port = await freePort();
      // the default periods (600 s, 30 s): until a first fetch succeeds, retries start at a second
      const own = testBroker("test-broker-jwks-down", {
        MQTT_AUTH_JWKS_URL: `http://${HOST}:${port}/auth/v1/.well-known/jwks.json`,
      });
      const logFrom = own.log().length;
      await own.start();
      try {
        const log = () => own.log().slice(logFrom);
        expect(log()).toMatch(/"msg":"JWKS fetch failed; keeping the last good keys".*"trigger":"start"/);
        await rawConnect(await legacy(u.student), own.url);
        const tokenA = await signed(a, u.student);
        const id = idFor("no-keys");
        await expect(rawConnect(tokenA, own.url, id)).rejects.toEqual(refused);
        expect(reasonFor(own, id)).toBe("signing_keys_unavailable");

        const server = await jwksServer(port);
        server.publish(a);
        await waitUntil("the keys to be fetched once the JWKS is up", () => accepted(tokenA, own.url), 10_000, 200);
        expect(log()).toMatch(/"msg":"signing keys loaded"/);
        // an HS256 token made with the published key as its secret is checked with the project's secret
        const hmacId = idFor("hs256-pem");
        const hmac = await new SignJWT(userClaims(u.student)).setProtectedHeader({ alg: "HS256", kid: a.kid }).sign(
          new TextEncoder().encode(`${await exportSPKI(a.publicKey)}\n`),
        );
        await expect(rawConnect(hmac, own.url, hmacId)).rejects.toEqual(refused);
        expect(reasonFor(own, hmacId)).toBe("bad_signature");
      } finally {
        await own.stop();
      }
    },
    20_000,
  );

  it(
    "the plugin does not load with a malformed JWKS URL or option, the retired public key file, or no way to verify tokens, and says why",
    async () => {
      const cases: [string, Record<string, string>, Record<string, string>, RegExp][] = [
        [
          "url",
          { MQTT_AUTH_JWKS_URL: "ftp://example.com/jwks.json" },
          {},
          /MQTT_AUTH_JWKS_URL must be an http:\/\/ or https:\/\/ URL/,
        ],
        [
          "pem",
          { MQTT_AUTH_JWT_PUBLIC_KEY_FILE: "/etc/broker/public.pem" },
          {},
          /MQTT_AUTH_JWT_PUBLIC_KEY_FILE is no longer read/,
        ],
        [
          "option",
          {},
          { jwks_seconds: "ten" },
          /"msg":"bad option: the plugin does not load","option":"plugin_opt_jwks_seconds"/,
        ],
        [
          "no-keys",
          { MQTT_AUTH_JWKS_URL: "", MQTT_AUTH_JWT_SECRET: "" },
          {},
          /set MQTT_AUTH_JWKS_URL .* and\/or MQTT_AUTH_JWT_SECRET/,
        ],
      ];
      for (const [what, env, plugin, message] of cases) {
        const own = testBroker(`test-broker-bad-config-${what}`, env, plugin);
        const logFrom = own.log().length;
        try {
          await expect(own.start(), what).rejects.toThrow(/exited/);
        } finally {
          await own.stop(); // a broker that started after all must not outlive the test
        }
        expect(own.log().slice(logFrom), what).toMatch(message);
      }
    },
    30_000,
  );

  it("the container's entrypoint names every missing or malformed variable in one message, and no secret", () => {
    const entrypoint = fileURLToPath(new URL("../../broker/docker-entrypoint.sh", import.meta.url));
    const run = (env: Record<string, string>) =>
      spawnSync("sh", [entrypoint, "--check"], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env }, encoding: "utf8" });
    const problems = (stderr: string) => stderr.split("\n").filter((l) => l.startsWith("  - "));

    const none = run({});
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/^broker: not starting/);
    expect(problems(none.stderr)).toEqual([
      expect.stringMatching(/^ {2}- MQTT_AUTH_DB_URL is not set: the plugin asks Postgres/),
      expect.stringMatching(/MQTT_AUTH_JWKS_URL and\/or MQTT_AUTH_JWT_SECRET: the plugin verifies/),
      expect.stringMatching(/MQTT_PORT must be a port number/),
      expect.stringMatching(/MQTT_WS_PORT must be a port number/),
    ]);

    const good = { MQTT_AUTH_DB_URL: "postgresql://mqtt_broker:pw@db:5432/postgres", MQTT_PORT: "1883", MQTT_WS_PORT: "8080" };
    const bad = run({
      ...good,
      MQTT_AUTH_DB_URL: "mysql://db",
      MQTT_AUTH_JWKS_URL: "ftp://example.com/jwks.json",
      MQTT_AUTH_JWT_SECRET: "too-short-a-secret",
      MQTT_AUTH_SECRET_KEY: "sk_not_the_secret_key",
      MQTT_WS_PORT: "80a",
    });
    expect(bad.status).toBe(1);
    expect(problems(bad.stderr).map((l) => l.match(/[A-Z_]{8,}/)?.[0])).toEqual([
      "MQTT_AUTH_DB_URL",
      "MQTT_AUTH_JWKS_URL",
      "MQTT_AUTH_JWT_SECRET",
      "MQTT_AUTH_SECRET_KEY",
      "MQTT_WS_PORT",
    ]);
    expect(bad.stderr).not.toMatch(/too-short-a-secret|sk_not_the_secret_key|mysql/);

    expect(run({ ...good, MQTT_AUTH_JWKS_URL: "https://ref.supabase.co/auth/v1/.well-known/jwks.json" })).toMatchObject({
      status: 0,
    });
    expect(run({ ...good, MQTT_AUTH_JWT_SECRET: "x".repeat(32) })).toMatchObject({ status: 0 });
    // broker/.env.example passes as it is
    const example = Object.fromEntries(
      fs.readFileSync(path.join(path.dirname(entrypoint), ".env.example"), "utf8").split("\n")
        .filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    expect(Object.keys(example)).toEqual(expect.arrayContaining(["MQTT_AUTH_DB_URL", "MQTT_AUTH_JWKS_URL", "MQTT_PORT"]));
    expect(run(example)).toMatchObject({ status: 0 });
  });
});

describe("changes in Postgres", () => {
  it("a grant wins over a cached denial at once", async () => {
    const newcomer = (await createUser(admin)).id;
    const c = client(await token(newcomer));
    await expect(c.subscribe(topics.events(orgA), () => {})).rejects.toMatchObject({ code: "subscription_refused" });
    await admin`insert into public.organization_members (org_id, user_id, role) values (${orgA}, ${newcomer}, 'student')`;
    await c.subscribe(topics.events(orgA), () => {});
  });

  it(
    "a removed member stops receiving when Postgres announces it (NOTIFY), and when the cached decision expires if nothing does",
    async () => {
      // Announced: a broker that caches decisions for an hour, so only the NOTIFY can end the access.
      // Silent (session_replication_role = replica skips the trigger, so no NOTIFY): a broker caching
      // for 5 s still delivers right after the change, and stops once the decision expires.
      for (const [announce, cacheSeconds] of [[true, 3600], [false, 5]] as const) {
        const own = testBroker(`test-broker-removal-${announce ? "notify" : "silent"}`, {}, { cache_seconds: cacheSeconds });
        await own.start();
        try {
          const member = (await createUser(admin)).id;
          await admin`insert into public.organization_members (org_id, user_id, role) values (${orgA}, ${member}, 'student')`;
          const publisher = client(secrets().serviceRoleKey, own.url);
          const c = client(await token(member), own.url);
          const events = await inbox(c, topics.events(orgA));
          const health = await inbox(c, topics.health());
          await publisher.publish(topics.events(orgA), say(orgA, "test.before"));
          await events.waitFor("test.before");

          if (announce) {
            await admin`delete from public.organization_members where org_id = ${orgA} and user_id = ${member}`;
          } else {
            await admin.begin(async (tx) => {
              await tx`set local session_replication_role = replica`;
              await tx`delete from public.organization_members where org_id = ${orgA} and user_id = ${member}`;
            });
            await publisher.publish(topics.events(orgA), say(orgA, "test.cached"));
            await events.waitFor("test.cached");
          }
          let round = 0;
          await waitUntil(
            "the member's access to end",
            async () => {
              round++;
              await publisher.publish(topics.events(orgA), say(orgA, `test.after_${round}`));
              await publisher.publish(topics.health(), say(null, `test.beat_${round}`));
              await health.waitFor(`test.beat_${round}`); // the event, published first, would be here by now
              return !events.types().includes(`test.after_${round}`);
            },
            15_000,
            50,
          );
          // and it stays ended
          await publisher.publish(topics.events(orgA), say(orgA, "test.later"));
          await publisher.publish(topics.health(), say(null, "test.later_beat"));
          await health.waitFor("test.later_beat");
          expect(events.types()).not.toContain("test.later");
        } finally {
          await own.stop();
        }
      }
    },
    60_000,
  );
});

describe("faults", () => {
  it("keeps serving cached decisions while Postgres is down, refuses new ones, and recovers", async () => {
    const student = client(await token(u.student));
    const events = await inbox(student, topics.events(orgA));
    await service.publish(topics.events(orgA), say(orgA, "test.warm"));
    await events.waitFor("test.warm");
    stopPostgres("fast");
    try {
      await service.publish(topics.events(orgA), say(orgA, "test.while_down"));
      await events.waitFor("test.while_down");
      await expect(student.subscribe(topics.notifications(orgA, u.student), () => {})).rejects.toMatchObject({
        code: "subscription_refused",
      });
      // a new sign-in cannot be checked against Postgres: refused (fail closed), and the broker says why
      const id = `${u.teacher}-while-down-${crypto.randomUUID().slice(0, 8)}`;
      await expect(
        rawConnect(
          await new SignJWT({ sub: u.teacher, role: "authenticated", exp: Math.floor(Date.now() / 1000) + 60 })
            .setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(secrets().jwtSecret)),
          broker.url,
          id,
        ),
      ).rejects.toMatchObject({ code: 135 });
      expect(broker.log()).toMatch(new RegExp(`"client_id":"${id}".*"reason":"database_unavailable"`));
    } finally {
      startPostgres();
    }
    await waitUntil(
      "the plugin to reconnect",
      async () => {
        try {
          await student.subscribe(topics.notifications(orgA, u.student), () => {});
          return true;
        } catch {
          return false;
        }
      },
      15_000,
      250,
    );
    expect(broker.log()).toMatch(/database connection lost/);
  }, 40_000);

  it("clients and the service client reconnect and resubscribe after a broker restart", async () => {
    const student = client(await token(u.student));
    const events = await inbox(student, topics.events(orgA));
    await broker.stop();
    await broker.start();
    await Promise.all([student.connected(), service.connected()]);
    await waitUntil(
      "delivery after the restart",
      async () => {
        await service.publish(topics.events(orgA), say(orgA, "test.after_restart"));
        return events.types().includes("test.after_restart");
      },
      10_000,
      200,
    );
  }, 30_000);

  it("drops malformed and oversized messages without hurting other clients", async () => {
    const student = client(await token(u.student));
    const events = await inbox(student, topics.events(orgA));
    const raw = await rawConnect(secrets().serviceRoleKey);
    await raw.publishAsync(topics.events(orgA), "not json", { qos: 1 });
    await raw.publishAsync(topics.events(orgA), JSON.stringify({ v: 1, type: "x" }), { qos: 1 });
    await raw.publishAsync(topics.events(orgA), JSON.stringify(say(orgB, "test.wrong_org")), { qos: 1 });
    await raw.publishAsync(topics.events(orgA), Buffer.alloc(300 * 1024, 0x61), { qos: 0 }).catch(() => {});
    await service.publish(topics.events(orgA), say(orgA, "test.valid"));
    await events.waitFor("test.valid");
    expect(events.types()).toEqual(["test.valid"]);
    expect(student.dropped).toMatchObject({ invalid_json: 1, invalid_envelope: 1, org_mismatch: 1, message_too_large: 0 });
  });
});

describe("usage", () => {
  it(
    "counts the messages published on each organization's topics into usage_daily, refused ones not, and a clean stop loses none",
    async () => {
      const [{ id: orgC }] = await admin`insert into public.organizations (name, slug) values ('Broker C', ${`broker-c-${
        crypto.randomUUID().slice(0, 8)
      }`}) returning id`;
      const [teacherC, studentC] = [(await createUser(admin)).id, (await createUser(admin)).id];
      await admin`insert into public.organization_members (org_id, user_id, role) values (${orgC}, ${teacherC}, 'teacher'), (${orgC}, ${studentC}, 'student')`;
      const [{ id: drill }] = await admin`insert into public.exercises (org_id, title) values (${orgC}, 'Drill C') returning id`;
      const messages = async () =>
        Number(
          (await admin`select mqtt_messages from public.usage_daily where org_id = ${orgC} and day = current_date`)[0]
            ?.mqtt_messages ?? 0,
        );

      const teacher = client(await token(teacherC));
      const student = client(await token(studentC));
      for (let i = 0; i < 3; i++) await service.publish(topics.events(orgC), say(orgC, "test.counted"));
      for (let i = 0; i < 2; i++) await teacher.publish(topics.control(orgC, drill), say(orgC, "test.counted"));
      await expect(student.publish(topics.control(orgC, drill), say(orgC, "test.refused"))).rejects.toMatchObject({
        code: "publish_refused",
      });
      await waitUntil("5 messages in usage_daily", async () => (await messages()) === 5, 10_000, 200);

      for (let i = 0; i < 4; i++) await service.publish(topics.events(orgC), say(orgC, "test.counted"));
      await broker.stop();
      expect(await messages()).toBe(9);
      await broker.start();
      await service.connected();
      await admin`update public.organizations set deleted_at = now() where id = ${orgC}`;
    },
    30_000,
  );
});

describe("the stack's broker", () => {
  it("serves mqtt.js over WebSockets from Node with an access token", async () => {
    const ws = client(await token(u.student), `ws://${HOST}:${PORTS.mqttWs}`);
    const events = await inbox(ws, topics.events(orgA));
    const stackService = client(secrets().serviceRoleKey, `mqtt://${HOST}:${PORTS.mqtt}`);
    await stackService.publish(topics.events(orgA), say(orgA, "test.over_ws"));
    await events.waitFor("test.over_ws");
  });
});
