// Accounts under attack, from the caller's side (supabase-js and plain HTTP against /auth/v1 and
// the member-invite function): an address signed up by someone before its owner, sessions that
// outlive a password change, PKCE flows planted by a stranger, e-mail changes confirmed by one
// address, mail sent to one person in a burst, guessed e-mail codes, invited addresses that sign up,
// and where the stand-in must answer as GoTrue does. AUTH_TEST_URL points the file at another
// gateway over the same project and database (one of your own while the stack's runs older code).
import crypto from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import { generateKeyPair, SignJWT } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { linkIn, mailsTo, mailTo, waitForMails } from "../helpers/mail.ts";
import { adminSql, API_URL, secrets, tokenFor } from "../helpers/stack.ts";

const AUTH_URL = process.env.AUTH_TEST_URL ?? API_URL;
const admin = adminSql();
afterAll(() => admin.end());
const PASSWORD = "correct horse 42";
const SQUATTER = "the squatter's 99";

function browserLike(opts: { flowType?: "implicit" | "pkce" } = {}) {
  const store = new Map<string, string>();
  return createClient<Database>(AUTH_URL, secrets().publishableKey, {
    auth: {
      persistSession: true,
      autoRefreshToken: false,
      detectSessionInUrl: false,
      flowType: opts.flowType ?? "implicit",
      storage: {
        getItem: (k) => store.get(k) ?? null,
        setItem: (k, v) => void store.set(k, v),
        removeItem: (k) => void store.delete(k),
      },
    },
  });
}
const service = () =>
  createClient<Database>(AUTH_URL, secrets().secretKey, { auth: { persistSession: false, autoRefreshToken: false } });
/** A client that sends one access token, as a holder of a stolen token would. */
const withToken = (token: string) =>
  createClient<Database>(AUTH_URL, secrets().publishableKey, {
    auth: { persistSession: false, autoRefreshToken: false },
    global: { headers: { Authorization: `Bearer ${token}` } },
  });

const newEmail = () => `acct-${crypto.randomUUID().slice(0, 8)}@test.local`;
const codeIn = (text: string) => /code: (\d{6})/.exec(text)![1];

/** Follows a mailed link as a browser does, up to the app's redirect. */
async function follow(link: string) {
  const res = await fetch(link, { redirect: "manual" });
  expect(res.status).toBe(303);
  return new URL(res.headers.get("location")!);
}
const fragmentOf = (landed: URL) => new URLSearchParams(landed.hash.slice(1));

/** The session a link landed with, in a client of its own (as the app's page keeps it). */
async function sessionFrom(landed: URL) {
  const fragment = fragmentOf(landed);
  expect(fragment.get("error_code"), landed.toString()).toBeNull();
  const tab = browserLike();
  const set = await tab.auth.setSession({
    access_token: fragment.get("access_token")!,
    refresh_token: fragment.get("refresh_token")!,
  });
  expect(set.error).toBeNull();
  return tab;
}

async function confirmedUser(password = PASSWORD) {
  const email = newEmail();
  const { data, error } = await service().auth.admin.createUser({ email, password, email_confirm: true });
  expect(error).toBeNull();
  return { id: data.user!.id, email };
}

async function signedIn(email: string, password = PASSWORD) {
  const tab = browserLike();
  const { data, error } = await tab.auth.signInWithPassword({ email, password });
  expect(error).toBeNull();
  return { tab, session: data.session! };
}

const canSignIn = async (email: string, password: string) =>
  (await browserLike().auth.signInWithPassword({ email, password })).error?.code ?? "ok";

/**
 * config.toml's max_frequency (1 s) lets one mail of a kind go to a person at a time: test setup
 * moves the last one back instead of sleeping.
 */
async function pastMailFrequency(email: string) {
  await admin`update auth.users set confirmation_sent_at = confirmation_sent_at - interval '1 minute',
                                    recovery_sent_at = recovery_sent_at - interval '1 minute',
                                    email_change_sent_at = email_change_sent_at - interval '1 minute'
              where lower(email) = ${email}`;
}

