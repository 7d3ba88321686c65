// GoTrue's audit trail (auth.audit_log_entries): one entry per account event, with GoTrue's
// payload ({ actor_id, actor_username, actor_via_sso, action, log_type, traits }) and the address.
import crypto from "node:crypto";
import type postgres from "postgres";

const LOG_TYPE: Record<string, string> = {
  login: "account",
  logout: "account",
  invite_accepted: "account",
  user_signedup: "team",
  user_repeated_signup: "user",
  user_invited: "team",
  user_deleted: "team",
  user_modified: "user",
  user_recovery_requested: "user",
  user_confirmation_requested: "user",
  user_updated_password: "user",
  token_refreshed: "token",
  token_revoked: "token",
};
export type AuthAuditAction = keyof typeof LOG_TYPE;

export async function auditAuth(
  sql: postgres.Sql | postgres.TransactionSql,
  action: AuthAuditAction,
  actor: { id: string; email?: string | null },
  ip: string,
  traits: Record<string, unknown> = {},
) {
  const payload = {
    actor_id: actor.id,
    actor_username: actor.email ?? "",
    actor_via_sso: false,
    action,
    log_type: LOG_TYPE[action],
    ...(Object.keys(traits).length ? { traits } : {}),
  };
  await sql`insert into auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
            values ('00000000-0000-0000-0000-000000000000', ${crypto.randomUUID()}, ${
    sql.json(payload as postgres.JSONValue)
  }::json, now(), ${ip.slice(0, 64)})`;
}
