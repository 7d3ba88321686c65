// Who is calling a function. Each handler declares the callers it serves (serveHandler's
// `callers`), and the request's caller is resolved here, once:
// - service: the bearer is the project's service key (SUPABASE_SERVICE_ROLE_KEY), or the `apikey`
//   header is one of its secret keys (SUPABASE_SECRET_KEYS: the gateway then puts a short-lived
//   service_role token in Authorization, as hosted's does), compared in full. A service function so verifies its caller itself instead of trusting a role claim the
//   gateway's verify_jwt checked: a token that says service_role but is not the key (forged,
//   expired, or signed by anyone else) is refused even where verify_jwt is off.
// - user: an access token of role `authenticated` with a `sub`. Its signature and expiry are
//   checked by the gateway (hosted: the edge) before the function runs, as verify_jwt = true in
//   config.toml says. A token signed with the project's signing keys (ES256/RS256 with a kid) is
//   verified here too, against SUPABASE_JWKS, so a function with verify_jwt = false never takes a
//   forged one; a legacy HS256 token can only be verified by the gateway (functions are not given
//   the legacy secret on hosted).
// - api_key: an organization's API key (sk_...) in the x-api-key header, verified by
//   public.verify_api_key (api-keys.ts: cached briefly, rate limited, and checked live again by
//   Postgres in each request's own transaction, so a revoked or expired key is refused at its next
//   request). Machines only: a key sent from a browser context is refused, as hosted refuses a
//   secret key in a browser.
// - public: anyone (no token, or the anon key).
import { decodeJwt, decodeProtectedHeader } from "jose";
import { type TokenCheck, type TokenKeys, verifyAccessToken } from "./access-token.ts";
import { HttpError } from "./errors.ts";

export type CallerKind = "user" | "service" | "api_key" | "public";

export interface UserCaller {
  kind: "user";
  userId: string;
  /** The active organization the token names (org_id claim), if any. */
  orgId: string | null;
  claims: Record<string, unknown>;
  token: string;
}
export interface ServiceCaller {
  kind: "service";
}
export interface ApiKeyCaller {
  kind: "api_key";
  apiKeyId: string;
  orgId: string;
  scopes: string[];
}
export interface PublicCaller {
  kind: "public";
}
export type Caller = UserCaller | ServiceCaller | ApiKeyCaller | PublicCaller;
export type CallerOf<K extends CallerKind> = Extract<Caller, { kind: K }>;

/** What an API key stands for, or why it is refused (the HttpError verifyApiKey throws). */
export type ApiKeyVerifier = (key: string, requestId: string, req?: Request) => Promise<Omit<ApiKeyCaller, "kind">>;

