// The local stand-in for Supabase Auth (GoTrue) under /auth/v1, keeping the contract auth-js
// (supabase-js 2.119) relies on and GoTrue's own tables (auth.users, identities, sessions,
// refresh_tokens, one_time_tokens, flow_state), so SQL written against auth.* behaves as hosted:
//   POST /token?grant_type=password|refresh_token|pkce   POST /logout?scope=local|global|others
//   POST /signup   POST /verify   GET /verify (the mailed link)   POST /recover   POST /otp
//   GET /user   PUT /user   GET /settings
//   admin (the service role): GET|POST /admin/users, GET|PUT|DELETE /admin/users/{id},
//   POST /invite, POST /admin/generate_link
// The password verification attempt and custom access token hooks named in config.toml run with
// GoTrue's payloads; errors use GoTrue's shapes (with X-Supabase-Api-Version the newer
// `{ code, message }` and `x-sb-error-code`). What is left out is listed in docs/local-stack.md.
//
// Where an account can be taken or held, the stand-in follows GoTrue and goes a little further
// (docs/local-stack.md lists it): the first mailed link or code that confirms an address decides
// its password (a sign-up's own, or none) and ends every session; a password change ends the other
// sessions and spends every outstanding token; PKCE flows only answer links made with them;
// e-mail changes wait for both addresses (double_confirm_changes); mail is limited per person
// (max_frequency) and the hourly budget is split by caller (rate-limits.ts); wrong codes are
// counted per user.
import crypto from "node:crypto";
import type http from "node:http";
import type postgres from "postgres";
import { z } from "zod";
import type { AuthSettings, ProjectConfig } from "../project-config.ts";
import { verifyBearer } from "../http/bearer.ts";
import type { TokenKeys } from "../../../supabase/functions/_shared/access-token.ts";
import { readJsonBody } from "../http/request-body.ts";
import { createLogger } from "../../../supabase/functions/_shared/log.ts";
import { auditAuth } from "./audit.ts";
import { type AuthMailer, type MailKind, TEMPLATE_NAMES } from "./mail.ts";
import { AuthRateLimits } from "./rate-limits.ts";
import {
  clearTokens,
  consumeToken,
  ensureStandInTables,
  issueEmailChange,
  issueSignup,
  issueToken,
  PKCE_PREFIX,
  VERIFY_TYPES,
  type VerifyType,
} from "./one-time-tokens.ts";
import { AuthError, endSessions, openSession, refreshSession, type Session, sessionExists } from "./sessions.ts";
import { callPgHook, mintAccessToken, TokenError } from "./tokens.ts";
import type { TokenSigner } from "./signing-keys.ts";
import {
  checkPasswordStrength,
  confirmEmail,
  confirmFirst,
  hashPassword,
  insertUser,
  passwordMatches,
  updatePassword,
  userIdByEmail,
  userJson,
} from "./users.ts";

export interface AuthDeps {
  sql: postgres.Sql;
  /** Signs access tokens (the signing key, else the legacy secret). */
  sign: TokenSigner;
  /** What tokens are verified against: the signing keys' JWKS and the legacy secret. */
  tokenKeys: TokenKeys;
  /** The public keys served at /.well-known/jwks.json. */
  jwks: () => Promise<{ keys: unknown[] }>;
  config: () => ProjectConfig;
  supabaseUrl: string;
  /** The new publishable and secret keys (not JWTs), taken as hosted's gateway takes them. */
  newKeys?: () => readonly string[];
  mailer?: AuthMailer;
  limits?: AuthRateLimits;
}

type Reply = { status: number; body?: unknown; headers?: Record<string, string> };

const Email = z.string().trim().toLowerCase().email().max(320);
const Metadata = z.record(z.string(), z.unknown()).refine((m) => JSON.stringify(m).length <= 16_384, "metadata is too large");
// auth-js sends these as null when the flow is implicit
const PkceFields = {
  code_challenge: z.string().min(43).max(128).nullish().transform((v) => v ?? undefined),
  code_challenge_method: z.enum(["s256", "plain", "S256"]).nullish().transform((v) => v ?? undefined),
};
const PasswordGrant = z.object({ email: Email, password: z.string().min(1).max(1024) });
const RefreshGrant = z.object({ refresh_token: z.string().min(1).max(255) });
const PkceGrant = z.object({ auth_code: z.string().min(1).max(255), code_verifier: z.string().min(43).max(128) });
const Signup = z.object({ email: Email, password: z.string().min(1).max(1024), data: Metadata.optional(), ...PkceFields });
const VerifyBody = z.union([
  z.object({ type: z.enum(VERIFY_TYPES), token_hash: z.string().regex(/^(pkce_)?[0-9a-f]{56}$/) }),
  z.object({ type: z.enum(VERIFY_TYPES), email: Email, token: z.string().regex(/^\d{6,10}$/) }),
]);
const Recover = z.object({ email: Email, ...PkceFields });
const Otp = z.object({ email: Email, create_user: z.boolean().default(true), data: Metadata.optional(), ...PkceFields });
const UpdateUser = z.object({
  email: Email.optional(),
  password: z.string().min(1).max(1024).optional(),
  data: Metadata.optional(),
  nonce: z.string().optional(),
  ...PkceFields,
});
const AdminUser = z.object({
  email: Email.optional(),
  password: z.string().min(1).max(1024).optional(),
  email_confirm: z.boolean().optional(),
  user_metadata: Metadata.optional(),
  app_metadata: Metadata.optional(),
  ban_duration: z.string().regex(/^(none|\d+(\.\d+)?(ns|us|µs|ms|s|m|h))$/).optional(),
});
const Invite = z.object({ email: Email, data: Metadata.optional() });
const GenerateLink = z.object({
  type: z.enum(["signup", "invite", "magiclink", "recovery"]),
  email: Email,
  password: z.string().min(1).max(1024).optional(),
  data: Metadata.optional(),
  redirect_to: z.string().optional(),
  options: z.object({ data: Metadata.optional(), redirect_to: z.string().optional() }).optional(),
});

const HookDecision = z.object({
  decision: z.enum(["continue", "reject"]),
  message: z.string().optional(),
  should_logout_user: z.boolean().optional(),
});

