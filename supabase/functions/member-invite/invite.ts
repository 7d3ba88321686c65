// Inviting a person into an organization by e-mail (the member-invite function). The tenancy
// invitation stays the source of truth (create_invitation, as the inviter: permission, rank, member
// limit); Supabase Auth carries the mail, so the link works the same on hosted projects:
// - an address without an account gets Auth's invitation mail (inviteUserByEmail): its link
//   confirms the address and signs the person in; they set a password and accept;
// - an address with a confirmed account gets a magic link (signInWithOtp, never creating a user).
// An account nobody has confirmed counts as no account: anyone can sign an address up with a
// password of their own before its owner arrives, and a magic link would then confirm the address
// for them (GoTrue keeps an unconfirmed account's password when a link confirms it). Such an account
// is deleted and made afresh by the invitation, so the link the owner clicks opens an account with
// no password but the one they set.
// Either link lands on `${SITE_URL}/accept-invitation?token=<invitation token>`, where the app
// calls rpc('accept_invitation', { token }) as the now signed-in invitee.
import { createClient, type SupabaseClient } from "@supabase/supabase-js";
import type postgres from "postgres";
import { z } from "zod";
import type { ApiKeyCaller, UserCaller } from "../_shared/auth.ts";
import type { Database } from "../_shared/database.types.ts";
import { asCaller, asService } from "../_shared/db.ts";
import { HttpError } from "../_shared/errors.ts";
import { type HandlerContext, parseJson } from "../_shared/http.ts";

export const InviteRequest = z.object({
  org_id: z.uuid(),
  email: z.string().trim().toLowerCase().email().max(320),
  role: z.enum(["admin", "teacher", "student", "owner"]),
}).strict();

const A_ROLE = { owner: "an owner", admin: "an admin", teacher: "a teacher", student: "a student" } as const;

export interface InviteDeps {
  sql: postgres.Sql;
  /** A client with the service key: Auth's admin API. */
  auth: SupabaseClient<Database>;
  siteUrl: string;
}

/** create_invitation's refusals as HTTP answers (docs/errors.md). */
const SQL_ERRORS: Record<string, [number, string]> = {
  "42501": [403, "forbidden"],
  TN015: [409, "member_limit_reached"],
  TN016: [409, "already_a_member"],
  TN017: [403, "role_not_allowed"],
  TN019: [409, "invitation_pending"],
  "23514": [400, "invalid_email"],
};

