// Every refusal the backend gives becomes a readable sentence (docs/errors.md), never a stack trace.
const MESSAGES: Record<string, string> = {
  invalid_credentials: "The e-mail address or password is wrong.",
  email_not_confirmed: "Confirm your e-mail address first: follow the link we mailed you.",
  weak_password: "Choose a longer password.",
  same_password: "The new password must differ from the old one.",
  user_already_exists: "That address already has an account.",
  email_exists: "That address already has an account.",
  otp_expired: "That link or code has expired or was used already.",
  over_request_rate_limit: "Too many attempts from here; wait a few minutes.",
  over_email_send_rate_limit: "Too many mails were sent; wait a while.",
  validation_failed: "Check the e-mail address.",
  "42501": "You do not have permission to do that.",
  "23505": "That name is taken.",
  forbidden: "You do not have permission to do that.",
  role_not_allowed: "You may not invite that role.",
  member_limit_reached: "The organization has reached its plan's member limit.",
  already_a_member: "That person is already a member.",
  quota_exceeded: "The organization's storage is full.",
  file_too_large: "That file is too large for the plan.",
  unsupported_type: "That type of file is not accepted.",
  extension_mismatch: "The file's extension does not match its type.",
  TN010: "That invitation does not exist.",
  TN011: "That invitation has expired.",
  TN012: "That invitation was already used.",
  TN013: "That invitation was revoked.",
  TN014: "That invitation was sent to another address.",
  TN018: "Confirm your e-mail address before accepting an invitation.",
  TN025: "You cannot give a key a permission you do not hold.",
  TN050: "An export is already under way.",
};

/** A readable sentence for an error of supabase-js (auth, PostgREST, functions) or our own. */
export async function readable(error: unknown): Promise<string> {
  const e = error as { code?: string; message?: string; context?: Response };
  if (e?.context instanceof Response) {
    try {
      const body = await e.context.clone().json();
      const code = body?.error?.code ?? body?.code;
      if (code && MESSAGES[code]) return MESSAGES[code];
      if (body?.error?.message) return String(body.error.message);
    } catch { /* not JSON */ }
  }
  if (e?.code && MESSAGES[e.code]) return MESSAGES[e.code];
  return e?.message ? `Something went wrong: ${e.message}` : "Something went wrong.";
}
