// Wraps a function's handler: CORS preflight, a request id on every answer, errors mapped to the
// envelope (HttpError as given, zod errors as 400 invalid_request, anything else 500), and, when
// given a counter, one API call counted for the organization the access token names.
import { decodeJwt } from "jose";
import { z } from "zod";
import { corsHeaders } from "./cors.ts";
import { errorResponse, HttpError } from "./errors.ts";
import { createLogger, type Logger } from "./log.ts";
import type { ApiCallCounter } from "./usage/api-calls.ts";

export interface RequestContext {
  requestId: string;
  log: Logger;
}

export type Handler = (req: Request, ctx: RequestContext) => Promise<Response> | Response;

export function requestIdOf(req: Request): string {
  const given = req.headers.get("x-request-id");
  return given && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : crypto.randomUUID();
}

export function withCors(res: Response, requestId: string): Response {
  const headers = new Headers(res.headers);
  for (const [k, v] of Object.entries(corsHeaders)) if (!headers.has(k)) headers.set(k, v);
  headers.set("x-request-id", requestId);
  return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
}

/**
 * The active organization of a signed-in caller's token (the org_id claim), read without
 * verifying: the gateway (hosted: the edge) verified the token before the function ran.
 */
export function tokenOrganization(req: Request): string | null {
  const m = /^Bearer (\S+)$/.exec(req.headers.get("authorization") ?? "");
  if (!m) return null;
  try {
    const claims = decodeJwt(m[1]);
    return claims.role === "authenticated" && typeof claims.org_id === "string" && UUID.test(claims.org_id) ? claims.org_id : null;
  } catch {
    return null;
  }
}
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function serveHandler(component: string, handler: Handler, opts: { apiCalls?: ApiCallCounter } = {}) {
  const baseLog = createLogger(component);
  return async (req: Request): Promise<Response> => {
    const requestId = requestIdOf(req);
    if (req.method === "OPTIONS") return new Response(null, { status: 204, headers: { ...corsHeaders, "x-request-id": requestId } });
    const log = baseLog.child({ request_id: requestId });
    // Counted alongside the handler, not before it, so counting adds no wait; a counter that is
    // away costs the figure one call, never the caller's request.
    const orgId = opts.apiCalls ? tokenOrganization(req) : null;
    const counted = orgId
      ? opts.apiCalls!.count(orgId).catch((e) => log.warn("API call not counted", { org_id: orgId, error: String(e) }))
      : null;
    try {
      return withCors(await handler(req, { requestId, log }), requestId);
    } catch (err) {
      if (err instanceof HttpError) {
        return withCors(errorResponse(err.status, err.code, err.message, requestId, { details: err.details }), requestId);
      }
      if (err instanceof z.ZodError) {
        const details = err.issues.map((i) => ({ path: i.path.join("."), message: i.message }));
        return withCors(errorResponse(400, "invalid_request", "The request is not valid.", requestId, { details }), requestId);
      }
      log.error("unhandled error", { error: String(err), stack: err instanceof Error ? err.stack : undefined });
      return withCors(
        errorResponse(500, "internal_error", "The function failed; its logs have the details under this request id.", requestId),
        requestId,
      );
    } finally {
      await counted;
    }
  };
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