const fail = (status: number, code: string, message: string) => new AuthError(status, code, message);
const INVALID_CREDENTIALS = () => fail(400, "invalid_credentials", "Invalid login credentials");

/** GoTrue's two error shapes: `{ code, message }` for clients that name an API version, else the old one. */
function errorReply(e: AuthError, req: http.IncomingMessage): Reply {
  const version = req.headers["x-supabase-api-version"];
  const extra = "reasons" in e ? { weak_password: { reasons: (e as { reasons: string[] }).reasons } } : {};
  if (typeof version === "string" && version >= "2024-01-01") {
    return { status: e.status, body: { code: e.code, message: e.message, ...extra }, headers: { "x-sb-error-code": e.code } };
  }
  return { status: e.status, body: { code: e.status, error_code: e.code, msg: e.message, ...extra } };
}

function parse<T extends z.ZodType>(schema: T, raw: unknown, message = "Invalid request body"): z.infer<T> {
  const r = schema.safeParse(raw);
  if (!r.success) {
    const emailIssue = r.error.issues.some((i) => i.path[0] === "email");
    throw fail(400, "validation_failed", emailIssue ? "Unable to validate email address: invalid format" : message);
  }
  return r.data;
}

export async function handleAuth(req: http.IncomingMessage, url: URL, deps: AuthDeps): Promise<Reply> {
  let reply: Reply;
  try {
    // the mailed link is opened by a browser without the API key, as on hosted (its gateway route is
    // open); so are the public signing keys, which verifiers fetch without any key
    if (req.method === "GET" && url.pathname === "/auth/v1/.well-known/jwks.json") {
      return { status: 200, body: await deps.jwks(), headers: { "cache-control": "public, max-age=600" } };
    }
    await ensureStandInTables(deps.sql);
    const openRoute = req.method === "GET" && url.pathname === "/auth/v1/verify";
    if (!openRoute && !(await apiKeyOk(req, deps))) throw fail(401, "no_authorization", "No API key found in request");
    reply = await route(req, url, deps);
  } catch (e) {
    if (e instanceof AuthError && e.status >= 500 && e.cause !== undefined) {
      log.error("auth request failed", { request_id: req.headers["x-request-id"], error: String(e.cause) });
    }
    if (e instanceof AuthError) reply = errorReply(e, req);
    else if (e instanceof TokenError) reply = errorReply(fail(500, "unexpected_failure", e.message), req);
    else throw e;
  }
  // GoTrue names the API version it answers in; auth-js reads error codes by it
  return { ...reply, headers: { "x-supabase-api-version": API_VERSION, ...reply.headers } };
}
const API_VERSION = "2024-01-01";
const log = createLogger("auth");

const defaultLimits = new AuthRateLimits();

/** Who asks for a mail: the admin API (the service role) draws on the budget kept for it. */
interface Caller {
  admin: boolean;
  address: string;
}

