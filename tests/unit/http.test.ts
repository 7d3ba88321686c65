import crypto from "node:crypto";
// The shared handler wrapper: methods and callers declared by the handler are enforced before it
// runs, every failure becomes the documented envelope with a request id.
import { Redis } from "@upstash/redis";
import { SignJWT, UnsecuredJWT } from "jose";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  type ApiKeyVerifier,
  bearerToken,
  type Caller,
  type CallerKind,
  type UserCaller,
} from "../../supabase/functions/_shared/auth.ts";
import { HttpError } from "../../supabase/functions/_shared/errors.ts";
import { apiCallOrganization, parseJson, serveHandler } from "../../supabase/functions/_shared/http.ts";
import { type ApiCallCounter, flushingApiCallCounter } from "../../supabase/functions/_shared/usage/api-calls.ts";

const SERVICE_KEY = "service-key-for-unit-tests";
const auth = { serviceKeys: [SERVICE_KEY] };
const Body = z.object({ name: z.string().min(1), count: z.number().int().positive() });
const handler = serveHandler("unit", { methods: ["POST"], callers: ["public"], auth }, async (req) => {
  const body = await parseJson(req, Body);
  if (body.name === "forbidden") throw new HttpError(403, "forbidden", "Not for you.");
  if (body.name === "explode") throw new Error("internal detail that must not leak");
  return Response.json({ ok: true, body });
});
const post = (body: string, headers: Record<string, string> = {}) =>
  handler(new Request("http://x/fn", { method: "POST", body, headers }));

