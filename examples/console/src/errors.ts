// One table: every stable code of docs/errors.md becomes a sentence and a hint. Raw messages
// (constraint names, SQL, scanner output) never reach the screen: an unknown code gets a general
// sentence, and the details stay in the network panel and the server's logs.
export interface Explained {
  text: string;
  hint?: string;
}

const AGAIN = "Try again in a moment; if it keeps failing, tell whoever runs your school's workspace.";
const ASK = "Ask an administrator of your organization if you need it.";
const SIGN_IN_AGAIN = "Sign out and sign in again.";

export const CODES: Record<string, Explained> = {
  // functions and the gateway
  invalid_json: { text: "The request could not be read.", hint: AGAIN },
  invalid_request: { text: "Some of what you entered is not accepted.", hint: "Check the fields and try again." },
  missing_authorization: { text: "You are not signed in.", hint: "Sign in first." },
  invalid_jwt: { text: "Your session is not valid any more.", hint: SIGN_IN_AGAIN },
  jwt_expired: { text: "Your session has expired.", hint: SIGN_IN_AGAIN },
  invalid_path: { text: "That address is not valid.", hint: AGAIN },
  not_found: { text: "That was not found.", hint: "It may have been removed; reload the page." },
  PGRST000: { text: "The service is not reachable right now.", hint: AGAIN },
  function_not_found: { text: "That service is not available.", hint: AGAIN },
  method_not_allowed: { text: "That action is not available.", hint: AGAIN },
  unauthorized: { text: "You are not signed in.", hint: SIGN_IN_AGAIN },
  forbidden: { text: "You do not have permission to do that.", hint: ASK },
  invalid_api_key: { text: "That API key is not valid.", hint: "Check the key, or create a new one." },
  api_key_revoked: { text: "That API key was revoked.", hint: "Create a new key." },
  api_key_expired: { text: "That API key has expired.", hint: "Create a new key." },
  internal_error: { text: "Something went wrong on our side.", hint: AGAIN },
  function_crashed: { text: "Something went wrong on our side.", hint: AGAIN },
  function_boot_error: { text: "That service is starting or unavailable.", hint: AGAIN },
  not_provided_locally: { text: "That feature is not available here.", hint: "It works on the hosted service." },
  invalid_email: { text: "That is not an e-mail address.", hint: "Check the address, e.g. name@school.org." },
  role_not_allowed: { text: "You may not invite that role.", hint: "Only owners invite people at their own rank or above." },
  member_limit_reached: {
    text: "The organization has reached its plan's member limit.",
    hint: "Remove someone or upgrade the plan.",
  },
  invitation_pending: {
    text: "That address already has a pending invitation for another role.",
    hint: "Withdraw it in the invitation list first, then invite again.",
  },
  already_a_member: { text: "That person is already a member.", hint: "Change their role in the member list instead." },
  mail_not_sent: { text: "The invitation was made, but the mail could not be sent.", hint: "Press Resend to send it again." },
  storage_unavailable: { text: "File storage is not available right now.", hint: AGAIN },
  extension_mismatch: {
    text: "The file's name does not match its type.",
    hint: "Rename it with the right extension (.pdf, .png, …).",
  },
  quota_exceeded: { text: "The organization's storage is full.", hint: "Delete files you no longer need, or upgrade the plan." },
  unsupported_type: { text: "That type of file is not accepted.", hint: "" }, // the hint lists the types (files screen)
  file_too_large: { text: "That file is too large for your plan.", hint: "Split it, or compress it." },
  invalid_name: { text: "That file name is not accepted.", hint: "Use a name without slashes, up to 255 characters." },
  no_active_organization: { text: "Choose an organization first.", hint: "Open Organizations and switch to one." },
  rate_limiter_unavailable: { text: "The service is busy.", hint: AGAIN },
  // SQL states
  "22023": { text: "That value is out of range.", hint: "Choose a time between 5 minutes and 30 days from now." },
  "23505": { text: "That name is taken.", hint: "Choose another one." },
  "23514": { text: "Some of what you entered is not accepted.", hint: "Check the fields and try again." },
  "42501": { text: "You do not have permission to do that.", hint: ASK },
  TN001: { text: "An organization must keep at least one owner.", hint: "Make someone else an owner first." },
  TN002: { text: "Only an owner can make or unmake owners.", hint: "Ask an owner." },
  TN003: { text: "You are not a member of that organization.", hint: "Ask for an invitation." },
  TN004: { text: "Your role may not change that member's role.", hint: "Only someone of a higher rank can, or an owner." },
  TN005: { text: "Nobody changes their own role.", hint: "Ask an owner or an admin." },
  TN010: { text: "That invitation does not exist.", hint: "Ask for a new invitation." },
  TN011: { text: "That invitation has expired.", hint: "Ask for a new invitation." },
  TN012: { text: "That invitation was already used.", hint: "Sign in with the account that accepted it." },
  TN013: { text: "That invitation was withdrawn or replaced by a newer one.", hint: "Use the newest mail, or ask again." },
  TN014: { text: "That invitation was sent to another e-mail address.", hint: "Sign in with the invited address." },
  TN015: { text: "The organization has reached its plan's member limit.", hint: "Remove someone or upgrade the plan." },
  TN016: { text: "That person is already a member.", hint: "Change their role in the member list instead." },
  TN017: {
    text: "You may not invite that role, nor withdraw an invitation for it.",
    hint: "Only owners invite people at their own rank or above, or withdraw such invitations.",
  },
  TN018: { text: "Confirm your e-mail address before accepting an invitation.", hint: "Follow the link we mailed you." },
  TN020: { text: "That API key is not valid.", hint: "Check the key, or create a new one." },
  TN021: { text: "That API key was revoked.", hint: "Create a new key." },
  TN022: { text: "That API key has expired.", hint: "Create a new key." },
  TN023: { text: "That API key may not do this.", hint: "Create a key with the scope it needs." },
  TN024: { text: "That scope does not exist.", hint: "Choose scopes from the list." },
  TN025: { text: "A key cannot get a permission you do not hold.", hint: "Untick the scopes you do not have." },
  TN026: { text: "That key was not found.", hint: "It may have been revoked already; reload the page." },
  TN040: { text: "The organization is past its retention period and cannot be restored.", hint: "" },
  TN041: { text: "The organization is not past its retention period yet.", hint: "" },
  TN050: { text: "An export is already under way.", hint: "Wait for it to finish; it appears below." },
  TN090: { text: "The audit log cannot be changed.", hint: "" },
  FL001: { text: "The organization's storage is full.", hint: "Delete files you no longer need, or upgrade the plan." },
  FL002: { text: "That type of file is not accepted.", hint: "" },
  FL003: { text: "That file is empty or too large for your plan.", hint: "Check the file, split or compress it." },
  FL004: { text: "That file name is not accepted.", hint: "Use a name without slashes, up to 255 characters." },
  FL005: { text: "That file was not found.", hint: "It may have been deleted already; reload the page." },
  FL006: { text: "That file was already processed and cannot be replaced.", hint: "Upload it as a new file." },
  FL007: { text: "The upload was larger than announced.", hint: "Upload the file again." },
  NT001: { text: "That kind of notification does not exist.", hint: "" },
  NT002: { text: "Someone you chose is not a member of the organization.", hint: "Check the recipients." },
  NT003: { text: "The notification's title or text is empty or too long.", hint: "Shorten it." },
  NT004: { text: "Choose who receives the notification.", hint: "" },
  NT005: { text: "That notification has no e-mail template.", hint: "Ask an administrator." },
  NT006: { text: "That kind of notification is sent by the system only.", hint: "Send an announcement instead." },
  AN001: { text: "That period is out of range.", hint: "" },
  UG001: { text: "The usage counts were not accepted.", hint: "" },
  MQ001: { text: "That key cannot connect for live updates.", hint: "Give it topic patterns first." },
  MQ002: { text: "A topic pattern is not valid.", hint: "Use letters, digits, _ . - or +; # only at the end." },
  JB000: { text: "Jobs are not ready yet.", hint: AGAIN },
  JB001: { text: "That kind of job does not exist.", hint: "" },
  JB002: { text: "That job request is not valid.", hint: "" },
  JB003: { text: "That job was not found.", hint: "It may belong to another organization; reload the page." },
  JB004: { text: "That job cannot do that in its state.", hint: "Only unfinished jobs are cancelled and failed ones retried." },
  // Auth
  invalid_credentials: { text: "The e-mail address or password is wrong.", hint: "Check both, or use Forgot password." },
  validation_failed: { text: "Check the e-mail address and password.", hint: "" },
  email_not_confirmed: { text: "Confirm your e-mail address first: follow the link we mailed you.", hint: "" },
  user_banned: { text: "This account is suspended.", hint: "Contact your school." },
  refresh_token_not_found: { text: "Your session has ended.", hint: "Sign in again." },
  refresh_token_already_used: { text: "Your session has ended.", hint: "Sign in again." },
  session_expired: { text: "Your session has ended.", hint: "Sign in again." },
  session_not_found: { text: "Your session has ended.", hint: "Sign in again." },
  flow_state_expired: { text: "That sign-in link has expired.", hint: "Ask for a new one." },
  flow_state_not_found: { text: "That sign-in link has expired.", hint: "Ask for a new one." },
  bad_code_verifier: { text: "That sign-in link was opened in another browser.", hint: "Open it where you asked for it." },
  user_not_found: { text: "That account no longer exists.", hint: "" },
  no_authorization: { text: "You are not signed in.", hint: "Sign in first." },
  bad_jwt: { text: "Your session is not valid any more.", hint: SIGN_IN_AGAIN },
  not_admin: { text: "You do not have permission to do that.", hint: "" },
  otp_expired: { text: "That link or code has expired or was used already.", hint: "Ask for a new one." },
  email_exists: { text: "That address already has an account.", hint: "Sign in, or use Forgot password." },
  user_already_exists: { text: "That address already has an account.", hint: "Sign in, or use Forgot password." },
  weak_password: { text: "Choose a stronger password.", hint: "Use at least 6 characters; longer is better." },
  same_password: { text: "The new password must differ from the old one.", hint: "" },
  signup_disabled: { text: "Sign-ups are closed.", hint: "Ask your school for an invitation." },
  otp_disabled: { text: "There is no account with that address.", hint: "Sign up first." },
  over_request_rate_limit: { text: "Too many attempts.", hint: "Wait a few minutes, then try again." },
  over_email_send_rate_limit: { text: "Too many mails were sent.", hint: "Wait a while, then try again." },
  unexpected_failure: { text: "Something went wrong on our side.", hint: AGAIN },
  hook_payload_invalid: { text: "Something went wrong on our side.", hint: AGAIN },
  // browser-side
  network: { text: "The service could not be reached.", hint: "Check your connection and try again." },
};

