// Speaks Upstash's Redis REST protocol in front of the local Redis, so @upstash/redis runs
// unchanged. Written here because the only maintained implementation (serverless-redis-http) is
// a Docker image. Protocol: POST / with ["CMD", ...args] -> {result} | 400 {error};
// POST /pipeline and /multi-exec with [[...], ...] -> [{result}|{error}, ...]; bearer token auth;
// with "Upstash-Encoding: base64" every string result except "OK" is base64.
import http from "node:http";
import crypto from "node:crypto";
import { createClient, RESP_TYPES } from "redis";
import { createLogger as logger } from "../../../supabase/functions/_shared/log.ts";

const log = logger("upstash-bridge");
const PORT = Number(process.env.UPSTASH_BRIDGE_PORT ?? 54326);
const TOKEN = process.env.UPSTASH_REDIS_REST_TOKEN ?? "";
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:54325";
const MAX_BODY = 10 * 1024 * 1024;
if (!TOKEN) throw new Error("UPSTASH_REDIS_REST_TOKEN is required");

const base = createClient({ url: REDIS_URL, socket: { reconnectStrategy: (n) => Math.min(50 * 2 ** n, 2000) } });
base.on("error", (e) => log.warn("redis error", { error: String(e) }));
await base.connect();
const redis = base.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });

type Reply = null | number | string | Buffer | Reply[] | Record<string, unknown>;

function encode(v: Reply, base64: boolean): unknown {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) return base64 ? v.toString("base64") : v.toString("utf8");
  if (typeof v === "string") return base64 && v !== "OK" ? Buffer.from(v).toString("base64") : v;
  if (typeof v === "number" || typeof v === "boolean") return v;
  if (typeof v === "bigint") return Number(v);
  if (Array.isArray(v)) return v.map((x) => encode(x, base64));
  // RESP3 maps never reach us on RESP2, but keep them flat like Upstash does.
  return Object.entries(v).flat().map((x) => encode(x as Reply, base64));
}

function isCommand(x: unknown): x is (string | number | boolean)[] {
  return Array.isArray(x) && x.length > 0 && x.every((a) => ["string", "number", "boolean"].includes(typeof a));
}

const args = (cmd: (string | number | boolean)[]) => cmd.map(String);
const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

async function run(cmd: (string | number | boolean)[], base64: boolean) {
  try {
    return { result: encode((await redis.sendCommand(args(cmd))) as Reply, base64) };
  } catch (e) {
    return { error: errorText(e) };
  }
}

function send(res: http.ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

function sameToken(given: string) {
  const a = Buffer.from(given);
  const b = Buffer.from(TOKEN);
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

const server = http.createServer(async (req, res) => {
  const auth = req.headers.authorization ?? "";
  if (!auth.startsWith("Bearer ") || !sameToken(auth.slice(7))) return send(res, 401, { error: "Unauthorized" });
  if (req.method !== "POST") return send(res, 405, { error: "ERR only POST is supported" });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) return send(res, 413, { error: "ERR request body too large" });
    chunks.push(c as Buffer);
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    return send(res, 400, { error: "ERR failed to parse request body as JSON" });
  }
  const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";
  const path = (req.url ?? "/").split("?")[0].replace(/\/+$/, "");
  if (path === "/pipeline" || path === "/multi-exec") {
    if (!Array.isArray(body) || !body.every(isCommand)) return send(res, 400, { error: "ERR body must be an array of commands" });
    if (path === "/pipeline") return send(res, 200, await Promise.all(body.map((c) => run(c, base64))));
    try {
      const multi = redis.multi();
      for (const c of body) multi.addCommand(args(c));
      const replies = (await multi.exec()) as unknown as Reply[];
      return send(res, 200, replies.map((r) => (r instanceof Error ? { error: r.message } : { result: encode(r, base64) })));
    } catch (e) {
      return send(res, 400, { error: errorText(e) });
    }
  }
  if (path !== "" && path !== "/") return send(res, 404, { error: "ERR unknown endpoint" });
  if (!isCommand(body)) return send(res, 400, { error: 'ERR body must be a command array like ["GET","key"]' });
  const out = await run(body, base64);
  send(res, "error" in out ? 400 : 200, out);
});

server.listen(PORT, "127.0.0.1", () => log.info("listening", { port: PORT, redis: REDIS_URL }));
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, () => server.close(() => base.quit().finally(() => process.exit(0))));
}
