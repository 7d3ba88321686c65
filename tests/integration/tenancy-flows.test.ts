// The tenancy flows the way an API request reaches Postgres: a GoTrue-shaped access token made
// through the custom access token hook, verified, then used as the request context on a
// connection as `authenticator` (never a superuser): create an organization, invite, accept,
// switch organization, revoke; plus API keys and the audit trail those steps leave.
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withRequestContext } from "../../supabase/functions/_shared/db.ts";
import { contextFromClaims, type RequestContext } from "../../supabase/functions/_shared/request-context.ts";
import { adminSql, apiSql, createUser, tokenFor, verifiedClaims } from "../helpers/stack.ts";

const admin = adminSql();
const api = apiSql();
afterAll(async () => {
  await api.end();
  await admin.end();
});

const run = crypto.randomUUID().slice(0, 8);
type User = { id: string; email: string };
let owner: User, invitee: User, stranger: User;

beforeAll(async () => {
  owner = await createUser(admin, `owner-${run}@flows.test`);
  invitee = await createUser(admin, `invitee-${run}@flows.test`);
  stranger = await createUser(admin, `stranger-${run}@flows.test`);
});

/** A fresh access token for the user, verified as the API gateway verifies it. */
async function claimsOf(user: User) {
  const { token } = await tokenFor(admin, user.id);
  return await verifiedClaims(token);
}

const headers = (requestId: string) => ({
  "x-forwarded-for": "192.0.2.10",
  "user-agent": "flows-test",
  "x-request-id": requestId,
});

async function as<T>(user: User, fn: (tx: postgres.TransactionSql) => Promise<T>, requestId = crypto.randomUUID()) {
  return withRequestContext(api, contextFromClaims(await claimsOf(user), headers(requestId)), fn);
}

/** Runs fn and returns the SQLSTATE it fails with. */
async function sqlstate(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code;
  }
  throw new Error("expected the statement to fail");
}

