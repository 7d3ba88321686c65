// /rest/v1 as hosted Supabase's gateway serves it: the real PostgREST behind it. The project's
// API key is required (the `apikey` header, or `?apikey=` as browsers' EventSource and links
// send it) and stripped before PostgREST sees it; a request without an Authorization header
// runs with the key itself as its token (the anon key: role anon; the service key: service_role),
// as hosted. Bodies stream both ways; PostgREST's answers keep their status, headers and error
// shape; the gateway adds CORS, the request id and the caller's address to x-forwarded-for.
import http from "node:http";
import { corsOf } from "./cors.ts";

export interface RestProxyOptions {
  upstream: URL;
  /** The keys this project issues: anything else in `apikey` is refused. */
  apiKeys: () => readonly string[];
}

/** Kong's answers (hosted's gateway), so supabase-js shows the same messages. */
function refuse(res: http.ServerResponse, requestId: string, message: string, hint: string) {
  res.writeHead(401, { ...corsOf(), "content-type": "application/json", "x-request-id": requestId });
  res.end(JSON.stringify({ message, hint }));
}

/**
 * The project's API key, as hosted's gateway requires it on /rest/v1 and /storage/v1: answers the
 * refusal and returns false when it is missing or not the project's.
 */
export function requireApiKey(
  res: http.ServerResponse,
  requestId: string,
  apikey: string | null,
  keys: readonly string[],
): boolean {
  if (!apikey) {
    refuse(res, requestId, "No API key found in request", "No `apikey` request header or url param was found.");
    return false;
  }
  if (!keys.includes(apikey)) {
    refuse(res, requestId, "Invalid API key", "Double check your Supabase `anon` or `service_role` API key.");
    return false;
  }
  return true;
}

export function proxyRest(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  url: URL,
  requestId: string,
  opts: RestProxyOptions,
) {
  const headerKey = req.headers.apikey;
  const apikey = (typeof headerKey === "string" ? headerKey : undefined) ?? url.searchParams.get("apikey");
  if (!requireApiKey(res, requestId, apikey, opts.apiKeys())) return;
  url.searchParams.delete("apikey");
  const headers: http.OutgoingHttpHeaders = { ...req.headers, "x-request-id": requestId };
  delete headers.apikey;
  delete headers.host;
  headers.authorization ??= `Bearer ${apikey}`;
  const forwarded = req.headers["x-forwarded-for"];
  headers["x-forwarded-for"] = [forwarded, req.socket.remoteAddress].filter(Boolean).join(", ");

  const path = url.pathname.replace(/^\/rest\/v1/, "") || "/";
  const upstream = http.request({
    host: opts.upstream.hostname,
    port: opts.upstream.port,
    method: req.method,
    path: path + url.search,
    headers,
  }, (up) => {
    res.writeHead(up.statusCode ?? 502, { ...up.headers, ...corsOf(), "x-request-id": requestId });
    up.pipe(res);
  });
  upstream.on("error", () => {
    if (res.headersSent) return void res.destroy();
    res.writeHead(503, { ...corsOf(), "content-type": "application/json", "x-request-id": requestId });
    res.end(
      JSON.stringify({ code: "PGRST000", message: "The Data API (PostgREST) is not reachable.", details: null, hint: null }),
    );
  });
  req.pipe(upstream);
}
