// One-time tokens as GoTrue makes them: a numeric code mailed to the person, stored only as
// hex(SHA-224(email + code)) (the "token hash" links carry), in the user's column for its kind and
// in auth.one_time_tokens, with the time it was sent so it expires after otp_expiry. A token made
// for a PKCE flow is stored (and linked) with GoTrue's `pkce_` prefix, so only its link lands with
// `?code=`. Each is used once: verifying clears it.
//
// Sign-up confirmations differ from GoTrue in one way: every sign-up of a pending address is kept
// with the password it was made with (auth.stand_in_signups, the stand-in's own table), and its
// password is the one that holds once its mail is clicked. GoTrue keeps the first sign-up's
// password whoever confirms, which is how an address gets taken before its owner arrives.
import crypto from "node:crypto";
import type postgres from "postgres";
import { AuthError } from "./sessions.ts";

/** The verification types auth-js sends (`verifyOtp({ type })`) and the token each one reads. */
export const VERIFY_TYPES = ["signup", "invite", "magiclink", "recovery", "email_change", "email"] as const;
export type VerifyType = (typeof VERIFY_TYPES)[number];
export const PKCE_PREFIX = "pkce_";

type Tx = postgres.TransactionSql;
export type Column = "confirmation_token" | "recovery_token" | "email_change_token_new" | "email_change_token_current";
/** Where a presented token was found: a user column, or a pending sign-up of its own. */
export type TokenSource = Column | "signup";

const SOURCES: Record<VerifyType, TokenSource[]> = {
  signup: ["signup", "confirmation_token"],
  invite: ["confirmation_token"],
  magiclink: ["recovery_token"],
  recovery: ["recovery_token"],
  email_change: ["email_change_token_new", "email_change_token_current"],
  // "email": an e-mail code, which may confirm a sign-up or an invitation, or be a magic link
  email: ["signup", "confirmation_token", "recovery_token"],
};
const SENT_AT: Record<Column, string> = {
  confirmation_token: "confirmation_sent_at",
  recovery_token: "recovery_sent_at",
  email_change_token_new: "email_change_sent_at",
  email_change_token_current: "email_change_sent_at",
};
/** The sign-ups kept per address: each costs a bcrypt comparison when the address signs in unconfirmed. */
const PENDING_SIGNUPS_KEPT = 5;

export const tokenHash = (email: string, otp: string) =>
  crypto.createHash("sha224").update(email.toLowerCase() + otp).digest("hex");

const newOtp = (length: number) => Array.from(crypto.randomBytes(length), (b) => String(b % 10)).join("");

export interface Issued {
  otp: string;
  /** The token as stored and as the mailed link carries it (`pkce_…` for a PKCE flow). */
  token: string;
}

/** The stand-in's table of pending sign-ups, made once per process as GoTrue migrates its own schema at start. */
const ensured = new WeakMap<postgres.Sql, Promise<void>>();
export function ensureStandInTables(sql: postgres.Sql): Promise<void> {
  let done = ensured.get(sql);
  if (!done) {
    done = sql.begin(async (tx) => {
      await tx`set local role supabase_auth_admin`;
      await tx`select pg_advisory_xact_lock(hashtext('auth.stand_in_signups'))`;
      await tx`create table if not exists auth.stand_in_signups (
                 token_hash text primary key,
                 user_id uuid not null references auth.users (id) on delete cascade,
                 encrypted_password text not null default '',
                 created_at timestamptz not null default now())`;
      await tx`create index if not exists stand_in_signups_user_id_idx on auth.stand_in_signups (user_id, created_at)`;
      await tx`alter table auth.stand_in_signups enable row level security`;
      await tx`comment on table auth.stand_in_signups is
                 'The local auth stand-in''s pending sign-ups: one per confirmation mail, with the password it was made with. Hosted GoTrue has no such table.'`;
    }).then(() => undefined, (e) => {
      ensured.delete(sql);
      throw e;
    });
    ensured.set(sql, done);
  }
  return done;
}

async function storeToken(tx: Tx, userId: string, column: Column, token: string, relatesTo: string) {
  await tx`update auth.users set ${tx(column)} = ${token}, ${
    tx(SENT_AT[column])
  } = now(), updated_at = now() where id = ${userId}`;
  await tx`
    insert into auth.one_time_tokens (id, user_id, token_type, token_hash, relates_to, created_at, updated_at)
    values (${crypto.randomUUID()}, ${userId}, ${column}, ${token}, ${relatesTo.toLowerCase()}, now(), now())
    on conflict (user_id, token_type) do update set token_hash = excluded.token_hash, relates_to = excluded.relates_to,
                                                    created_at = now(), updated_at = now()`;
}

/** A code for an invitation, a magic link or a recovery, stored on the user as GoTrue stores it. */
export async function issueToken(
  tx: Tx,
  userId: string,
  email: string,
  kind: "invite" | "magiclink" | "recovery",
  otpLength: number,
  pkce = false,
): Promise<Issued> {
  const otp = newOtp(otpLength);
  const token = (pkce ? PKCE_PREFIX : "") + tokenHash(email, otp);
  await storeToken(tx, userId, kind === "invite" ? "confirmation_token" : "recovery_token", token, email);
  if (kind === "invite") await tx`update auth.users set invited_at = now() where id = ${userId}`;
  return { otp, token };
}

/**
 * A sign-up's confirmation: kept with its own password hash ('' when the sign-up set none, as a
 * magic link to a pending address does), and mirrored into confirmation_token as GoTrue keeps the
 * newest. Older sign-ups beyond the few kept lose their links.
 */
