// The shared handler wrapper: every failure becomes the documented envelope with a request id.
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { HttpError } from "../../supabase/functions/_shared/errors.ts";
import { Redis } from "@upstash/redis";
import { UnsecuredJWT } from "jose";
import { parseJson, serveHandler, tokenOrganization } from "../../supabase/functions/_shared/http.ts";
import { redisApiCallCounter } from "../../supabase/functions/_shared/usage/api-calls.ts";

const Body = z.object({ name: z.string().min(1), count: z.number().int().positive() });
const handler = serveHandler("unit", async (req) => {
  const body = await parseJson(req, Body);
  if (body.name === "forbidden") throw new HttpError(403, "forbidden", "Not for you.");
  if (body.name === "explode") throw new Error("internal detail that must not leak");
  return Response.json({ ok: true, body });
});
const post = (body: string, headers: Record<string, string> = {}) =>
  handler(new Request("http://x/fn", { method: "POST", body, headers }));

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
});

describe("tokenOrganization (whose API call a request is)", () => {
  const org = "5f0c7c0e-1111-4111-8111-111111111111";
  const bearer = (claims: Record<string, unknown>) =>
    new Request("http://x/fn", { headers: { authorization: `Bearer ${new UnsecuredJWT(claims).encode()}` } });
  it("is the org_id claim of a signed-in caller", () => {
    expect(tokenOrganization(bearer({ role: "authenticated", sub: "u", org_id: org }))).toBe(org);
  });
  it("is nobody's for the service, a token without an active organization, a malformed claim or no token", () => {
    expect(tokenOrganization(bearer({ role: "service_role", org_id: org }))).toBeNull();
    expect(tokenOrganization(bearer({ role: "authenticated", sub: "u" }))).toBeNull();
    expect(tokenOrganization(bearer({ role: "authenticated", org_id: "'; drop table x" }))).toBeNull();
    expect(tokenOrganization(new Request("http://x/fn", { headers: { authorization: "Bearer not-a-jwt" } }))).toBeNull();
    expect(tokenOrganization(new Request("http://x/fn"))).toBeNull();
  });
  it("a counter that cannot be reached costs the figure, never the caller's request", async () => {
    const away = new Redis({ url: "http://127.0.0.1:9", token: "t", retry: false });
    const counted = serveHandler("unit", () => Response.json({ ok: true }), { apiCalls: redisApiCallCounter(away) });
    const res = await counted(bearer({ role: "authenticated", sub: "u", org_id: org }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
  });
});
