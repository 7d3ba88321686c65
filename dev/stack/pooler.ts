// A connection pooler in front of the stack's Postgres, as hosted projects have Supavisor: Debian's
// PgBouncer 1.18. In transaction mode it hands each transaction whichever server connection is
// free and, like Supavisor's transaction mode (port 6543 hosted), keeps no prepared statement from
// one transaction to the next, so code that only works on a connection of its own fails here too.
// Off unless supabase/config.toml's [db.pooler] says `enabled = true`; as with every key the
// supabase CLI reads, SUPABASE_DB_POOLER_ENABLED (and _PORT, _POOL_MODE, ...) overrides the file.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse } from "smol-toml";
import { DB_PASSWORD, DB_URL, HOST, paths, PORTS, STATE } from "./config.ts";
import { psql } from "./postgres.ts";
import { withFreePorts } from "./ports.ts";
import { canConnect, waitFor } from "./processes.ts";

export type PoolMode = "transaction" | "session";

export interface PoolerSettings {
  enabled: boolean;
  port: number;
  poolMode: PoolMode;
  /** Server connections per user and database. */
  defaultPoolSize: number;
  maxClientConn: number;
}

const isRoot = process.getuid?.() === 0;

/** The role functions connect as (SUPABASE_DB_URL's, hosted too); the only one the pooler admits. */
const POOLER_ROLE = "postgres";

/** Go's strconv.ParseBool, which the supabase CLI's env overrides go through. */
function parseBool(name: string, v: string): boolean {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(v)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(v)) return false;
  throw new Error(`${name} must be true or false, got ${JSON.stringify(v)}`);
}

/** [db.pooler] of config.toml, each key overridable by SUPABASE_DB_POOLER_<KEY> as the supabase CLI allows. */
export function poolerSettings(supabaseDir = paths.supabase, env: NodeJS.ProcessEnv = process.env): PoolerSettings {
  const raw = parse(fs.readFileSync(path.join(supabaseDir, "config.toml"), "utf8")) as Record<string, any>;
  const file = (raw.db?.pooler ?? {}) as Record<string, unknown>;
  const value = (key: string) => {
    const name = `SUPABASE_DB_POOLER_${key.toUpperCase()}`;
    const v = env[name];
    return v !== undefined && v !== "" ? { name, v } : null;
  };
  const int = (key: string, fallback: number) => {
    const o = value(key);
    const n = o ? Number(o.v) : Number(file[key] ?? fallback);
    if (!Number.isInteger(n) || n <= 0) {
      throw new Error(`[db.pooler] ${key} must be a positive whole number, got ${o?.v ?? file[key]}`);
    }
    return n;
  };
  const enabledOverride = value("enabled");
  const s: PoolerSettings = {
    enabled: enabledOverride ? parseBool(enabledOverride.name, enabledOverride.v) : file.enabled === true,
    port: int("port", 54329),
    poolMode: String(value("pool_mode")?.v ?? file.pool_mode ?? "transaction") as PoolMode,
    defaultPoolSize: int("default_pool_size", 20),
    maxClientConn: int("max_client_conn", 100),
  };
  if (s.poolMode !== "transaction" && s.poolMode !== "session") {
    throw new Error(`[db.pooler] pool_mode must be "transaction" or "session", got ${JSON.stringify(s.poolMode)}`);
  }
  // The supabase CLI's default (54329) is PostgREST's admin port here.
  const taken = Object.entries(PORTS).find(([, p]) => p === s.port);
  if (taken) throw new Error(`[db.pooler] port ${s.port} is the stack's ${taken[0]} port: choose another in config.toml`);
  return s;
}

/**
 * The URL a client reaches the database through the pooler with. Through transaction mode it
 * carries `pgbouncer=true`, which supabase/functions/_shared/db.ts reads as "no prepared
 * statements" (and takes off before connecting: Postgres and PgBouncer refuse unknown parameters).
 */
export function poolerUrl(port: number, poolMode: PoolMode, database = "postgres"): string {
  const url = new URL(DB_URL);
  url.port = String(port);
  url.pathname = `/${database}`;
  if (poolMode === "transaction") url.searchParams.set("pgbouncer", "true");
  return url.toString();
}

/** What functions get as SUPABASE_DB_URL: the pooler when it is on, else Postgres itself. */
export function functionsDbUrl(s: PoolerSettings = poolerSettings()): string {
  return s.enabled ? poolerUrl(s.port, s.poolMode) : DB_URL;
}

/**
 * pgbouncer.ini and its auth file in dir. The auth file holds the role's SCRAM verifier as Postgres
 * stores it (pg_authid), so PgBouncer checks clients against the same secret and logs in to
 * Postgres with the client's proof: no password in the file, and nothing of it in git.
 */
