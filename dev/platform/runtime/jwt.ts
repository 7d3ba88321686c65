// Verifies the bearer token of a function call the way the hosted gateway does for
// verify_jwt = true: HS256 signature with the project secret, expiry, and a known role.
import { errors, jwtVerify } from "jose";

export const ALLOWED_ROLES = new Set(["anon", "authenticated", "service_role"]);

export type JwtCheck =
  | { ok: true; claims: Record<string, unknown> }
  | { ok: false; code: "missing_authorization" | "invalid_jwt" | "jwt_expired"; message: string };

export async function verifyBearer(authorization: string | undefined, secret: Uint8Array): Promise<JwtCheck> {
  const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? "");
  if (!m) return { ok: false, code: "missing_authorization", message: "Missing authorization header with a Bearer token." };
  try {
    const { payload } = await jwtVerify(m[1], secret, { algorithms: ["HS256"], requiredClaims: ["exp"] });
    if (typeof payload.role !== "string" || !ALLOWED_ROLES.has(payload.role)) {
      return { ok: false, code: "invalid_jwt", message: "The token's role is not one of anon, authenticated, service_role." };
    }
    return { ok: true, claims: payload as Record<string, unknown> };
  } catch (e) {
    if (e instanceof errors.JWTExpired) return { ok: false, code: "jwt_expired", message: "The token has expired." };
    return { ok: false, code: "invalid_jwt", message: "The token is not valid." };
  }
}
