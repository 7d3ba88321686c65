// Users as GoTrue keeps them: auth.users with an `email` identity in auth.identities, bcrypt
// password hashes (pgcrypto's crypt, GoTrue's format), and the JSON shape auth-js reads.
import crypto from "node:crypto";
import type postgres from "postgres";
import type { AuthSettings } from "../project-config.ts";
import { clearTokens } from "./one-time-tokens.ts";
import { AuthError } from "./sessions.ts";

type Tx = postgres.TransactionSql | postgres.Sql;

/** The user object GoTrue answers with (auth-js's `User`). */
export async function userJson(tx: Tx, id: string) {
  const [u] = await tx`
    select id, aud, role, email, email_confirmed_at, confirmed_at, phone, last_sign_in_at, raw_app_meta_data, raw_user_meta_data,
           created_at, updated_at, invited_at, confirmation_sent_at, recovery_sent_at, email_change, email_change_sent_at,
           banned_until, coalesce(is_anonymous, false) as is_anonymous
    from auth.users where id = ${id}::uuid and deleted_at is null`;
  if (!u) return null;
  const identities = await tx`
    select id as identity_id, provider_id as id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at, email
    from auth.identities where user_id = ${id}::uuid order by created_at`;
  return {
    id: u.id,
    aud: u.aud,
    role: u.role,
    email: u.email ?? "",
    email_confirmed_at: u.email_confirmed_at ?? undefined,
    confirmed_at: u.confirmed_at ?? undefined,
    phone: u.phone ?? "",
    confirmation_sent_at: u.confirmation_sent_at ?? undefined,
    recovery_sent_at: u.recovery_sent_at ?? undefined,
    invited_at: u.invited_at ?? undefined,
    new_email: u.email_change || undefined,
    email_change_sent_at: u.email_change_sent_at ?? undefined,
    last_sign_in_at: u.last_sign_in_at ?? undefined,
    banned_until: u.banned_until ?? undefined,
    app_metadata: u.raw_app_meta_data ?? {},
    user_metadata: u.raw_user_meta_data ?? {},
    identities,
    created_at: u.created_at,
    updated_at: u.updated_at,
    is_anonymous: u.is_anonymous,
  };
}
export type UserJson = NonNullable<Awaited<ReturnType<typeof userJson>>>;

export async function userIdByEmail(tx: Tx, email: string): Promise<{ id: string; confirmed: boolean } | null> {
  const [u] = await tx<{ id: string; confirmed: boolean }[]>`
    select id, email_confirmed_at is not null as confirmed from auth.users
    where lower(email) = lower(${email}) and deleted_at is null and not is_sso_user`;
  return u ?? null;
}

/** bcrypt reads no further: a longer password would sign in with any ending (GoTrue's MaxPasswordLength). */
export const MAX_PASSWORD_BYTES = 72;

