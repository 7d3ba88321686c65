// Runs database work on behalf of a caller exactly as PostgREST does: inside one transaction,
// `set local role`, then request.jwt.claims and request.headers as transaction-local settings,
// so RLS policies and auth.uid()/auth.jwt() see the caller. Nothing queries tenant data as a
// superuser outside migrations and tests of the catalog.
import type postgres from "postgres";

export type DbRole = "anon" | "authenticated" | "service_role";

export interface RequestContext {
  role: DbRole;
  claims: Record<string, unknown>;
  headers?: { "x-forwarded-for"?: string; "user-agent"?: string; "x-request-id"?: string; [k: string]: string | undefined };
}

const ROLES: ReadonlySet<string> = new Set(["anon", "authenticated", "service_role"]);

export async function withRequestContext<T>(
  sql: postgres.Sql,
  ctx: RequestContext,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  // Only the three API roles, never caller text: anything else would run as that role.
  if (!ROLES.has(ctx.role)) throw new Error(`withRequestContext: role must be anon, authenticated or service_role`);
  return (await sql.begin(async (tx) => {
    // One statement (set_config('role', ..., true) is `set local role`, as PostgREST does it), not
    // awaited before fn's first query: postgres.js pipelines both on the transaction's connection,
    // in order, so the context costs no round trip of its own. execute() queues it now, so fn's
    // queries come after it even when fn awaits its first one at once; if it fails, so does the rest.
    const setup = tx`select set_config('role', ${ctx.role}, true),
                    set_config('request.jwt.claims', ${JSON.stringify({ ...ctx.claims, role: ctx.role })}, true),
                    set_config('request.headers', ${JSON.stringify(ctx.headers ?? {})}, true)`.execute();
    const [, result] = await Promise.all([setup, fn(tx)]);
    return result;
  })) as T;
}

/** The request context for a verified JWT's claims (role taken from the token, as PostgREST does). */
export function contextFromClaims(claims: Record<string, unknown>, headers?: RequestContext["headers"]): RequestContext {
  const role = String(claims.role ?? "anon");
  if (!ROLES.has(role)) throw new Error(`unexpected role claim ${role}`);
  return { role: role as DbRole, claims, headers };
}