async function route(req: http.IncomingMessage, url: URL, deps: AuthDeps): Promise<Reply> {
  const route = url.pathname.replace(/^\/auth\/v1/, "");
  const settings = deps.config().auth;
  const method = req.method ?? "GET";
  const limits = deps.limits ?? defaultLimits;
  const address = clientAddress(req);
  const grantType = url.searchParams.get("grant_type");
  // GoTrue's RATE_LIMIT_OTP (config.toml's sign_in_sign_ups) covers every route that can send mail
  const mailRoute = method === "POST" && (route === "/signup" || route === "/otp" || route === "/recover");
  if (
    mailRoute || (method === "PUT" && route === "/user") ||
    (method === "POST" && route === "/token" && grantType !== "refresh_token")
  ) {
    limits.take("sign_in_sign_ups", address, settings);
  }
  if (method === "POST" && route === "/token" && grantType === "refresh_token") limits.take("token_refresh", address, settings);
  if (route === "/verify") limits.take("token_verifications", address, settings);
  const redirectTo = allowedRedirect(url.searchParams.get("redirect_to"), settings);

  if (route === "/token" && method === "POST") {
    const grant = url.searchParams.get("grant_type");
    const body = await readJsonBody(req);
    if (grant === "password") return passwordGrant(parse(PasswordGrant, body), deps, clientAddress(req), req);
    if (grant === "refresh_token") {
      const { refresh_token } = parse(RefreshGrant, body);
      const session = await asAuthAdmin(deps, (tx) => refreshSession(tx, refresh_token, settings.refreshTokenReuseInterval));
      if (session instanceof AuthError) {
        await auditAuth(deps.sql, "token_revoked", { id: "" }, address, { reason: session.code });
        throw session;
      }
      await auditAuth(deps.sql, "token_refreshed", { id: session.userId }, address);

      return { status: 200, body: await sessionBody(deps, session) };
    }
    if (grant === "pkce") return pkceGrant(parse(PkceGrant, body), deps);
    throw fail(400, "unsupported_grant_type", `grant_type ${grant} is not supported`);
  }
  if (route === "/logout" && method === "POST") {
    const me = await bearerUser(req, deps);
    const scope = z.enum(["local", "global", "others"]).catch("global").parse(url.searchParams.get("scope") ?? "global");
    await asAuthAdmin(deps, async (tx) => {
      await endSessions(tx, me.sub, me.sessionId, scope);
      await auditAuth(tx, "logout", { id: me.sub }, address, { scope });
    });
    return { status: 204 };
  }
  if (route === "/settings" && method === "GET") {
    return {
      status: 200,
      body: {
        external: { email: true, phone: false, anonymous_users: false },
        disable_signup: !settings.enableSignup,
        mailer_autoconfirm: !settings.enableConfirmations,
        phone_autoconfirm: false,
        sms_provider: "",
        saml_enabled: false,
      },
    };
  }
  if (route === "/signup" && method === "POST") {
    return signup(parse(Signup, await readJsonBody(req)), deps, redirectTo, await callerOf(req, deps));
  }
  if (route === "/verify" && method === "POST") {
    const body = parse(VerifyBody, await readJsonBody(req));
    const result = await verifyToken(
      deps,
      body.type,
      "token_hash" in body ? { hash: body.token_hash } : { email: body.email, otp: body.token },
      false,
    );
    // GoTrue's answer to the first of two e-mail change confirmations: no session yet
    if ("message" in result) return { status: 200, body: { msg: result.message, code: "200" } };
    if ("code" in result) throw fail(500, "unexpected_failure", "A PKCE code is only issued for a link");
    return { status: 200, body: await sessionBody(deps, result.session) };
  }
  if (route === "/verify" && method === "GET") return verifyLink(url, deps, redirectTo);
  if (route === "/recover" && method === "POST") {
    const body = parse(Recover, await readJsonBody(req));
    const caller = await callerOf(req, deps);
    const known = await userIdByEmail(deps.sql, body.email);
    if (!known) return { status: 200, body: {} }; // the same as for an account, unless it is asked for too often
    await asAuthAdmin(deps, (tx) => mailLink(tx, deps, known.id, body.email, "recovery", redirectTo, body, caller));
    await auditAuth(deps.sql, "user_recovery_requested", { id: known.id, email: body.email }, address);
    return { status: 200, body: {} };
  }
  if (route === "/otp" && method === "POST") {
    const body = parse(Otp, await readJsonBody(req));
    const caller = await callerOf(req, deps);
    const known = await userIdByEmail(deps.sql, body.email);
    if (!known) {
      if (!body.create_user || !settings.enableSignup) throw fail(422, "otp_disabled", "Signups not allowed for otp");
      await asAuthAdmin(deps, async (tx) => {
        const id = await insertUser(tx, { email: body.email, userMetadata: body.data, confirmed: !settings.enableConfirmations });
        if (settings.enableConfirmations) await mailSignup(tx, deps, id, body.email, redirectTo, body, "", caller);
        else await mailLink(tx, deps, id, body.email, "magiclink", redirectTo, body, caller);
      });
    } else if (!known.confirmed) {
      // as GoTrue: a pending address gets its sign-up confirmation again (with no password of its own), not a magic link
      await asAuthAdmin(deps, (tx) => mailSignup(tx, deps, known.id, body.email, redirectTo, body, "", caller));
    } else {
      await asAuthAdmin(deps, (tx) => mailLink(tx, deps, known.id, body.email, "magiclink", redirectTo, body, caller));
    }
    return { status: 200, body: {} };
  }
  if (route === "/user" && method === "GET") {
    const me = await bearerUser(req, deps);
    const user = await userJson(deps.sql, me.sub);
    if (!user) throw fail(403, "user_not_found", "User from sub claim in JWT does not exist");
    return { status: 200, body: user };
  }
  if (route === "/user" && method === "PUT") {
    return updateUser(await bearerUser(req, deps), parse(UpdateUser, await readJsonBody(req)), deps, redirectTo, {
      admin: false,
      address,
    });
  }

  // The admin API: the service role only.
  if (route === "/invite" && method === "POST") {
    await requireService(req, deps);
    const body = parse(Invite, await readJsonBody(req));
    const existing = await userIdByEmail(deps.sql, body.email);
    // as GoTrue: a pending address is invited again; only a confirmed one is taken
    if (existing?.confirmed) throw fail(422, "email_exists", "A user with this email address has already been registered");
    const id = await asAuthAdmin(deps, async (tx) => {
      const id = existing?.id ??
        await insertUser(tx, { email: body.email, userMetadata: body.data, confirmed: false, invited: true });
      const issued = await issueToken(tx, id, body.email, "invite", settings.otpLength);
      await sendMails(deps, { admin: true, address }, [{
        kind: "invite",
        to: body.email,
        link: verifyUrl(deps, issued.token, "invite", redirectTo),
        otp: issued.otp,
        data: await userMetadata(tx, id),
        redirectTo,
      }]);
      return id;
    });
    await auditAuth(deps.sql, "user_invited", { id, email: body.email }, address);
    return { status: 200, body: await userJson(deps.sql, id) };
  }
  if (route === "/admin/generate_link" && method === "POST") {
    await requireService(req, deps);
    return generateLink(parse(GenerateLink, await readJsonBody(req)), deps);
  }
  if (route === "/admin/users" && method === "GET") {
    await requireService(req, deps);
    const page = Math.max(1, Number(url.searchParams.get("page") ?? 1) || 1);
    const perPage = Math.min(1000, Math.max(1, Number(url.searchParams.get("per_page") ?? 50) || 50));
    const rows = await deps.sql<{ id: string }[]>`
      select id from auth.users where deleted_at is null order by created_at desc, id limit ${perPage} offset ${
      (page - 1) * perPage
    }`;
    const [{ total }] = await deps.sql<
      { total: number }[]
    >`select count(*)::int as total from auth.users where deleted_at is null`;
    const users = await Promise.all(rows.map((r) => userJson(deps.sql, r.id)));
    return { status: 200, body: { users, aud: "authenticated" }, headers: { "x-total-count": String(total) } };
  }
  if (route === "/admin/users" && method === "POST") {
    await requireService(req, deps);
    const body = parse(AdminUser, await readJsonBody(req));
    if (!body.email) throw fail(400, "validation_failed", "Unable to validate email address: invalid format");
    if (await userIdByEmail(deps.sql, body.email)) {
      throw fail(422, "email_exists", "A user with this email address has already been registered");
    }
    if (body.password) checkPasswordStrength(body.password, settings);
    const passwordHash = body.password ? await hashPassword(deps.sql, body.password) : undefined;
    const id = await asAuthAdmin(deps, async (tx) => {
      const id = await insertUser(tx, {
        email: body.email!,
        passwordHash,
        userMetadata: body.user_metadata,
        appMetadata: body.app_metadata,
        confirmed: body.email_confirm === true,
      });
      if (body.ban_duration) await ban(tx, id, body.ban_duration);
      return id;
    });
    return { status: 200, body: await userJson(deps.sql, id) };
  }
  const adminUser = /^\/admin\/users\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/.exec(route);
  if (adminUser) {
    await requireService(req, deps);
    const id = adminUser[1];
    if (!(await userJson(deps.sql, id))) throw fail(404, "user_not_found", "User not found");
    if (method === "GET") return { status: 200, body: await userJson(deps.sql, id) };
    if (method === "DELETE") {
      await asAuthAdmin(deps, async (tx) => {
        await tx`delete from auth.users where id = ${id}`;
        await auditAuth(tx, "user_deleted", { id }, address);
      }).catch((e) => {
        // GoTrue's answer when the database refuses (a trigger, such as an organization's last owner)
        throw new AuthError(500, "unexpected_failure", "Database error deleting user", { cause: e });
      });
      return { status: 200, body: {} };
    }
    if (method === "PUT") {
      const body = parse(AdminUser, await readJsonBody(req));
      if (body.password) checkPasswordStrength(body.password, settings);
      const taken = body.email ? await userIdByEmail(deps.sql, body.email) : null;
      if (taken && taken.id !== id) throw fail(422, "email_exists", "A user with this email address has already been registered");
      const passwordHash = body.password ? await hashPassword(deps.sql, body.password) : undefined;
      await asAuthAdmin(deps, async (tx) => {
        if (body.email) {
          await tx`update auth.users set email = ${body.email}, updated_at = now() where id = ${id}`;
          await tx`update auth.identities set identity_data = identity_data || jsonb_build_object('email', ${body.email}::text), updated_at = now()
                   where user_id = ${id} and provider = 'email'`;
        }
        // as GoTrue's admin update: every session ends and every outstanding token is spent
        if (passwordHash) await updatePassword(tx, id, passwordHash, null);
        if (body.email_confirm === true) await confirmEmail(tx, id);
        if (body.user_metadata) {
          await updateUserMetadata(tx, id, body.user_metadata);
        }
        if (body.app_metadata) {
          await tx`update auth.users set raw_app_meta_data = coalesce(raw_app_meta_data, '{}') || ${
            tx.json(body.app_metadata as postgres.JSONValue)
          }, updated_at = now() where id = ${id}`;
        }
        if (body.ban_duration) await ban(tx, id, body.ban_duration);
      });
      return { status: 200, body: await userJson(deps.sql, id) };
    }
  }
  throw fail(404, "not_found", `The local auth stand-in does not provide ${method} ${route}.`);
}

