// Dispatches an org-api request to its route (routes.ts): path, method and caller first (404, 405,
// 401), then the path, query and body through the route's schemas (400 with zod's details), then
// the route in the key's request context (ApiKeyGate.run checks the key and the scope), and the
// answer through the route's response schema. GET /openapi.json is the description, for anyone.
import { z } from "zod";
import type { ApiKeyCaller, PublicCaller } from "../_shared/auth.ts";
import { HttpError } from "../_shared/errors.ts";
import { type HandlerContext, parseJson } from "../_shared/http.ts";
import { type OrgApiDeps, pathPattern, ROUTES } from "./routes.ts";

export const FUNCTION_NAME = "org-api";
const MATCHERS = ROUTES.map((r) => ({ route: r, pattern: pathPattern(r.path) }));

/** The path below the function's own name: hosted passes /org-api/..., the local gateway /functions/v1/org-api/... */
export function routePath(pathname: string): string {
  const at = pathname.indexOf(`/${FUNCTION_NAME}`);
  const rest = at < 0 ? pathname : pathname.slice(at + FUNCTION_NAME.length + 1);
  return rest === "" ? "/" : rest.replace(/\/+$/, "") || "/";
}

export async function routeRequest(
  req: Request,
  ctx: HandlerContext<ApiKeyCaller | PublicCaller>,
  deps: OrgApiDeps,
  openapi: () => unknown,
): Promise<Response> {
  const url = new URL(req.url);
  const path = routePath(url.pathname);
  if (path === "/openapi.json") {
    if (req.method !== "GET") throw new HttpError(405, "method_not_allowed", "Use GET.", undefined, { allow: "GET" });
    return Response.json(openapi());
  }
  const matching = MATCHERS.flatMap((m) => {
    const found = m.pattern.exec(path);
    return found ? [{ ...m, groups: found.groups ?? {} }] : [];
  });
  if (!matching.length) throw new HttpError(404, "route_not_found", `No route ${path}; GET /openapi.json lists them.`);
  const hit = matching.find((m) => m.route.method === req.method);
  if (!hit) {
    const allow = matching.map((m) => m.route.method).join(", ");
    throw new HttpError(405, "method_not_allowed", `Use ${allow}.`, undefined, { allow });
  }
  const { caller } = ctx;
  if (caller.kind !== "api_key") {
    throw new HttpError(401, "unauthorized", "This API serves API keys: send the organization's key in x-api-key.");
  }
  const { route } = hit;
  const params = route.params ? route.params.parse(decodeGroups(hit.groups)) : {};
  const query = (route.query ?? NO_QUERY).parse(Object.fromEntries(url.searchParams));
  const body = route.body ? await parseJson(req, route.body) : undefined;
  const result = await deps.gate.run(
    caller,
    req,
    ctx.requestId,
    route.scope,
    (tx) => route.handle({ tx, caller, params, query, body, deps }),
  );
  if (route.response === null) return new Response(null, { status: route.status });
  const answer = route.response.safeParse(result);
  if (!answer.success) throw new Error(`${route.method} ${route.path}: answer does not fit its schema: ${answer.error.message}`);
  return Response.json(answer.data, { status: route.status });
}

const NO_QUERY = z.object({}).strict();

function decodeGroups(groups: Record<string, string>) {
  try {
    return Object.fromEntries(Object.entries(groups).map(([k, v]) => [k, decodeURIComponent(v)]));
  } catch {
    throw new HttpError(400, "invalid_path", "The path is not valid percent-encoding.");
  }
}
