// Makes a user's access token the way GoTrue does: standard claims from auth.users, passed
// through the project's custom access token hook (if config.toml enables one) as
// supabase_auth_admin, then signed with the project's signing key (signing-keys.ts).
import type postgres from "postgres";
import type { PgFunctionHook, ProjectConfig } from "../project-config.ts";
import { openSession, type Session } from "./sessions.ts";
import type { TokenSigner } from "./signing-keys.ts";

export interface MintOptions {
  userId?: string;
  email?: string;
  expiresIn?: number;
  authenticationMethod?: string;
  supabaseUrl?: string;
  /** The session the token belongs to; without one a new session is opened (as a sign-in does). */
  session?: Session;
}

export class TokenError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

export async function mintAccessToken(
  sql: postgres.Sql,
  sign: TokenSigner,
  config: Pick<ProjectConfig, "accessTokenHook" | "jwtExpiry">,
  opts: MintOptions,
): Promise<{ token: string; claims: Record<string, unknown>; session: Session }> {
  if (!opts.userId && !opts.email) throw new TokenError("invalid_request", "give a user id or an email");
  let session = opts.session;
  const claims = await sql.begin(async (tx) => {
    await tx`set local role supabase_auth_admin`;
    const [user] = opts.userId
      ? await tx`select * from auth.users where id = ${opts.userId}::uuid and deleted_at is null`
      : await tx`select * from auth.users where lower(email) = lower(${opts.email!}) and deleted_at is null`;
    if (!user) {
      throw new TokenError("user_not_found", `no user with ${opts.userId ? `id ${opts.userId}` : `email ${opts.email}`}`);
    }
    if (user.banned_until && new Date(user.banned_until) > new Date()) throw new TokenError("user_banned", "user is banned");
    const now = Math.floor(Date.now() / 1000);
    const method = opts.authenticationMethod ?? "password";
    session ??= await openSession(tx, user.id, method);
    const standard: Record<string, unknown> = {
      iss: `${opts.supabaseUrl ?? "http://127.0.0.1:54321"}/auth/v1`,
      aud: "authenticated",
      sub: user.id,
      exp: now + (opts.expiresIn ?? config.jwtExpiry),
      iat: now,
      email: user.email ?? "",
      phone: user.phone ?? "",
      app_metadata: user.raw_app_meta_data ?? {},
      user_metadata: user.raw_user_meta_data ?? {},
      role: "authenticated",
      aal: "aal1",
      amr: session.amr,
      session_id: session.sessionId,
      is_anonymous: user.is_anonymous ?? false,
    };
    if (!config.accessTokenHook) return standard;
    const event = { user_id: user.id, claims: standard, authentication_method: method };
    const result = (await callPgHook(tx, config.accessTokenHook, event)) as {
      claims?: Record<string, unknown>;
      error?: { message?: string; http_code?: number };
    };
    if (result?.error) throw new TokenError("hook_error", result.error.message ?? "access token hook returned an error");
    if (!result?.claims || typeof result.claims !== "object") {
      throw new TokenError("hook_error", "access token hook returned no claims");
    }
    // GoTrue checks the hook's claims against its schema; so do we (a hook that drops or retypes
    // a required claim fails here as it fails hosted).
    const problem = hookClaimsProblem(result.claims);
    if (problem) throw new TokenError("hook_error", `output claims do not conform to the expected schema: ${problem}`);
    return result.claims;
  });
  const token = await sign(claims);
  return { token, claims, session: session! };
}

const REQUIRED_CLAIMS: Record<string, (v: unknown) => boolean> = {
  aud: (v) => typeof v === "string" || (Array.isArray(v) && v.every((x) => typeof x === "string")),
  exp: (v) => typeof v === "number",
  iat: (v) => typeof v === "number",
  sub: (v) => typeof v === "string",
  role: (v) => typeof v === "string",
  aal: (v) => typeof v === "string",
  session_id: (v) => typeof v === "string",
  email: (v) => typeof v === "string",
  phone: (v) => typeof v === "string",
  is_anonymous: (v) => typeof v === "boolean",
};

/** What is wrong with a hook's claims, as GoTrue's schema check would say, or null. */
export function hookClaimsProblem(claims: Record<string, unknown>): string | null {
  for (const [name, ok] of Object.entries(REQUIRED_CLAIMS)) {
    if (!(name in claims)) return `missing required claim ${name}`;
    if (!ok(claims[name])) return `claim ${name} has the wrong type`;
  }
  return null;
}

/** Calls a `pg-functions://` auth hook as GoTrue does: one jsonb event in, one jsonb answer out. */
export async function callPgHook(tx: postgres.TransactionSql, hook: PgFunctionHook, event: Record<string, unknown>) {
  const [row] = await tx.unsafe(
    `select ${quoteIdent(hook.schema)}.${quoteIdent(hook.name)}($1::jsonb) as result`,
    // The object itself: postgres.js encodes parameters by the server's type, so a string
    // here would arrive as a jsonb string, not the event.
    [tx.json(event as postgres.JSONValue)] as never,
  );
  return row.result as unknown;
}

function quoteIdent(s: string) {
  return `"${s.replaceAll('"', '""')}"`;
}
