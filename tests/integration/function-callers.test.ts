// Each function serves the callers it declares, checked by the function itself (serveHandler), not
// only by the gateway's verify_jwt: against the running stack, the service functions refuse a
// service_role token the gateway accepts (signed with the project's secret) unless it is the service
// key, and refuse users and anon; the user functions refuse the service and anon; methods a function
// did not declare answer 405. API keys are verified live against Postgres.
import crypto from "node:crypto";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiKeyVerifier } from "../../supabase/functions/_shared/api-keys.ts";
import { HttpError } from "../../supabase/functions/_shared/errors.ts";
import { orgWithMember } from "../helpers/organizations.ts";
import { adminSql, API_URL, secrets } from "../helpers/stack.ts";

const admin = adminSql();
let org: string, member: string, userToken: string, end: () => Promise<void>;
const now = () => Math.floor(Date.now() / 1000);
const signedByProject = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(secrets().jwtSecret));
const call = (fn: string, bearer: string, method = "POST") =>
  fetch(`${API_URL}/functions/v1/${fn}`, {
    method,
    body: method === "GET" ? undefined : "{}",
    headers: { "content-type": "application/json", authorization: `Bearer ${bearer}` },
  });

beforeAll(async () => {
  ({ org, member, token: userToken, end } = await orgWithMember(admin, "Callers"));
});
afterAll(async () => {
  await end?.();
  await admin.end();
});

describe("service functions", () => {
  for (const fn of ["analytics-aggregation", "notification-dispatch", "file-processing"]) {
    it(`${fn} refuses a service_role token that is not the service key, users and anon`, async () => {
      const impostor = await signedByProject({ role: "service_role", iss: "supabase", exp: now() + 60 });
      const refused = await call(fn, impostor);
      expect(refused.status).toBe(401); // the gateway let it through; the function did not
      expect((await refused.json()).error.code).toBe("unauthorized");
      expect((await call(fn, userToken)).status).toBe(403);
      expect((await call(fn, secrets().anonKey)).status).toBe(401);
      // the key itself gets past the caller check to the payload's validation
      const ok = await call(fn, secrets().serviceRoleKey);
      expect([200, 400]).toContain(ok.status);
      expect((await call(fn, secrets().serviceRoleKey, "PUT")).status).toBe(405);
    });
  }
});

describe("user functions", () => {
  for (const fn of ["analytics-ingest", "file-upload"]) {
    it(`${fn} serves signed-in users only`, async () => {
      expect((await call(fn, secrets().serviceRoleKey)).status).toBe(403);
      expect((await call(fn, secrets().anonKey)).status).toBe(401);
      expect((await call(fn, userToken)).status).toBe(400); // past the caller check: {} is not a valid body
      expect((await call(fn, userToken, "GET")).status).toBe(405);
    });
  }
});

describe("API keys (apiKeyVerifier, against public.verify_api_key)", () => {
  it("stands for its organization and scopes while live; revoked, unknown and malformed keys are refused with their codes", async () => {
    const verify = apiKeyVerifier(admin);
    const [created] = await admin.begin(async (tx) => {
      await tx`select set_config('role', 'authenticated', true), set_config('request.jwt.claims', ${
        JSON.stringify({ sub: member, role: "authenticated" })
      }, true)`;
      return tx<
        { api_key_id: string; api_key: string }[]
      >`select api_key_id, api_key from public.create_api_key(${org}, 'device', array['org.read'])`;
    });
    await expect(verify(created.api_key, "t-1")).resolves.toEqual({
      apiKeyId: created.api_key_id,
      orgId: org,
      scopes: ["org.read"],
    });
    const code = (p: Promise<unknown>) =>
      p.then(() => "accepted", (e) => (e instanceof HttpError ? `${e.status} ${e.code}` : String(e)));
    expect(await code(verify(`sk_${crypto.randomBytes(24).toString("base64url")}`, "t-2"))).toBe("401 invalid_api_key");
    expect(await code(verify("sk_'; select 1 --", "t-3"))).toBe("401 invalid_api_key");
    await admin`update public.api_keys set revoked_at = now() where id = ${created.api_key_id}`;
    expect(await code(verify(created.api_key, "t-4"))).toBe("401 api_key_revoked");
  });
});