export async function issueSignup(
  tx: Tx,
  userId: string,
  email: string,
  otpLength: number,
  passwordHash: string,
  pkce = false,
): Promise<Issued> {
  const otp = newOtp(otpLength);
  const token = (pkce ? PKCE_PREFIX : "") + tokenHash(email, otp);
  await tx`insert into auth.stand_in_signups (token_hash, user_id, encrypted_password)
           values (${token}, ${userId}, ${passwordHash})
           on conflict (token_hash) do update set user_id = excluded.user_id, encrypted_password = excluded.encrypted_password,
                                                  created_at = now()`;
  await tx`delete from auth.stand_in_signups where user_id = ${userId} and token_hash not in (
             select token_hash from auth.stand_in_signups where user_id = ${userId}
             order by created_at desc limit ${PENDING_SIGNUPS_KEPT})`;
  await storeToken(tx, userId, "confirmation_token", token, email);
  return { otp, token };
}

/**
 * An e-mail change: a code for the new address and, with double_confirm_changes, one for the
 * current address (GoTrue's secure e-mail change); the change waits for both.
 */
export async function issueEmailChange(
  tx: Tx,
  userId: string,
  current: string,
  next: string,
  otpLength: number,
  opts: { double: boolean; pkce: boolean },
): Promise<{ next: Issued; current: Issued | null }> {
  const prefix = opts.pkce ? PKCE_PREFIX : "";
  const nextOtp = newOtp(otpLength);
  const issuedNext = { otp: nextOtp, token: prefix + tokenHash(next, nextOtp) };
  await tx`update auth.users set email_change = ${next.toLowerCase()}, email_change_confirm_status = 0, email_change_token_current = '',
                                 updated_at = now() where id = ${userId}`;
  await tx`delete from auth.one_time_tokens where user_id = ${userId} and token_type = 'email_change_token_current'`;
  await storeToken(tx, userId, "email_change_token_new", issuedNext.token, next);
  if (!opts.double || !current) return { next: issuedNext, current: null };
  const currentOtp = newOtp(otpLength);
  const issuedCurrent = { otp: currentOtp, token: prefix + tokenHash(current, currentOtp) };
  await storeToken(tx, userId, "email_change_token_current", issuedCurrent.token, current);
  return { next: issuedNext, current: issuedCurrent };
}

export interface Found {
  userId: string;
  source: TokenSource;
  /** The token as stored (with its `pkce_` prefix when a PKCE flow made it). */
  token: string;
  pkce: boolean;
  /** A pending sign-up's password hash ('' for none); undefined for every other token. */
  signupPassword?: string;
}

/**
 * Finds the token a link (its stored form), a token hash or an e-mail and code name, locking the
 * user's row, and consumes it. Unknown, used and expired tokens answer as GoTrue does.
 */
export async function consumeToken(
  tx: Tx,
  type: VerifyType,
  presented: { link: string } | { hash: string } | { email: string; otp: string },
  otpExpirySeconds: number,
): Promise<Found> {
  const hash = "link" in presented
    ? presented.link
    : "hash" in presented
    ? presented.hash
    : tokenHash(presented.email, presented.otp);
  // a code or a bare hash matches its PKCE form too (GoTrue's isOtpValid); a link matches exactly
  const candidates = "link" in presented || hash.startsWith(PKCE_PREFIX) ? [hash] : [hash, PKCE_PREFIX + hash];
  const invalid = "email" in presented
    ? new AuthError(403, "otp_expired", "Token has expired or is invalid")
    : new AuthError(403, "otp_expired", "Email link is invalid or has expired");
  for (const source of SOURCES[type]) {
    let found: { id: string; token: string; expired: boolean; password?: string } | undefined;
    if (source === "signup") {
      [found] = await tx<{ id: string; token: string; expired: boolean; password: string }[]>`
        select u.id, s.token_hash as token, s.encrypted_password as password,
               s.created_at < now() - make_interval(secs => ${otpExpirySeconds}) as expired
        from auth.stand_in_signups s join auth.users u on u.id = s.user_id
        where s.token_hash = any(${candidates}) and u.deleted_at is null
        for update of u`;
    } else {
      [found] = await tx<{ id: string; token: string; expired: boolean }[]>`
        select id, ${tx(source)} as token,
               coalesce(${tx(SENT_AT[source])} < now() - make_interval(secs => ${otpExpirySeconds}), true) as expired
        from auth.users where ${tx(source)} = any(${candidates}) and deleted_at is null for update`;
    }
    if (!found) continue;
    if (found.expired) throw invalid;
    if (source === "signup") await tx`delete from auth.stand_in_signups where token_hash = ${found.token}`;
    else {
      await tx`update auth.users set ${tx(source)} = '' where id = ${found.id}`;
      await tx`delete from auth.one_time_tokens where user_id = ${found.id} and token_hash = ${found.token}`;
    }
    return {
      userId: found.id,
      source,
      token: found.token,
      pkce: found.token.startsWith(PKCE_PREFIX),
      ...(source === "signup" ? { signupPassword: found.password } : {}),
    };
  }
  // marked so that a wrong code can be counted against the user it was meant for
  throw Object.assign(invalid, { unknown: true });
}

/** Every outstanding token of a user, as GoTrue clears them when the password changes or the address is confirmed. */
export async function clearTokens(tx: Tx, userId: string, opts: { sentAt: boolean }) {
  await tx`update auth.users set confirmation_token = '', recovery_token = '', email_change_token_new = '',
                                 email_change_token_current = '', reauthentication_token = '', updated_at = now()
           where id = ${userId}`;
  if (opts.sentAt) {
    await tx`update auth.users set confirmation_sent_at = null, recovery_sent_at = null, email_change_sent_at = null,
                                   reauthentication_sent_at = null where id = ${userId}`;
  }
  await tx`delete from auth.one_time_tokens where user_id = ${userId}`;
  await tx`delete from auth.stand_in_signups where user_id = ${userId}`;
}