// A legacy HS256 token such as the gateway's verify_jwt has checked: without LEGACY_JWT_SECRET the
// function takes its claims as the gateway vouched for them (an unsigned token it refuses).
const token = (claims: Record<string, unknown>) => {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const body = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`;
  return `${body}.${crypto.createHmac("sha256", "verified-by-the-gateway").update(body).digest("base64url")}`;
};
const signed = (claims: Record<string, unknown>, secret = "not-the-project-secret") =>
  new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(secret));
const user = { role: "authenticated", sub: "5f0c7c0e-2222-4222-8222-222222222222" };

describe("serveHandler", () => {
  it("passes valid input through and adds CORS and a request id", async () => {
    const res = await post(JSON.stringify({ name: "a", count: 2 }), { "x-request-id": "abc" });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-request-id")).toBe("abc");
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
  });

  it("answers 400 invalid_json for a body that is not JSON", async () => {
    const res = await post("{nope");
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe("invalid_json");
  });

  it("answers 400 invalid_request with the failing fields for schema errors", async () => {
    const res = await post(JSON.stringify({ name: "", count: -1 }));
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(body.error.code).toBe("invalid_request");
    expect(body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(["count", "name"]);
  });

  it("maps HttpError to its status and code", async () => {
    const res = await post(JSON.stringify({ name: "forbidden", count: 1 }));
    expect(res.status).toBe(403);
    expect((await res.json()).error).toEqual({ code: "forbidden", message: "Not for you." });
  });

  it("answers 500 internal_error without leaking the cause", async () => {
    const res = await post(JSON.stringify({ name: "explode", count: 1 }), { "x-request-id": "r-500" });
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text).not.toContain("internal detail");
    expect(JSON.parse(text)).toMatchObject({ error: { code: "internal_error" }, request_id: "r-500" });
  });

  it("replaces an unsafe caller request id with its own", async () => {
    const res = await post(JSON.stringify({ name: "a", count: 1 }), { "x-request-id": "bad id with spaces" });
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("answers CORS preflight itself", async () => {
    const res = await handler(new Request("http://x/fn", { method: "OPTIONS" }));
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
  });

  it("refuses a method the handler did not declare with 405 and Allow, before the handler runs", async () => {
    let ran = false;
    const h = serveHandler("unit", { methods: ["POST"], callers: ["public"], auth }, () => {
      ran = true;
      return new Response("ran");
    });
    const res = await h(new Request("http://x/fn", { method: "DELETE" }));
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
    expect((await res.json()).error.code).toBe("method_not_allowed");
    expect(ran).toBe(false);
  });
});

describe("callers a handler declares", () => {
  const seen = (callers: readonly CallerKind[], verifyApiKey?: ApiKeyVerifier) => {
    const calls: unknown[] = [];
    const h = serveHandler("unit", { methods: ["POST"], callers, auth: { ...auth, verifyApiKey } }, (_req, ctx) => {
      calls.push(ctx.caller);
      return Response.json(ctx.caller);
    });
    const call = async (headers: Record<string, string> = {}) => {
      const before = calls.length;
      const res = await h(new Request("http://x/fn", { method: "POST", headers }));
      return { status: res.status, body: await res.json(), ran: calls.length > before };
    };
    return call;
  };
  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

  it("a service handler takes the service key, and hands the handler a service caller", async () => {
    const r = await seen(["service"])(bearer(SERVICE_KEY));
    expect(r).toMatchObject({ status: 200, body: { kind: "service" } });
  });

  it("a service handler takes the project's secret key in apikey (the gateway puts a role token in Authorization)", async () => {
    const secret = "sb_secret_unit-test-secret-key-0000000000";
    const h = serveHandler(
      "unit",
      { methods: ["POST"], callers: ["service"], auth: { serviceKeys: [SERVICE_KEY, secret] } },
      (_r, ctx) => Response.json(ctx.caller),
    );
    const call = (headers: Record<string, string>) => h(new Request("http://x/fn", { method: "POST", headers }));
    const minted = token({ role: "service_role" }); // what the gateway puts in Authorization
    expect((await call({ apikey: secret, authorization: `Bearer ${minted}` })).status).toBe(200);
    expect((await call({ apikey: `${secret}x`, authorization: `Bearer ${minted}` })).status).toBe(401);
    expect((await call({ apikey: "sb_publishable_whatever", authorization: `Bearer ${minted}` })).status).toBe(401);
  });

  it("a service handler refuses a forged service_role token, even one the gateway would not see (verify_jwt off)", async () => {
    const call = seen(["service"]);
    for (
      const t of [
        token({ role: "service_role" }),
        await signed({ role: "service_role", exp: 9999999999 }),
        `${SERVICE_KEY}x`,
        SERVICE_KEY.slice(0, -1),
      ]
    ) {
      const r = await call(bearer(t));
      expect(r.status).toBe(401);
      expect(r.ran).toBe(false);
    }
  });

  it("a service handler refuses users, anon and callers without a token", async () => {
    const call = seen(["service"]);
    expect(await call(bearer(token(user)))).toMatchObject({ status: 403, ran: false, body: { error: { code: "forbidden" } } });
    expect(await call(bearer(token({ role: "anon" })))).toMatchObject({ status: 401, ran: false });
    expect(await call()).toMatchObject({ status: 401, ran: false, body: { error: { code: "unauthorized" } } });
  });

  it("a user handler hands over the user's id, claims and active organization; the service key is not a user", async () => {
    const call = seen(["user"]);
    const org = "5f0c7c0e-1111-4111-8111-111111111111";
    const r = await call(bearer(token({ ...user, org_id: org })));
    expect(r).toMatchObject({ status: 200, body: { kind: "user", userId: user.sub, orgId: org } });
    expect(await call(bearer(SERVICE_KEY))).toMatchObject({ status: 403, ran: false });
    expect(await call(bearer(token({ role: "authenticated" })))).toMatchObject({ status: 401, ran: false }); // no sub
    expect(await call(bearer("not-a-jwt"))).toMatchObject({ status: 401, ran: false });
    expect(await call({ authorization: "Basic abc" })).toMatchObject({ status: 401, ran: false });
    expect(await call(bearer(token({ role: "postgres", sub: "x" })))).toMatchObject({ status: 401, ran: false });
  });

  it("a public handler serves anyone; a token it cannot read is still refused", async () => {
    const call = seen(["public"]);
    expect(await call()).toMatchObject({ status: 200, body: { kind: "public" } });
    expect(await call(bearer(token({ role: "anon" })))).toMatchObject({ status: 200, body: { kind: "public" } });
    expect(await call(bearer("garbage"))).toMatchObject({ status: 401, ran: false });
  });

  it("an API-key handler asks the verifier, whose refusal is the answer", async () => {
    const verify: ApiKeyVerifier = (key) => {
      if (key === "sk_good") return Promise.resolve({ apiKeyId: "k1", orgId: "o1", scopes: ["org.read"] });
      return Promise.reject(new HttpError(401, "api_key_revoked", "The API key was revoked."));
    };
    const call = seen(["api_key"], verify);
    expect(await call({ "x-api-key": "sk_good" })).toMatchObject({
      status: 200,
      body: { kind: "api_key", apiKeyId: "k1", orgId: "o1" },
    });
    expect(await call({ "x-api-key": "sk_revoked" })).toMatchObject({
      status: 401,
      ran: false,
      body: { error: { code: "api_key_revoked" } },
    });
    expect(await call(bearer(token(user)))).toMatchObject({ status: 403, ran: false });
  });
});

describe("apiCallOrganization (whose API call an answered request is)", () => {
  const org = "5f0c7c0e-1111-4111-8111-111111111111";
  const bearer = (claims: Record<string, unknown>) =>
    new Request("http://x/fn", { headers: { authorization: `Bearer ${token(claims)}` } });
  const member: UserCaller = { kind: "user", userId: "u", orgId: org, claims: {}, token: "t" };
  const key: Caller = { kind: "api_key", apiKeyId: "k", orgId: org, scopes: [] };
  it("is a verified caller's organization when the request was served, nobody's for refusals and mistakes", () => {
    for (const status of [200, 201, 204, 302]) {
      expect(apiCallOrganization(member, status)).toBe(org);
      expect(apiCallOrganization(key, status)).toBe(org);
    }
    for (const status of [400, 401, 403, 404, 409, 429, 500, 502]) {
      expect(apiCallOrganization(member, status)).toBeNull();
      expect(apiCallOrganization(key, status)).toBeNull();
    }
  });
  it("is nobody's for the service, the public and a token without an active organization", () => {
    expect(apiCallOrganization({ kind: "service" }, 200)).toBeNull();
    expect(apiCallOrganization({ kind: "public" }, 200)).toBeNull();
    expect(apiCallOrganization({ ...member, orgId: null }, 200)).toBeNull();
  });
  it("counts once the caller is verified and the handler served it", async () => {
    const counted: string[] = [];
    const apiCalls: ApiCallCounter = { count: (o) => void counted.push(o), flush: async () => {} };
    const handler = serveHandler(
      "unit",
      { methods: ["POST"], callers: ["user"], apiCalls, auth },
      (req) => new Response(null, { status: req.headers.get("x-answer") === "refuse" ? 403 : 204 }),
    );
    const claims = { role: "authenticated", sub: "u", org_id: org };
    expect(
      (await handler(new Request("http://x/fn", { method: "POST", headers: { authorization: `Bearer ${token(claims)}` } })))
        .status,
    )
      .toBe(204);
    const refused = { authorization: `Bearer ${token(claims)}`, "x-answer": "refuse" };
    expect((await handler(new Request("http://x/fn", { method: "POST", headers: refused }))).status).toBe(403);
    const forged = `Bearer ${new UnsecuredJWT(claims).encode()}`;
    expect((await handler(new Request("http://x/fn", { method: "POST", headers: { authorization: forged } }))).status).toBe(401);
    expect((await handler(new Request("http://x/fn", { method: "POST" }))).status).toBe(401);
    expect((await handler(bearer(claims))).status).toBe(405); // a GET: refused before the caller is known
    expect(counted).toEqual([org]);
  });
  it("a counter that cannot be reached costs the figure, never the caller's request", async () => {
    const away = new Redis({ url: "http://127.0.0.1:9", token: "t", retry: false });
    const apiCalls = flushingApiCallCounter(away, { flushMs: 60_000 });
    const counted = serveHandler(
      "unit",
      { methods: ["GET"], callers: ["user"], apiCalls, auth },
      () => Response.json({ ok: true }),
    );
    const res = await counted(bearer({ role: "authenticated", sub: "u", org_id: org }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
    await expect(apiCalls.flush()).resolves.toBeUndefined(); // refused: kept for the next write
  });
});

describe("bearerToken (the one parser of Authorization)", () => {
  it("reads `Bearer <token>`, is null without the header, and refuses anything else", () => {
    expect(bearerToken(new Request("http://x", { headers: { authorization: "Bearer abc.def" } }))).toBe("abc.def");
    expect(bearerToken(new Request("http://x"))).toBeNull();
    expect(() => bearerToken(new Request("http://x", { headers: { authorization: "Bearer a b" } }))).toThrow(HttpError);
    expect(() => bearerToken(new Request("http://x", { headers: { authorization: "Token abc" } }))).toThrow(HttpError);
  });
});

describe("a user token the function checks itself", () => {
  const h = (legacySecret: string | null) =>
    serveHandler("unit", {
      methods: ["POST"],
      callers: ["user"],
      auth: {
        ...auth,
        tokenKeys: {
          jwks: () => Promise.resolve({ keys: [] }),
          legacySecret: legacySecret ? new TextEncoder().encode(legacySecret) : null,
        },
      },
    }, (_req, ctx) => Response.json(ctx.caller));
  const call = (handler: ReturnType<typeof h>, t: string) =>
    handler(new Request("http://x/fn", { method: "POST", headers: { authorization: `Bearer ${t}` } }));

  it("refuses an unsigned token and, with the legacy secret given, an HS256 token made with another", async () => {
    expect((await call(h(null), new UnsecuredJWT(user).encode())).status).toBe(401);
    expect((await call(h("verified-by-the-gateway"), token(user))).status).toBe(401); // token() has no exp
    const exp = Math.floor(Date.now() / 1000) + 60;
    expect((await call(h("the-legacy-secret"), await signed({ ...user, exp }, "the-legacy-secret"))).status).toBe(200);
    expect((await call(h("the-legacy-secret"), await signed({ ...user, exp }, "someone-elses-secret"))).status).toBe(401);
  });
});