// ---------------------------------------------------------------------------------------------
const asAuthAdmin = <T>(deps: AuthDeps, fn: (tx: postgres.TransactionSql) => Promise<T>) =>
  deps.sql.begin(async (tx) => {
    await tx`set local role supabase_auth_admin`;
    return fn(tx);
  }) as Promise<T>;

/** The caller's address as the gateway (the only proxy in front of this stand-in) saw it. */
function clientAddress(req: http.IncomingMessage): string {
  const address = req.socket.remoteAddress ?? "";
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}

/** An access token answer: the session's new access token (through the hook) and refresh token. */
async function sessionBody(deps: AuthDeps, session: Session) {
  const config = deps.config();
  const { token, claims } = await mintAccessToken(deps.sql, deps.sign, config, {
    userId: session.userId,
    supabaseUrl: deps.supabaseUrl,
    session,
    authenticationMethod: session.amr[0]?.method,
  });
  const expiresAt = Number(claims.exp);
  return {
    access_token: token,
    token_type: "bearer",
    expires_in: expiresAt - Math.floor(Date.now() / 1000),
    expires_at: expiresAt,
    refresh_token: session.refreshToken,
    user: await userJson(deps.sql, session.userId),
  };
}

async function passwordGrant(
  creds: z.infer<typeof PasswordGrant>,
  deps: AuthDeps,
  ipAddress: string,
  req: http.IncomingMessage,
): Promise<Reply> {
  const config = deps.config();
  const session = await deps.sql.begin(async (tx) => {
    // GoTrue compares bcrypt hashes in Go; here pgcrypto's crypt() does it, before the role switch
    // (supabase_auth_admin need not use the extensions schema).
    // A pending address also takes the password of one of its sign-ups, so that it answers
    // email_not_confirmed (as GoTrue) rather than invalid_credentials.
    const [user] = await tx`
      select u.id,
             coalesce(u.encrypted_password <> '' and u.encrypted_password = extensions.crypt(${creds.password}, u.encrypted_password), false)
             or (u.email_confirmed_at is null and exists (
                   select 1 from auth.stand_in_signups s
                   where s.user_id = u.id and s.encrypted_password <> ''
                     and s.encrypted_password = extensions.crypt(${creds.password}, s.encrypted_password))) as valid,
             u.email_confirmed_at is not null as confirmed, coalesce(u.banned_until > now(), false) as banned
      from auth.users u where lower(u.email) = lower(${creds.email}) and u.deleted_at is null`;
    if (!user) throw INVALID_CREDENTIALS();
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
        throw fail(500, "hook_payload_invalid", "The password verification hook answered with an invalid payload.");
      }
      if (answer.data.decision === "reject") {
        if (answer.data.should_logout_user) await tx`delete from auth.sessions where user_id = ${user.id}`;
        // GoTrue commits the hook's bookkeeping and answers 400; so do we (the count must stay)
        return fail(
          400,
          "invalid_credentials",
          answer.data.message || "Further password verification attempts will be rejected.",
        );
      }
    }
    if (!user.valid) return INVALID_CREDENTIALS(); // returned, not thrown: the hook's count commits
    if (user.banned) return fail(400, "user_banned", "User is banned");
    if (!user.confirmed) return fail(400, "email_not_confirmed", "Email not confirmed");
    await tx`update auth.users set last_sign_in_at = now() where id = ${user.id}`;
    await tx`update auth.identities set last_sign_in_at = now() where user_id = ${user.id} and provider = 'email'`;
    await auditAuth(tx, "login", { id: user.id, email: creds.email }, ipAddress, { provider: "email" });
    return openSession(tx, user.id, "password", { userAgent: String(req.headers["user-agent"] ?? ""), ip: ipAddress });
  });
  if (session instanceof AuthError) throw session;
  return { status: 200, body: await sessionBody(deps, session) };
}

