// The local API gateway on :54321, as hosted Supabase's gateway: /rest/v1 is the real PostgREST
// (rest-proxy.ts, the project's API key required), /auth/v1 the auth stand-in (../auth/routes.ts),
// /storage/v1 the Storage API's (../storage/routes.ts), and every folder of supabase/functions is
// served under /functions/v1/<name> (JWT verification unless config.toml sets verify_jwt = false,
// hosted env names injected). CORS on every route (cors.ts), a request id on every answer.
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import crypto from "node:crypto";
import { applyNewKey, keyMinter, type ProjectKeys } from "./api-keys.ts";
import { answerPreflight, corsOf, fileHeaders, isPreflight } from "./cors.ts";
import { planFileReply, type StoredFile } from "../http/file-reply.ts";
import { proxyRest, requireApiKey } from "./rest-proxy.ts";
import { errorBody } from "../../../supabase/functions/_shared/errors.ts";
import { batchLogWrites, createLogger, flushLogWrites } from "../../../supabase/functions/_shared/log.ts";
import postgres from "postgres";
import { smtpMailer } from "../auth/mail.ts";
import { handleAuth } from "../auth/routes.ts";
import { handleStorage } from "../storage/routes.ts";
import { loadProjectConfig, type ProjectConfig } from "../project-config.ts";
import { FunctionBootError, FunctionPool } from "./function-pool.ts";
import { verifyBearer } from "../http/bearer.ts";
import { type JSONWebKeySet } from "jose";
import { platformTokenKeys, projectSigner, signingKeysOf } from "../auth/signing-keys.ts";
import { postgrestJwks } from "./postgrest-keys.ts";
import { featureOfPath, recordAsk } from "../not-provided.ts";

const log = createLogger("gateway");
// A line per request, written in one go per turn of the event loop: a write per line was a system
// call on every request's path.
batchLogWrites();
process.on("exit", flushLogWrites);
const ROOT = process.env.PROJECT_ROOT ?? path.resolve(import.meta.dirname, "../../..");
// SUPABASE_DIR lets tests serve a fixture project (its own config.toml and functions).
const SUPABASE_DIR = process.env.SUPABASE_DIR ?? path.join(ROOT, "supabase");
const FUNCTIONS_DIR = path.join(SUPABASE_DIR, "functions");
const PORT = Number(process.env.GATEWAY_PORT ?? 54321);
// Requests for hosted features the stack does not run, for `npm run status`.
const ASKED_FILE = process.env.NOT_PROVIDED_FILE ?? path.join(ROOT, ".stack", "not-provided.json");
// The legacy HS256 secret: still accepted while configured, as hosted accepts it until revoked.
const JWT_SECRET: string = process.env.JWT_SECRET ?? "";
if (!JWT_SECRET) throw new Error("JWT_SECRET is required");
const keys: ProjectKeys = {
  anon: process.env.SUPABASE_ANON_KEY ?? "",
  serviceRole: process.env.SUPABASE_SERVICE_ROLE_KEY ?? "",
  publishable: process.env.SUPABASE_PUBLISHABLE_KEY ?? "",
  secret: process.env.SUPABASE_SECRET_KEY ?? "",
};

/** The env a function sees: hosted names, the stack's service settings, and supabase/functions/.env. */
function functionEnv(): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/tmp",
    DENO_DIR: process.env.DENO_DIR ?? "",
    DENO_NO_UPDATE_CHECK: "1",
    SB_REGION: "local",
  };
  for (const k of ["SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_DB_URL"]) {
    env[k] = process.env[k] ?? "";
  }
  // the new keys under hosted's names: JSON dictionaries of named keys, and the public signing keys
  env.SUPABASE_JWKS = JSON.stringify(publicJwks ?? { keys: [] });
  // what an operator sets as a function secret while legacy HS256 tokens live (docs/deploy.md)
  env.LEGACY_JWT_SECRET = JWT_SECRET;
  env.SUPABASE_PUBLISHABLE_KEYS = JSON.stringify(keys.publishable ? { default: keys.publishable } : {});
  env.SUPABASE_SECRET_KEYS = JSON.stringify(keys.secret ? { default: keys.secret } : {});
  for (const file of [process.env.FUNCTIONS_ENV_FILE, path.join(FUNCTIONS_DIR, ".env")]) {
    if (file && fs.existsSync(file)) Object.assign(env, parseEnvFile(fs.readFileSync(file, "utf8")));
  }
  return env;
}

