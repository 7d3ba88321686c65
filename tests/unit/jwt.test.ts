// The gateway's bearer check, against tokens signed here.
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { verifyBearer } from "../../dev/platform/runtime/jwt.ts";

const secret = new TextEncoder().encode("unit-test-secret-unit-test-secret");
const sign = (claims: Record<string, unknown>, alg = "HS256", key = secret) =>
  new SignJWT(claims).setProtectedHeader({ alg }).sign(key);
const exp = Math.floor(Date.now() / 1000) + 60;

describe("verifyBearer", () => {
  it("accepts the three API roles", async () => {
    for (const role of ["anon", "authenticated", "service_role"]) {
      expect((await verifyBearer(`Bearer ${await sign({ role, exp })}`, secret)).ok).toBe(true);
    }
  });
  it("rejects missing, malformed, unsigned-role, expiry-less and other-alg tokens", async () => {
    expect(await verifyBearer(undefined, secret)).toMatchObject({ ok: false, code: "missing_authorization" });
    expect(await verifyBearer("Basic abc", secret)).toMatchObject({ ok: false, code: "missing_authorization" });
    expect(await verifyBearer(`Bearer ${await sign({ role: "postgres", exp })}`, secret)).toMatchObject({
      ok: false,
      code: "invalid_jwt",
    });
    expect(await verifyBearer(`Bearer ${await sign({ role: "anon" })}`, secret)).toMatchObject({
      ok: false,
      code: "invalid_jwt",
    });
    expect(await verifyBearer(`Bearer ${await sign({ role: "anon", exp }, "HS512")}`, secret)).toMatchObject({
      ok: false,
      code: "invalid_jwt",
    });
    expect(await verifyBearer(`Bearer ${await sign({ role: "anon", exp: exp - 120 })}`, secret)).toMatchObject({
      ok: false,
      code: "jwt_expired",
    });
  });
});
