// Runs database work on behalf of a caller exactly as PostgREST does: inside one transaction,
// `set local role`, then request.jwt.claims and request.headers as transaction-local settings,
// so RLS policies and auth.uid()/auth.jwt() see the caller. Nothing queries tenant data as a
// superuser outside migrations and tests of the catalog.
import postgres from "postgres";
import { type ApiKeyCaller, type ApiKeyVerifier, auditHeaders, type UserCaller } from "./auth.ts";
import { readEnv } from "./env.ts";
import { HttpError } from "./errors.ts";

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
  const [role, claims, headers] = contextSettings(ctx);
  return (await sql.begin(async (tx) => {
    // One statement (set_config('role', ..., true) is `set local role`, as PostgREST does it), not
    // awaited before fn's first query: postgres.js pipelines both on the transaction's connection,
    // in order, so the context costs no round trip of its own. execute() queues it now, so fn's
    // queries come after it even when fn awaits its first one at once; if it fails, so does the rest.
    const setup = tx`select set_config('role', ${role}, true),
                    set_config('request.jwt.claims', ${claims}, true),
                    set_config('request.headers', ${headers}, true)`.execute();
    const [, result] = await Promise.all([setup, fn(tx)]);
    return result;
  })) as T;
}

/** A request context's three settings as set_config takes them: role, claims and headers (JSON). */
export function contextSettings(ctx: RequestContext): [role: DbRole, claims: string, headers: string] {
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

/** Postgres errors of public.verify_api_key as HTTP answers (docs/errors.md). */
const API_KEY_ERRORS: Record<string, [string, string]> = {
  TN020: ["invalid_api_key", "The API key is not valid."],
  TN021: ["api_key_revoked", "The API key was revoked."],
  TN022: ["api_key_expired", "The API key has expired."],
};

/** The shape of every key create_api_key makes; anything else is refused without a query. */
export const API_KEY_SHAPE = /^sk_[A-Za-z0-9_-]{8,64}$/;

export type ApiKeyLookup =
  | { ok: true; apiKeyId: string; orgId: string; scopes: string[]; requestsPerMinute: number }
  | { ok: false; code: string; message: string };

/**
 * What public.verify_api_key (as the service) says of a key, with its organization's tier limit on
 * requests; a refusal (unknown, revoked, expired) as a value, other failures thrown.
 */
export async function lookupApiKey(sql: postgres.Sql, key: string, requestId: string): Promise<ApiKeyLookup> {
  if (!API_KEY_SHAPE.test(key)) return { ok: false, code: API_KEY_ERRORS.TN020[0], message: API_KEY_ERRORS.TN020[1] };
  try {
    const [k] = await asService(
      sql,
      requestId,
      (tx) =>
        tx<{ api_key_id: string; org_id: string; scopes: string[]; per_minute: number }[]>`
        select v.api_key_id, v.org_id, v.scopes, t.api_requests_per_minute as per_minute
        from public.verify_api_key(${key}) v
        join public.organizations o on o.id = v.org_id
        join public.subscription_tiers t on t.tier = o.tier`,
    );
    if (!k) return { ok: false, code: API_KEY_ERRORS.TN020[0], message: API_KEY_ERRORS.TN020[1] };
    return { ok: true, apiKeyId: k.api_key_id, orgId: k.org_id, scopes: k.scopes, requestsPerMinute: k.per_minute };
  } catch (e) {
    const known = API_KEY_ERRORS[(e as { code?: string }).code ?? ""];
    if (known) return { ok: false, code: known[0], message: known[1] };
    throw e;
  }
}

/** Verifies an organization's API key live (public.verify_api_key, as the service), uncached and unlimited. */
export function apiKeyVerifier(sql: postgres.Sql): ApiKeyVerifier {
  return async (key, requestId) => {
    const k = await lookupApiKey(sql, key, requestId);
    if (!k.ok) throw new HttpError(401, k.code, k.message);
    return { apiKeyId: k.apiKeyId, orgId: k.orgId, scopes: k.scopes };
  };
}