function parseEnvFile(text: string) {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)\s*$/.exec(line);
    if (m) out[m[1]] = m[2].replace(/^(['"])(.*)\1$/, "$2");
  }
  return out;
}

// config.toml as last read; re-read when it changes (polled, not stat'ed on every request)
let config: ProjectConfig = loadProjectConfig(SUPABASE_DIR);
fs.watchFile(path.join(SUPABASE_DIR, "config.toml"), { interval: 500 }, () => {
  try {
    config = loadProjectConfig(SUPABASE_DIR);
    log.info("config.toml reloaded");
  } catch (e) {
    log.error("config.toml unreadable; the last good settings stay", { error: String(e) });
  }
});
function projectConfig() {
  return config;
}

// Tokens are signed with the project's signing key and verified against its keys (and the legacy
// secret); the keys file is re-read when it changes, so a rotation takes effect without a restart.
const signToken = (claims: Record<string, unknown>) => projectSigner(projectConfig(), JWT_SECRET)(claims);
const tokenKeys = platformTokenKeys(() => signingKeysOf(projectConfig()), JWT_SECRET);
const signingKid = async () => (await signingKeysOf(projectConfig())?.get())?.signing?.kid ?? "legacy";
const mintRoleToken = keyMinter(signToken, signingKid);

/** The public keys as last read: functions get them as SUPABASE_JWKS, PostgREST in its key file. */
let publicJwks: JSONWebKeySet | null = null;
async function keysChanged(why: string) {
  let next: JSONWebKeySet | null;
  try {
    // read the file now: the store may hold what it read less than its recheck interval ago
    next = (await signingKeysOf(projectConfig())?.get(true))?.jwks ?? null;
  } catch (e) {
    return log.error("signing keys unreadable; the last good keys stay in use", { error: String(e) });
  }
  if (JSON.stringify(next) === JSON.stringify(publicJwks)) return;
  const first = publicJwks === null;
  publicJwks = next;
  if (process.env.POSTGREST_JWKS_FILE) {
    // written whole, then renamed into place: PostgREST never reads half a key set
    const file = process.env.POSTGREST_JWKS_FILE;
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(postgrestJwks(next, JWT_SECRET)), { mode: 0o600 });
    fs.renameSync(`${file}.tmp`, file);
    // PostgREST re-reads its configuration, the key file included, on this notification
    if (authSql) {
      await authSql`select pg_notify('pgrst', 'reload config')`.catch((e: unknown) =>
        log.error("PostgREST not told of new keys", { error: String(e) })
      );
    }
  }
  if (!first) {
    log.info("signing keys changed", { why, kids: next?.keys.map((k) => k.kid) });
    pool.restartAll("signing keys changed");
  }
}
const keysFile = config.auth.signingKeysPath;
if (keysFile) fs.watchFile(keysFile, { interval: 500 }, () => void keysChanged("keys file changed"));

// The auth stand-in's connection (GoTrue's, hosted); it switches to supabase_auth_admin per call.
const authSql = process.env.SUPABASE_DB_URL ? postgres(process.env.SUPABASE_DB_URL, { max: 4, onnotice: () => {} }) : null;
const authDeps = authSql && {
  sql: authSql,
  sign: signToken,
  tokenKeys,
  jwks: async () => (await tokenKeys.jwks()) ?? { keys: [] },
  config: () => projectConfig(),
  supabaseUrl: process.env.SUPABASE_URL ?? `http://127.0.0.1:${PORT}`,
  newKeys: () => [keys.publishable, keys.secret].filter(Boolean),
  mailer: process.env.AUTH_SMTP_URL ? smtpMailer(process.env.AUTH_SMTP_URL) : undefined,
};

const storageDeps = authSql && {
  sql: authSql,
  jwtSecret: JWT_SECRET,
  tokenKeys,
  dir: process.env.STORAGE_DIR ?? path.join(ROOT, ".stack", "storage"),
};

// PostgREST behind /rest/v1, and the API keys the project issues (legacy and new).
const restUpstream = process.env.POSTGREST_URL ? new URL(process.env.POSTGREST_URL) : null;
const projectApiKeys = () => [keys.anon, keys.serviceRole, keys.publishable, keys.secret].filter(Boolean);

