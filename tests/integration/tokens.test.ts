// Users' access tokens made the way GoTrue makes them, accepted by the gateway and usable as the
// request context in Postgres.
import { afterAll, describe, expect, it } from "vitest";
import { withRequestContext } from "../../supabase/functions/_shared/db.ts";
import { contextFromClaims } from "../../supabase/functions/_shared/request-context.ts";
import { adminSql, createUser, tokenFor, verifiedClaims } from "../helpers/stack.ts";

const sql = adminSql();
afterAll(() => sql.end());

describe("access tokens", () => {
  it("carry GoTrue's standard claims, signed with the project's signing key", async () => {
    const user = await createUser(sql);
    const { token } = await tokenFor(sql, user.id, 600);
    const payload = await verifiedClaims(token) as { exp: number; iat: number; session_id: string };
    expect(payload).toMatchObject({
      sub: user.id,
      email: user.email,
      role: "authenticated",
      aud: "authenticated",
      aal: "aal1",
      is_anonymous: false,
    });
    expect(payload.exp! - payload.iat!).toBe(600);
    expect(payload.session_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("drive auth.uid() in the request context", async () => {
    const user = await createUser(sql);
    const { claims } = await tokenFor(sql, user.id);
    const [row] = await withRequestContext(
      sql,
      contextFromClaims(claims, { "x-request-id": "r1" }),
      (tx) =>
        tx`select auth.uid() as uid, current_user as role, current_setting('request.headers', true)::jsonb ->> 'x-request-id' as rid`,
    );
    expect(row).toEqual({ uid: user.id, role: "authenticated", rid: "r1" });
  });

  it("are refused for an unknown or deleted user", async () => {
    await expect(tokenFor(sql, crypto.randomUUID())).rejects.toMatchObject({ code: "user_not_found" });
    const user = await createUser(sql);
    await sql`update auth.users set deleted_at = now() where id = ${user.id}`;
    await expect(tokenFor(sql, user.id)).rejects.toMatchObject({ code: "user_not_found" });
  });

  it("apply the context before the first query of a handler that awaits it at once", async () => {
    const user = await createUser(sql);
    const { claims } = await tokenFor(sql, user.id);
    const seen = await withRequestContext(sql, contextFromClaims(claims), async (tx) => {
      const [first] = await tx`select current_user as role, auth.uid() as uid`;
      return first;
    });
    expect(seen).toEqual({ role: "authenticated", uid: user.id });
  });

  it("refuse to run a request context with a role outside the three API roles", async () => {
    await expect(withRequestContext(sql, { role: "postgres" as never, claims: {} }, (tx) => tx`select 1`)).rejects.toThrow(
      /role must be/,
    );
  });
});
