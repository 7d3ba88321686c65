// The project's API keys as hosted Supabase's gateway treats them, for every route. Two kinds
// work side by side: the legacy anon and service_role keys (JWTs signed with the project's secret)
// and the new publishable and secret keys (sb_publishable_…, sb_secret_…: random strings, not
// JWTs). A request carrying a new key in `apikey` whose Authorization is missing or is that same
// key gets, in its place, a short-lived JWT for the key's role (publishable: anon, secret:
// service_role), so PostgREST, Storage, Auth and functions behind verify_jwt see the token they
// expect. A new key is never a user token: `Authorization: Bearer sb_…` other than the apikey is
// refused. A secret key from a browser is refused, as hosted refuses it.
import type http from "node:http";

export interface ProjectKeys {
  anon: string;
  serviceRole: string;
  publishable: string;
  secret: string;
}

export type KeyRole = "anon" | "service_role";

export function roleOfKey(key: string, keys: ProjectKeys): KeyRole | null {
  if (key === keys.anon || (keys.publishable !== "" && key === keys.publishable)) return "anon";
  if (key === keys.serviceRole || (keys.secret !== "" && key === keys.secret)) return "service_role";
  return null;
}

export const isNewKey = (key: string) => key.startsWith("sb_publishable_") || key.startsWith("sb_secret_");

/** Browsers say Mozilla/ in their User-Agent; servers and supabase-js under Node or Deno do not. */
const isBrowser = (req: http.IncomingMessage) => /\bMozilla\//.test(String(req.headers["user-agent"] ?? ""));

export type KeyRefusal = { status: number; body: { message: string; hint?: string } };

/** Mints the role tokens with the project's signer; `signingKid` names the key signing now. */
export function keyMinter(sign: (claims: Record<string, unknown>) => Promise<string>, signingKid: () => Promise<string>) {
  const cache = new Map<KeyRole, { token: string; until: number; kid: string }>();
  // a minute's token, reused for 50 s (signing per request would cost every request), and made
  // anew when the signing key changes, so a rotated-out key stops being used at once
  return async (role: KeyRole): Promise<string> => {
    const now = Math.floor(Date.now() / 1000);
    const kid = await signingKid();
    const hit = cache.get(role);
    if (hit && hit.until > now && hit.kid === kid) return hit.token;
    const token = await sign({ role, iss: "supabase", iat: now, exp: now + 60 });
    cache.set(role, { token, until: now + 50, kid });
    return token;
  };
}

/**
 * Puts a new key's role token in place of the key (mutating the request's headers), or says why
 * the request is refused; null when there is nothing to do (legacy keys, user tokens, no key).
 */
export async function applyNewKey(
  req: http.IncomingMessage,
  apikey: string | null,
  keys: ProjectKeys,
  mint: (role: KeyRole) => Promise<string>,
): Promise<KeyRefusal | null> {
  const auth = req.headers.authorization;
  const bearer = typeof auth === "string" && auth.startsWith("Bearer ") ? auth.slice(7) : null;
  if (bearer !== null && isNewKey(bearer) && bearer !== apikey) {
    return {
      status: 401,
      body: { message: "Invalid authorization", hint: "A publishable or secret key is not a user's token." },
    };
  }
  if (!apikey || !isNewKey(apikey)) return null;
  const role = roleOfKey(apikey, keys);
  if (!role) {
    return { status: 401, body: { message: "Invalid API key", hint: "Double check your Supabase publishable or secret key." } };
  }
  if (role === "service_role" && isBrowser(req)) {
    return {
      status: 401,
      body: {
        message: "Forbidden use of secret API key in browser",
        hint: "Secret keys are for servers; use the publishable key.",
      },
    };
  }
  if (bearer === null || bearer === apikey) req.headers.authorization = `Bearer ${await mint(role)}`;
  return null;
}
