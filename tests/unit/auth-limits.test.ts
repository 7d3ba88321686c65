// The auth stand-in's mail budget split, its count of wrong e-mail codes, and config.toml's
// max_frequency as GoTrue reads it (a Go duration).
import { describe, expect, it } from "vitest";
import { type AuthSettings, goDurationSeconds } from "../../dev/platform/project-config.ts";
import { AuthRateLimits, mailShares, MAX_CODE_GUESSES } from "../../dev/platform/auth/rate-limits.ts";

const settings = (emailSent: number) =>
  ({ rateLimit: { emailSent, signInSignUps: 30, tokenRefresh: 150, tokenVerifications: 30 } }) as AuthSettings;
const refusal = { status: 429, code: "over_email_send_rate_limit" };

describe("max_frequency", () => {
  it("reads Go durations and refuses anything else", () => {
    expect(goDurationSeconds("1s", "x")).toBe(1);
    expect(goDurationSeconds("1m30s", "x")).toBe(90);
    expect(goDurationSeconds("500ms", "x")).toBe(0.5);
    expect(goDurationSeconds("0", "x")).toBe(0);
    expect(() => goDurationSeconds("60", "auth.email.max_frequency")).toThrow(/auth.email.max_frequency/);
    expect(() => goDurationSeconds("1 minute", "x")).toThrow();
  });
});

describe("the hourly mail budget", () => {
  it("keeps half for the admin API and lets one source address spend at most half of the rest", () => {
    expect(mailShares(1000)).toEqual({ reservedForAdmin: 500, shared: 500, perSource: 250 });
    const limits = new AuthRateLimits();
    const now = Date.now();
    const anon = (address: string) => () => limits.takeMail(settings(8), { admin: false, address }, now);
    anon("10.0.0.1")();
    anon("10.0.0.1")();
    expect(anon("10.0.0.1")).toThrow(expect.objectContaining(refusal));
    anon("10.0.0.2")();
    anon("10.0.0.2")();
    expect(anon("10.0.0.3")).toThrow(expect.objectContaining(refusal)); // the shared half is spent
    for (let i = 0; i < 4; i++) limits.takeMail(settings(8), { admin: true, address: "127.0.0.1" }, now);
    expect(() => limits.takeMail(settings(8), { admin: true, address: "127.0.0.1" }, now)).toThrow(
      expect.objectContaining(refusal),
    );
    // the next hour starts afresh
    expect(() => limits.takeMail(settings(8), { admin: false, address: "10.0.0.1" }, now + 3_600_000)).not.toThrow();
  });

  it("lets the admin API spend what nobody else used", () => {
    const limits = new AuthRateLimits();
    for (let i = 0; i < 8; i++) limits.takeMail(settings(8), { admin: true, address: "127.0.0.1" }, 0);
    expect(() => limits.takeMail(settings(8), { admin: false, address: "10.0.0.9" }, 0)).toThrow(
      expect.objectContaining(refusal),
    );
  });
});

describe("wrong e-mail codes", () => {
  it(`spend a user's codes at the ${MAX_CODE_GUESSES}th within a code's life, counted afresh after`, () => {
    const limits = new AuthRateLimits();
    const results = Array.from({ length: MAX_CODE_GUESSES }, () => limits.codeGuessFailed("u1", 3600, 0));
    expect(results).toEqual([...Array(MAX_CODE_GUESSES - 1).fill(false), true]);
    expect(limits.codeGuessFailed("u1", 3600, 0)).toBe(false);
    expect(limits.codeGuessFailed("u2", 3600, 0)).toBe(false);
    limits.codeGuessesReset("u2");
    for (let i = 0; i < MAX_CODE_GUESSES - 1; i++) expect(limits.codeGuessFailed("u2", 3600, 0)).toBe(false);
    // a count older than a code's life is forgotten
    expect(limits.codeGuessFailed("u2", 3600, 3_600_000)).toBe(false);
  });
});