export async function inviteMember(
  req: Request,
  ctx: HandlerContext<UserCaller | ApiKeyCaller>,
  deps: InviteDeps,
): Promise<Response> {
  const body = await parseJson(req, InviteRequest);
  let invitation: { invitation_id: string; token: string; expires_at: string; org_name: string };
  try {
    [invitation] = await asCaller(
      deps.sql,
      ctx.caller,
      req,
      ctx.requestId,
      (tx) =>
        tx<{ invitation_id: string; token: string; expires_at: string; org_name: string }[]>`
        select i.invitation_id, i.token, i.expires_at, o.name as org_name
        from public.create_invitation(${body.org_id}, ${body.email}, ${body.role}::public.org_role) i
        left join lateral (select name from public.organizations where id = ${body.org_id}) o on true`,
    );
  } catch (e) {
    const mapped = SQL_ERRORS[(e as { code?: string }).code ?? ""];
    if (mapped) throw new HttpError(mapped[0], mapped[1], (e as Error).message);
    throw e;
  }
  const redirectTo = `${deps.siteUrl.replace(/\/$/, "")}/accept-invitation?token=${encodeURIComponent(invitation.token)}`;
  // what the mail templates say (config.toml [auth.email.template.invite] and .magic_link read .Data),
  // for the one mail being sent (INVITATION_KEYS)
  const invited = { invited_to_name: invitation.org_name, invited_as: A_ROLE[body.role] };
  const notSent = (error: string) => {
    // the invitation stands (the inviter may send it again, which replaces it); the mail did not go
    ctx.log.error("invitation mail not sent", { invitation_id: invitation.invitation_id, error });
    return new HttpError(502, "mail_not_sent", "The invitation was made but its mail could not be sent; try again.");
  };
  // One invitation mail to an address at a time (see INVITATION_KEYS): held in a transaction of
  // its own, which also answers accountOf, so a second invitation waits without a connection of its own.
  return await asService(deps.sql, ctx.requestId, async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtextextended(${`member-invite:${body.email}`}, 0))`;
    // A few rounds at most: someone may sign the address up again between the deletion and the invitation.
    for (let round = 0; round < 3; round++) {
      const account = await accountOf(tx, body.email);
      if (account?.confirmed) {
        // the magic link's template reads the invitation from the person's metadata, for this mail only
        const noted = await deps.auth.auth.admin.updateUserById(account.id, { user_metadata: invited });
        try {
          if (noted.error) throw notSent(noted.error.message);
          const sent = await deps.auth.auth.signInWithOtp({
            email: body.email,
            options: { shouldCreateUser: false, emailRedirectTo: redirectTo },
          });
          if (sent.error) throw notSent(sent.error.message);
        } finally {
          await forgetInvitation(deps, ctx, account.id);
        }
        return invitationSent(ctx, invitation, "magiclink");
      }
      if (account) {
        const removed = await deps.auth.auth.admin.deleteUser(account.id);
        if (removed.error && removed.error.status !== 404) throw notSent(removed.error.message);
        ctx.log.info("an unconfirmed account was made afresh for an invitation", {
          invitation_id: invitation.invitation_id,
          user_id: account.id,
        });
      }
      const sent = await deps.auth.auth.admin.inviteUserByEmail(body.email, { redirectTo, data: invited });
      if (sent.data.user) await forgetInvitation(deps, ctx, sent.data.user.id);
      if (sent.error) throw notSent(sent.error.message);
      // the invitation's account must be one nobody holds a password for (hosted GoTrue invites a
      // pending account again as it is, password and all)
      const made = await accountOf(tx, body.email);
      if (made && !made.confirmed && !made.has_password) return invitationSent(ctx, invitation, "invite");
    }
    throw notSent("the address kept being signed up while it was invited");
  });
}

/**
 * Auth renders a mail's words from the person's user metadata (.Data) when it sends the mail, so
 * the invitation's words are there only while its mail goes, and gone right after: anyone may
 * create an organization and invite any address, and words left behind would head every later
 * magic link to that person ("<any name> invites you as an owner"). Two invitations to one address
 * take turns (member-invite's lock), so a mail never carries another invitation's words. A null
 * removes a key (GoTrue's metadata update).
 */
const INVITATION_KEYS = { invited_to_name: null, invited_as: null } as const;

async function forgetInvitation(deps: InviteDeps, ctx: HandlerContext<UserCaller | ApiKeyCaller>, userId: string) {
  const cleared = await deps.auth.auth.admin.updateUserById(userId, { user_metadata: INVITATION_KEYS });
  // an account deleted meanwhile (made afresh by another invitation) has nothing left to clear
  if (cleared.error && cleared.error.status !== 404) {
    ctx.log.error("invitation words left in a user's metadata", { user_id: userId, error: cleared.error.message });
  }
}

async function accountOf(tx: postgres.TransactionSql, email: string) {
  const [account] = await tx<{ id: string; confirmed: boolean; has_password: boolean }[]>`
    select id, email_confirmed_at is not null as confirmed, coalesce(encrypted_password, '') <> '' as has_password
    from auth.users where lower(email) = ${email} and deleted_at is null`;
  return account ?? null;
}

function invitationSent(
  ctx: HandlerContext<UserCaller | ApiKeyCaller>,
  invitation: { invitation_id: string; expires_at: string },
  mail: "magiclink" | "invite",
) {
  ctx.log.info("invitation sent", { invitation_id: invitation.invitation_id, mail });
  return Response.json({ invitation_id: invitation.invitation_id, expires_at: invitation.expires_at, mail }, { status: 201 });
}

export function serviceAuthClient(url: string, serviceKey: string) {
  return createClient<Database>(url, serviceKey, { auth: { persistSession: false, autoRefreshToken: false } });
}