/** GoTrue's password rules from config.toml: at most 72 bytes (400), length and character classes (422 weak_password). */
export function checkPasswordStrength(password: string, settings: AuthSettings) {
  if (Buffer.byteLength(password, "utf8") > MAX_PASSWORD_BYTES) {
    throw new AuthError(400, "validation_failed", `Password cannot be longer than ${MAX_PASSWORD_BYTES} characters`);
  }
  const reasons: string[] = [];
  if (password.length < settings.minimumPasswordLength) reasons.push("length");
  const has = { lower: /[a-z]/.test(password), upper: /[A-Z]/.test(password), digit: /\d/.test(password) };
  const symbol = /[!@#$%^&*()_+\-=[\]{};':"\\|,.<>/?`~]/.test(password);
  const req = settings.passwordRequirements;
  if (req === "letters_digits" && !((has.lower || has.upper) && has.digit)) reasons.push("characters");
  if (req === "lower_upper_letters_digits" && !(has.lower && has.upper && has.digit)) reasons.push("characters");
  if (req === "lower_upper_letters_digits_symbols" && !(has.lower && has.upper && has.digit && symbol)) {
    reasons.push("characters");
  }
  if (reasons.length) {
    const message = reasons.includes("length")
      ? `Password should be at least ${settings.minimumPasswordLength} characters.`
      : "Password should contain the required characters.";
    throw Object.assign(new AuthError(422, "weak_password", message), { reasons });
  }
}

/**
 * A bcrypt hash in GoTrue's format, made with pgcrypto on the connection's own role (GoTrue hashes
 * in Go; supabase_auth_admin has no use of the extensions schema, so never inside its role switch).
 */
export async function hashPassword(sql: postgres.Sql, password: string): Promise<string> {
  const [{ hash }] = await sql<{ hash: string }[]>`select extensions.crypt(${password}, extensions.gen_salt('bf', 10)) as hash`;
  return hash;
}

export interface NewUser {
  email: string;
  /** A hash from hashPassword. */
  passwordHash?: string;
  userMetadata?: Record<string, unknown>;
  appMetadata?: Record<string, unknown>;
  confirmed: boolean;
  invited?: boolean;
}

/** Inserts a user and their email identity, as GoTrue's signup and admin create do. */
export async function insertUser(tx: postgres.TransactionSql, u: NewUser): Promise<string> {
  const id = crypto.randomUUID();
  const app = { provider: "email", providers: ["email"], ...(u.appMetadata ?? {}) };
  await tx`
    insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at, invited_at,
                            raw_app_meta_data, raw_user_meta_data, created_at, updated_at, is_sso_user, is_anonymous)
    values ('00000000-0000-0000-0000-000000000000', ${id}, 'authenticated', 'authenticated', ${u.email.toLowerCase()},
            ${u.passwordHash ?? ""},
            ${u.confirmed ? tx`now()` : null}, ${u.invited ? tx`now()` : null},
            ${tx.json(app as postgres.JSONValue)}, ${
    tx.json((u.userMetadata ?? {}) as postgres.JSONValue)
  }, now(), now(), false, false)`;
  await tx`
    insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
    values (${id}, ${id}, ${
    tx.json({ sub: id, email: u.email.toLowerCase(), email_verified: u.confirmed, phone_verified: false })
  }, 'email', null, now(), now())`;
  return id;
}

/**
 * A new password, as GoTrue's UpdatePassword stores it: every outstanding confirmation, recovery
 * and e-mail change token is cleared (the old password may have been what asked for them) and every
 * session but the caller's ends, in the caller's transaction. Without a session (the admin API),
 * every session ends.
 */
export async function updatePassword(
  tx: postgres.TransactionSql,
  userId: string,
  passwordHash: string,
  keepSessionId: string | null,
) {
  await tx`update auth.users set encrypted_password = ${passwordHash}, updated_at = now() where id = ${userId}`;
  await clearTokens(tx, userId, { sentAt: true });
  if (keepSessionId) await tx`delete from auth.sessions where user_id = ${userId} and id <> ${keepSessionId}`;
  else await tx`delete from auth.sessions where user_id = ${userId}`;
}

/** On the connection's own role (see hashPassword). */
export async function passwordMatches(tx: postgres.Sql, userId: string, password: string): Promise<boolean> {
  const [r] = await tx<{ ok: boolean }[]>`
    select coalesce(encrypted_password <> '' and encrypted_password = extensions.crypt(${password}, encrypted_password), false) as ok
    from auth.users where id = ${userId}`;
  return Boolean(r?.ok);
}

/** Marks the e-mail confirmed (and the identity verified); for the admin API's email_confirm. */
export async function confirmEmail(tx: postgres.TransactionSql, userId: string) {
  await tx`update auth.users set email_confirmed_at = coalesce(email_confirmed_at, now()), confirmation_token = '', updated_at = now()
           where id = ${userId}`;
  await tx`update auth.identities set identity_data = identity_data || '{"email_verified": true}', updated_at = now()
           where user_id = ${userId} and provider = 'email'`;
}

/**
 * The first proof that the address is the person's: a mailed link or code of any kind. Whatever
 * was set before it may be a stranger's who signed the address up first, so the password becomes
 * the clicked sign-up's own (none for an invitation, a magic link or a recovery: the person is
 * signed in by the link and sets one), every other pending token is dropped and every session
 * ends. Nothing happens for an address confirmed already. True when this confirmed it.
 */
export async function confirmFirst(tx: postgres.TransactionSql, userId: string, passwordHash: string): Promise<boolean> {
  const [u] = await tx<{ confirmed: boolean }[]>`
    select email_confirmed_at is not null as confirmed from auth.users where id = ${userId} for update`;
  if (!u || u.confirmed) return false;
  await tx`update auth.users set encrypted_password = ${passwordHash}, email_confirmed_at = now(), updated_at = now()
           where id = ${userId}`;
  await clearTokens(tx, userId, { sentAt: false });
  await tx`delete from auth.sessions where user_id = ${userId}`;
  await tx`update auth.identities set identity_data = identity_data || '{"email_verified": true}', updated_at = now()
           where user_id = ${userId} and provider = 'email'`;
  return true;
}
