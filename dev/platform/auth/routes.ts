// The smallest stand-in for GoTrue that supabase-js's password sign-in needs, under /auth/v1:
// POST /token?grant_type=password, GET /user, POST /logout. It keeps GoTrue's Postgres-side
// contract: users are read from auth.users as supabase_auth_admin, the password is checked
// against the bcrypt hash in encrypted_password, the password verification attempt hook and the
// custom access token hook named in config.toml are called with hosted payloads, and errors use
// GoTrue's shape ({ code, error_code, msg }). Sign-up, refresh and the rest are not provided.
import crypto from "node:crypto";
import type http from "node:http";
import type postgres from "postgres";
import { z } from "zod";
import type { ProjectConfig } from "../project-config.ts";
import { verifyBearer } from "../runtime/jwt.ts";
import { readJsonBody } from "../runtime/request-body.ts";
import { callPgHook, mintAccessToken, TokenError } from "./tokens.ts";

export interface AuthDeps {
  sql: postgres.Sql;
  jwtSecret: string;
  config: () => ProjectConfig;
  supabaseUrl: string;
  /** The new publishable and secret keys (not JWTs), taken as hosted's gateway takes them. */
  newKeys?: () => readonly string[];
}

// supabase-js also sends gotrue_meta_security (captcha); unknown fields are ignored, as GoTrue does.
const PasswordGrant = z.object({ email: z.string().trim().email().max(320), password: z.string().min(1).max(1024) });
const HookDecision = z.object({
  decision: z.enum(["continue", "reject"]),
  message: z.string().optional(),
  should_logout_user: z.boolean().optional(),
});

type Reply = { status: number; body?: unknown };
const gotrueError = (status: number, errorCode: string, msg: string): Reply => ({
  status,
  body: { code: status, error_code: errorCode, msg },
});
const INVALID_CREDENTIALS = gotrueError(400, "invalid_credentials", "Invalid login credentials");

export async function handleAuth(req: http.IncomingMessage, url: URL, deps: AuthDeps): Promise<Reply> {
  const route = url.pathname.replace(/^\/auth\/v1/, "");
  if (!(await apiKeyOk(req, deps))) return gotrueError(401, "no_authorization", "A valid apikey header is required.");
  if (route === "/token" && req.method === "POST") {
    const grant = url.searchParams.get("grant_type");
    if (grant !== "password") {
      return gotrueError(400, "unsupported_grant_type", `grant_type ${grant} is not provided by the local stack`);
    }
    const parsed = PasswordGrant.safeParse(await readJsonBody(req));
    if (!parsed.success) return gotrueError(400, "validation_failed", "An e-mail address and a password are required.");
    return passwordGrant(parsed.data.email, parsed.data.password, deps, clientAddress(req));
  }
  if (route === "/user" && req.method === "GET") {
    const check = await verifyBearer(req.headers.authorization, new TextEncoder().encode(deps.jwtSecret));
    if (!check.ok || typeof check.claims.sub !== "string") {
      return gotrueError(401, "bad_jwt", "invalid JWT: unable to parse or verify signature");
    }
    const user = await userById(deps.sql, check.claims.sub);
    return user ? { status: 200, body: user } : gotrueError(404, "user_not_found", "User from sub claim in JWT does not exist");
  }
  if (route === "/logout" && req.method === "POST") return { status: 204 };
  return gotrueError(404, "not_found", `The local auth stand-in does not provide ${req.method} ${route}.`);
}

/** The caller's address as the gateway (the only proxy in front of this stand-in) saw it. */
function clientAddress(req: http.IncomingMessage): string {
  const address = req.socket.remoteAddress ?? "";
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}

