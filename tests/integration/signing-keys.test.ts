// Asymmetric JWT signing keys end to end, as a hosted project has them: the auth stand-in signs
// ES256 with a kid from supabase/signing_keys.json and serves the public keys; PostgREST, storage,
// functions (gateway and the function's own check), /auth/v1 and the broker (TCP and WebSockets)
// accept those tokens and legacy HS256 ones; forged, expired and unknown-key tokens are refused
// everywhere; a rotation keeps the previous key's tokens valid and a removed key's tokens die.
// The test edits the project's keys file and puts it back as it was.
import crypto from "node:crypto";
import fs from "node:fs";
import { createClient } from "@supabase/supabase-js";
import { base64url, importJWK, type JWK, SignJWT } from "jose";
import mqtt from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { paths } from "../../dev/stack/config.ts";
import { loadProjectConfig } from "../../dev/platform/project-config.ts";
import { newSigningKey, type PrivateJwk, publicJwk, readSigningKeys } from "../../dev/platform/auth/signing-keys.ts";
import { defaultClientId } from "../../supabase/functions/_shared/realtime/client.ts";
import { adminSql, API_URL, createUser, HOST, PORTS, secrets, tokenFor, waitUntil } from "../helpers/stack.ts";

const admin = adminSql();
const keysFile = loadProjectConfig(paths.supabase).auth.signingKeysPath!;
const original = fs.readFileSync(keysFile, "utf8");
let org: string, user: string, orgB: string;
const now = () => Math.floor(Date.now() / 1000);

const kidOf = (token: string) => JSON.parse(new TextDecoder().decode(base64url.decode(token.split(".")[0]))).kid;
const writeKeys = (keys: PrivateJwk[]) => fs.writeFileSync(keysFile, JSON.stringify(keys, null, 2) + "\n", { mode: 0o600 });
const jwksKids = async () =>
  ((await (await fetch(`${API_URL}/auth/v1/.well-known/jwks.json`)).json()) as { keys: JWK[] }).keys.map((k) => k.kid);

async function signWith(key: PrivateJwk, claims: Record<string, unknown>, header: Record<string, unknown> = {}) {
  const { key_ops: _o, use: _u, ext: _e, ...material } = key as PrivateJwk & { ext?: boolean };
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: "JWT", ...header })
    .sign(await importJWK(material as JWK, key.alg));
}
const userClaims = (exp = now() + 600) => ({
  aud: "authenticated",
  role: "authenticated",
  sub: user,
  exp,
  iat: now(),
  org_id: org,
  session_id: crypto.randomUUID(),
});

/** What each HTTP service answers for a bearer token: status codes, read where a person's app reads them. */
async function answers(token: string) {
  const headers = { apikey: secrets().publishableKey, authorization: `Bearer ${token}` };
  const rest = await fetch(`${API_URL}/rest/v1/organizations?select=id`, { headers });
  const storage = await fetch(`${API_URL}/storage/v1/object/list/files`, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify({ prefix: `${org}/`, limit: 1 }),
  });
  // an empty batch: answered 400 by the handler once the gateway (verify_jwt) and the function's own
  // check have taken the token, without spending the caller's ingest budget on every poll
  const fn = await fetch(`${API_URL}/functions/v1/analytics-ingest`, {
    method: "POST",
    headers: { ...headers, "content-type": "application/json" },
    body: JSON.stringify({ events: [] }),
  });
  // health has verify_jwt = false: only the function's own check (SUPABASE_JWKS) judges the token
  const own = await fetch(`${API_URL}/functions/v1/health`, { headers: { authorization: `Bearer ${token}` } });
  const restText = await rest.text();
  // PostgREST's reason for a refusal, for a failure's message
  if (!rest.ok) lastRefusal = restText;
  await storage.body?.cancel();
  await fn.body?.cancel();
  await own.body?.cancel();
  const restOrgs = rest.ok ? (JSON.parse(restText) as unknown[]).length : null;
  return { rest: rest.status, restOrgs, storage: storage.status, fn: fn.status, own: own.status };
}
let lastRefusal = "";
const ACCEPTED = { rest: 200, restOrgs: 1, storage: 200, fn: 400, own: 200 };

