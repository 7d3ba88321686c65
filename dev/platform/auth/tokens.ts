// Makes a user's access token the way GoTrue does: standard claims from auth.users, passed
// through the project's custom access token hook (if config.toml enables one) as
// supabase_auth_admin, then signed HS256 with the project's JWT secret.
import crypto from "node:crypto";
import { SignJWT } from "jose";
import type postgres from "postgres";
import type { PgFunctionHook, ProjectConfig } from "../project-config.ts";

export interface MintOptions {
  userId?: string;
  email?: string;
  expiresIn?: number;
  authenticationMethod?: string;
  supabaseUrl?: string;
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
  jwtSecret: string,
  config: Pick<ProjectConfig, "accessTokenHook" | "jwtExpiry">,
  opts: MintOptions,
): Promise<{ token: string; claims: Record<string, unknown> }> {
  if (!opts.userId && !opts.email) throw new TokenError("invalid_request", "give a user id or an email");
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
      amr: [{ method, timestamp: now }],
      session_id: crypto.randomUUID(),
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
    // GoTrue rejects hooks that drop the required claims; so do we.
    for (const k of ["aud", "exp", "iat", "sub", "role", "aal", "session_id"]) {
      if (!(k in result.claims)) throw new TokenError("hook_error", `access token hook removed required claim ${k}`);
    }
    return result.claims;
  });
  const token = await new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).sign(
    new TextEncoder().encode(jwtSecret),
  );
  return { token, claims };
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