async function pkceGrant(body: z.infer<typeof PkceGrant>, deps: AuthDeps): Promise<Reply> {
  const session = await asAuthAdmin(deps, async (tx) => {
    const [flow] = await tx<
      {
        id: string;
        user_id: string | null;
        code_challenge: string;
        method: string;
        authentication_method: string;
        fresh: boolean;
      }[]
    >`
      select id, user_id, code_challenge, code_challenge_method::text as method, authentication_method,
             coalesce(auth_code_issued_at, created_at) > now() - interval '5 minutes' as fresh
      from auth.flow_state where auth_code = ${body.auth_code} for update`;
    if (!flow) throw fail(404, "flow_state_not_found", "invalid flow state, no valid flow state found");
    await tx`delete from auth.flow_state where id = ${flow.id}`;
    if (!flow.fresh) throw fail(400, "flow_state_expired", "invalid flow state, flow state has expired");
    const expected = flow.method === "s256"
      ? crypto.createHash("sha256").update(body.code_verifier).digest("base64url")
      : body.code_verifier;
    if (expected !== flow.code_challenge || !flow.user_id) {
      throw fail(400, "bad_code_verifier", "code challenge does not match previously saved code verifier");
    }
    return openSession(tx, flow.user_id, flow.authentication_method);
  });
  return { status: 200, body: await sessionBody(deps, session) };
}

async function signup(body: z.infer<typeof Signup>, deps: AuthDeps, redirectTo: string, caller: Caller): Promise<Reply> {
  const settings = deps.config().auth;
  if (!settings.enableSignup) throw fail(422, "signup_disabled", "Signups not allowed for this instance");
  checkPasswordStrength(body.password, settings);
  const existing = await userIdByEmail(deps.sql, body.email);
  if (existing?.confirmed || (existing && !settings.enableConfirmations)) {
    if (!settings.enableConfirmations) throw fail(422, "user_already_exists", "User already registered");
    // With confirmations on, GoTrue answers as for a new address (a fake user, no mail): nobody
    // learns from a sign-up which addresses have accounts.
    return { status: 200, body: obfuscatedUser(body.email, body.data) };
  }
  const passwordHash = await hashPassword(deps.sql, body.password);
  if (!settings.enableConfirmations) {
    const id = await asAuthAdmin(
      deps,
      (tx) => insertUser(tx, { email: body.email, passwordHash, userMetadata: body.data, confirmed: true }),
    );
    await auditAuth(deps.sql, "user_signedup", { id, email: body.email }, "", { provider: "email" });
    const session = await asAuthAdmin(deps, (tx) => openSession(tx, id, "password"));
    return { status: 200, body: await sessionBody(deps, session) };
  }
  // The password waits with this sign-up's own mail: whoever clicks it gets this password, and a
  // sign-up of the same address by someone else (before or after) never holds the account.
  const id = await asAuthAdmin(deps, async (tx) => {
    const id = existing?.id ?? await insertUser(tx, { email: body.email, userMetadata: body.data, confirmed: false });
    await mailSignup(tx, deps, id, body.email, redirectTo, body, passwordHash, caller);
    return id;
  });
  await auditAuth(deps.sql, existing ? "user_repeated_signup" : "user_signedup", { id, email: body.email }, "", {
    provider: "email",
  });
  const user = (await userJson(deps.sql, id))!;
  // as GoTrue: whoever signs up an invited address learns nothing the invitation carried
  return { status: 200, body: user.invited_at ? { ...user, user_metadata: {}, identities: [] } : user };
}

function obfuscatedUser(email: string, data?: Record<string, unknown>) {
  const now = new Date().toISOString();
  return {
    id: crypto.randomUUID(),
    aud: "authenticated",
    role: "authenticated",
    email,
    phone: "",
    confirmation_sent_at: now,
    app_metadata: { provider: "email", providers: ["email"] },
    user_metadata: data ?? {},
    identities: [],
    created_at: now,
    updated_at: now,
    is_anonymous: false,
  };
}

/** The verification type's authentication method, as GoTrue names it in `amr`. */
function authMethodOf(type: VerifyType): string {
  return type === "signup"
    ? "otp"
    : type === "magiclink" || type === "email"
    ? "otp"
    : type === "recovery"
    ? "recovery"
    : type === "invite"
    ? "invite"
    : "email_change";
}

/** The flow_state.authentication_method GoTrue gives a PKCE flow started for each kind of link. */
const FLOW_METHOD = {
  signup: "email/signup",
  invite: "invite",
  magiclink: "magiclink",
  recovery: "recovery",
  email_change: "email_change",
} as const;

const SINGLE_CONFIRMATION = "Confirmation link accepted. Please proceed to confirm link sent to the other email";

type Verified = { session: Session } | { code: string } | { message: string };

/**
 * Verifies a mailed link, a token hash or an e-mail code, and signs the person in, in one
 * transaction: a token found is spent, the first proof of the address decides its password and
 * ends its sessions, an e-mail change waits for both addresses, and a link made for a PKCE flow
 * (its token carries GoTrue's `pkce_` prefix) answers with that kind of flow's code. A wrong code
 * counts against the user it was meant for.
 */
async function verifyToken(
  deps: AuthDeps,
  type: VerifyType,
  presented: { link: string } | { hash: string } | { email: string; otp: string },
  link: boolean,
): Promise<Verified> {
  const settings = deps.config().auth;
  const limits = deps.limits ?? defaultLimits;
  try {
    const verified = await asAuthAdmin(deps, async (tx): Promise<Verified & { userId: string }> => {
      const found = await consumeToken(tx, type, presented, settings.otpExpiry);
      const [user] = await tx<{ email: string | null; banned: boolean; other_change_token: string }[]>`
        select email, coalesce(banned_until > now(), false) as banned,
               case ${found.source} when 'email_change_token_new' then coalesce(email_change_token_current, '')
                                    when 'email_change_token_current' then coalesce(email_change_token_new, '')
                                    else '' end as other_change_token
        from auth.users where id = ${found.userId}`;
      if (user.banned) throw fail(403, "user_banned", "User is banned");
      if (found.source === "email_change_token_new" || found.source === "email_change_token_current") {
        if (user.other_change_token !== "") {
          // the first of two addresses: the change waits for the other one (GoTrue's secure e-mail change)
          await tx`update auth.users set email_change_confirm_status = 1, updated_at = now() where id = ${found.userId}`;
          return { message: SINGLE_CONFIRMATION, userId: found.userId };
        }
        await completeEmailChange(tx, found.userId);
      } else {
        await confirmFirst(tx, found.userId, found.signupPassword ?? "");
      }
      await tx`update auth.users set last_sign_in_at = now() where id = ${found.userId}`;
      if (link && found.pkce) {
        const flowType = type === "email" ? "magiclink" : type;
        const [flow] = await tx<{ auth_code: string }[]>`
          update auth.flow_state set auth_code_issued_at = now(), updated_at = now()
          where id = (select id from auth.flow_state where user_id = ${found.userId} and authentication_method = ${
          FLOW_METHOD[flowType]
        }
                      order by created_at desc limit 1)
          returning auth_code`;
        if (!flow) throw fail(400, "flow_state_not_found", "No associated flow state found.");
        return { code: flow.auth_code, userId: found.userId };
      }
      return { session: await openSession(tx, found.userId, authMethodOf(type)), userId: found.userId };
    });
    limits.codeGuessesReset(verified.userId);
    return verified;
  } catch (e) {
    if (e instanceof AuthError && "unknown" in e && "email" in presented) await countWrongCode(deps, presented.email);
    throw e;
  }
}