const FALLBACK: Explained = { text: "That did not work.", hint: AGAIN };

/** Storage API answers ({ statusCode, error, message }) by status, as docs/errors.md lists them. */
const STORAGE_STATUS: Record<number, string> = { 403: "42501", 404: "not_found", 409: "FL006", 413: "FL007", 415: "FL002" };

/** The stable code of an error of supabase-js (auth, PostgREST, functions, storage), if any. */
export async function codeOf(error: unknown): Promise<string | undefined> {
  const e = error as { code?: string; status?: number; statusCode?: string; name?: string; context?: Response };
  if (e?.context instanceof Response) {
    try {
      const body = await e.context.clone().json();
      const code = body?.error?.code ?? body?.code;
      if (typeof code === "string") return code;
    } catch { /* not JSON */ }
    if (e.context.status >= 500) return "internal_error";
  }
  if (e?.name === "FunctionsFetchError" || e?.name === "AuthRetryableFetchError") return "network";
  if (typeof e?.code === "string" && e.code) return e.code;
  const status = Number(e?.statusCode ?? e?.status);
  if (STORAGE_STATUS[status]) return STORAGE_STATUS[status];
  return undefined;
}

/** A sentence and a hint for an error; `overrides` word a code for the control that caused it. */
export async function explain(error: unknown, overrides: Record<string, Explained> = {}): Promise<Explained> {
  const code = await codeOf(error);
  if (code && overrides[code]) return overrides[code];
  if (code && CODES[code]) return CODES[code];
  return FALLBACK;
}

/** The sentence and its hint as one line. */
export async function readable(error: unknown, overrides?: Record<string, Explained>): Promise<string> {
  const { text, hint } = await explain(error, overrides);
  return hint ? `${text} ${hint}` : text;
}