// A function's memory, as the hosted runtime allows (256 MB); FUNCTIONS_MAX_HEAP_MB changes it.
const FUNCTIONS_MAX_HEAP_MB = Number(process.env.FUNCTIONS_MAX_HEAP_MB ?? 256);
if (!Number.isInteger(FUNCTIONS_MAX_HEAP_MB) || FUNCTIONS_MAX_HEAP_MB < 32) {
  throw new Error(`FUNCTIONS_MAX_HEAP_MB must be a whole number of MB, at least 32 (got ${process.env.FUNCTIONS_MAX_HEAP_MB})`);
}

const pool = new FunctionPool({
  maxHeapMb: FUNCTIONS_MAX_HEAP_MB,
  root: ROOT,
  functionsDir: FUNCTIONS_DIR,
  env: functionEnv,
  logsDir: path.join(process.env.STACK_LOGS_DIR ?? path.join(ROOT, ".stack", "logs"), "functions"),
  log,
});

// Code changes restart the functions (hot reload); debounced because editors write in bursts.
let reloadTimer: NodeJS.Timeout | undefined;
fs.watch(FUNCTIONS_DIR, { recursive: true }, (_e, file) => {
  clearTimeout(reloadTimer);
  pool.forgetFolders();
  reloadTimer = setTimeout(() => pool.restartAll(`changed ${file}`), 200);
});

function sendError(res: http.ServerResponse, status: number, code: string, message: string, requestId: string) {
  res.writeHead(status, { ...corsOf(), "content-type": "application/json", "x-request-id": requestId });
  res.end(JSON.stringify(errorBody(code, message, requestId)));
}

/**
 * A platform stand-in's answer (JSON, or a file to stream), with CORS and the request id; an
 * unexpected failure answers 500 in that service's own error shape and is logged, never thrown.
 */
async function serveStandIn(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  requestId: string,
  service: string,
  handle: () => Promise<{ status: number; body?: unknown; file?: StoredFile; headers?: Record<string, string> }>,
  failure: unknown,
) {
  const headers = { ...corsOf(), "x-request-id": requestId };
  if (req.method === "OPTIONS") return void res.writeHead(204, headers).end();
  try {
    const reply = await handle();
    if (reply.file) {
      const plan = planFileReply(req, reply.file);
      res.writeHead(plan.status, {
        ...headers,
        ...fileHeaders(reply.file.contentType),
        "content-type": reply.file.contentType,
        ...reply.headers,
        ...plan.headers,
      });
      if (!("start" in plan)) return void res.end(); // 304, 416: headers only
      if (req.method === "HEAD" || reply.file.size === 0) return void res.end();
      const stream = fs.createReadStream(reply.file.path, { start: plan.start, end: plan.end });
      stream.on("error", (e) => {
        log.error(`${service} file stream failed`, { request_id: requestId, error: String(e) });
        res.destroy();
      });
      return void stream.pipe(res);
    }
    res.writeHead(reply.status, {
      ...headers,
      ...(reply.body === undefined ? {} : { "content-type": "application/json" }),
      ...reply.headers,
    });
    res.end(reply.body === undefined ? undefined : JSON.stringify(reply.body));
  } catch (e) {
    log.error(`${service} request failed`, { request_id: requestId, error: String(e) });
    if (res.headersSent) return void res.destroy();
    res.writeHead(500, { ...headers, "content-type": "application/json" });
    res.end(JSON.stringify(failure));
  }
}

const server = http.createServer((req, res) => {
  serve(req, res).catch((e) => {
    log.error("request failed", { error: String(e), stack: e instanceof Error ? e.stack : undefined });
    if (res.headersSent) return void res.destroy();
    sendError(res, 500, "internal_error", "The gateway failed; its log has the details.", "");
  });
});

