// The request context, as PostgREST sets it for every request: `set local role` to the caller's
// API role, then the caller's claims and request headers as transaction-local settings, so RLS
// policies and auth.uid()/auth.jwt() see the caller. This module states the statement once; it
// imports nothing, so Deno and Node run it alike: the functions' withRequestContext (db.ts,
// postgres.js) and the worker's tenantStatement (worker/src/tenant-statement.ts, node-postgres)
// both send REQUEST_CONTEXT_SQL with requestContextValues' parameters.

export type DbRole = "anon" | "authenticated" | "service_role";

export interface RequestContext {
  role: DbRole;
  claims: Record<string, unknown>;
  headers?: { "x-forwarded-for"?: string; "user-agent"?: string; "x-request-id"?: string; [k: string]: string | undefined };
}

const ROLES: ReadonlySet<string> = new Set(["anon", "authenticated", "service_role"]);

/** One statement; set_config('role', ..., true) is `set local role`, as PostgREST does it. */
export const REQUEST_CONTEXT_SQL = "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true), " +
  "set_config('request.headers', $3, true)";

/** REQUEST_CONTEXT_SQL's parameters: role, claims and headers (JSON), as set_config takes them. */
export function requestContextValues(ctx: RequestContext): [role: DbRole, claims: string, headers: string] {
  // Only the three API roles, never caller text: anything else would run as that role.
  if (!ROLES.has(ctx.role)) throw new Error(`request context: role must be anon, authenticated or service_role`);
  return [ctx.role, JSON.stringify({ ...ctx.claims, role: ctx.role }), JSON.stringify(ctx.headers ?? {})];
}

/** The request context for a verified JWT's claims (role taken from the token, as PostgREST does). */
export function contextFromClaims(claims: Record<string, unknown>, headers?: RequestContext["headers"]): RequestContext {
  const role = String(claims.role ?? "anon");
  if (!ROLES.has(role)) throw new Error(`unexpected role claim ${role}`);
  return { role: role as DbRole, claims, headers };
}
