// The functions' database connections, and database work on behalf of a caller exactly as
// PostgREST does it: inside one transaction, the request context (request-context.ts) first, so
// RLS policies and auth.uid()/auth.jwt() see the caller. (One hot statement takes its context in
// SQL instead, in one round trip: app.insert_analytics_events, docs/architecture.md.) Nothing
// queries tenant data as a superuser outside migrations and tests of the catalog.
import postgres from "postgres";
import { type ApiKeyCaller, auditHeaders, type UserCaller } from "./auth.ts";
import { readEnv } from "./env.ts";
import { REQUEST_CONTEXT_SQL, type RequestContext, requestContextValues } from "./request-context.ts";

/** Supavisor's transaction mode on hosted projects (its session mode is 5432). */
const SUPAVISOR_TRANSACTION_PORT = "6543";

/**
 * Whether a database URL leads through a transaction-mode pooler, and the URL to connect with.
 * Such a pooler gives each transaction whichever server connection is free and keeps no prepared
 * statement between them, so a client must not prepare any (postgres.js: `prepare: false`). The URL
 * says so with `pgbouncer=true` (what Supabase's guide has Prisma users add to transaction-pooler
 * strings; the local stack's pooler URL carries it), taken off here because Postgres and PgBouncer refuse it as
 * a startup parameter; or by Supavisor's transaction port, 6543, when the URL is the platform's.
 */
export function transactionPooled(databaseUrl: string): { url: string; pooled: boolean } {
  const url = new URL(databaseUrl);
  const marker = url.searchParams.get("pgbouncer");
  url.searchParams.delete("pgbouncer");
  const pooled = marker === "true" || (marker === null && url.port === SUPAVISOR_TRANSACTION_PORT);
  return { url: marker === null ? databaseUrl : url.toString(), pooled };
}

/**
 * The database URL a function connects with: DB_POOLER_URL when set, else SUPABASE_DB_URL. Hosted
 * projects hand every function SUPABASE_DB_URL themselves (documented as the direct connection)
 * and refuse secrets named SUPABASE_*, so the transaction pooler's URL comes as a secret of its own.
 */
export function functionsDatabaseUrl(supabaseDbUrl: string): string {
  return readEnv("DB_POOLER_URL") || supabaseDbUrl;
}

type ClientOptions = NonNullable<Parameters<typeof postgres>[1]>;

/** A postgres.js client for SUPABASE_DB_URL (or any database URL): without prepared statements through a transaction pooler. */
export function connectDatabase(databaseUrl: string, options: ClientOptions = {}): postgres.Sql {
  const { url, pooled } = transactionPooled(databaseUrl);
  return postgres(url, pooled ? { ...options, prepare: false } : options);
}

export async function withRequestContext<T>(
  sql: postgres.Sql,
  ctx: RequestContext,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  const values = requestContextValues(ctx);
  return (await sql.begin(async (tx) => {
    // Not awaited before fn's first query: postgres.js pipelines both on the transaction's
    // connection, in order, so the context costs no round trip of its own. execute() queues it
    // now, so fn's queries come after it even when fn awaits its first one at once; if it fails,
    // so does the rest. Prepared like a tagged query (unless the client prepares none).
    const setup = tx.unsafe(REQUEST_CONTEXT_SQL, values, { prepare: true }).execute();
    const [, result] = await Promise.all([setup, fn(tx)]);
    return result;
  })) as T;
}

/** Service work (webhooks, schedules, jobs over every organization): service_role, with the
 * correlation id as x-request-id so the audit log ties changes to what caused them. */
export function asService<T>(
  sql: postgres.Sql,
  correlationId: string,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
  userAgent?: string,
): Promise<T> {
  const headers = userAgent ? { "x-request-id": correlationId, "user-agent": userAgent } : { "x-request-id": correlationId };
  return withRequestContext(sql, { role: "service_role", claims: { role: "service_role" }, headers }, fn);
}

/** A signed-in user's request: `authenticated` with the token's claims and the request's origin. */
export function asUser<T>(
  sql: postgres.Sql,
  caller: UserCaller,
  req: Request,
  requestId: string,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  return withRequestContext(sql, { role: "authenticated", claims: caller.claims, headers: auditHeaders(req, requestId) }, fn);
}

/**
 * A request made with an API key: `authenticated` with the key's id and no `sub`, so the policy
 * helpers answer from the key's live scopes and the audit log records the key as the actor.
 */
export function apiKeyContext(caller: ApiKeyCaller, req: Request, requestId: string): RequestContext {
  return { role: "authenticated", claims: { api_key_id: caller.apiKeyId }, headers: auditHeaders(req, requestId) };
}

/** A member's or an API key's request, each in its own request context. */
export function asCaller<T>(
  sql: postgres.Sql,
  caller: UserCaller | ApiKeyCaller,
  req: Request,
  requestId: string,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  return caller.kind === "user"
    ? asUser(sql, caller, req, requestId, fn)
    : withRequestContext(sql, apiKeyContext(caller, req, requestId), fn);
}
