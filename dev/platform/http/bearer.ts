// Verifies the bearer token of a request the way the hosted gateway does for verify_jwt = true:
// the signature against the project's signing keys (or the legacy HS256 secret while one is
// configured), expiry, and a role the API knows.
import { cachedVerifier, type TokenKeys } from "../../../supabase/functions/_shared/access-token.ts";

export const ALLOWED_ROLES = new Set(["anon", "authenticated", "service_role"]);

export type JwtCheck =
  | { ok: true; claims: Record<string, unknown> }
  | { ok: false; code: "missing_authorization" | "invalid_jwt" | "jwt_expired"; message: string };

const verifiers = new WeakMap<TokenKeys, ReturnType<typeof cachedVerifier>>();

export async function verifyBearer(authorization: string | undefined, keys: TokenKeys): Promise<JwtCheck> {
  const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? "");
  if (!m) return { ok: false, code: "missing_authorization", message: "Missing authorization header with a Bearer token." };
  let verify = verifiers.get(keys);
  if (!verify) verifiers.set(keys, verify = cachedVerifier(keys));
  const check = await verify(m[1]);
  if (!check.ok) return check;
  if (typeof check.claims.role !== "string" || !ALLOWED_ROLES.has(check.claims.role)) {
    return { ok: false, code: "invalid_jwt", message: "The token's role is not one of anon, authenticated, service_role." };
  }
  return check;
}