async function serve(req: http.IncomingMessage, res: http.ServerResponse) {
  const started = performance.now();
  const given = req.headers["x-request-id"];
  const requestId = typeof given === "string" && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : crypto.randomUUID();
  req.headers["x-request-id"] = requestId; // the stand-ins log under the same id
  const url = new URL(req.url ?? "/", "http://localhost");
  res.on("finish", () => {
    log.info("request", {
      request_id: requestId,
      method: req.method,
      path: url.pathname,
      status: res.statusCode,
      ms: +(performance.now() - started).toFixed(2),
    });
  });

  if (url.pathname === "/health") return void res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}');
  if (isPreflight(req)) return answerPreflight(req, res, requestId);
  const missing = featureOfPath(url.pathname);
  if (missing) {
    try {
      recordAsk(ASKED_FILE, missing, url.pathname);
    } catch (e) {
      log.warn("request for a missing feature not recorded", { error: String(e) });
    }
    return sendError(
      res,
      501,
      "not_provided_locally",
      `${missing.feature} is part of hosted Supabase but not of the local stack; instead: ${missing.instead}.`,
      requestId,
    );
  }
  const isRest = url.pathname === "/rest/v1" || url.pathname.startsWith("/rest/v1/");
  const headerKey = typeof req.headers.apikey === "string" ? req.headers.apikey : null;
  const refusal = await applyNewKey(req, headerKey ?? (isRest ? url.searchParams.get("apikey") : null), keys, mintRoleToken);
  if (refusal) {
    res.writeHead(refusal.status, { ...corsOf(), "content-type": "application/json", "x-request-id": requestId });
    return void res.end(JSON.stringify(refusal.body));
  }
  if (isRest && restUpstream) {
    return proxyRest(req, res, url, requestId, { upstream: restUpstream, apiKeys: projectApiKeys });
  }
  if (url.pathname.startsWith("/auth/v1/") && authDeps) {
    return serveStandIn(req, res, requestId, "auth", () => handleAuth(req, url, authDeps), {
      code: 500,
      error_code: "unexpected_failure",
      msg: "Unexpected failure.",
    });
  }
  if (url.pathname.startsWith("/storage/v1/") && storageDeps) {
    // links a browser opens carry no headers: public objects and signed URLs need no API key
    const link = /^\/storage\/v1\/object\/(public\/|sign\/|upload\/sign\/)/.test(url.pathname) && req.method !== "POST";
    if (!link && !requireApiKey(res, requestId, headerKey, projectApiKeys())) return;
    return serveStandIn(req, res, requestId, "storage", () => handleStorage(req, url, storageDeps), {
      statusCode: "500",
      error: "internal",
      message: "Unexpected failure.",
    });
  }
  const m = /^\/functions\/v1\/([^/]+)(\/.*)?$/.exec(url.pathname);
  if (!m) return sendError(res, 404, "not_found", `No route for ${url.pathname}.`, requestId);
  let name: string;
  try {
    name = decodeURIComponent(m[1]);
  } catch {
    return sendError(res, 400, "invalid_path", "The function name is not valid percent-encoding.", requestId);
  }
  if (!pool.exists(name)) return sendError(res, 404, "function_not_found", `Function ${name} does not exist.`, requestId);
  if (req.method === "OPTIONS") {
    res.writeHead(204, { ...corsOf(), "x-request-id": requestId });
    return void res.end();
  }

  if (projectConfig().verifyJwt(name)) {
    const check = await verifyBearer(req.headers.authorization, tokenKeys);
    if (!check.ok) return sendError(res, 401, check.code, check.message, requestId);
  }

  let port: number;
  try {
    port = await pool.port(name);
  } catch (e) {
    const message = e instanceof FunctionBootError ? `Function ${name} failed to start: ${e.message}` : String(e);
    log.error("function boot failed", { request_id: requestId, function: name, error: message });
    return sendError(res, 503, "function_boot_error", message, requestId);
  }

  const upstream = http.request({
    host: "127.0.0.1",
    port,
    method: req.method,
    path: url.pathname + url.search,
    headers: { ...req.headers, "x-request-id": requestId, "x-forwarded-for": req.socket.remoteAddress ?? "" },
  }, (up) => {
    const headers = { ...up.headers };
    for (const [k, v] of Object.entries(corsOf())) if (!(k in headers)) headers[k] = v;
    headers["x-request-id"] = requestId;
    res.writeHead(up.statusCode ?? 502, headers);
    up.pipe(res);
  });
  upstream.on("error", (e) => {
    log.error("function crashed during request", { request_id: requestId, function: name, error: String(e) });
    if (!res.headersSent) {
      sendError(res, 502, "function_crashed", `Function ${name} stopped while handling the request.`, requestId);
    } else res.destroy();
  });
  req.pipe(upstream);
}
server.keepAliveTimeout = 65_000;

server.on("error", (e) => {
  log.error("gateway failed", { error: String(e) });
  process.exit(1);
});
await keysChanged("start");
server.listen(PORT, "127.0.0.1", () => log.info("listening", { port: PORT, functions: FUNCTIONS_DIR }));

for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, async () => {
    server.close();
    await pool.stop();
    await authSql?.end({ timeout: 2 });
    process.exit(0);
  });
}