async function schoolOwner() {
  const owner = await confirmedUser();
  const [{ id: org }] = await admin`insert into public.organizations (name, slug) values ('Accounts School', ${`acct-${
    owner.id.slice(0, 8)
  }`}) returning id`;
  await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${owner.id}, 'owner')`;
  const { tab } = await signedIn(owner.email);
  return { org: org as string, tab };
}

/** A PKCE challenge a stranger makes up (any 43+ characters do). */
const strangersChallenge = () => crypto.randomBytes(32).toString("base64url");

async function rawAuth(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${AUTH_URL}/auth/v1${path}`, {
    method: "POST",
    headers: { apikey: secrets().publishableKey, "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

describe("an address signed up by someone else before its owner (item 1)", () => {
  it("a school's invitation makes the account afresh: the squatter's password never opens it", async () => {
    const { org, tab } = await schoolOwner();
    const victim = newEmail();
    expect((await browserLike().auth.signUp({ email: victim, password: SQUATTER })).error).toBeNull();
    const [squatted] = await admin`select id from auth.users where email = ${victim}`;

    const sent = await tab.functions.invoke("member-invite", { body: { org_id: org, email: victim, role: "teacher" } });
    expect(sent.error).toBeNull();
    expect(sent.data).toMatchObject({ mail: "invite" });
    const [fresh] = await admin`select id, invited_at is not null as invited from auth.users where email = ${victim}`;
    expect(fresh.id).not.toBe(squatted.id);
    expect(fresh.invited).toBe(true);

    // the victim takes the newest invitation mail, as the app's accept page would
    // the subject names the organization where the project's templates are loaded
    const mail = (await waitForMails(victim, 1, /invites you as|You have been invited|Magic Link/)).at(-1)!;
    const landed = await follow(linkIn(mail.text));
    const me = await sessionFrom(landed);
    if (sent.data.mail === "invite") expect((await me.auth.updateUser({ password: PASSWORD })).error).toBeNull();
    expect((await me.rpc("accept_invitation", { token: landed.searchParams.get("token")! })).error).toBeNull();

    expect(await canSignIn(victim, SQUATTER)).toBe("invalid_credentials");
    expect(await canSignIn(victim, PASSWORD)).toBe("ok");
  });

  it.each([
    ["a magic link", /Magic Link|Confirm Your Signup/],
    ["a recovery link", /Reset Your Password/],
    ["an invitation", /You have been invited/],
  ])("%s that first confirms the address clears the squatter's password and ends every session", async (how, subject) => {
    const victim = newEmail();
    expect((await browserLike().auth.signUp({ email: victim, password: SQUATTER })).error).toBeNull();
    const [squatted] = await admin`select id from auth.users where email = ${victim}`;
    // a session the account held before (as one made while confirmations were off would be)
    const before = await tokenFor(admin, squatted.id);
    await pastMailFrequency(victim);
    const mailsBefore = (await mailsTo(victim)).length;
    const asked = how === "a magic link"
      ? await browserLike().auth.signInWithOtp({ email: victim, options: { shouldCreateUser: false } })
      : how === "a recovery link"
      ? await browserLike().auth.resetPasswordForEmail(victim)
      : await service().auth.admin.inviteUserByEmail(victim);
    expect(asked.error).toBeNull();
    const mail = (await waitForMails(victim, mailsBefore + 1)).at(-1)!;
    expect(mail.subject).toMatch(subject);
    const me = await sessionFrom(await follow(linkIn(mail.text)));
    expect((await me.auth.getUser()).data.user?.email_confirmed_at).toBeTruthy();

    expect(await canSignIn(victim, SQUATTER)).toBe("invalid_credentials");
    expect((await withToken(before.token).auth.getUser(before.token)).error?.name).toBe("AuthSessionMissingError");
    // the one who clicked is signed in and sets their own password
    expect((await me.auth.updateUser({ password: PASSWORD })).error).toBeNull();
    expect(await canSignIn(victim, PASSWORD)).toBe("ok");
  });

  it("a later sign-up of the pending address holds it once its own mail is clicked; the first password is gone", async () => {
    const victim = newEmail();
    expect((await browserLike().auth.signUp({ email: victim, password: SQUATTER })).error).toBeNull();
    await pastMailFrequency(victim);
    expect((await browserLike().auth.signUp({ email: victim, password: PASSWORD })).error).toBeNull();
    const mails = await waitForMails(victim, 2, /Confirm Your Signup/);
    await follow(linkIn(mails[1].text)); // the victim's own mail
    expect(await canSignIn(victim, PASSWORD)).toBe("ok");
    expect(await canSignIn(victim, SQUATTER)).toBe("invalid_credentials");
    // the squatter's mail is dead once the address is confirmed
    expect(fragmentOf(await follow(linkIn(mails[0].text))).get("error_code")).toBe("otp_expired");
  });

  it("an unconfirmed account sees no invitations to its address (the invitee policy must read a confirmed address, not the token's claim)", async () => {
    const { org, tab } = await schoolOwner();
    const victim = newEmail();
    const made = await tab.rpc("create_invitation", { org_id: org, email: victim, role: "teacher" });
    expect(made.error).toBeNull();
    expect((await browserLike().auth.signUp({ email: victim, password: SQUATTER })).error).toBeNull();
    const [squatted] = await admin`select id from auth.users where email = ${victim} and email_confirmed_at is null`;
    // a token of the unconfirmed account, made as GoTrue makes them (e.g. while confirmations are off)
    const { token } = await tokenFor(admin, squatted.id);
    const seen = await withToken(token).from("invitations").select("org_id, role, created_by").eq("email", victim);
    expect(seen.error).toBeNull();
    expect(seen.data).toEqual([]);
  });
});

describe("a password change ends the other sessions (item 2)", () => {
  it("PUT /user {password} ends every other session and kills the outstanding recovery and e-mail change links", async () => {
    const user = await confirmedUser();
    const mine = await signedIn(user.email);
    const stolen = await signedIn(user.email);
    expect((await browserLike().auth.resetPasswordForEmail(user.email)).error).toBeNull();
    const recovery = linkIn((await mailTo(user.email, /Reset Your Password/)).text);
    const next = newEmail();
    expect((await mine.tab.auth.updateUser({ email: next })).error).toBeNull();
    const change = linkIn((await mailTo(next, /Email Change/)).text);

    expect((await mine.tab.auth.updateUser({ password: "a brand new secret 7" })).error).toBeNull();
    expect((await stolen.tab.auth.refreshSession()).error?.code).toBe("refresh_token_not_found");
    expect((await stolen.tab.auth.getUser(stolen.session.access_token)).error?.name).toBe("AuthSessionMissingError");
    expect((await mine.tab.auth.getUser()).data.user?.id).toBe(user.id);
    expect((await mine.tab.auth.refreshSession()).error).toBeNull();
    expect(fragmentOf(await follow(recovery)).get("error_code")).toBe("otp_expired");
    expect(fragmentOf(await follow(change)).get("error_code")).toBe("otp_expired");
    const [row] = await admin`select email, coalesce(confirmation_token, '') || coalesce(recovery_token, '') ||
                                     coalesce(email_change_token_new, '') || coalesce(email_change_token_current, '') as tokens
                              from auth.users where id = ${user.id}`;
    expect(row).toEqual({ email: user.email, tokens: "" });
    expect(await admin`select 1 from auth.one_time_tokens where user_id = ${user.id}`).toEqual([]);
  });

  it("a reset through the recovery link ends the other sessions too", async () => {
    const user = await confirmedUser();
    const stolen = await signedIn(user.email);
    expect((await browserLike().auth.resetPasswordForEmail(user.email)).error).toBeNull();
    const recovering = await sessionFrom(await follow(linkIn((await mailTo(user.email, /Reset Your Password/)).text)));
    expect((await recovering.auth.updateUser({ password: "a brand new secret 7" })).error).toBeNull();
    expect((await stolen.tab.auth.refreshSession()).error?.code).toBe("refresh_token_not_found");
    expect((await recovering.auth.refreshSession()).error).toBeNull();
    expect(await canSignIn(user.email, "a brand new secret 7")).toBe("ok");
  });
});

describe("PKCE flows belong to the link they were made with (item 3)", () => {
  it("a stranger's /recover with a code_challenge does not turn the victim's later links into codes", async () => {
    const user = await confirmedUser();
    expect(
      (await rawAuth("/recover", {
        email: user.email,
        code_challenge: strangersChallenge(),
        code_challenge_method: "s256",
      })).status,
    ).toBe(200);
    await pastMailFrequency(user.email);
    expect((await browserLike().auth.resetPasswordForEmail(user.email)).error).toBeNull();
    const landed = await follow(linkIn((await waitForMails(user.email, 2, /Reset Your Password/)).at(-1)!.text));
    expect(landed.searchParams.get("code")).toBeNull();
    await sessionFrom(landed);
    await pastMailFrequency(user.email);
    expect((await browserLike().auth.signInWithOtp({ email: user.email, options: { shouldCreateUser: false } })).error)
      .toBeNull();
    const magic = await follow(linkIn((await mailTo(user.email, /Magic Link/)).text));
    expect(magic.searchParams.get("code")).toBeNull();
    expect(fragmentOf(magic).get("access_token")).toBeTruthy();
  });

  it("nor an invitation's link, and the victim's own PKCE sign-in still exchanges its code", async () => {
    const email = newEmail();
    expect((await service().auth.admin.inviteUserByEmail(email)).error).toBeNull();
    expect((await rawAuth("/recover", { email, code_challenge: strangersChallenge(), code_challenge_method: "s256" })).status)
      .toBe(200);
    const landed = await follow(linkIn((await mailTo(email, /You have been invited/)).text));
    expect(landed.searchParams.get("code")).toBeNull();
    const invited = await sessionFrom(landed);
    expect((await invited.auth.updateUser({ password: PASSWORD })).error).toBeNull();

    const user = await confirmedUser();
    expect(
      (await rawAuth("/recover", { email: user.email, code_challenge: strangersChallenge(), code_challenge_method: "s256" }))
        .status,
    ).toBe(200);
    await pastMailFrequency(user.email);
    const app = browserLike({ flowType: "pkce" });
    expect((await app.auth.signInWithOtp({ email: user.email, options: { shouldCreateUser: false } })).error).toBeNull();
    const code = (await follow(linkIn((await mailTo(user.email, /Magic Link/)).text))).searchParams.get("code")!;
    const exchanged = await app.auth.exchangeCodeForSession(code);
    expect(exchanged.error).toBeNull();
    expect(exchanged.data.user?.id).toBe(user.id);
  });
});

describe("an e-mail change is confirmed by both addresses (item 4, double_confirm_changes)", () => {
  it("mails both addresses; the new address alone changes nothing; both together do", async () => {
    const user = await confirmedUser();
    const { tab } = await signedIn(user.email);
    const next = newEmail();
    expect((await tab.auth.updateUser({ email: next })).error).toBeNull();
    const toNew = await mailTo(next, /Email Change/);
    const toOld = await mailTo(user.email, /Email Change/);
    expect(toOld.text).toContain(next); // the old address is told where the account is going

    const first = await follow(linkIn(toNew.text));
    expect(fragmentOf(first).get("access_token")).toBeNull();
    expect(fragmentOf(first).get("message")).toMatch(/confirm link sent to the other email/);
    expect((await admin`select email from auth.users where id = ${user.id}`)[0].email).toBe(user.email);

    const second = await follow(linkIn(toOld.text));
    expect(fragmentOf(second).get("type")).toBe("email_change");
    expect((await admin`select email from auth.users where id = ${user.id}`)[0].email).toBe(next);
    expect(await canSignIn(next, PASSWORD)).toBe("ok");
  });

  it("a stolen token cannot move the account with the thief's own code", async () => {
    const user = await confirmedUser();
    const stolen = await signedIn(user.email);
    const thief = newEmail();
    const moved = await fetch(`${AUTH_URL}/auth/v1/user`, {
      method: "PUT",
      headers: {
        apikey: secrets().publishableKey,
        authorization: `Bearer ${stolen.session.access_token}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ email: thief }),
    });
    expect(moved.status).toBe(200);
    const code = codeIn((await mailTo(thief, /Email Change/)).text);
    const verified = await browserLike().auth.verifyOtp({ email: thief, token: code, type: "email_change" });
    expect(verified.error).toBeNull();
    expect(verified.data.session).toBeNull();
    expect((await admin`select email from auth.users where id = ${user.id}`)[0].email).toBe(user.email);
    expect(await canSignIn(user.email, PASSWORD)).toBe("ok");
  });
});

describe("mail to one person (item 5: max_frequency)", () => {
  it("a second recovery or magic link within max_frequency answers 429 over_email_send_rate_limit and sends nothing", async () => {
    const user = await confirmedUser();
    expect((await browserLike().auth.resetPasswordForEmail(user.email)).error).toBeNull();
    const again = await browserLike().auth.resetPasswordForEmail(user.email);
    expect(again.error).toMatchObject({ status: 429, code: "over_email_send_rate_limit" });
    const magic = await browserLike().auth.signInWithOtp({ email: user.email, options: { shouldCreateUser: false } });
    expect(magic.error).toMatchObject({ status: 429, code: "over_email_send_rate_limit" });
    expect(await mailsTo(user.email)).toHaveLength(1);
    await pastMailFrequency(user.email);
    expect((await browserLike().auth.resetPasswordForEmail(user.email)).error).toBeNull();
  });
});

describe("guessing e-mail codes (item 6)", () => {
  const wrongCodes = (right: string, n: number) =>
    Array.from({ length: n }, (_, i) => String((Number(right) + 1 + i * 7919) % 1_000_000).padStart(6, "0"));

  it("five wrong codes for a user spend the code they were guessing", async () => {
    const user = await confirmedUser();
    expect((await browserLike().auth.signInWithOtp({ email: user.email, options: { shouldCreateUser: false } })).error)
      .toBeNull();
    const right = codeIn((await mailTo(user.email, /Magic Link/)).text);
    for (const guess of wrongCodes(right, 5)) {
      expect((await browserLike().auth.verifyOtp({ email: user.email, token: guess, type: "email" })).error?.code)
        .toBe("otp_expired");
    }
    expect((await browserLike().auth.verifyOtp({ email: user.email, token: right, type: "email" })).error).toMatchObject({
      status: 403,
      code: "otp_expired",
    });
    // a new code starts afresh
    await pastMailFrequency(user.email);
    await browserLike().auth.signInWithOtp({ email: user.email, options: { shouldCreateUser: false } });
    const fresh = codeIn((await waitForMails(user.email, 2, /Magic Link/)).at(-1)!.text);
    expect((await browserLike().auth.verifyOtp({ email: user.email, token: fresh, type: "email" })).error).toBeNull();
  });

  it("a person who mistypes a few times still gets in", async () => {
    const user = await confirmedUser();
    await browserLike().auth.signInWithOtp({ email: user.email, options: { shouldCreateUser: false } });
    const right = codeIn((await mailTo(user.email, /Magic Link/)).text);
    for (const guess of wrongCodes(right, 4)) {
      await browserLike().auth.verifyOtp({ email: user.email, token: guess, type: "email" });
    }
    expect((await browserLike().auth.verifyOtp({ email: user.email, token: right, type: "email" })).error).toBeNull();
  });
});

describe("an invited address that signs up (item 7)", () => {
  it("keeps the password it signed up with once it confirms", async () => {
    const email = newEmail();
    expect((await service().auth.admin.inviteUserByEmail(email)).error).toBeNull();
    await pastMailFrequency(email);
    const signup = await browserLike().auth.signUp({ email, password: PASSWORD });
    expect(signup.error).toBeNull();
    await follow(linkIn((await mailTo(email, /Confirm Your Signup/)).text));
    expect(await canSignIn(email, PASSWORD)).toBe("ok");
    expect(signup.data.user?.identities ?? []).toEqual([]); // GoTrue hides an invited user's details
  });
});

describe("GoTrue's answers (item 8)", () => {
  it("a banned user's refresh answers user_banned, and GET /user 403 user_banned", async () => {
    const user = await confirmedUser();
    const { tab, session } = await signedIn(user.email);
    expect((await service().auth.admin.updateUserById(user.id, { ban_duration: "24h" })).error).toBeNull();
    expect((await tab.auth.refreshSession()).error).toMatchObject({ status: 400, code: "user_banned" });
    const me = await fetch(`${AUTH_URL}/auth/v1/user`, {
      headers: { apikey: secrets().publishableKey, authorization: `Bearer ${session.access_token}` },
    });
    expect([me.status, me.headers.get("x-sb-error-code") ?? (await me.json()).error_code]).toEqual([403, "user_banned"]);
    // the session outlived the ban (as GoTrue's do); auth-js keeps the refusal it got, so ask directly
    expect((await service().auth.admin.updateUserById(user.id, { ban_duration: "none" })).error).toBeNull();
    expect((await rawAuth("/token?grant_type=refresh_token", { refresh_token: session.refresh_token })).status).toBe(200);
  });

  it("GET /user with a token signed by another key answers 403 bad_jwt; without a token 401 no_authorization", async () => {
    const user = await confirmedUser();
    const claims = { sub: user.id, role: "authenticated", aud: "authenticated", session_id: crypto.randomUUID() };
    const { privateKey } = await generateKeyPair("ES256");
    const stranger = await new SignJWT(claims).setProtectedHeader({ alg: "ES256", kid: crypto.randomUUID() })
      .setExpirationTime("5m").sign(privateKey);
    const wrongSecret = await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setExpirationTime("5m")
      .sign(new TextEncoder().encode("not the project's secret, long enough"));
    for (const token of [stranger, wrongSecret]) {
      const res = await fetch(`${AUTH_URL}/auth/v1/user`, {
        headers: { apikey: secrets().publishableKey, authorization: `Bearer ${token}`, "x-supabase-api-version": "2024-01-01" },
      });
      expect([res.status, (await res.json()).code]).toEqual([403, "bad_jwt"]);
    }
    // (with the publishable key the gateway would send the anon role's token, which GoTrue answers 403 bad_jwt: no sub)
    const none = await fetch(`${AUTH_URL}/auth/v1/user`, {
      headers: { apikey: secrets().anonKey, "x-supabase-api-version": "2024-01-01" },
    });
    expect([none.status, (await none.json()).code]).toEqual([401, "no_authorization"]);
  });

  it("refuses passwords longer than 72 bytes (bcrypt reads no further) with 400 validation_failed", async () => {
    const long = "é".repeat(37); // 37 characters, 74 bytes
    const email = newEmail();
    expect((await browserLike().auth.signUp({ email, password: long })).error).toMatchObject({
      status: 400,
      code: "validation_failed",
    });
    expect(await admin`select 1 from auth.users where email = ${email}`).toEqual([]);
    const user = await confirmedUser();
    const { tab } = await signedIn(user.email);
    expect((await tab.auth.updateUser({ password: "x".repeat(73) })).error).toMatchObject({
      status: 400,
      code: "validation_failed",
    });
    expect((await service().auth.admin.createUser({ email: newEmail(), password: "y".repeat(73) })).error).toMatchObject({
      status: 400,
    });
    // 72 bytes is the most, and it works
    expect((await tab.auth.updateUser({ password: "z".repeat(72) })).error).toBeNull();
    expect(await canSignIn(user.email, "z".repeat(72))).toBe("ok");
  });
});