/** Counts a wrong code against the user it was meant for; one too many spends every code they hold. */
async function countWrongCode(deps: AuthDeps, email: string) {
  const settings = deps.config().auth;
  const limits = deps.limits ?? defaultLimits;
  const users = await deps.sql<{ id: string }[]>`
    select id from auth.users
    where (lower(email) = lower(${email}) or lower(email_change) = lower(${email})) and deleted_at is null`;
  for (const u of users) {
    if (limits.codeGuessFailed(u.id, settings.otpExpiry)) {
      await asAuthAdmin(deps, (tx) => clearTokens(tx, u.id, { sentAt: false }));
    }
  }
}

/** The address the change names becomes the account's, as GoTrue's ConfirmEmailChange does. */
async function completeEmailChange(tx: postgres.TransactionSql, userId: string) {
  await tx`update auth.users set email = email_change, email_change = '', email_change_confirm_status = 0,
                                 email_change_token_new = '', email_change_token_current = '', updated_at = now()
           where id = ${userId} and coalesce(email_change, '') <> ''`;
  await tx`delete from auth.one_time_tokens where user_id = ${userId}
           and token_type in ('email_change_token_new', 'email_change_token_current')`;
  await tx`update auth.identities i set identity_data = i.identity_data || jsonb_build_object('email', u.email), updated_at = now()
           from auth.users u where u.id = ${userId} and i.user_id = u.id and i.provider = 'email'`;
}

/** The mailed link: verify, then back to the app with the session in the fragment (or ?code= for PKCE). */
async function verifyLink(url: URL, deps: AuthDeps, redirectTo: string): Promise<Reply> {
  const type = z.enum(VERIFY_TYPES).safeParse(url.searchParams.get("type"));
  const token = url.searchParams.get("token") ?? "";
  const pkce = token.startsWith(PKCE_PREFIX);
  const back = (fragment: Record<string, string>, query?: Record<string, string>) => {
    const target = new URL(redirectTo);
    if (query) { for (const [k, v] of Object.entries(query)) target.searchParams.set(k, v); }
    if (Object.keys(fragment).length) target.hash = new URLSearchParams(fragment).toString();
    return { status: 303, headers: { location: target.toString() } };
  };
  try {
    if (!type.success || !/^(pkce_)?[0-9a-f]{56}$/.test(token)) {
      throw fail(403, "otp_expired", "Email link is invalid or has expired");
    }
    const result = await verifyToken(deps, type.data, { link: token }, true);
    if ("message" in result) return back({ message: result.message, sb: "" }, pkce ? { message: result.message } : undefined);
    if ("code" in result) return back({}, { code: result.code });
    const body = await sessionBody(deps, result.session);
    return back({
      access_token: body.access_token,
      expires_at: String(body.expires_at),
      expires_in: String(body.expires_in),
      refresh_token: body.refresh_token,
      token_type: "bearer",
      type: type.data,
    });
  } catch (e) {
    if (!(e instanceof AuthError)) throw e;
    const error = { error: "access_denied", error_code: e.code, error_description: e.message };
    return back(error, pkce ? error : undefined);
  }
}

// --- mail -------------------------------------------------------------------------------------

interface Mail {
  kind: MailKind;
  to: string;
  link: string;
  otp: string;
  change?: { email: string; newEmail: string };
  /** What a configured template reads as .Data (the user's metadata) and .RedirectTo. */
  data?: Record<string, unknown>;
  redirectTo?: string;
}

const verifyUrl = (deps: AuthDeps, token: string, type: MailKind, redirectTo: string) =>
  `${deps.supabaseUrl}/auth/v1/verify?token=${token}&type=${type}&redirect_to=${encodeURIComponent(redirectTo)}`;

/**
 * Sends what one request asks for (an e-mail change's two mails count once, as GoTrue's one send
 * does), after the hour's budget for its caller allows it. Inside the transaction that made the
 * tokens: a mail refused or failed leaves no token behind.
 */
async function sendMails(deps: AuthDeps, caller: Caller, mails: Mail[]) {
  if (!deps.mailer) throw fail(500, "unexpected_failure", "No mailer is configured");
  (deps.limits ?? defaultLimits).takeMail(deps.config().auth, caller);
  const { emailTemplates, siteUrl } = deps.config().auth;
  for (const m of mails) {
    await deps.mailer.send(m.kind, m.to, m.link, m.otp, m.change, {
      template: emailTemplates[TEMPLATE_NAMES[m.kind]],
      data: { Data: m.data ?? {}, SiteURL: siteUrl, RedirectTo: m.redirectTo },
    });
  }
}

/** GoTrue's max_frequency: one mail of a kind to a person per interval, else 429 over_email_send_rate_limit. */
async function checkFrequency(
  tx: postgres.TransactionSql,
  userId: string,
  sentAt: "confirmation_sent_at" | "recovery_sent_at" | "email_change_sent_at",
  seconds: number,
) {
  const [u] = await tx<{ wait: number | null }[]>`
    select extract(epoch from ${tx(sentAt)} + make_interval(secs => ${seconds}) - now())::float8 as wait
    from auth.users where id = ${userId} for update`;
  if (u?.wait != null && u.wait > 0) {
    throw fail(
      429,
      "over_email_send_rate_limit",
      `For security purposes, you can only request this after ${Math.ceil(u.wait)} seconds.`,
    );
  }
}

