// Verifies a Supabase access token as hosted verifiers do since JWT signing keys: an asymmetric
// token (ES256 or RS256, with a `kid`) against the project's JWKS, the key chosen by `kid` and its
// `alg` fixed by the key; a legacy HS256 token against the legacy JWT secret, only while one is
// configured. `alg: none`, an HS256 token where no secret is configured (so a public key can
// never serve as an HMAC secret), an unknown `kid` and an expired token are refused. One
// implementation for the gateway, the auth and storage stand-ins and the functions.
import { createLocalJWKSet, decodeProtectedHeader, errors, type JSONWebKeySet, jwtVerify } from "jose";

export interface TokenKeys {
  /** The JWKS as last known (cached by the caller). */
  jwks(): Promise<JSONWebKeySet | null>;
  /** Asked once when a token names a kid the known set lacks (a rotation not seen yet). */
  refresh?(): Promise<JSONWebKeySet | null>;
  /** The legacy HS256 secret; null once a project no longer accepts legacy tokens. */
  legacySecret: Uint8Array | null;
}

export type TokenCheck =
  | { ok: true; claims: Record<string, unknown> }
  | { ok: false; code: "invalid_jwt" | "jwt_expired"; message: string };

const ASYMMETRIC = ["ES256", "RS256"];
const invalid = (message: string): TokenCheck => ({ ok: false, code: "invalid_jwt", message });

// createLocalJWKSet builds its key index once per set; sets change only on rotation.
const resolvers = new WeakMap<JSONWebKeySet, ReturnType<typeof createLocalJWKSet>>();
function resolverOf(set: JSONWebKeySet) {
  let r = resolvers.get(set);
  if (!r) resolvers.set(set, r = createLocalJWKSet(set));
  return r;
}

const hasKid = (set: JSONWebKeySet | null, kid: string) => !!set?.keys.some((k) => k.kid === kid);

export async function verifyAccessToken(token: string, keys: TokenKeys): Promise<TokenCheck> {
  let header: { alg?: string; kid?: string };
  try {
    header = decodeProtectedHeader(token);
  } catch {
    return invalid("The token is not a JWT.");
  }
  try {
    if (header.alg === "HS256") {
      if (!keys.legacySecret) return invalid("Tokens signed with the legacy JWT secret are not accepted.");
      const { payload } = await jwtVerify(token, keys.legacySecret, { algorithms: ["HS256"], requiredClaims: ["exp"] });
      return { ok: true, claims: payload as Record<string, unknown> };
    }
    if (!header.alg || !ASYMMETRIC.includes(header.alg)) return invalid("The token's signing algorithm is not accepted.");
    if (!header.kid) return invalid("The token names no signing key (kid).");
    let set = await keys.jwks();
    if (!hasKid(set, header.kid) && keys.refresh) set = await keys.refresh();
    if (!set || !hasKid(set, header.kid)) return invalid("The token's signing key is not one of the project's.");
    const { payload } = await jwtVerify(token, resolverOf(set), { algorithms: ASYMMETRIC, requiredClaims: ["exp"] });
    return { ok: true, claims: payload as Record<string, unknown> };
  } catch (e) {
    if (e instanceof errors.JWTExpired) return { ok: false, code: "jwt_expired", message: "The token has expired." };
    return invalid("The token is not valid.");
  }
}

/**
 * The JWKS a function verifies against: hosted injects it as SUPABASE_JWKS; a kid it lacks is
 * looked up at the auth server's /.well-known/jwks.json, at most once per `refetchMs` so a flood
 * of made-up kids costs the auth server nothing.
 */
export function jwksSource(inline: string | undefined, url: string | null, refetchMs = 30_000): Omit<TokenKeys, "legacySecret"> {
  let set: JSONWebKeySet | null = parseJwks(inline);
  let fetchedAt = 0;
  return {
    jwks: () => Promise.resolve(set),
    async refresh() {
      if (!url || Date.now() - fetchedAt < refetchMs) return set;
      fetchedAt = Date.now();
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
        const fresh = res.ok ? parseJwks(await res.text()) : null;
        if (fresh) set = fresh;
      } catch {
        // the known set stays; the token is judged against it
      }
      return set;
    },
  };
}

/** `{"keys":[...]}` or a bare array (both forms hosted and @supabase/server accept); null when malformed. */
export function parseJwks(text: string | undefined | null): JSONWebKeySet | null {
  if (!text) return null;
  try {
    const v = JSON.parse(text);
    const keys = Array.isArray(v) ? v : v?.keys;
    return Array.isArray(keys) && keys.every((k) => k && typeof k === "object") ? { keys } : null;
  } catch {
    return null;
  }
}

/**
 * verifyAccessToken with the answers kept for tokens that verified, until they expire or their key
 * leaves the JWKS: a browser app sends the same token with every call for up to an hour, and an
 * ES256 check costs far more than a map lookup. At most `max` tokens are kept (the oldest go first).
 */
export function cachedVerifier(keys: TokenKeys, max = 10_000): (token: string) => Promise<TokenCheck> {
  const verified = new Map<string, { claims: Record<string, unknown>; exp: number; kid: string | null }>();
  return async (token) => {
    const hit = verified.get(token);
    if (hit) {
      const live = hit.exp > Date.now() / 1000 && (hit.kid === null || hasKid(await keys.jwks(), hit.kid));
      if (live) return { ok: true, claims: hit.claims };
      verified.delete(token);
    }
    const check = await verifyAccessToken(token, keys);
    if (check.ok) {
      let kid: string | null = null;
      try {
        kid = decodeProtectedHeader(token).kid ?? null;
      } catch {
        // verified, so it decodes
      }
      if (verified.size >= max) verified.delete(verified.keys().next().value!);
      verified.set(token, { claims: check.claims, exp: Number(check.claims.exp), kid });
    }
    return check;
  };
}
