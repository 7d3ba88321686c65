// CORS as hosted Supabase's API gateway answers it, on every route (/rest/v1, /auth/v1,
// /storage/v1, /functions/v1 and unknown ones): any origin; a preflight gets the methods and
// exactly the headers it asks for (supabase-js's clients send x-client-info, apikey,
// x-supabase-api-version, accept-profile, content-profile, prefer, x-upsert, cache-control, ...);
// every answer exposes the headers supabase-js reads (content-range for counts and pagination,
// content-profile, x-supabase-api-version and x-sb-error-code for auth errors, x-request-id).
import type http from "node:http";

const DEFAULT_ALLOWED = "authorization, x-client-info, apikey, content-type, x-request-id";
export const EXPOSED =
  "content-range, content-profile, content-location, etag, accept-ranges, x-supabase-api-version, x-sb-error-code, x-request-id";

/**
 * Headers every answer carries: CORS, and the security headers an API's answers need. nosniff
 * (no answer is run as something it was not labelled), no Referer leaves with a link, and no
 * cache keeps an answer: they carry tokens (auth, signed URLs) and tenants' personal data.
 */
export function corsOf(): Record<string, string> {
  return { "access-control-allow-origin": "*", "access-control-expose-headers": EXPOSED, ...SECURITY_HEADERS };
}

export const SECURITY_HEADERS: Record<string, string> = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

/** Types a browser would render or run as a page of the API's origin (HTML, SVG, XML). */
const ACTIVE_CONTENT =
  /^(text\/html|application\/xhtml\+xml|image\/svg\+xml|text\/xml|application\/xml|[a-z]+\/[a-z0-9.+-]*\+xml)$/i;

/**
 * A user's file, downloaded: never sniffed into something else, and a type a browser would run
 * (an uploaded page or SVG with script) is a download, never a page of the API's origin.
 */
export function fileHeaders(contentType: string): Record<string, string> {
  return ACTIVE_CONTENT.test(contentType.split(";")[0].trim()) ? { "content-disposition": "attachment" } : {};
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
