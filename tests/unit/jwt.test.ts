// The gateway's bearer check, against tokens signed here; and the auth stand-in's check of hook claims.
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { verifyBearer } from "../../dev/platform/http/bearer.ts";
import { hookClaimsProblem } from "../../dev/platform/auth/tokens.ts";

const secret = new TextEncoder().encode("unit-test-secret-unit-test-secret");
const legacyOnly = { jwks: () => Promise.resolve(null), legacySecret: secret };
const sign = (claims: Record<string, unknown>, alg = "HS256", key = secret) =>
  new SignJWT(claims).setProtectedHeader({ alg }).sign(key);
const exp = Math.floor(Date.now() / 1000) + 60;

describe("verifyBearer with the legacy secret", () => {
  it("accepts the three API roles", async () => {
    for (const role of ["anon", "authenticated", "service_role"]) {
      expect((await verifyBearer(`Bearer ${await sign({ role, exp })}`, legacyOnly)).ok).toBe(true);
    }
  });
  it("rejects missing, malformed, unsigned-role, expiry-less and other-alg tokens", async () => {
    expect(await verifyBearer(undefined, legacyOnly)).toMatchObject({ ok: false, code: "missing_authorization" });
    expect(await verifyBearer("Basic abc", legacyOnly)).toMatchObject({ ok: false, code: "missing_authorization" });
    expect(await verifyBearer(`Bearer ${await sign({ role: "postgres", exp })}`, legacyOnly)).toMatchObject({
      ok: false,
      code: "invalid_jwt",
    });
    expect(await verifyBearer(`Bearer ${await sign({ role: "anon" })}`, legacyOnly)).toMatchObject({
      ok: false,
      code: "invalid_jwt",
    });
    expect(await verifyBearer(`Bearer ${await sign({ role: "anon", exp }, "HS512")}`, legacyOnly)).toMatchObject({
      ok: false,
      code: "invalid_jwt",
    });
    expect(await verifyBearer(`Bearer ${await sign({ role: "anon", exp: exp - 120 })}`, legacyOnly)).toMatchObject({
      ok: false,
      code: "jwt_expired",
    });
  });
});

describe("the access token hook's output, checked as GoTrue checks it", () => {
  const good = {
    aud: "authenticated",
    exp: 2,
    iat: 1,
    sub: "u",
    role: "authenticated",
    aal: "aal1",
    session_id: "s",
    email: "a@b.c",
    phone: "",
    is_anonymous: false,
  };
  it("accepts GoTrue's required claims with their types, and refuses a hook that drops or retypes one", () => {
    expect(hookClaimsProblem(good)).toBeNull();
    const { email: _, ...noEmail } = good;
    expect(hookClaimsProblem(noEmail)).toBe("missing required claim email");
    expect(hookClaimsProblem({ ...good, exp: "2" })).toBe("claim exp has the wrong type");
    expect(hookClaimsProblem({ ...good, aud: ["authenticated", "x"] })).toBeNull();
  });
});
