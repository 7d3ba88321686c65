// GoTrue's request limits from config.toml [auth.rate_limit]: per address in fixed 5-minute
// windows (sign-ups and sign-ins, token refreshes, verifications), and e-mails sent per hour for
// the whole project. In memory, as in one GoTrue instance.
import type { AuthSettings } from "../project-config.ts";
import { AuthError } from "./sessions.ts";

type Bucket = "sign_in_sign_ups" | "token_refresh" | "token_verifications" | "email_sent";

const WINDOW_MS: Record<Bucket, number> = {
  sign_in_sign_ups: 5 * 60_000,
  token_refresh: 5 * 60_000,
  token_verifications: 5 * 60_000,
  email_sent: 60 * 60_000,
};

export class AuthRateLimits {
  private windows = new Map<string, { start: number; count: number }>();

  /** Counts one request of `bucket` from `address` (ignored for e-mail); refuses it over the limit. */
  take(bucket: Bucket, address: string, settings: AuthSettings, now = Date.now()) {
    const limit = {
      sign_in_sign_ups: settings.rateLimit.signInSignUps,
      token_refresh: settings.rateLimit.tokenRefresh,
      token_verifications: settings.rateLimit.tokenVerifications,
      email_sent: settings.rateLimit.emailSent,
    }[bucket];
    const key = bucket === "email_sent" ? bucket : `${bucket} ${address}`;
    let w = this.windows.get(key);
    if (!w || now - w.start >= WINDOW_MS[bucket]) {
      w = { start: now, count: 0 };
      this.windows.set(key, w);
    }
    if (w.count >= limit) {
      throw bucket === "email_sent"
        ? new AuthError(429, "over_email_send_rate_limit", "Email rate limit exceeded")
        : new AuthError(429, "over_request_rate_limit", "Request rate limit reached");
    }
    w.count++;
    if (this.windows.size > 100_000) this.sweep(now);
  }

  private sweep(now: number) {
    for (const [k, w] of this.windows) {
      const bucket = k.split(" ")[0] as Bucket;
      if (now - w.start >= WINDOW_MS[bucket]) this.windows.delete(k);
    }
  }
}