type PkceRequest = { code_challenge?: string; code_challenge_method?: string };

/** A PKCE flow for one kind of link; flows nobody came back for go once their links cannot work any more. */
async function startFlow(tx: postgres.TransactionSql, deps: AuthDeps, userId: string, method: string, pkce: PkceRequest) {
  await tx`delete from auth.flow_state where user_id = ${userId} and auth_code_issued_at is null
           and created_at < now() - make_interval(secs => ${deps.config().auth.otpExpiry})`;
  await tx`insert into auth.flow_state (id, user_id, auth_code, code_challenge_method, code_challenge, provider_type,
                                        created_at, updated_at, authentication_method)
           values (${crypto.randomUUID()}, ${userId}, ${crypto.randomUUID()}, ${
    (pkce.code_challenge_method ?? "s256").toLowerCase()
  }::auth.code_challenge_method, ${pkce.code_challenge!}, 'email', now(), now(), ${method})`;
}

/** A recovery or magic link (GoTrue keeps both in recovery_token, so they share one frequency). */
async function mailLink(
  tx: postgres.TransactionSql,
  deps: AuthDeps,
  userId: string,
  email: string,
  kind: "recovery" | "magiclink",
  redirectTo: string,
  pkce: PkceRequest,
  caller: Caller,
) {
  const settings = deps.config().auth;
  await checkFrequency(tx, userId, "recovery_sent_at", settings.maxFrequency);
  if (pkce.code_challenge) await startFlow(tx, deps, userId, FLOW_METHOD[kind], pkce);
  const issued = await issueToken(tx, userId, email, kind, settings.otpLength, Boolean(pkce.code_challenge));
  await sendMails(deps, caller, [{
    kind,
    to: email,
    link: verifyUrl(deps, issued.token, kind, redirectTo),
    otp: issued.otp,
    data: await userMetadata(tx, userId),
    redirectTo,
  }]);
}

/** GoTrue's user metadata update: the keys given replace the user's, and a null removes its key. */
async function updateUserMetadata(tx: postgres.TransactionSql, userId: string, updates: Record<string, unknown>) {
  const removed = Object.keys(updates).filter((key) => updates[key] === null);
  await tx`update auth.users set raw_user_meta_data = (coalesce(raw_user_meta_data, '{}') || ${
    tx.json(updates as postgres.JSONValue)
  }) - ${removed}::text[], updated_at = now() where id = ${userId}`;
}

/** The user's metadata, as templates read it (.Data). */
async function userMetadata(tx: postgres.TransactionSql, userId: string): Promise<Record<string, unknown>> {
  const [u] = await tx<
    { meta: Record<string, unknown> | null }[]
  >`select raw_user_meta_data as meta from auth.users where id = ${userId}`;
  return u?.meta ?? {};
}

/** A sign-up's confirmation, carrying the password it was made with ('' for none). */
async function mailSignup(
  tx: postgres.TransactionSql,
  deps: AuthDeps,
  userId: string,
  email: string,
  redirectTo: string,
  pkce: PkceRequest,
  passwordHash: string,
  caller: Caller,
) {
  const settings = deps.config().auth;
  await checkFrequency(tx, userId, "confirmation_sent_at", settings.maxFrequency);
  if (pkce.code_challenge) await startFlow(tx, deps, userId, FLOW_METHOD.signup, pkce);
  const issued = await issueSignup(tx, userId, email, settings.otpLength, passwordHash, Boolean(pkce.code_challenge));
  await sendMails(deps, caller, [{
    kind: "signup",
    to: email,
    link: verifyUrl(deps, issued.token, "signup", redirectTo),
    otp: issued.otp,
  }]);
}

async function updateUser(
  me: { sub: string; sessionId: string | null },
  body: z.infer<typeof UpdateUser>,
  deps: AuthDeps,
  redirectTo: string,
  caller: Caller,
): Promise<Reply> {
  const settings = deps.config().auth;
  if (body.password !== undefined) {
    checkPasswordStrength(body.password, settings);
    if (await passwordMatches(deps.sql, me.sub, body.password)) {
      throw fail(422, "same_password", "New password should be different from the old password.");
    }
  }
  const [current] = await deps.sql<{ email: string | null }[]>`select email from auth.users where id = ${me.sub}`;
  const newEmail = body.email && body.email !== current?.email?.toLowerCase() ? body.email : undefined;
  if (newEmail && (await userIdByEmail(deps.sql, newEmail))) {
    throw fail(422, "email_exists", "A user with this email address has already been registered");
  }
  const passwordHash = body.password !== undefined ? await hashPassword(deps.sql, body.password) : undefined;
  await asAuthAdmin(deps, async (tx) => {
    if (passwordHash) {
      await updatePassword(tx, me.sub, passwordHash, me.sessionId);
      await auditAuth(tx, "user_updated_password", { id: me.sub }, caller.address);
    }
    if (body.data) {
      await updateUserMetadata(tx, me.sub, body.data);
    }
    if (newEmail) {
      await checkFrequency(tx, me.sub, "email_change_sent_at", settings.maxFrequency);
      const pkce = Boolean(body.code_challenge);
      if (pkce) await startFlow(tx, deps, me.sub, FLOW_METHOD.email_change, body);
      const issued = await issueEmailChange(tx, me.sub, current?.email ?? "", newEmail, settings.otpLength, {
        double: settings.doubleConfirmChanges,
        pkce,
      });
      const change = { email: current?.email ?? "", newEmail };
      const mails: Mail[] = [{
        kind: "email_change",
        to: newEmail,
        link: verifyUrl(deps, issued.next.token, "email_change", redirectTo),
        otp: issued.next.otp,
        change,
      }];
      if (issued.current) {
        mails.push({
          kind: "email_change",
          to: current!.email!,
          link: verifyUrl(deps, issued.current.token, "email_change", redirectTo),
          otp: issued.current.otp,
          change,
        });
      }
      await sendMails(deps, caller, mails);
    }
  });
  return { status: 200, body: await userJson(deps.sql, me.sub) };
}