export interface CallerAuth {
  /** The keys that make a caller the service (the service_role key). */
  serviceKeys: readonly string[];
  verifyApiKey?: ApiKeyVerifier;
  /** The project's signing keys (SUPABASE_JWKS); without them asymmetric user tokens are refused. */
  tokenKeys?: TokenKeys;
  /** Verifies a user token against tokenKeys (serveHandler: cachedVerifier, answers kept until the token expires). */
  verifyToken?: (token: string) => Promise<TokenCheck>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The bearer token of the Authorization header; null without one, 401 for a malformed header. */
export function bearerToken(req: Request): string | null {
  const header = req.headers.get("authorization");
  if (header === null) return null;
  const m = /^Bearer (\S+)$/.exec(header);
  if (!m) throw new HttpError(401, "unauthorized", "The Authorization header is not `Bearer <token>`.");
  return m[1];
}

/**
 * The request's bearer token, read once per request and handed to whatever needs it (whose API
 * call it is, who the caller is): the token, its claims and its signing algorithm as written, not
 * verified (see the header). A header that is not `Bearer <token>` is kept as the error it earns
 * when a caller is resolved.
 */
export interface RequestToken {
  token: string | null;
  claims: Record<string, unknown> | null;
  alg: string | null;
  malformed: HttpError | null;
}

export function readRequestToken(req: Request): RequestToken {
  let token: string | null;
  try {
    token = bearerToken(req);
  } catch (e) {
    return { token: null, claims: null, alg: null, malformed: e as HttpError };
  }
  let claims: Record<string, unknown> | null = null, alg: string | null = null;
  if (token !== null) {
    try {
      claims = decodeJwt(token) as Record<string, unknown>;
      alg = decodeProtectedHeader(token).alg ?? null;
    } catch {
      // not a JWT: claims stay null (or alg does), and resolveCaller says it cannot be read
    }
  }
  return { token, claims, alg, malformed: null };
}

/**
 * A request a browser made: it names its page's origin (every cross-origin request and every
 * same-origin one but GET/HEAD) or says Mozilla/ in its User-Agent, as the gateway decides for
 * secret keys. Servers and devices (Node, Deno, curl) send neither.
 */
export function fromBrowser(req: Request): boolean {
  return req.headers.has("origin") || /\bMozilla\//.test(req.headers.get("user-agent") ?? "");
}

/** Compares in time independent of where the strings first differ. */
function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

const REFUSAL: Record<CallerKind, string> = {
  service: "the service",
  user: "signed-in users",
  api_key: "API keys",
  public: "anyone",
};

function refuse(allowed: readonly CallerKind[], status = 403): never {
  const who = allowed.map((k) => REFUSAL[k]).join(" and ");
  throw new HttpError(status, status === 401 ? "unauthorized" : "forbidden", `This function serves ${who} only.`);
}

/** Resolves the request's caller among the kinds the handler serves; 401/403 otherwise. */
export async function resolveCaller<K extends CallerKind>(
  req: Request,
  allowed: readonly K[],
  auth: CallerAuth,
  requestId: string,
  read: RequestToken = readRequestToken(req),
): Promise<CallerOf<K>> {
  const serves = (k: CallerKind): k is K => (allowed as readonly CallerKind[]).includes(k);
  const apiKey = req.headers.get("x-api-key");
  if (apiKey !== null && serves("api_key")) {
    if (!auth.verifyApiKey) throw new Error("resolveCaller: api_key callers need a verifyApiKey");
    // refused before it is looked at: a key a web page holds is everyone's who opens the page
    if (fromBrowser(req)) {
      throw new HttpError(
        401,
        "api_key_in_browser",
        "Forbidden use of an API key in a browser: keys are for servers and devices; a browser app signs its user in.",
      );
    }
    return { kind: "api_key", ...(await auth.verifyApiKey(apiKey, requestId, req)) } as CallerOf<K>;
  }
  const isServiceKey = (s: string) => auth.serviceKeys.some((k) => k !== "" && sameSecret(k, s));
  const apikey = req.headers.get("apikey");
  if (apikey !== null && apikey.startsWith("sb_secret_") && isServiceKey(apikey)) {
    if (serves("service")) return { kind: "service" } as CallerOf<K>;
    refuse(allowed);
  }
  if (read.malformed) throw read.malformed;
  const { token, claims } = read;
  if (token !== null && isServiceKey(token)) {
    if (serves("service")) return { kind: "service" } as CallerOf<K>;
    refuse(allowed);
  }
  if (token !== null && claims === null) throw new HttpError(401, "unauthorized", "The access token cannot be read.");
  if (claims?.role === "service_role") {
    // says service_role but is not the service key
    throw new HttpError(401, "unauthorized", "The service credential is not valid.");
  }
  if (claims?.role === "authenticated" && typeof claims.sub === "string" && claims.sub !== "") {
    if (!serves("user")) refuse(allowed);
    await verifySignedUserToken(token!, read.alg, auth);
    const orgId = typeof claims.org_id === "string" && UUID.test(claims.org_id) ? claims.org_id : null;
    return { kind: "user", userId: claims.sub, orgId, claims, token: token! } as CallerOf<K>;
  }
  if (claims !== null && claims.role !== "anon") {
    throw new HttpError(401, "unauthorized", "The access token is not one this function accepts.");
  }
  if (serves("public")) return { kind: "public" } as CallerOf<K>;
  refuse(allowed, 401);
}

/**
 * An asymmetric token must verify against the project's keys. A legacy HS256 token is verified
 * with the legacy secret when the function is given it (LEGACY_JWT_SECRET, a function secret the
 * operator sets while legacy tokens live, as the local stack does); without it only the gateway's
 * verify_jwt vouches for one, so a function with verify_jwt = false must be given the secret
 * before it acts on a user's identity (docs/deploy.md).
 */
async function verifySignedUserToken(token: string, alg: string | null, auth: CallerAuth) {
  if (alg === null) throw new HttpError(401, "unauthorized", "The access token cannot be read.");
  if (alg === "HS256" && !auth.tokenKeys?.legacySecret) return;
  const keys = auth.tokenKeys;
  const check = auth.verifyToken ? await auth.verifyToken(token) : keys ? await verifyAccessToken(token, keys) : null;
  if (!check?.ok) {
    throw new HttpError(
      401,
      check?.code === "jwt_expired" ? "jwt_expired" : "invalid_jwt",
      check?.message ?? "The token cannot be verified.",
    );
  }
}

/** Request headers the audit log records. */
export function auditHeaders(req: Request, requestId: string) {
  return {
    "x-forwarded-for": req.headers.get("x-forwarded-for") ?? "",
    "user-agent": req.headers.get("user-agent") ?? "",
    "x-request-id": requestId,
  };
}