describe("tenancy flows", () => {
  let orgA: string, orgB: string, inviteToken: string;

  it("a new user's token has null organization claims", async () => {
    expect(await claimsOf(owner)).toMatchObject({ org_id: null, org_role: null, permissions: null });
  });

  it("creates an organization, which the owner's next token names", async () => {
    const [org] = await as(owner, (tx) => tx`select * from public.create_organization(${"Flows School"}, ${`flows-${run}`})`);
    orgA = org.id;
    expect(org).toMatchObject({ slug: `flows-${run}`, tier: "free", created_by: owner.id });
    const claims = await claimsOf(owner);
    expect(claims).toMatchObject({ org_id: orgA, org_role: "owner" });
    expect(claims.permissions).toContain("members.invite");
  });

  it("invites by e-mail and shows the token once", async () => {
    const [inv] = await as(
      owner,
      (tx) => tx`select * from public.create_invitation(${orgA}, ${invitee.email.toUpperCase()}, 'teacher')`,
    );
    inviteToken = inv.token;
    expect(inviteToken).toMatch(/^inv_[A-Za-z0-9_-]{32}$/);
    const listed = await as(owner, (tx) => tx`select email, role from public.invitations where org_id = ${orgA}`);
    expect(listed).toEqual([{ email: invitee.email, role: "teacher" }]);
    const [stored] = await admin`select encode(token_hash, 'hex') as h from public.invitations where org_id = ${orgA}`;
    expect(stored.h).not.toContain(inviteToken);
  });

  it("refuses the invitation to anyone but the invitee", async () => {
    expect(await sqlstate(as(stranger, (tx) => tx`select public.accept_invitation(${inviteToken})`))).toBe("TN014");
  });

  it("accepts: the invitee joins with the invited role and their next token carries it", async () => {
    const [member] = await as(invitee, (tx) => tx`select * from public.accept_invitation(${inviteToken})`);
    expect(member).toMatchObject({ org_id: orgA, user_id: invitee.id, role: "teacher" });
    expect(await claimsOf(invitee)).toMatchObject({ org_id: orgA, org_role: "teacher" });
    expect(await sqlstate(as(invitee, (tx) => tx`select public.accept_invitation(${inviteToken})`))).toBe("TN012");
  });

  it("switches the active organization", async () => {
    const [org] = await as(invitee, (tx) => tx`select * from public.create_organization(${"Invitee's Club"}, ${`club-${run}`})`);
    orgB = org.id;
    expect((await claimsOf(invitee)).org_id).toBe(orgA); // creating another keeps the chosen one
    await as(invitee, (tx) => tx`select public.set_active_organization(${orgB})`);
    expect(await claimsOf(invitee)).toMatchObject({ org_id: orgB, org_role: "owner" });
    expect(await sqlstate(as(owner, (tx) => tx`select public.set_active_organization(${orgB})`))).toBe("TN003");
  });

  it("revokes an invitation so it cannot be accepted", async () => {
    const [inv] = await as(owner, (tx) => tx`select * from public.create_invitation(${orgA}, ${stranger.email}, 'student')`);
    await as(owner, (tx) => tx`select public.revoke_invitation(${inv.invitation_id})`);
    expect(await sqlstate(as(stranger, (tx) => tx`select public.accept_invitation(${inv.token})`))).toBe("TN013");
  });

  it("revokes a membership: the old token still names the organization but sees nothing of it", async () => {
    const stale = await claimsOf(invitee);
    await as(invitee, (tx) => tx`select public.set_active_organization(${orgA})`);
    const tokenBefore = await claimsOf(invitee);
    expect(tokenBefore.org_id).toBe(orgA);
    const removed = await as(
      owner,
      (tx) => tx`delete from public.organization_members where org_id = ${orgA} and user_id = ${invitee.id} returning 1`,
    );
    expect(removed).toHaveLength(1);
    const ctx: RequestContext = contextFromClaims(tokenBefore, headers("stale"));
    const seen = await withRequestContext(api, ctx, (tx) => tx`select id from public.organizations where id = ${orgA}`);
    expect(seen).toEqual([]);
    expect(stale.org_id).toBe(orgB);
    expect(await claimsOf(invitee)).toMatchObject({ org_id: orgB }); // the next token falls back to what is left
  });

  it("issues an API key that the service verifies and that acts within its scopes", async () => {
    const [key] = await as(
      owner,
      (tx) => tx`select * from public.create_api_key(${orgA}, 'SIS import', ${["org.read", "audit.read"]})`,
    );
    expect(key.api_key).toMatch(/^sk_/);
    const service: RequestContext = { role: "service_role", claims: { role: "service_role" } };
    const [verified] = await withRequestContext(
      api,
      service,
      (tx) => tx`select * from public.verify_api_key(${key.api_key}, 'org.read')`,
    );
    expect(verified).toMatchObject({ api_key_id: key.api_key_id, org_id: orgA, scopes: ["audit.read", "org.read"] });
    const keyContext: RequestContext = { role: "authenticated", claims: { api_key_id: verified.api_key_id } };
    const orgs = await withRequestContext(api, keyContext, (tx) => tx`select id from public.organizations`);
    expect(orgs).toEqual([{ id: orgA }]);
    await as(owner, (tx) => tx`select public.revoke_api_key(${key.api_key_id})`);
    expect(await sqlstate(withRequestContext(api, service, (tx) => tx`select * from public.verify_api_key(${key.api_key})`)))
      .toBe("TN021");
    expect(await withRequestContext(api, keyContext, (tx) => tx`select id from public.organizations`)).toEqual([]);
  });

  it("leaves an audit trail the owner can read, with actor, origin and request id", async () => {
    const trail = await as(owner, (tx) =>
      tx`
      select table_name, action, actor_user_id, host(ip) as ip, user_agent, request_id
      from audit.log where org_id = ${orgA} order by id`);
    const tables = trail.map((r) => `${r.action} ${r.table_name}`);
    expect(tables).toEqual(expect.arrayContaining([
      "INSERT public.organizations",
      "INSERT public.organization_members",
      "INSERT public.invitations",
      "UPDATE public.invitations",
      "DELETE public.organization_members",
      "INSERT public.api_keys",
      "UPDATE public.api_keys",
    ]));
    const removal = trail.find((r) => r.action === "DELETE" && r.table_name === "public.organization_members");
    expect(removal).toMatchObject({ actor_user_id: owner.id, ip: "192.0.2.10", user_agent: "flows-test" });
    expect(removal!.request_id).toMatch(/^[0-9a-f-]{36}$/);
    // the invitee, no longer a member, reads none of it
    expect(await as(invitee, (tx) => tx`select 1 from audit.log where org_id = ${orgA}`)).toEqual([]);
  });

  it("cannot be reached as authenticator itself", async () => {
    expect(await sqlstate(api`select id from public.organizations limit 1`)).toBe("42501");
    expect(await sqlstate(api`select * from audit.log limit 1`)).toBe("42501");
  });
});
