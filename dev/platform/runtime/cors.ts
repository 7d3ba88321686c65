// CORS as hosted Supabase's API gateway answers it, on every route (/rest/v1, /auth/v1,
// /storage/v1, /functions/v1 and unknown ones): any origin; a preflight gets the methods and
// exactly the headers it asks for (supabase-js's clients send x-client-info, apikey,
// x-supabase-api-version, accept-profile, content-profile, prefer, x-upsert, cache-control, ...);
// every answer exposes the headers supabase-js reads (content-range for counts and pagination,
// content-profile, x-supabase-api-version and x-sb-error-code for auth errors, x-request-id).
import type http from "node:http";

const DEFAULT_ALLOWED = "authorization, x-client-info, apikey, content-type, x-request-id";
export const EXPOSED = "content-range, content-profile, content-location, x-supabase-api-version, x-sb-error-code, x-request-id";

/** Headers every answer carries. */
export function corsOf(): Record<string, string> {
  return { "access-control-allow-origin": "*", "access-control-expose-headers": EXPOSED };
}

export function isPreflight(req: http.IncomingMessage): boolean {
  return req.method === "OPTIONS" && typeof req.headers["access-control-request-method"] === "string";
}

/** Answers a preflight: 204 with the methods, the requested headers, and a day's cache. */
export function answerPreflight(req: http.IncomingMessage, res: http.ServerResponse, requestId: string) {
  const asked = req.headers["access-control-request-headers"];
  // only header-name characters go back, whatever the request carried
  const allowed =
    typeof asked === "string" && /^[A-Za-z0-9!#$%&'*+.^_`|~-]+(\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$/.test(asked.trim())
      ? asked.trim()
      : DEFAULT_ALLOWED;
  res.writeHead(204, {
    ...corsOf(),
    "access-control-allow-methods": "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
    "access-control-allow-headers": allowed,
    "access-control-max-age": "86400",
    vary: "Origin, Access-Control-Request-Headers",
    "x-request-id": requestId,
  });
  res.end();
}
