// Password sign-in through supabase-js against the local auth stand-in: the access token carries
// the custom access token hook's claims, and the password verification attempt hook locks an
// account after repeated failures, then lets it in again once the lockout ends.
import http from "node:http";
import { createClient } from "@supabase/supabase-js";
import type { Database } from "../../supabase/functions/_shared/database.types.ts";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminSql, API_URL as STACK_API_URL, createUser, secrets } from "../helpers/stack.ts";

// AUTH_TEST_URL: another gateway over the same project and database; the stack's by default.
const API_URL = process.env.AUTH_TEST_URL ?? STACK_API_URL;

const admin = adminSql();
const client = () =>
  createClient<Database>(API_URL, secrets().anonKey, { auth: { persistSession: false, autoRefreshToken: false } });
let policyBefore: { max_failures: number; failure_window: string; lockout: string };

beforeAll(async () => {
  [policyBefore] = await admin`select max_failures, failure_window::text, lockout::text from app.password_lockout_policy`;
  await admin`update app.password_lockout_policy set max_failures = 3`;
});
afterAll(async () => {
  await admin`update app.password_lockout_policy set max_failures = ${policyBefore.max_failures},
              failure_window = ${policyBefore.failure_window}::interval, lockout = ${policyBefore.lockout}::interval`;
  await admin.end();
});

async function userWithPassword(password: string) {
  const user = await createUser(admin);
  await admin`update auth.users set encrypted_password = extensions.crypt(${password}, extensions.gen_salt('bf', 4)) where id = ${user.id}`;
  return user;
}

describe("password sign-in (supabase-js)", () => {
  it("signs in and returns a session whose token carries the organization claims", async () => {
    const user = await userWithPassword("right horse battery");
    const [org] = await admin`insert into public.organizations (name, slug) values ('Sign-in School', ${`signin-${
      user.id.slice(0, 8)
    }`}) returning id`;
    await admin`insert into public.organization_members (org_id, user_id, role) values (${org.id}, ${user.id}, 'teacher')`;
    const supabase = client();
    const { data, error } = await supabase.auth.signInWithPassword({ email: user.email, password: "right horse battery" });
    expect(error).toBeNull();
    expect(data.user?.id).toBe(user.id);
    expect(decodeJwt(data.session!.access_token)).toMatchObject({
      sub: user.id,
      org_id: org.id,
      org_role: "teacher",
      role: "authenticated",
    });
    const me = await supabase.auth.getUser(data.session!.access_token);
    expect(me.data.user?.email).toBe(user.email);
  });

  it("answers a wrong password with GoTrue's invalid_credentials error", async () => {
    const user = await userWithPassword("right horse battery");
    const { data, error } = await client().auth.signInWithPassword({ email: user.email, password: "wrong" });
    expect(data.session).toBeNull();
    expect(error).toMatchObject({ status: 400, code: "invalid_credentials", message: "Invalid login credentials" });
    const unknown = await client().auth.signInWithPassword({ email: `nobody-${user.id}@test.local`, password: "x" });
    expect(unknown.error).toMatchObject({ status: 400, code: "invalid_credentials" });
  });

  it("locks the account after repeated failures, even for the right password, until the lockout ends", async () => {
    const user = await userWithPassword("right horse battery");
    for (let i = 0; i < 2; i++) {
      expect((await client().auth.signInWithPassword({ email: user.email, password: `guess-${i}` })).error?.message).toBe(
        "Invalid login credentials",
      );
    }
    const third = await client().auth.signInWithPassword({ email: user.email, password: "guess-2" });
    expect(third.error?.message).toBe("Invalid login credentials");
    const right = await client().auth.signInWithPassword({ email: user.email, password: "right horse battery" });
    expect(right.error).toMatchObject({ status: 400, code: "invalid_credentials", message: "Invalid login credentials" });
    expect(right.data.session).toBeNull();

    await admin`update app.password_failures set locked_until = now() - interval '1 second' where user_id = ${user.id}`;
    const after = await client().auth.signInWithPassword({ email: user.email, password: "right horse battery" });
    expect(after.error).toBeNull();
    expect(after.data.session?.access_token).toBeTruthy();
  });

  it("locks an account only for the address that failed, and answers a lock as it answers an unknown address", async () => {
    const user = await userWithPassword("right horse battery");
    // the attacker signs in from another loopback address (127.0.0.2): another source to the gateway
    const fromAttacker = (email: string, password: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(`${API_URL}/auth/v1/token?grant_type=password`, {
          method: "POST",
          localAddress: "127.0.0.2",
          headers: { apikey: secrets().anonKey, "content-type": "application/json" },
        }, (res) => {
          let body = "";
          res.on("data", (c) => (body += c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on("error", reject);
        req.end(JSON.stringify({ email, password }));
      });
    for (let i = 0; i < 5; i++) await fromAttacker(user.email, `guess-${i}`); // this file's policy locks at 3
    const locked = await fromAttacker(user.email, "right horse battery");
    const unknown = await fromAttacker(`nobody-${user.id}@test.local`, "right horse battery");
    expect(locked.status).toBe(400);
    expect([locked.status, JSON.parse(locked.body)]).toEqual([unknown.status, JSON.parse(unknown.body)]);
    // the owner, from their own address, is not locked out
    const owner = await client().auth.signInWithPassword({ email: user.email, password: "right horse battery" });
    expect(owner.error).toBeNull();
    expect(owner.data.session?.access_token).toBeTruthy();
  });

  it("refuses calls without the project's API key, and bad bodies with a stable code", async () => {
    const noKey = await fetch(`${API_URL}/auth/v1/token?grant_type=password`, { method: "POST", body: "{}" });
    expect(noKey.status).toBe(401);
    const bad = await fetch(`${API_URL}/auth/v1/token?grant_type=password`, {
      method: "POST",
      headers: { apikey: secrets().anonKey, "content-type": "application/json" },
      body: '{"email":"not-an-email"}',
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ error_code: "validation_failed" });
  });
});
