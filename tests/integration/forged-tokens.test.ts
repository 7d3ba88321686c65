// Forged and expired access tokens at every door that takes one: PostgREST (/rest/v1), the storage
// stand-in (/storage/v1) and the auth stand-in (/auth/v1/user and /logout). The stack signs ES256
// with a kid (supabase/signing_keys.json) and still accepts the legacy HS256 secret; each forgery
// is built from a real user's claims: signed with another EC key under the project's kid, with
// another kid, with another HS256 secret, expired but signed with the real secret, claiming
// `role: postgres` (forged, and signed for real), and unsigned (`alg: none`). Each door's refusal
// is pinned; the user's real token is the positive control at every door.
import { generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminSql, API_URL, createUser, secrets, tokenFor } from "../helpers/stack.ts";

const admin = adminSql();
let real = "";
const forged: Record<string, string> = {};

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
const hs256 = (claims: Record<string, unknown>, secret: string) =>
  new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(new TextEncoder().encode(secret));

beforeAll(async () => {
  const user = await createUser(admin);
  real = (await tokenFor(admin, user.id)).token;
  const header = JSON.parse(Buffer.from(real.split(".")[0], "base64url").toString()) as { alg: string; kid: string };
  expect(header.alg).toBe("ES256");
  const claims = JSON.parse(Buffer.from(real.split(".")[1], "base64url").toString()) as Record<string, unknown>;
  const now = Math.floor(Date.now() / 1000);
  const { privateKey } = await generateKeyPair("ES256");
  const es256 = (kid: string) => new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid, typ: "JWT" }).sign(privateKey);
  Object.assign(forged, {
    "another EC key under the project's kid": await es256(header.kid),
    "another EC key under another kid": await es256(crypto.randomUUID()),
    "another HS256 secret": await hs256(claims, "x".repeat(40)),
    "expired, signed with the real secret": await hs256({ ...claims, iat: now - 7200, exp: now - 3600 }, secrets().jwtSecret),
    "role postgres, another HS256 secret": await hs256({ ...claims, role: "postgres" }, "x".repeat(40)),
    "alg none": `${b64({ alg: "none", typ: "JWT" })}.${b64(claims)}.`,
    "alg none, role service_role": `${b64({ alg: "none", typ: "JWT" })}.${b64({ ...claims, role: "service_role" })}.`,
  });
});
afterAll(() => admin.end());

async function call(path: string, token: string, method = "GET", body?: unknown) {
  const res = await fetch(`${API_URL}${path}`, {
    method,
    headers: {
      apikey: secrets().anonKey,
      Authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** What each door answers a token it cannot trust (the reason in the message varies with the forgery). */
const REFUSED = {
  rest: { status: 401, body: { code: "PGRST301" } },
  storage: { status: 403, body: { statusCode: "403", error: "unauthorized" } },
  auth: { status: 403, body: { code: 403, error_code: "bad_jwt" } },
};

describe("forged and expired tokens", () => {
  it("the real token opens each door (the positive control)", async () => {
    expect((await call("/rest/v1/organizations?select=id", real)).status).toBe(200);
    expect((await call("/storage/v1/object/list/files", real, "POST", { prefix: "" })).status).toBe(200);
    // past the token, to the object: there is none
    expect(await call("/storage/v1/object/authenticated/files/nothing.txt", real)).toMatchObject({
      status: 404,
      body: { error: "not_found" },
    });
    expect((await call("/auth/v1/user", real)).status).toBe(200);
  });

  it("PostgREST refuses each forgery with 401 PGRST301, naming why", async () => {
    const why: Record<string, string> = {};
    for (const [name, token] of Object.entries(forged)) {
      const a = await call("/rest/v1/organizations?select=id", token);
      expect(a, name).toMatchObject(REFUSED.rest);
      why[name] = a.body.message;
    }
    expect(why).toEqual({
      "another EC key under the project's kid": "JWSError JWSInvalidSignature",
      "another EC key under another kid": "JWSError JWSInvalidSignature",
      "another HS256 secret": "JWSError JWSInvalidSignature",
      "expired, signed with the real secret": "JWT expired",
      "role postgres, another HS256 secret": "JWSError JWSInvalidSignature",
      "alg none": "JWSError JWSNoSignatures",
      "alg none, role service_role": "JWSError JWSNoSignatures",
    });
  });

  it("a token signed for real that claims role postgres cannot become it (authenticator may not)", async () => {
    const claims = JSON.parse(Buffer.from(real.split(".")[1], "base64url").toString());
    const a = await call("/rest/v1/organizations?select=id", await hs256({ ...claims, role: "postgres" }, secrets().jwtSecret));
    expect(a).toEqual({
      status: 403,
      body: { code: "42501", details: null, hint: null, message: 'permission denied to set role "postgres"' },
    });
  });

  it("Storage refuses each forgery with 403 unauthorized", async () => {
    for (const [name, token] of Object.entries(forged)) {
      expect(await call("/storage/v1/object/list/files", token, "POST", { prefix: "" }), name).toMatchObject(REFUSED.storage);
      expect(await call("/storage/v1/object/authenticated/files/nothing.txt", token), name).toMatchObject(REFUSED.storage);
    }
  });

  it("/auth/v1/user and /logout refuse each forgery with 403 bad_jwt, and the real session survives them", async () => {
    for (const [name, token] of Object.entries(forged)) {
      expect(await call("/auth/v1/user", token), name).toMatchObject(REFUSED.auth);
      expect(await call("/auth/v1/logout", token, "POST"), name).toMatchObject(REFUSED.auth);
    }
    expect((await call("/auth/v1/user", real)).status).toBe(200);
  });
});
