// GoTrue's request limits from config.toml [auth.rate_limit]: per address in fixed 5-minute
// windows (sign-ups, sign-ins and mail requests, token refreshes, verifications), and e-mails
// sent per hour for the whole project. In memory, as in one GoTrue instance.
//
// Two additions of the stand-in's own:
// - The hourly mail budget is split by who asks. Half of `email_sent` is kept for mail the admin
//   API asks for (the service role: member-invite's invitations and magic links); everyone else
//   (sign-ups, magic links, recoveries, e-mail changes) shares the other half, and one source
//   address may spend at most half of that share. So no anonymous caller can starve invitations,
//   and one caller leaves at least half of the shared mail to everyone else's confirmations and
//   recoveries.
// - Wrong e-mail codes are counted per user: the fifth wrong code (from any address) spends every
//   code the user holds, so a code cannot be found by spreading guesses over many addresses.
import type { AuthSettings } from "../project-config.ts";
import { AuthError } from "./sessions.ts";

type Bucket = "sign_in_sign_ups" | "token_refresh" | "token_verifications";

const WINDOW_MS: Record<Bucket | "email_sent", number> = {
  sign_in_sign_ups: 5 * 60_000,
  token_refresh: 5 * 60_000,
  token_verifications: 5 * 60_000,
  email_sent: 60 * 60_000,
};

/** Wrong e-mail codes a user may collect before their codes are spent. */
export const MAX_CODE_GUESSES = 5;

/** How the hourly mail budget is split (see above). */
export function mailShares(emailSent: number) {
  const reservedForAdmin = Math.floor(emailSent / 2);
  const shared = emailSent - reservedForAdmin;
  return { reservedForAdmin, shared, perSource: Math.ceil(shared / 2) };
}

const EMAIL_LIMITED = () => new AuthError(429, "over_email_send_rate_limit", "Email rate limit exceeded");

export class AuthRateLimits {
  private windows = new Map<string, { start: number; count: number }>();
  private guesses = new Map<string, { start: number; count: number }>();

  private window(key: string, ms: number, now: number) {
    let w = this.windows.get(key);
    if (!w || now - w.start >= ms) {
      w = { start: now, count: 0 };
      this.windows.set(key, w);
    }
    if (this.windows.size > 100_000) this.sweep(now);
    return w;
  }

  /** Counts one request of `bucket` from `address`; refuses it over the limit. */
  take(bucket: Bucket, address: string, settings: AuthSettings, now = Date.now()) {
    const limit = {
      sign_in_sign_ups: settings.rateLimit.signInSignUps,
      token_refresh: settings.rateLimit.tokenRefresh,
      token_verifications: settings.rateLimit.tokenVerifications,
    }[bucket];
    const w = this.window(`${bucket} ${address}`, WINDOW_MS[bucket], now);
    if (w.count >= limit) throw new AuthError(429, "over_request_rate_limit", "Request rate limit reached");
    w.count++;
  }

  /** Counts one mail against the hour's budget for its caller; refuses it when the caller's share is spent. */
  takeMail(settings: AuthSettings, caller: { admin: boolean; address: string }, now = Date.now()) {
    const budget = settings.rateLimit.emailSent;
    const { shared, perSource } = mailShares(budget);
    const all = this.window("email_sent", WINDOW_MS.email_sent, now);
    if (all.count >= budget) throw EMAIL_LIMITED();
    if (caller.admin) {
      all.count++;
      return;
    }
    const others = this.window("email_sent shared", WINDOW_MS.email_sent, now);
    const mine = this.window(`email_sent ${caller.address}`, WINDOW_MS.email_sent, now);
    if (others.count >= shared || mine.count >= perSource) throw EMAIL_LIMITED();
    all.count++;
    others.count++;
    mine.count++;
  }

  /** Records a wrong code for a user; true when it was one too many and the user's codes must be spent. */
  codeGuessFailed(userId: string, windowSeconds: number, now = Date.now()): boolean {
    let g = this.guesses.get(userId);
    if (!g || now - g.start >= windowSeconds * 1000) {
      g = { start: now, count: 0 };
      this.guesses.set(userId, g);
    }
    g.count++;
    if (this.guesses.size > 100_000) {
      for (const [k, v] of this.guesses) if (now - v.start >= windowSeconds * 1000) this.guesses.delete(k);
    }
    if (g.count < MAX_CODE_GUESSES) return false;
    this.guesses.delete(userId);
    return true;
  }

  /** A new code, or a right one, starts the count again. */
  codeGuessesReset(userId: string) {
    this.guesses.delete(userId);
  }

  private sweep(now: number) {
    for (const [k, w] of this.windows) {
      const ms = k.startsWith("email_sent") ? WINDOW_MS.email_sent : 5 * 60_000;
      if (now - w.start >= ms) this.windows.delete(k);
    }
  }
}