async function generateLink(body: z.infer<typeof GenerateLink>, deps: AuthDeps): Promise<Reply> {
  const settings = deps.config().auth;
  const redirectTo = allowedRedirect(body.redirect_to ?? body.options?.redirect_to ?? null, settings);
  const data = body.data ?? body.options?.data;
  const user = await userIdByEmail(deps.sql, body.email);
  // as GoTrue: a sign-up or an invitation for an address that is still pending makes a new link for it
  if ((body.type === "signup" || body.type === "invite") && user?.confirmed) {
    throw fail(422, "email_exists", "A user with this email address has already been registered");
  }
  if ((body.type === "magiclink" || body.type === "recovery") && !user) {
    throw fail(404, "user_not_found", "User with this email not found");
  }
  if (body.type === "signup") {
    if (!body.password) throw fail(422, "validation_failed", "Signup requires a valid password");
    checkPasswordStrength(body.password, settings);
  }
  const passwordHash = body.password ? await hashPassword(deps.sql, body.password) : "";
  const { id, issued } = await asAuthAdmin(deps, async (tx) => {
    const id = user?.id ??
      await insertUser(tx, { email: body.email, userMetadata: data, confirmed: false, invited: body.type === "invite" });
    const issued = body.type === "signup"
      ? await issueSignup(tx, id, body.email, settings.otpLength, passwordHash)
      : await issueToken(tx, id, body.email, body.type, settings.otpLength);
    return { id, issued };
  });
  return {
    status: 200,
    body: {
      ...(await userJson(deps.sql, id)),
      action_link: verifyUrl(deps, issued.token, body.type, redirectTo),
      email_otp: issued.otp,
      hashed_token: issued.token,
      redirect_to: redirectTo,
      verification_type: body.type,
    },
  };
}

/** GoTrue's ban_duration: "none" lifts a ban, a Go duration ("24h", "90m") sets one from now. */
async function ban(tx: postgres.TransactionSql, userId: string, duration: string) {
  if (duration === "none") {
    await tx`update auth.users set banned_until = null, updated_at = now() where id = ${userId}`;
    return;
  }
  const m = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)$/.exec(duration)!;
  const seconds = Number(m[1]) * { ns: 1e-9, us: 1e-6, "µs": 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 }[m[2] as "s"];
  // as GoTrue, the sessions stay: their refreshes and /user answer user_banned until the ban ends
  await tx`update auth.users set banned_until = now() + make_interval(secs => ${seconds}), updated_at = now() where id = ${userId}`;
}

/** GoTrue's redirect check: the site URL (or a path under it), or an entry of the allow list (globs). */
export function allowedRedirect(requested: string | null, settings: AuthSettings): string {
  if (!requested) return settings.siteUrl;
  let target: URL;
  try {
    target = new URL(requested);
  } catch {
    return settings.siteUrl;
  }
  const site = new URL(settings.siteUrl);
  if (target.origin === site.origin) return target.toString();
  for (const pattern of settings.additionalRedirectUrls) {
    const re = new RegExp(
      `^${
        pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*\*/g, "\u0000").replace(/\*/g, "[^/]*").replace(/\u0000/g, ".*")
      }$`,
    );
    if (re.test(requested)) return requested;
  }
  return settings.siteUrl; // not an allowed place: back to the site, as GoTrue does
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The signed-in caller, checked as GoTrue checks it: no token is 401 no_authorization, a token it
 * cannot verify 403 bad_jwt; then the user (403 user_not_found), the session (403
 * session_not_found) and a ban (403 user_banned).
 */
async function bearerUser(req: http.IncomingMessage, deps: AuthDeps): Promise<{ sub: string; sessionId: string | null }> {
  const check = await verifyBearer(req.headers.authorization, deps.tokenKeys);
  if (!check.ok) {
    if (check.code === "missing_authorization") {
      throw fail(401, "no_authorization", "This endpoint requires a valid Bearer token");
    }
    throw fail(403, "bad_jwt", `invalid JWT: unable to parse or verify signature, ${check.message}`);
  }
  const sub = check.claims.sub;
  if (typeof sub !== "string" || sub === "") throw fail(403, "bad_jwt", "invalid claim: missing sub claim");
  if (!UUID.test(sub)) throw fail(400, "bad_jwt", "invalid claim: sub claim must be a UUID");
  const [user] = await deps.sql<{ banned: boolean }[]>`
    select coalesce(banned_until > now(), false) as banned from auth.users where id = ${sub}::uuid and deleted_at is null`;
  if (!user) throw fail(403, "user_not_found", "User from sub claim in JWT does not exist");
  const sessionId = typeof check.claims.session_id === "string" ? check.claims.session_id : null;
  if (sessionId && (!UUID.test(sessionId) || !(await sessionExists(deps.sql, sessionId)))) {
    throw fail(403, "session_not_found", "Session from session_id claim in JWT does not exist");
  }
  if (user.banned) throw fail(403, "user_banned", "User is banned");
  return { sub, sessionId };
}

/** Whether the admin API asks (the service role's token, or the secret key turned into one by the gateway). */
async function callerOf(req: http.IncomingMessage, deps: AuthDeps): Promise<Caller> {
  const check = await verifyBearer(req.headers.authorization, deps.tokenKeys);
  const admin = check.ok && (check.claims.role === "service_role" || check.claims.role === "supabase_admin");
  return { admin, address: clientAddress(req) };
}

async function requireService(req: http.IncomingMessage, deps: AuthDeps) {
  const check = await verifyBearer(req.headers.authorization, deps.tokenKeys);
  if (!check.ok) throw fail(401, "bad_jwt", "invalid JWT: unable to parse or verify signature");
  if (check.claims.role !== "service_role" && check.claims.role !== "supabase_admin") {
    throw fail(403, "not_admin", "User not allowed");
  }
}

/** Like the hosted API gateway: every call carries one of the project's API keys. */
async function apiKeyOk(req: http.IncomingMessage, deps: AuthDeps) {
  const key = req.headers.apikey;
  if (typeof key !== "string") return false;
  if (deps.newKeys?.().includes(key)) return true;
  const check = await verifyBearer(`Bearer ${key}`, deps.tokenKeys);
  return check.ok && (check.claims.role === "anon" || check.claims.role === "service_role");
}
