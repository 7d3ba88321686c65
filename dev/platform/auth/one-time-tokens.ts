// One-time tokens as GoTrue makes them: a numeric code mailed to the person, stored only as
// hex(SHA-224(email + code)) (the "token hash" links carry), in the user's column for its kind and
// in auth.one_time_tokens, with the time it was sent so it expires after otp_expiry. Each is used
// once: verifying clears it.
import crypto from "node:crypto";
import type postgres from "postgres";
import { AuthError } from "./sessions.ts";

/** The verification types auth-js sends (`verifyOtp({ type })`) and the token each one reads. */
export const VERIFY_TYPES = ["signup", "invite", "magiclink", "recovery", "email_change", "email"] as const;
export type VerifyType = (typeof VERIFY_TYPES)[number];

type Column = "confirmation_token" | "recovery_token" | "email_change_token_new";
const COLUMN: Record<VerifyType, Column[]> = {
  signup: ["confirmation_token"],
  invite: ["confirmation_token"],
  magiclink: ["recovery_token"],
  recovery: ["recovery_token"],
  email_change: ["email_change_token_new"],
  // "email": an e-mail OTP, which may be a signup confirmation or a magic link
  email: ["confirmation_token", "recovery_token"],
};
const SENT_AT: Record<Column, string> = {
  confirmation_token: "confirmation_sent_at",
  recovery_token: "recovery_sent_at",
  email_change_token_new: "email_change_sent_at",
};

export const tokenHash = (email: string, otp: string) =>
  crypto.createHash("sha224").update(email.toLowerCase() + otp).digest("hex");

/** Makes a code for `kind`, stores its hash on the user; returns the code and its hash. */
export async function issueToken(
  tx: postgres.TransactionSql,
  userId: string,
  email: string,
  kind: "signup" | "invite" | "magiclink" | "recovery" | "email_change",
  otpLength: number,
): Promise<{ otp: string; hash: string }> {
  const otp = Array.from(crypto.randomBytes(otpLength), (b) => String(b % 10)).join("");
  const hash = tokenHash(email, otp);
  const column = COLUMN[kind][0];
  await tx`update auth.users set ${tx(column)} = ${hash}, ${
    tx(SENT_AT[column])
  } = now(), updated_at = now() where id = ${userId}`;
  const type = column === "email_change_token_new" ? "email_change_token_new" : column;
  await tx`
    insert into auth.one_time_tokens (id, user_id, token_type, token_hash, relates_to, created_at, updated_at)
    values (${crypto.randomUUID()}, ${userId}, ${type}, ${hash}, ${email.toLowerCase()}, now(), now())
    on conflict (user_id, token_type) do update set token_hash = excluded.token_hash, relates_to = excluded.relates_to,
                                                    created_at = now(), updated_at = now()`;
  return { otp, hash };
}

/**
 * Finds and consumes the token: by its hash (a link), or by e-mail and code. Returns the user's id
 * and the column it was found in. Unknown, used and expired tokens answer as GoTrue does.
 */
export async function consumeToken(
  tx: postgres.TransactionSql,
  type: VerifyType,
  presented: { hash: string } | { email: string; otp: string },
  otpExpirySeconds: number,
): Promise<{ userId: string; column: Column }> {
  const hash = "hash" in presented ? presented.hash : tokenHash(presented.email, presented.otp);
  for (const column of COLUMN[type]) {
    const [u] = await tx<{ id: string; expired: boolean }[]>`
      select id, coalesce(${tx(SENT_AT[column])} < now() - make_interval(secs => ${otpExpirySeconds}), true) as expired
      from auth.users where ${tx(column)} = ${hash} and deleted_at is null for update`;
    if (!u) continue;
    await tx`update auth.users set ${tx(column)} = '' where id = ${u.id}`;
    await tx`delete from auth.one_time_tokens where user_id = ${u.id} and token_hash = ${hash}`;
    if (u.expired) throw new AuthError(403, "otp_expired", "Email link is invalid or has expired");
    return { userId: u.id, column };
  }
  throw new AuthError(403, "otp_expired", "Email link is invalid or has expired");
}