function mqttLogin(password: string, ws = false): Promise<"accepted" | string> {
  return new Promise((resolve) => {
    const c = mqtt.connect(ws ? `ws://${HOST}:${PORTS.mqttWs}` : `mqtt://${HOST}:${PORTS.mqtt}`, {
      username: "keys-test",
      password,
      clientId: defaultClientId(password),
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    c.once("connect", () => c.end(true, () => resolve("accepted")));
    c.once("error", (e) => c.end(true, () => resolve(String((e as { code?: unknown }).code ?? e.message))));
  });
}

beforeAll(async () => {
  const run = crypto.randomUUID().slice(0, 8);
  [{ id: org }] = await admin`insert into public.organizations (name, slug) values ('Keys', ${`keys-${run}`}) returning id`;
  [{ id: orgB }] = await admin`insert into public.organizations (name, slug) values ('Keys B', ${`keys-b-${run}`}) returning id`;
  user = (await createUser(admin)).id;
  await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${user}, 'teacher')`;
});
afterAll(async () => {
  fs.writeFileSync(keysFile, original, { mode: 0o600 });
  await waitUntil("the original keys back", async () => (await jwksKids()).length === JSON.parse(original).length, 15_000);
  await admin`update public.organizations set deleted_at = now() where id in (${org}, ${orgB})`;
  await admin.end();
});

// First: the broker fetches an unknown kid at most once per 30 s, which the forgeries below spend.
describe("rotation", () => {
  it(
    "a new signing key is used at once, the previous key's tokens stay valid, and a removed key's tokens are refused",
    async () => {
      const [first] = readSigningKeys(keysFile);
      const before = (await tokenFor(admin, user)).token;
      const standby = await newSigningKey();
      // rotate: the new key signs, the previous one only verifies
      writeKeys([standby, { ...first, key_ops: ["verify"] }]);
      await waitUntil("the new key published", async () => (await jwksKids()).includes(standby.kid), 10_000);
      const email = `rot-${crypto.randomUUID().slice(0, 8)}@test.local`;
      const svc = createClient(API_URL, secrets().secretKey, { auth: { persistSession: false } });
      await svc.auth.admin.createUser({ email, password: "keys-password-1", email_confirm: true });
      const sb = createClient(API_URL, secrets().publishableKey, { auth: { persistSession: false } });
      const session = (await sb.auth.signInWithPassword({ email, password: "keys-password-1" })).data.session!;
      expect(kidOf(session.access_token)).toBe(standby.kid);
      // the test's own signer re-reads the keys file as the auth server does
      const after = await waitUntil("a token of the new key", async () => {
        const t = (await tokenFor(admin, user)).token;
        return kidOf(t) === standby.kid ? t : null;
      }, 5_000);
      let seen: unknown = null;
      const explain = (e: Error) => {
        throw new Error(`${e.message}; last answers ${JSON.stringify(seen)} ${lastRefusal}`);
      };
      await waitUntil(
        "both keys accepted everywhere",
        async () => {
          const [a, b] = [await answers(before), await answers(after)];
          seen = [a, b];
          return JSON.stringify(a) === JSON.stringify(ACCEPTED) && JSON.stringify(b) === JSON.stringify(ACCEPTED);
        },
        15_000,
        250,
      ).catch(explain);
      // the broker fetches a kid it does not know at once, or, when it fetched less than
      // jwks_refetch_seconds (30) ago, at the end of that period (broker/README.md)
      await waitUntil("the broker takes the new key", async () => (await mqttLogin(after)) === "accepted", 35_000, 1_000);
      expect(await mqttLogin(after, true)).toBe("accepted");
      expect(await mqttLogin(before)).toBe("accepted");

      // revoke the temporary key: the original signs again, the standby is gone
      writeKeys(JSON.parse(original));
      await waitUntil(
        "the removed key refused over HTTP",
        async () => {
          const a = await answers(after);
          seen = a;
          return a.rest === 401 && a.storage === 403 && a.fn === 401 && a.own === 401;
        },
        15_000,
        250,
      ).catch(explain);
      expect(await answers(before)).toEqual(ACCEPTED);
      await waitUntil(
        "the test's signer back on the original key",
        async () => kidOf((await tokenFor(admin, user)).token) === first.kid,
        5_000,
      );
    },
    60_000,
  );
});

describe("tokens signed with the project's signing key", () => {
  it("a sign-in through the auth stand-in carries an ES256 token whose kid the public JWKS lists, without private parts", async () => {
    const email = `keys-${crypto.randomUUID().slice(0, 8)}@test.local`;
    const svc = createClient(API_URL, secrets().secretKey, { auth: { persistSession: false } });
    expect((await svc.auth.admin.createUser({ email, password: "keys-password-1", email_confirm: true })).error).toBeNull();
    const sb = createClient(API_URL, secrets().publishableKey, { auth: { persistSession: false } });
    const { data, error } = await sb.auth.signInWithPassword({ email, password: "keys-password-1" });
    expect(error).toBeNull();
    const header = JSON.parse(new TextDecoder().decode(base64url.decode(data.session!.access_token.split(".")[0])));
    const signer = readSigningKeys(keysFile).find((k) => k.key_ops?.includes("sign"))!;
    expect(header).toEqual({ alg: "ES256", kid: signer.kid, typ: "JWT" });
    // open without an API key, as hosted's gateway leaves it
    const res = await fetch(`${API_URL}/auth/v1/.well-known/jwks.json`);
    expect(res.status).toBe(200);
    const { keys } = await res.json();
    expect(keys.map((k: JWK) => k.kid)).toContain(signer.kid);
    for (const k of keys) for (const secret of ["d", "p", "q", "dp", "dq", "qi", "k"]) expect(k).not.toHaveProperty(secret);
    // and the signed-in person's own calls work with it
    expect((await sb.auth.getUser()).data.user?.email).toBe(email);
  });

  it("PostgREST, storage, a function and the broker (TCP, WebSockets) accept it, and legacy HS256 tokens too", async () => {
    const token = (await tokenFor(admin, user)).token;
    expect(JSON.parse(new TextDecoder().decode(base64url.decode(token.split(".")[0]))).alg).toBe("ES256");
    expect(await answers(token)).toEqual(ACCEPTED);
    expect(await mqttLogin(token)).toBe("accepted");
    expect(await mqttLogin(token, true)).toBe("accepted");
    const legacy = await new SignJWT(userClaims()).setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .sign(new TextEncoder().encode(secrets().jwtSecret));
    expect(await answers(legacy)).toEqual(ACCEPTED);
    expect(await mqttLogin(legacy)).toBe("accepted");
  });

  it("refuses alg none, HS256 keyed with the public key, an unknown kid, an expired token and a wrong role everywhere", async () => {
    const signer = readSigningKeys(keysFile)[0];
    const body = base64url.encode(JSON.stringify(userClaims()));
    const forgeries: Record<string, string> = {
      none: `${base64url.encode(JSON.stringify({ alg: "none", typ: "JWT", kid: signer.kid }))}.${body}.`,
      hsWithPublicKey: await new SignJWT(userClaims()).setProtectedHeader({ alg: "HS256", kid: signer.kid })
        .sign(new TextEncoder().encode(JSON.stringify(publicJwk(signer)))),
      unknownKid: await signWith(await newSigningKey(), userClaims()),
      strangerUnderOurKid: await signWith({ ...(await newSigningKey()), kid: signer.kid }, userClaims()),
      expired: await signWith(signer, userClaims(now() - 120)),
      postgresRole: await signWith(signer, { ...userClaims(), role: "postgres" }),
    };
    for (const [name, token] of Object.entries(forgeries)) {
      const got = await answers(token);
      // a role the API does not know, under a real signature: PostgREST refuses to switch to it (403)
      expect([name, got.rest, got.storage, got.fn], name).toEqual([name, name === "postgresRole" ? 403 : 401, 403, 401]);
      // the function's own check refuses what it can judge: asymmetric tokens of keys it does not hold
      if (["unknownKid", "strangerUnderOurKid", "expired"].includes(name)) expect([name, got.own], name).toEqual([name, 401]);
      const user = await fetch(`${API_URL}/auth/v1/user`, {
        headers: { apikey: secrets().publishableKey, authorization: `Bearer ${token}` },
      });
      // GoTrue answers 403 bad_jwt for a token it cannot verify
      expect([name, user.status], name).toEqual([name, 403]);
      // MQTT 5 refuses with 134 (bad user name or password) or 135 (not authorized)
      if (name !== "postgresRole") expect([name, ["134", "135"].includes(await mqttLogin(token))], name).toEqual([name, true]);
    }
  });
});

describe("a function's own check", () => {
  it("health (verify_jwt = false, so the gateway checks nothing) refuses a user token of an unknown key and takes a real one", async () => {
    const call = (token: string) => fetch(`${API_URL}/functions/v1/health`, { headers: { authorization: `Bearer ${token}` } });
    const forged = await call(await signWith(await newSigningKey(), userClaims()));
    expect([forged.status, (await forged.json()).error?.code]).toEqual([401, "invalid_jwt"]);
    // a legacy-looking token under another secret: verified with LEGACY_JWT_SECRET, not trusted
    const forgedLegacy = await call(
      await new SignJWT(userClaims()).setProtectedHeader({ alg: "HS256" }).sign(
        new TextEncoder().encode("not-the-secret-x".repeat(2)),
      ),
    );
    expect([forgedLegacy.status, (await forgedLegacy.json()).error?.code]).toEqual([401, "invalid_jwt"]);
    const real = await call((await tokenFor(admin, user)).token);
    expect(real.status).toBe(200);
    await real.body?.cancel();
  });
});