export function writePoolerConfig(
  dir: string,
  s: Pick<PoolerSettings, "port" | "poolMode" | "defaultPoolSize" | "maxClientConn">,
  dbPort = PORTS.postgres,
): string {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const q = (v: string) => `"${v.replaceAll('"', '""')}"`;
  const verifier = psql(`select rolpassword from pg_authid where rolname = '${POOLER_ROLE}'`);
  if (!verifier.startsWith("SCRAM-SHA-256$")) {
    throw new Error(`role ${POOLER_ROLE} has no SCRAM password for the pooler to check`);
  }
  const authFile = path.join(dir, "userlist.txt");
  fs.writeFileSync(authFile, `${q(POOLER_ROLE)} ${q(verifier)}\n`, { mode: 0o600 });
  const ini = path.join(dir, "pgbouncer.ini");
  fs.writeFileSync(
    ini,
    [
      "[databases]",
      `* = host=${HOST} port=${dbPort}`,
      "",
      "[pgbouncer]",
      `listen_addr = ${HOST}`,
      `listen_port = ${s.port}`,
      // TCP only: a socket file in /tmp would outlive a killed pooler
      "unix_socket_dir =",
      "auth_type = scram-sha-256",
      `auth_file = ${authFile}`,
      `pool_mode = ${s.poolMode}`,
      `default_pool_size = ${s.defaultPoolSize}`,
      `max_client_conn = ${s.maxClientConn}`,
      // after a Postgres restart (tests make some), the next login is tried within a second, not 15 s
      "server_login_retry = 1",
      // SHOW CLIENTS / SHOW STATS on the `pgbouncer` database, for the tests that check who comes through
      `admin_users = ${POOLER_ROLE}`,
      `stats_users = ${POOLER_ROLE}`,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  // PgBouncer refuses to run as root: as root it runs as the Debian postgres user, who must read these.
  if (isRoot) execFileSync("chown", ["-R", "postgres:postgres", dir]);
  return ini;
}

const pgbouncerArgs = (ini: string) => [...(isRoot ? ["-u", "postgres"] : []), ini];

/** The stack's pooler as one of its services (started before the gateway, whose functions use it). */
export function poolerService(s: PoolerSettings) {
  const dir = path.join(STATE, "pgbouncer");
  const ini = path.join(dir, "pgbouncer.ini");
  return {
    name: "pgbouncer",
    command: "pgbouncer",
    args: pgbouncerArgs(ini),
    ports: [s.port],
    prepare: () => void writePoolerConfig(dir, s),
    healthy: () => canConnect(s.port),
    url: `${
      poolerUrl(s.port, s.poolMode).replace(`:${DB_PASSWORD}@`, "@")
    }  (PgBouncer, ${s.poolMode} mode; functions connect here)`,
  };
}

export interface OwnPooler {
  port: number;
  /** Through the pooler, as functions connect (with pgbouncer=true in transaction mode). */
  url: string;
  /** The same without the marker, for clients other than _shared/db.ts (node-postgres). */
  plainUrl: string;
  /** PgBouncer's admin console (SHOW ..., RECONNECT ...): simple query protocol only. */
  adminUrl: string;
  log(): string;
  stop(): Promise<void>;
}

/**
 * A PgBouncer of its own against the stack's Postgres, for tests and benchmarks: the stack's
 * configuration on a port the kernel hands out, in a temporary folder, ended by stop().
 */
export async function startOwnPooler(
  opts: { poolMode: PoolMode; defaultPoolSize?: number; maxClientConn?: number },
): Promise<OwnPooler> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pgbouncer-"));
  if (isRoot) fs.chmodSync(dir, 0o755);
  const logFile = path.join(dir, "pgbouncer.log");
  let child: ChildProcess | null = null;
  const port = await withFreePorts(1, async ([p]) => {
    const ini = writePoolerConfig(dir, {
      port: p,
      poolMode: opts.poolMode,
      defaultPoolSize: opts.defaultPoolSize ?? 20,
      maxClientConn: opts.maxClientConn ?? 100,
    });
    const out = fs.openSync(logFile, "a");
    const c = spawn("pgbouncer", pgbouncerArgs(ini), { stdio: ["ignore", out, out] });
    fs.closeSync(out);
    try {
      await waitFor(
        "pgbouncer",
        async () => {
          if (c.exitCode !== null) throw new Error(`pgbouncer exited (code ${c.exitCode}); see ${logFile}`);
          return await canConnect(p);
        },
        10_000,
        logFile,
      );
    } catch (e) {
      c.kill("SIGKILL");
      throw e;
    }
    child = c;
    return p;
  });
  // a test or benchmark that dies without stop() must not leave its pooler running
  const kill = () => child?.kill("SIGKILL");
  process.once("exit", kill);
  const plainUrl = poolerUrl(port, "session");
  return {
    port,
    url: poolerUrl(port, opts.poolMode),
    plainUrl,
    adminUrl: poolerUrl(port, "session", "pgbouncer"),
    log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : ""),
    async stop() {
      process.removeListener("exit", kill);
      const c = child as ChildProcess | null;
      child = null;
      if (c && c.exitCode === null) {
        const exited = new Promise((r) => c.once("exit", r));
        c.kill("SIGTERM");
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
