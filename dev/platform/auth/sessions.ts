// Sessions and refresh tokens as GoTrue keeps them (auth.sessions, auth.refresh_tokens,
// auth.mfa_amr_claims): every sign-in opens a session whose id is the access token's
// `session_id`; a refresh token is single-use and rotates, each new one naming its parent; the
// parent of the active token returns the active one (a client that lost the reply to its refresh
// is not signed out); reusing an older token within the reuse interval is tolerated, after it the
// whole session is revoked (refresh_token_already_used). The session row is locked while a
// refresh decides, so two tabs refreshing at once end with one session and one active token.
import crypto from "node:crypto";
import type postgres from "postgres";

/** A refusal in GoTrue's terms: HTTP status, error code, message. */
export class AuthError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.status = status;
    this.code = code;
  }
}

/** GoTrue's refresh tokens: 12 random URL-safe characters (crypto.SecureToken). */
const newRefreshToken = () => crypto.randomBytes(9).toString("base64url");

export interface Session {
  sessionId: string;
  refreshToken: string;
  userId: string;
  /** The authentication methods and when, for the token's `amr`. */
  amr: { method: string; timestamp: number }[];
}

/** Opens a session for a user who just authenticated with `method`, in the caller's transaction. */
export async function openSession(
  tx: postgres.TransactionSql,
  userId: string,
  method: string,
  origin: { userAgent?: string; ip?: string } = {},
): Promise<Session> {
  const sessionId = crypto.randomUUID();
  const token = newRefreshToken();
  const ip = origin.ip && /^[0-9a-f.:]+$/i.test(origin.ip) ? origin.ip : null;
  await tx`insert into auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip)
           values (${sessionId}, ${userId}, now(), now(), 'aal1', ${origin.userAgent?.slice(0, 512) ?? null}, ${ip}::inet)`;
  await tx`insert into auth.mfa_amr_claims (id, session_id, created_at, updated_at, authentication_method)
           values (${crypto.randomUUID()}, ${sessionId}, now(), now(), ${method})`;
  await tx`insert into auth.refresh_tokens (token, user_id, revoked, created_at, updated_at, parent, session_id)
           values (${token}, ${userId}, false, now(), now(), null, ${sessionId})`;
  return { sessionId, refreshToken: token, userId, amr: [{ method, timestamp: Math.floor(Date.now() / 1000) }] };
}

async function amrOf(tx: postgres.TransactionSql, sessionId: string) {
  const rows = await tx<{ method: string; at: number }[]>`
    select authentication_method as method, extract(epoch from created_at)::bigint as at
    from auth.mfa_amr_claims where session_id = ${sessionId} order by created_at desc`;
  return rows.map((r) => ({ method: r.method, timestamp: Number(r.at) }));
}

/**
 * The refresh_token grant. Returns the session to issue an access token for, with the refresh
 * token the client should keep. Runs in the caller's transaction (as supabase_auth_admin).
 */
export async function refreshSession(
  tx: postgres.TransactionSql,
  presented: string,
  reuseIntervalSeconds: number,
): Promise<Session | AuthError> {
  const [found] = await tx<{ id: string; session_id: string | null; user_id: string }[]>`
    select id, session_id, user_id from auth.refresh_tokens where token = ${presented}`;
  if (!found) throw new AuthError(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found");
  if (!found.session_id) throw new AuthError(400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found");
  // the session row is the lock every refresh of this session queues on
  const [session] = await tx<{ id: string; user_id: string; not_after: Date | null }[]>`
    select id, user_id, not_after from auth.sessions where id = ${found.session_id} for update`;
  if (!session || (session.not_after && session.not_after <= new Date())) {
    throw new AuthError(400, "session_expired", "Invalid Refresh Token: Session Expired");
  }
  const [user] = await tx<{ banned: boolean }[]>`
    select coalesce(banned_until > now(), false) as banned from auth.users where id = ${session.user_id} and deleted_at is null`;
  if (!user) throw new AuthError(400, "user_not_found", "Invalid Refresh Token: User Not Found");
  // a ban keeps the sessions (as GoTrue's does) so that their refresh can say why it is refused
  if (user.banned) throw new AuthError(400, "user_banned", "Invalid Refresh Token: User Banned");

  // read again under the lock: a refresh that ran meanwhile may have revoked it
  const [token] = await tx<{ token: string; revoked: boolean; updated_at: Date }[]>`
    select token, revoked, updated_at from auth.refresh_tokens where id = ${found.id}`;
  if (token.revoked) {
    const [active] = await tx<{ token: string; parent: string | null }[]>`
      select token, parent from auth.refresh_tokens where session_id = ${session.id} and not revoked order by id desc limit 1`;
    if (active && active.parent === token.token) {
      // the client lost the reply to its last refresh: hand it the token that refresh made
      return { sessionId: session.id, refreshToken: active.token, userId: session.user_id, amr: await amrOf(tx, session.id) };
    }
    if (token.updated_at.getTime() + reuseIntervalSeconds * 1000 < Date.now()) {
      // reuse of an old token: someone else may hold the family, so the whole session ends
      await tx`update auth.refresh_tokens set revoked = true, updated_at = now() where session_id = ${session.id} and not revoked`;
      await tx`delete from auth.sessions where id = ${session.id}`;
      // returned, not thrown: the revocation must commit before the client hears why
      return new AuthError(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used");
    }
  }
  const next = newRefreshToken();
  await tx`update auth.refresh_tokens set revoked = true, updated_at = now() where id = ${found.id}`;
  await tx`insert into auth.refresh_tokens (token, user_id, revoked, created_at, updated_at, parent, session_id)
           values (${next}, ${session.user_id}, false, now(), now(), ${token.token}, ${session.id})`;
  await tx`update auth.sessions set refreshed_at = now() at time zone 'utc', updated_at = now() where id = ${session.id}`;
  return { sessionId: session.id, refreshToken: next, userId: session.user_id, amr: await amrOf(tx, session.id) };
}

/** Sign-out: `local` ends this session, `others` every other one, `global` all of the user's. */
export async function endSessions(
  tx: postgres.TransactionSql,
  userId: string,
  sessionId: string | null,
  scope: "local" | "global" | "others",
) {
  if (scope === "global" || !sessionId) {
    await tx`delete from auth.sessions where user_id = ${userId}`;
  } else if (scope === "local") {
    await tx`delete from auth.sessions where id = ${sessionId} and user_id = ${userId}`;
  } else {
    await tx`delete from auth.sessions where user_id = ${userId} and id <> ${sessionId}`;
  }
}

export async function sessionExists(tx: postgres.TransactionSql | postgres.Sql, sessionId: string): Promise<boolean> {
  const [row] = await tx`select 1 from auth.sessions where id = ${sessionId} and (not_after is null or not_after > now())`;
  return Boolean(row);
}
