// The auth stand-in's everyday flows through supabase-js's auth client, as a browser app uses
// them: sessions in GoTrue's tables, refresh with rotation (lost replies, two tabs at once, reuse
// detection), sign-out scopes, sign-up with a mailed confirmation link, recovery, e-mail OTP,
// PKCE, updating the user, and the admin API (service only). Mails are read from the stack's sink.
import crypto from "node:crypto";
import http from "node:http";
import { createClient, type Session, type SupabaseClient } from "@supabase/supabase-js";
import { decodeJwt, SignJWT } from "jose";
import { afterAll, describe, expect, it } from "vitest";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { linkIn, MAIL_URL as MAIL, mailTo, waitForMails } from "../helpers/mail.ts";
import { adminSql, API_URL as STACK_API_URL, secrets } from "../helpers/stack.ts";

// AUTH_TEST_URL: another gateway over the same project and database (one of your own while the
// stack's runs older code); the stack's by default.
const API_URL = process.env.AUTH_TEST_URL ?? STACK_API_URL;

const admin = adminSql();
afterAll(() => admin.end());
const SITE = "http://127.0.0.1:54323"; // config.toml [auth] site_url: the reference console
const PASSWORD = "correct horse 42";

/** A client with its own in-memory session storage, like one browser tab (or one device). */
function browserLike(opts: { flowType?: "implicit" | "pkce"; storage?: Map<string, string> } = {}) {
  const store = opts.storage ?? new Map<string, string>();
  return createClient<Database>(API_URL, secrets().publishableKey, {
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
  createClient<Database>(API_URL, secrets().secretKey, { auth: { persistSession: false, autoRefreshToken: false } });

const newEmail = () => `flow-${crypto.randomUUID().slice(0, 8)}@test.local`;

const codeIn = (text: string) => /code: (\d{6})/.exec(text)![1];

/** Follows a mailed link as a browser would, up to the app's redirect. */
async function follow(link: string) {
  const res = await fetch(link, { redirect: "manual" });
  expect(res.status).toBe(303);
  return new URL(res.headers.get("location")!);
}

/** A confirmed user with a password, made through the admin API. */
async function confirmedUser() {
  const email = newEmail();
  const { data, error } = await service().auth.admin.createUser({ email, password: PASSWORD, email_confirm: true });
  expect(error).toBeNull();
  return { id: data.user!.id, email };
}

const refreshRaw = (refresh_token: string) =>
  fetch(`${API_URL}/auth/v1/token?grant_type=refresh_token`, {
    method: "POST",
    headers: { apikey: secrets().publishableKey, "content-type": "application/json" },
    body: JSON.stringify({ refresh_token }),
  });

describe("sessions", () => {
  it("a sign-in opens a session in auth.sessions, named by the token's session_id, with GoTrue's claims", async () => {
    const user = await confirmedUser();
    const { data, error } = await browserLike().auth.signInWithPassword({ email: user.email, password: PASSWORD });
    expect(error).toBeNull();
    const claims = decodeJwt(data.session!.access_token);
    expect(claims).toMatchObject({ sub: user.id, role: "authenticated", aal: "aal1", email: user.email, is_anonymous: false });
    expect(claims.amr).toEqual([{ method: "password", timestamp: expect.any(Number) }]);
    const [session] = await admin`select user_id from auth.sessions where id = ${claims.session_id as string}`;
    expect(session.user_id).toBe(user.id);
    const [token] = await admin`select revoked, parent from auth.refresh_tokens where token = ${data.session!.refresh_token}`;
    expect(token).toEqual({ revoked: false, parent: null });
  });

  it("refreshes with rotation: a new token naming its parent, the claims recomputed by the hook", async () => {
    const user = await confirmedUser();
    const tab = browserLike();
    const first = (await tab.auth.signInWithPassword({ email: user.email, password: PASSWORD })).data.session!;
    // the hook follows a changed role on refresh
    const [{ id: org }] = await admin`insert into public.organizations (name, slug) values ('Refresh', ${`refresh-${
      user.id.slice(0, 8)
    }`}) returning id`;
    await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${user.id}, 'teacher')`;
    await admin`insert into public.user_active_org (user_id, org_id) values (${user.id}, ${org})`;
    const { data, error } = await tab.auth.refreshSession();
    expect(error).toBeNull();
    expect(data.session!.refresh_token).not.toBe(first.refresh_token);
    expect(decodeJwt(data.session!.access_token)).toMatchObject({
      session_id: decodeJwt(first.access_token).session_id,
      org_id: org,
      org_role: "teacher",
    });
    const chain = await admin`select token, revoked, parent from auth.refresh_tokens where session_id = ${decodeJwt(
      first.access_token,
    ).session_id as string} order by id`;
    expect(chain).toEqual([
      { token: first.refresh_token, revoked: true, parent: null },
      { token: data.session!.refresh_token, revoked: false, parent: first.refresh_token },
    ]);
    await admin`update public.organizations set deleted_at = now() where id = ${org}`;
  });

  it("two tabs refreshing the same session at once end with one session and one active token", async () => {
    const user = await confirmedUser();
    const s = (await browserLike().auth.signInWithPassword({ email: user.email, password: PASSWORD })).data.session!;
    const answers = await Promise.all([refreshRaw(s.refresh_token), refreshRaw(s.refresh_token), refreshRaw(s.refresh_token)]);
    const bodies = await Promise.all(answers.map((a) => a.json()));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(new Set(bodies.map((b) => b.refresh_token)).size).toBe(1); // the later ones got the active token
    const sessionId = decodeJwt(s.access_token).session_id as string;
    const active = await admin`select token from auth.refresh_tokens where session_id = ${sessionId} and not revoked`;
    expect(active).toEqual([{ token: bodies[0].refresh_token }]);
    expect(await admin`select 1 from auth.sessions where user_id = ${user.id}`).toHaveLength(1);
  });

  it("reusing a spent refresh token after the reuse interval revokes the whole session", async () => {
    const user = await confirmedUser();
    const tab = browserLike();
    const first = (await tab.auth.signInWithPassword({ email: user.email, password: PASSWORD })).data.session!;
    const second = (await tab.auth.refreshSession()).data.session!;
    const third = (await tab.auth.refreshSession()).data.session!;
    // within the interval (10 s, config.toml) an old token is tolerated; let it pass
    await admin`update auth.refresh_tokens set updated_at = now() - interval '1 minute' where token = ${first.refresh_token}`;
    const reused = await refreshRaw(first.refresh_token);
    expect(reused.status).toBe(400);
    expect(await reused.json()).toMatchObject({ code: 400, error_code: "refresh_token_already_used" });
    // the family is gone: even the newest token and the access token's session
    expect((await refreshRaw(third.refresh_token)).status).toBe(400);
    expect((await tab.auth.getUser(second.access_token)).error?.name).toBe("AuthSessionMissingError");
  });

  it("keeps a client working across its access token's expiry by refreshing it", async () => {
    const user = await confirmedUser();
    const store = new Map<string, string>();
    const tab = browserLike({ storage: store });
    await tab.auth.signInWithPassword({ email: user.email, password: PASSWORD });
    // the token is past its expiry, as an hour later
    const key = [...store.keys()].find((k) => k.endsWith("-auth-token"))!;
    const stored = JSON.parse(store.get(key)!) as Session;
    store.set(key, JSON.stringify({ ...stored, expires_at: Math.floor(Date.now() / 1000) - 5 }));
    const { data, error } = await tab.auth.getSession();
    expect(error).toBeNull();
    // refreshed: a new refresh token and a live expiry (the access token itself can be byte-equal
    // to the old one when both are minted within the same second, as GoTrue's are)
    expect(data.session!.refresh_token).not.toBe(stored.refresh_token);
    expect(data.session!.expires_at!).toBeGreaterThan(Math.floor(Date.now() / 1000));
    expect((await tab.auth.getUser()).data.user?.id).toBe(user.id);
  });

  it("signs out locally, the other sessions, or everywhere; a signed-out session's token is refused", async () => {
    const user = await confirmedUser();
    const [a, b, c] = [browserLike(), browserLike(), browserLike()];
    const sa = (await a.auth.signInWithPassword({ email: user.email, password: PASSWORD })).data.session!;
    const sb = (await b.auth.signInWithPassword({ email: user.email, password: PASSWORD })).data.session!;
    const sc = (await c.auth.signInWithPassword({ email: user.email, password: PASSWORD })).data.session!;
    expect((await a.auth.signOut({ scope: "others" })).error).toBeNull();
    // auth-js turns GoTrue's 403 session_not_found into AuthSessionMissingError
    expect((await b.auth.getUser(sb.access_token)).error?.name).toBe("AuthSessionMissingError");
    expect((await c.auth.getUser(sc.access_token)).error?.name).toBe("AuthSessionMissingError");
    expect((await a.auth.getUser(sa.access_token)).data.user?.id).toBe(user.id);
    const d = browserLike();
    const sd = (await d.auth.signInWithPassword({ email: user.email, password: PASSWORD })).data.session!;
    expect((await a.auth.signOut({ scope: "local" })).error).toBeNull();
    expect((await d.auth.getUser(sd.access_token)).data.user?.id).toBe(user.id);
    expect((await d.auth.signOut()).error).toBeNull(); // global
    expect(await admin`select 1 from auth.sessions where user_id = ${user.id}`).toEqual([]);
    // GoTrue's audit trail has the account events
    const trail = await admin`select payload ->> 'action' as action, payload ->> 'log_type' as log_type
                              from auth.audit_log_entries where payload ->> 'actor_id' = ${user.id} order by created_at`;
    expect(trail.filter((e) => e.action === "login")).toHaveLength(4);
    expect(trail.filter((e) => e.action === "logout").map((e) => e.log_type)).toEqual(["account", "account", "account"]);
  });
});

describe("sign-up, confirmation and recovery", () => {
  it("signs up, mails a confirmation link that lands in the app signed in; unconfirmed sign-in is refused", async () => {
    const email = newEmail();
    const tab = browserLike();
    const { data, error } = await tab.auth.signUp({
      email,
      password: PASSWORD,
      options: { data: { name: "Ada" }, emailRedirectTo: `${SITE}/welcome` },
    });
    expect(error).toBeNull();
    expect(data.session).toBeNull();
    expect(data.user).toMatchObject({ email, user_metadata: { name: "Ada" } });
    expect((await tab.auth.signInWithPassword({ email, password: PASSWORD })).error).toMatchObject({
      code: "email_not_confirmed",
    });

    const mail = await mailTo(email, /Confirm Your Signup/);
    const landed = await follow(linkIn(mail.text));
    expect(`${landed.origin}${landed.pathname}`).toBe(`${SITE}/welcome`);
    const fragment = new URLSearchParams(landed.hash.slice(1));
    expect(fragment.get("type")).toBe("signup");
    expect(decodeJwt(fragment.get("access_token")!)).toMatchObject({ email, role: "authenticated" });
    const [u] = await admin`select email_confirmed_at is not null as confirmed from auth.users where email = ${email}`;
    expect(u.confirmed).toBe(true);
    expect((await browserLike().auth.signInWithPassword({ email, password: PASSWORD })).error).toBeNull();
    // the link is single-use
    const again = await follow(linkIn(mail.text));
    expect(new URLSearchParams(again.hash.slice(1)).get("error_code")).toBe("otp_expired");
  });

  it("refuses bad sign-ups with GoTrue's codes and writes nothing; an existing address learns nothing", async () => {
    const tab = browserLike();
    const weak = newEmail();
    expect((await tab.auth.signUp({ email: weak, password: "abc" })).error).toMatchObject({ status: 422, code: "weak_password" });
    expect(await admin`select 1 from auth.users where email = ${weak}`).toEqual([]);
    expect((await tab.auth.signUp({ email: "not-an-address", password: PASSWORD })).error).toMatchObject({
      status: 400,
      code: "validation_failed",
    });
    const taken = await confirmedUser();
    const dup = await tab.auth.signUp({ email: taken.email, password: PASSWORD });
    expect(dup.error).toBeNull(); // as for a new address
    expect(dup.data.user?.id).not.toBe(taken.id);
  });

  it("each sign-up of a pending address has its own mail: the owner's link confirms the owner's password, never a later one's", async () => {
    const email = newEmail();
    expect((await browserLike().auth.signUp({ email, password: PASSWORD })).error).toBeNull();
    // past config.toml's max_frequency (1 s) between two confirmation mails to one address
    await admin`update auth.users set confirmation_sent_at = now() - interval '1 minute' where email = ${email}`;
    expect((await browserLike().auth.signUp({ email, password: "the attacker's 99" })).error).toBeNull();
    const [owners, attackers] = await waitForMails(email, 2, /Confirm Your Signup/);
    await follow(linkIn(owners.text)); // the owner confirms with their own mail
    expect((await browserLike().auth.signInWithPassword({ email, password: "the attacker's 99" })).error).toMatchObject({
      code: "invalid_credentials",
    });
    expect((await browserLike().auth.signInWithPassword({ email, password: PASSWORD })).error).toBeNull();
    expect(new URLSearchParams((await follow(linkIn(attackers.text))).hash.slice(1)).get("error_code")).toBe("otp_expired");
  });

  it("recovers a password through the mailed link, then signs in with the new one; unknown addresses get the same answer", async () => {
    const user = await confirmedUser();
    const tab = browserLike();
    expect((await tab.auth.resetPasswordForEmail(user.email, { redirectTo: `${SITE}/reset` })).error).toBeNull();
    const landed = await follow(linkIn((await mailTo(user.email, /Reset Your Password/)).text));
    const fragment = new URLSearchParams(landed.hash.slice(1));
    expect(fragment.get("type")).toBe("recovery");
    const { error } = await tab.auth.setSession({
      access_token: fragment.get("access_token")!,
      refresh_token: fragment.get("refresh_token")!,
    });
    expect(error).toBeNull();
    expect((await tab.auth.updateUser({ password: PASSWORD })).error).toMatchObject({ code: "same_password" });
    expect((await tab.auth.updateUser({ password: "a brand new secret 7" })).error).toBeNull();
    expect((await browserLike().auth.signInWithPassword({ email: user.email, password: "a brand new secret 7" })).error)
      .toBeNull();
    expect((await browserLike().auth.signInWithPassword({ email: user.email, password: PASSWORD })).error).toMatchObject({
      code: "invalid_credentials",
    });

    const nobody = newEmail();
    expect(await tab.auth.resetPasswordForEmail(nobody)).toEqual({ data: {}, error: null });
  });

  it("sends a link to an address that is not allowed back to the site URL", async () => {
    const user = await confirmedUser();
    await browserLike().auth.resetPasswordForEmail(user.email, { redirectTo: "https://evil.example/steal" });
    const landed = await follow(linkIn((await mailTo(user.email, /Reset Your Password/)).text));
    expect(landed.origin).toBe(SITE);
  });
});

describe("one-time codes and PKCE", () => {
  it("signs in with an e-mail code once; the same code again is refused", async () => {
    const user = await confirmedUser();
    const tab = browserLike();
    expect((await tab.auth.signInWithOtp({ email: user.email, options: { shouldCreateUser: false } })).error).toBeNull();
    const code = codeIn((await mailTo(user.email, /Magic Link/)).text);
    const ok = await tab.auth.verifyOtp({ email: user.email, token: code, type: "email" });
    expect(ok.error).toBeNull();
    expect(decodeJwt(ok.data.session!.access_token).amr).toEqual([{ method: "otp", timestamp: expect.any(Number) }]);
    expect((await browserLike().auth.verifyOtp({ email: user.email, token: code, type: "email" })).error).toMatchObject({
      status: 403,
      code: "otp_expired",
    });
  });

  it("exchanges a PKCE code from the mailed link for a session, once, with the right verifier only", async () => {
    const user = await confirmedUser();
    const storage = new Map<string, string>();
    const tab = browserLike({ flowType: "pkce", storage });
    expect((await tab.auth.signInWithOtp({ email: user.email, options: { emailRedirectTo: `${SITE}/cb` } })).error).toBeNull();
    const verifier = JSON.parse([...storage].find(([k]) => k.endsWith("-code-verifier"))![1]) as string;
    const exchange = async (code_verifier: string) => {
      const res = await fetch(`${API_URL}/auth/v1/token?grant_type=pkce`, {
        method: "POST",
        headers: { apikey: secrets().publishableKey, "content-type": "application/json" },
        body: JSON.stringify({ auth_code: code, code_verifier }),
      });
      return [res.status, ((await res.json()) as { error_code?: string }).error_code];
    };
    const landed = await follow(linkIn((await mailTo(user.email, /Magic Link/)).text));
    const code = landed.searchParams.get("code")!;
    expect(code).toMatch(/^[0-9a-f-]{36}$/);
    expect(landed.hash).toBe(""); // no tokens in the URL
    // another device has no verifier (supabase-js would not even ask the server): a wrong one is refused
    expect(await exchange("x".repeat(43))).toEqual([400, "bad_code_verifier"]);
    const { data, error } = await tab.auth.exchangeCodeForSession(code);
    expect(error).toBeNull();
    expect(data.user?.id).toBe(user.id);
    // spent: the right verifier again is refused by the server (supabase-js has dropped it by now)
    expect(await exchange(verifier)).toEqual([404, "flow_state_not_found"]);
  });
});

describe("changes and limits", () => {
  it("changes the e-mail address once both addresses confirm it (double_confirm_changes)", async () => {
    const user = await confirmedUser();
    const tab = browserLike();
    await tab.auth.signInWithPassword({ email: user.email, password: PASSWORD });
    const next = newEmail();
    const asked = await tab.auth.updateUser({ email: next }, { emailRedirectTo: `${SITE}/changed` });
    expect(asked.error).toBeNull();
    expect(asked.data.user).toMatchObject({ email: user.email, new_email: next });
    const first = await follow(linkIn((await mailTo(next, /Confirm Email Change/)).text));
    expect(`${first.origin}${first.pathname}`).toBe(`${SITE}/changed`);
    expect(new URLSearchParams(first.hash.slice(1)).get("message")).toMatch(/Confirmation link accepted/);
    const landed = await follow(linkIn((await mailTo(user.email, /Confirm Email Change/)).text));
    expect(new URLSearchParams(landed.hash.slice(1)).get("type")).toBe("email_change");
    const [u] = await admin`select email from auth.users where id = ${user.id}`;
    expect(u.email).toBe(next);
    expect((await browserLike().auth.signInWithPassword({ email: next, password: PASSWORD })).error).toBeNull();
  });

  it("refuses an expired code with otp_expired", async () => {
    const user = await confirmedUser();
    await browserLike().auth.signInWithOtp({ email: user.email, options: { shouldCreateUser: false } });
    const code = codeIn((await mailTo(user.email, /Magic Link/)).text);
    await admin`update auth.users set recovery_sent_at = now() - interval '2 hours' where id = ${user.id}`;
    expect((await browserLike().auth.verifyOtp({ email: user.email, token: code, type: "email" })).error).toMatchObject({
      status: 403,
      code: "otp_expired",
    });
  });

  it("limits sign-ins per address as config.toml says, without touching other addresses", async () => {
    const { sign_in_sign_ups } = { sign_in_sign_ups: 300 }; // config.toml [auth.rate_limit]
    const fromElsewhere = () =>
      new Promise<number>((resolve, reject) => {
        const req = http.request(`${API_URL}/auth/v1/token?grant_type=password`, {
          method: "POST",
          localAddress: "127.0.0.5",
          headers: { apikey: secrets().publishableKey, "content-type": "application/json" },
        }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        });
        req.on("error", reject);
        req.end(JSON.stringify({ email: "nobody@test.local", password: "x" }));
      });
    const statuses: number[] = [];
    for (let i = 0; i <= sign_in_sign_ups; i++) statuses.push(await fromElsewhere());
    expect(statuses.at(-1)).toBe(429); // (an earlier run in the same 5 minutes may have used the window up)
    expect(statuses.filter((s) => s !== 400 && s !== 429)).toEqual([]);
    const user = await confirmedUser();
    expect((await browserLike().auth.signInWithPassword({ email: user.email, password: PASSWORD })).error).toBeNull();
  });
});

describe("organization invitations meet auth", () => {
  async function inviter() {
    const owner = await confirmedUser();
    const [{ id: org }] = await admin`insert into public.organizations (name, slug) values ('Invite School', ${`inv-${
      owner.id.slice(0, 8)
    }`}) returning id`;
    await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${owner.id}, 'owner')`;
    const tab = browserLike();
    await tab.auth.signInWithPassword({ email: owner.email, password: PASSWORD });
    return { org, tab };
  }
  /** The invitee's side: the mailed link, then the app's accept page. */
  async function accept(email: string, subject: RegExp, setPassword: boolean) {
    const landed = await follow(linkIn((await mailTo(email, subject)).text));
    expect(`${landed.origin}${landed.pathname}`).toBe(`${SITE}/accept-invitation`);
    const fragment = new URLSearchParams(landed.hash.slice(1));
    const tab = browserLike();
    expect(
      (await tab.auth.setSession({ access_token: fragment.get("access_token")!, refresh_token: fragment.get("refresh_token")! }))
        .error,
    )
      .toBeNull();
    if (setPassword) expect((await tab.auth.updateUser({ password: PASSWORD })).error).toBeNull();
    const accepted = await tab.rpc("accept_invitation", { token: landed.searchParams.get("token")! });
    expect(accepted.error).toBeNull();
    return accepted.data;
  }

  it("a person without an account gets one mail, sets a password and lands in the organization with the invited role", async () => {
    const { org, tab } = await inviter();
    const email = newEmail();
    const sent = await tab.functions.invoke("member-invite", { body: { org_id: org, email, role: "teacher" } });
    expect(sent.error).toBeNull();
    expect(sent.data).toMatchObject({ mail: "invite" });
    expect(await accept(email, /invites you as a teacher|You have been invited/, true)).toMatchObject({
      org_id: org,
      role: "teacher",
    });
    expect((await browserLike().auth.signInWithPassword({ email, password: PASSWORD })).error).toBeNull();
    const mails = (await (await fetch(`${MAIL}?to=${encodeURIComponent(email)}`)).json()) as unknown[];
    expect(mails).toHaveLength(1);
  });

  it("a person with an account gets a magic link to accept with; a member without members.invite cannot invite", async () => {
    const { org, tab } = await inviter();
    const existing = await confirmedUser();
    const sent = await tab.functions.invoke("member-invite", { body: { org_id: org, email: existing.email, role: "student" } });
    expect(sent.data).toMatchObject({ mail: "magiclink" });
    expect(await accept(existing.email, /invites you as a student|Magic Link/, false)).toMatchObject({
      org_id: org,
      role: "student",
    });

    // another organization's owner, anon, and a forged token cannot invite into it; nothing is made or mailed
    const other = await inviter();
    const target = newEmail();
    const foreign = await other.tab.functions.invoke("member-invite", { body: { org_id: org, email: target, role: "admin" } });
    expect((foreign.error as { context?: Response }).context?.status).toBe(403);
    const anonCall = await fetch(`${API_URL}/functions/v1/member-invite`, {
      method: "POST",
      headers: { apikey: secrets().publishableKey, "content-type": "application/json" },
      body: JSON.stringify({ org_id: org, email: target, role: "admin" }),
    });
    expect(anonCall.status).toBe(401);
    const forged = await fetch(`${API_URL}/functions/v1/member-invite`, {
      method: "POST",
      headers: {
        apikey: secrets().publishableKey,
        authorization: `Bearer ${await new SignJWT({ sub: existing.id, role: "authenticated" }).setProtectedHeader({
          alg: "HS256",
        })
          .setExpirationTime("5m").sign(new TextEncoder().encode("x".repeat(40)))}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ org_id: org, email: target, role: "admin" }),
    });
    expect(forged.status).toBe(401);
    expect(await admin`select 1 from public.invitations where email = ${target}`).toEqual([]);
    expect(await (await fetch(`${MAIL}?to=${encodeURIComponent(target)}`)).json()).toEqual([]);

    const student = browserLike();
    await student.auth.signInWithPassword({ email: existing.email, password: PASSWORD });
    const refused = await student.functions.invoke("member-invite", {
      body: { org_id: org, email: newEmail(), role: "student" },
    });
    expect((refused.error as { context?: Response }).context?.status).toBe(403);
  });
});

describe("the admin API", () => {
  it("creates, lists, gets, bans, updates and deletes users with the secret key", async () => {
    const svc = service().auth.admin;
    const email = newEmail();
    const created = await svc.createUser({ email, password: PASSWORD, email_confirm: true, user_metadata: { k: 1 } });
    expect(created.error).toBeNull();
    const id = created.data.user!.id;
    expect((await svc.getUserById(id)).data.user).toMatchObject({ email, user_metadata: { k: 1 } });
    const listed = await svc.listUsers({ page: 1, perPage: 1000 });
    expect(listed.data.users.some((u) => u.id === id)).toBe(true);

    expect((await svc.updateUserById(id, { ban_duration: "24h" })).error).toBeNull();
    expect((await browserLike().auth.signInWithPassword({ email, password: PASSWORD })).error).toMatchObject({
      code: "user_banned",
    });
    expect((await svc.updateUserById(id, { ban_duration: "none", user_metadata: { k: 2 } })).data.user?.user_metadata)
      .toMatchObject({ k: 2 });
    expect((await browserLike().auth.signInWithPassword({ email, password: PASSWORD })).error).toBeNull();

    expect((await svc.deleteUser(id)).error).toBeNull();
    expect(await admin`select 1 from auth.users where id = ${id}`).toEqual([]);
  });

  it("invites by e-mail and generates links; the invitee sets a password from the invitation", async () => {
    const svc = service().auth.admin;
    const email = newEmail();
    expect((await svc.inviteUserByEmail(email, { redirectTo: `${SITE}/join` })).error).toBeNull();
    const landed = await follow(linkIn((await mailTo(email, /You have been invited/)).text));
    const fragment = new URLSearchParams(landed.hash.slice(1));
    expect(fragment.get("type")).toBe("invite");
    const tab = browserLike();
    await tab.auth.setSession({ access_token: fragment.get("access_token")!, refresh_token: fragment.get("refresh_token")! });
    expect((await tab.auth.updateUser({ password: PASSWORD })).error).toBeNull();
    expect((await browserLike().auth.signInWithPassword({ email, password: PASSWORD })).error).toBeNull();

    const link = await svc.generateLink({ type: "magiclink", email });
    expect(link.error).toBeNull();
    expect(link.data.properties).toMatchObject({ verification_type: "magiclink", email_otp: expect.stringMatching(/^\d{6}$/) });
    expect((await follow(link.data.properties!.action_link)).hash).toContain("access_token=");
  });

  it("deletes a user who founded a school: the school stays, no longer naming its founder, while it keeps an owner", async () => {
    const [founder, coOwner] = [await confirmedUser(), await confirmedUser()];
    const tab: SupabaseClient<Database> = browserLike();
    expect((await tab.auth.signInWithPassword({ email: founder.email, password: PASSWORD })).error).toBeNull();
    const slug = `founded-${crypto.randomUUID().slice(0, 8)}`;
    const created = await tab.rpc("create_organization", { name: "Founded School", slug });
    expect(created.error).toBeNull();
    const [org] = await admin`select id, created_by from public.organizations where slug = ${slug}`;
    expect(org.created_by).toBe(founder.id);
    const svc = service().auth.admin;
    // its only owner cannot go: the school would have nobody to run it
    expect((await svc.deleteUser(founder.id)).error).toMatchObject({ status: 500, message: "Database error deleting user" });
    expect((await svc.getUserById(founder.id)).data.user?.id).toBe(founder.id);
    await admin`insert into public.organization_members (org_id, user_id, role) values (${org.id}, ${coOwner.id}, 'owner')`;
    const [{ updated_at }] = await admin`select updated_at from public.organizations where id = ${org.id}`;
    expect((await svc.deleteUser(founder.id)).error).toBeNull();
    const [after] = await admin`select o.created_by, o.updated_at,
                                       array(select m.user_id from public.organization_members m where m.org_id = o.id) as members
                                from public.organizations o where o.id = ${org.id}`;
    // the stamp is cleared, and that is not an edit of the school
    expect(after).toEqual({ created_by: null, updated_at, members: [coOwner.id] });
    await admin`delete from public.organizations where id = ${org.id}`;
  });

  it("answers bad admin input with GoTrue's codes, not a 500", async () => {
    const svc = service().auth.admin;
    // auth-js checks ids itself; a raw caller reaches the route
    const junk = await fetch(`${API_URL}/auth/v1/admin/users/${"-".repeat(36)}`, { headers: { apikey: secrets().secretKey } });
    expect(junk.status).toBe(404);
    const [a, b] = [await confirmedUser(), await confirmedUser()];
    expect((await svc.updateUserById(a.id, { email: b.email })).error).toMatchObject({ status: 422, code: "email_exists" });
    const [row] = await admin`select email from auth.users where id = ${a.id}`;
    expect(row.email).toBe(a.email);
  });

  it("is refused to the publishable key and to a user's token", async () => {
    const user = await confirmedUser();
    const tab: SupabaseClient<Database> = browserLike();
    expect((await tab.auth.admin.listUsers()).error).toMatchObject({ status: 403, code: "not_admin" });
    const session = (await tab.auth.signInWithPassword({ email: user.email, password: PASSWORD })).data.session!;
    const asUser = createClient(API_URL, secrets().publishableKey, {
      auth: { persistSession: false },
      global: { headers: { Authorization: `Bearer ${session.access_token}` } },
    });
    expect((await asUser.auth.admin.createUser({ email: newEmail(), password: PASSWORD })).error).toMatchObject({ status: 403 });
    expect((await asUser.auth.admin.deleteUser(user.id)).error).toMatchObject({ status: 403 });
    expect(await admin`select 1 from auth.users where id = ${user.id}`).toHaveLength(1);
  });
});
