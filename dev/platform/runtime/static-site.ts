// Serves the reference console (examples/console/dist) on its own origin, as a host for a browser
// app would: /config.json tells the app where the API and the broker are (and the publishable key),
// any other unknown path is the app (client-side routes such as /accept-invitation), and every
// answer carries a strict Content-Security-Policy: scripts and styles from this origin only,
// connections to the API and the broker's WebSocket only.
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { z } from "zod";

const env = z.object({
  CONSOLE_PORT: z.coerce.number().int().positive(),
  CONSOLE_DIR: z.string().min(1),
  API_URL: z.string().url(),
  MQTT_WS_URL: z.string().regex(/^wss?:\/\//),
  PUBLISHABLE_KEY: z.string().min(1),
  HOST: z.string().default("127.0.0.1"),
}).parse(process.env);

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript",
  ".css": "text/css",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

const csp = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  `connect-src 'self' ${env.API_URL} ${env.MQTT_WS_URL}`,
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join("; ");
const HEADERS = {
  "content-security-policy": csp,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

const root = path.resolve(env.CONSOLE_DIR);
const config = JSON.stringify({ apiUrl: env.API_URL, publishableKey: env.PUBLISHABLE_KEY, mqttWsUrl: env.MQTT_WS_URL });

http.createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://console");
  if (req.method !== "GET" && req.method !== "HEAD") return void res.writeHead(405, HEADERS).end();
  if (url.pathname === "/health") return void res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}');
  if (url.pathname === "/config.json") {
    return void res.writeHead(200, { ...HEADERS, "content-type": "application/json", "cache-control": "no-store" }).end(config);
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(url.pathname);
  } catch {
    return void res.writeHead(400, { ...HEADERS, "content-type": "text/plain" }).end("bad path"); // not a crash
  }
  const file = path.resolve(root, `.${decoded}`);
  const inside = file.startsWith(root + path.sep) && fs.existsSync(file) && fs.statSync(file).isFile();
  const served = inside ? file : path.join(root, "index.html");
  res.writeHead(200, {
    ...HEADERS,
    "content-type": TYPES[path.extname(served)] ?? "application/octet-stream",
    "cache-control": served.endsWith("index.html") ? "no-cache" : "public, max-age=31536000, immutable",
  });
  if (req.method === "HEAD") return void res.end();
  fs.createReadStream(served).pipe(res);
}).listen(env.CONSOLE_PORT, env.HOST, () => {
  console.log(
    JSON.stringify({ ts: new Date().toISOString(), level: "info", component: "console", msg: "serving", port: env.CONSOLE_PORT }),
  );
});
