// Wraps a function's handler. The handler declares its methods and its callers; the wrapper
// answers CORS preflights, refuses other methods (405) and other callers (401/403) before the
// handler runs, hands the handler its typed caller, puts a request id on every answer, maps errors
// to the envelope (HttpError as given, zod errors as 400 invalid_request, anything else 500), and,
// when given a counter, counts one API call for a verified caller's organization once the request
// is served (apiCallOrganization).
import { z } from "zod";
import { type Caller, type CallerAuth, type CallerKind, type CallerOf, resolveCaller } from "./auth.ts";
import { cachedVerifier, jwksSource } from "./access-token.ts";
import { corsHeaders, securityHeaders } from "./cors.ts";
import { readEnv } from "./env.ts";
import { errorResponse, HttpError } from "./errors.ts";
import { batchLogWrites, createLogger, flushLogWrites, type Logger } from "./log.ts";
import type { ApiCallCounter } from "./usage/api-calls.ts";

export interface HandlerContext<C = CallerOf<CallerKind>> {
  requestId: string;
  log: Logger;
  caller: C;
}

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface Route<K extends CallerKind> {
  methods: readonly Method[];
  callers: readonly K[];
  /** Counts API calls per organization (functions browser apps call). */
  apiCalls?: ApiCallCounter;
  /** How callers are verified; the service keys come from SUPABASE_SERVICE_ROLE_KEY and SUPABASE_SECRET_KEYS by default. */
  auth?: Partial<CallerAuth>;
}

export type Handler<K extends CallerKind> = (req: Request, ctx: HandlerContext<CallerOf<K>>) => Promise<Response> | Response;

export function requestIdOf(req: Request): string {
  const given = req.headers.get("x-request-id");
  return given && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : crypto.randomUUID();
}

export function withCors(res: Response, requestId: string): Response {
  const headers = new Headers(res.headers);
  for (const [k, v] of Object.entries({ ...corsHeaders, ...securityHeaders })) if (!headers.has(k)) headers.set(k, v);
  headers.set("x-request-id", requestId);
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
}

function errorOf(err: unknown, requestId: string, log: Logger): Response {
  if (err instanceof HttpError) {
    return errorResponse(err.status, err.code, err.message, requestId, { details: err.details, headers: err.headers });
  }
  if (err instanceof z.ZodError) {
    const details = err.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
    return errorResponse(400, "invalid_request", "The request is not valid.", requestId, { details });
  }
  log.error("unhandled error", { error: String(err), stack: err instanceof Error ? err.stack : undefined });
  return errorResponse(500, "internal_error", "The function failed; its logs have the details under this request id.", requestId);
}

/** The legacy service_role key and the secret keys (hosted: a JSON dictionary of named keys). */
function serviceKeysFromEnv(): string[] {
  let secrets: unknown[] = [];
  try {
    secrets = Object.values(JSON.parse(readEnv("SUPABASE_SECRET_KEYS") ?? "{}"));
  } catch {
    // a malformed dictionary names no key
  }
  return [readEnv("SUPABASE_SERVICE_ROLE_KEY"), ...secrets].filter((k): k is string => typeof k === "string" && k !== "");
}

/** The project's public signing keys as hosted injects them, refreshed from the auth server on an unknown kid. */
function tokenKeysFromEnv(): CallerAuth["tokenKeys"] {
  const url = readEnv("SUPABASE_URL");
  const legacy = readEnv("LEGACY_JWT_SECRET");
  return {
    ...jwksSource(readEnv("SUPABASE_JWKS"), url ? `${url}/auth/v1/.well-known/jwks.json` : null),
    legacySecret: legacy ? new TextEncoder().encode(legacy) : null,
  };
}

/**
 * A function's log lines go out in one write per turn of the event loop (each write to the
 * runtime's pipe is a system call on the request's path); what is pending when the runtime shuts
 * the function down is written then.
 */
function batchFunctionLogs() {
  batchLogWrites();
  // deno-lint-ignore no-explicit-any
  const g = globalThis as any;
  if (typeof g.addEventListener === "function" && !g.__functionLogsFlushed) {
    g.__functionLogsFlushed = true;
    g.addEventListener("beforeunload", flushLogWrites);
  }
}

export function serveHandler<K extends CallerKind>(component: string, route: Route<K>, handler: Handler<K>) {
  batchFunctionLogs();
  const baseLog = createLogger(component);
  const tokenKeys = route.auth?.tokenKeys ?? tokenKeysFromEnv();
  const auth: CallerAuth = {
    serviceKeys: route.auth?.serviceKeys ?? serviceKeysFromEnv(),
    verifyApiKey: route.auth?.verifyApiKey,
    tokenKeys,
    // a browser app sends the same token with every call for up to an hour
    verifyToken: route.auth?.verifyToken ?? (tokenKeys ? cachedVerifier(tokenKeys) : undefined),
  };
  const allow = route.methods.join(", ");
  return async (req: Request): Promise<Response> => {
    const requestId = requestIdOf(req);
    if (req.method === "OPTIONS") {
      return new Response(null, { status: 204, headers: { ...corsHeaders, ...securityHeaders, "x-request-id": requestId } });
    }
    const log = baseLog.child({ request_id: requestId });
    let caller: CallerOf<K> | null = null;
    let res: Response;
    try {
      if (!(route.methods as readonly string[]).includes(req.method)) {
        throw new HttpError(405, "method_not_allowed", `Use ${allow}.`, undefined, { allow });
      }
      caller = await resolveCaller(req, route.callers, auth, requestId);
      res = withCors(await handler(req, { requestId, log, caller }), requestId);
    } catch (err) {
      res = withCors(errorOf(err, requestId, log), requestId);
    }
    const orgId = caller && route.apiCalls ? apiCallOrganization(caller as Caller, res.status) : null;
    if (orgId) route.apiCalls!.count(orgId); // only adds to this process's tally (usage/api-calls.ts)
    return res;
  };
}

/**
 * Whose API call an answered request is (docs/analytics.md): a verified caller's organization (a
 * user's by the token's org_id claim, a key's own) when the function served the request (an answer
 * below 400). Refusals and mistakes are not the organization's calls: a removed member's token stays
 * valid until it expires, and the function may find a body malformed before it asks whether the
 * caller still belongs to the organization.
 */
export function apiCallOrganization(caller: Caller, status: number): string | null {
  if (status >= 400) return null;
  return caller.kind === "user" || caller.kind === "api_key" ? caller.orgId : null;
}

/** Parses a JSON body against a schema; malformed JSON and schema errors are the client's 400. */
export async function parseJson<T extends z.ZodType>(req: Request, schema: T): Promise<z.infer<T>> {
  let body: unknown;
  try {
    body = await req.json();
  } catch {
    throw new HttpError(400, "invalid_json", "The request body is not valid JSON.");
  }
  return schema.parse(body);
}