async function passwordGrant(email: string, password: string, deps: AuthDeps, ipAddress: string): Promise<Reply> {
  const config = deps.config();
  const outcome = await deps.sql.begin(async (tx) => {
    // GoTrue compares bcrypt hashes in Go; here pgcrypto's crypt() does it, before the role switch
    // (supabase_auth_admin need not use the extensions schema).
    const [user] = await tx`
      select id, encrypted_password is not null and encrypted_password = extensions.crypt(${password}, encrypted_password) as valid,
             email_confirmed_at is not null as confirmed, coalesce(banned_until > now(), false) as banned
      from auth.users where lower(email) = lower(${email}) and deleted_at is null`;
    if (!user) return INVALID_CREDENTIALS;
    await tx`set local role supabase_auth_admin`;
    if (config.passwordVerificationHook) {
      // GoTrue's payload: metadata (with the request's address) beside user_id and valid
      const raw = await callPgHook(tx, config.passwordVerificationHook, {
        metadata: {
          uuid: crypto.randomUUID(),
          time: new Date().toISOString(),
          name: "password-verification",
          ip_address: ipAddress,
        },
        user_id: user.id,
        valid: user.valid,
      });
      const answer = HookDecision.safeParse(raw);
      if (!answer.success) {
        return gotrueError(500, "hook_payload_invalid", "The password verification hook answered with an invalid payload.");
      }
      if (answer.data.decision === "reject") {
        return gotrueError(
          400,
          "invalid_credentials",
          answer.data.message || "Further password verification attempts will be rejected.",
        );
      }
    }
    if (!user.valid) return INVALID_CREDENTIALS;
    if (user.banned) return gotrueError(400, "user_banned", "User is banned");
    if (!user.confirmed) return gotrueError(400, "email_not_confirmed", "Email not confirmed");
    await tx`update auth.users set last_sign_in_at = now() where id = ${user.id}`;
    return { userId: user.id as string };
  });
  if (!("userId" in outcome)) return outcome;
  try {
    const { token, claims } = await mintAccessToken(deps.sql, deps.jwtSecret, config, {
      userId: outcome.userId,
      supabaseUrl: deps.supabaseUrl,
    });
    const expiresAt = Number(claims.exp);
    return {
      status: 200,
      body: {
        access_token: token,
        token_type: "bearer",
        expires_in: expiresAt - Math.floor(Date.now() / 1000),
        expires_at: expiresAt,
        // Refresh is not provided locally; the token is opaque and single-session.
        refresh_token: crypto.randomBytes(16).toString("base64url"),
        user: await userById(deps.sql, outcome.userId),
      },
    };
  } catch (e) {
    if (e instanceof TokenError) return gotrueError(500, "unexpected_failure", e.message);
    throw e;
  }
}

async function userById(sql: postgres.Sql, id: string) {
  const [u] = await sql.begin(async (tx) => {
    await tx`set local role supabase_auth_admin`;
    return tx`select id, aud, role, email, email_confirmed_at, phone, last_sign_in_at, raw_app_meta_data, raw_user_meta_data,
                     created_at, updated_at, coalesce(is_anonymous, false) as is_anonymous
              from auth.users where id = ${id}::uuid and deleted_at is null`;
  });
  if (!u) return null;
  return {
    id: u.id,
    aud: u.aud,
    role: u.role,
    email: u.email,
    email_confirmed_at: u.email_confirmed_at,
    phone: u.phone ?? "",
    last_sign_in_at: u.last_sign_in_at,
    app_metadata: u.raw_app_meta_data ?? {},
    user_metadata: u.raw_user_meta_data ?? {},
    identities: [],
    created_at: u.created_at,
    updated_at: u.updated_at,
    is_anonymous: u.is_anonymous,
  };
}

/** Like the hosted API gateway: every call carries one of the project's API keys. */
async function apiKeyOk(req: http.IncomingMessage, deps: AuthDeps) {
  const key = req.headers.apikey;
  if (typeof key !== "string") return false;
  if (deps.newKeys?.().includes(key)) return true;
  const check = await verifyBearer(`Bearer ${key}`, new TextEncoder().encode(deps.jwtSecret));
  return check.ok && (check.claims.role === "anon" || check.claims.role === "service_role");
}
