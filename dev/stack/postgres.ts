// The project's own Postgres 15 cluster: created once under .stack/, started with pg_cron and
// pg_stat_statements preloaded, then the platform baseline, the migrations and the seed.
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DB_PASSWORD, DB_URL, HOST, paths, PG_BIN, PG_DATA, PG_SOCKET_DIR, PORTS, ROOT } from "./config.ts";

const isRoot = process.getuid?.() === 0;

/** Postgres refuses to run as root: as root we run its binaries as the Debian `postgres` user. */
function asDbOwner(cmd: string, args: string[], opts: { input?: string } = {}) {
  const [c, a] = isRoot ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args];
  return spawnSync(c, a, { encoding: "utf8", input: opts.input, cwd: "/" });
}

export function clusterExists() {
  return fs.existsSync(path.join(PG_DATA, "PG_VERSION"));
}

export function initCluster() {
  fs.mkdirSync(PG_SOCKET_DIR, { recursive: true });
  const pwfile = path.join(os.tmpdir(), `pgpw-${process.pid}`);
  fs.writeFileSync(pwfile, DB_PASSWORD, { mode: 0o644 });
  if (isRoot) {
    // The postgres user must reach the data folder through every parent of the state dir.
    execFileSync("chown", ["-R", "postgres:postgres", PG_SOCKET_DIR]);
    for (let dir = path.dirname(PG_SOCKET_DIR); dir !== "/"; dir = path.dirname(dir)) {
      const mode = fs.statSync(dir).mode;
      if ((mode & 0o001) === 0) fs.chmodSync(dir, mode | 0o001);
    }
  }
  const r = asDbOwner(`${PG_BIN}/initdb`, [
    "-D",
    PG_DATA,
    "-U",
    "postgres",
    `--pwfile=${pwfile}`,
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "--encoding=UTF8",
    "--locale=C.UTF-8",
  ]);
  fs.rmSync(pwfile, { force: true });
  if (r.status !== 0) throw new Error(`initdb failed: ${r.stderr || r.stdout}`);
  // Hosted Supabase's settings that change behaviour migrations can see.
  fs.appendFileSync(
    path.join(PG_DATA, "postgresql.conf"),
    `
# --- saas-backend local stack ---
listen_addresses = '${HOST}'
port = ${PORTS.postgres}
unix_socket_directories = '${PG_SOCKET_DIR}'
shared_preload_libraries = 'pg_cron,pg_stat_statements'
cron.database_name = 'postgres'
cron.use_background_workers = on
cron.timezone = 'UTC'
max_worker_processes = 32
max_connections = 200
search_path = '"$user", public, extensions'
timezone = 'UTC'
log_destination = 'stderr'
logging_collector = off
log_min_messages = warning
`,
  );
}

export function pgIsRunning(): boolean {
  const r = asDbOwner(`${PG_BIN}/pg_ctl`, ["-D", PG_DATA, "status"]);
  return r.status === 0;
}

export function pgPid(): number | null {
  try {
    return Number(fs.readFileSync(path.join(PG_DATA, "postmaster.pid"), "utf8").split("\n")[0]) || null;
  } catch {
    return null;
  }
}

/** Where the cluster finds the libraries the stack builds (safeupdate), after Debian's own `$libdir`. */
export const PG_LIB = path.join(PG_SOCKET_DIR, "lib");

/** Builds safeupdate into PG_LIB (make rebuilds only when its source changed). */
export function buildPostgresLibraries() {
  execFileSync("make", [
    "-s",
    "-C",
    path.join(ROOT, "dev", "platform", "safeupdate"),
    `OUT=${path.join(PG_LIB, "safeupdate.so")}`,
  ], {
    stdio: ["ignore", "ignore", "inherit"],
  });
}

export function startPostgres() {
  buildPostgresLibraries();
  fs.mkdirSync(paths.logs, { recursive: true });
  const logFile = path.join(paths.logs, "postgres.log");
  fs.closeSync(fs.openSync(logFile, "a"));
  if (isRoot) execFileSync("chown", ["postgres:postgres", logFile]);
  // the port on the command line, so a cluster kept between runs (a benchmark's) can move to another;
  // the library path too, so a cluster made before safeupdate existed finds it (pg_ctl hands these
  // options to sh, hence the quotes)
  if (PG_LIB.includes("'")) throw new Error(`the state folder's path may not contain a quote: ${PG_LIB}`);
  const r = asDbOwner(`${PG_BIN}/pg_ctl`, [
    "-D",
    PG_DATA,
    "-l",
    logFile,
    "-w",
    "-t",
    "60",
    "-o",
    `-p ${PORTS.postgres} -c 'dynamic_library_path=$libdir:${PG_LIB}'`,
    "start",
  ]);
  if (r.status !== 0) {
    const tail = fs.readFileSync(logFile, "utf8").split("\n").slice(-15).join("\n");
    throw new Error(`postgres failed to start:\n${r.stderr}${r.stdout}\n${tail}`);
  }
}

export function stopPostgres(mode: "fast" | "immediate" = "fast") {
  if (!clusterExists() || !pgIsRunning()) return false;
  asDbOwner(`${PG_BIN}/pg_ctl`, ["-D", PG_DATA, "-m", mode, "-w", "stop"]);
  return true;
}

/** Runs SQL through psql as postgres with ON_ERROR_STOP, each file in a single transaction. */
export function psqlFile(file: string, dbUrl = DB_URL) {
  const r = spawnSync("psql", [dbUrl, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", file], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`${path.relative(ROOT, file)}: ${r.stderr.trim()}`);
  return r.stdout;
}

export function psql(sql: string, dbUrl = DB_URL): string {
  const r = spawnSync("psql", [dbUrl, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(r.stderr.trim());
  return r.stdout.trim();
}

export function applyBaseline() {
  const files = fs.readdirSync(paths.baselineSql).filter((f) => f.endsWith(".sql")).sort();
  for (const f of files) psqlFile(path.join(paths.baselineSql, f));
  return files.length;
}

/** Lets API-style callers log in as `authenticator` (hosted Supabase gives it a password too). */
/** Lets a role the migrations or baseline made log in, with the stack's password for it. */
export function setLoginPassword(role: "authenticator" | "mqtt_broker", password: string) {
  psql(`alter role ${role} with login password '${password.replaceAll("'", "''")}'`);
}

/** Stores a secret in Vault under a name (replacing an older one), as an operator does on a hosted project. */
export function setVaultSecret(name: string, value: string) {
  const q = (s: string) => `'${s.replaceAll("'", "''")}'`;
  psql(`delete from vault.secrets where name = ${q(name)}; select vault.create_secret(${q(value)}, ${q(name)})`);
}

/** Applies supabase/migrations with the supabase CLI, exactly as against a hosted project. */
export function applyMigrations(workdir = ROOT): { ok: true; output: string } {
  const r = spawnSync("supabase", ["migration", "up", `--remote=${DB_URL}`, "--yes", "--workdir", workdir], {
    encoding: "utf8",
    cwd: workdir,
    env: { ...process.env, SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" },
  });
  const output = `${r.stdout}${r.stderr}`;
  if (r.status !== 0) throw new MigrationError(output.trim());
  return { ok: true, output };
}

export class MigrationError extends Error {}

export function loadSeed() {
  const seed = path.join(paths.supabase, "seed.sql");
  if (fs.existsSync(seed)) psqlFile(seed);
}

/** Versions the database has applied that supabase/migrations no longer has (a rewritten history,
 * such as the release-baseline fold): `supabase migration up` refuses such a database. */
export function appliedMigrationsMissingLocally(): string[] {
  if (psql(`select to_regclass('supabase_migrations.schema_migrations') is null`) === "t") return [];
  const applied = psql(`select string_agg(version, ' ' order by version) from supabase_migrations.schema_migrations`)
    .split(" ").filter(Boolean);
  const local = new Set(fs.readdirSync(path.join(paths.supabase, "migrations")).map((f) => f.split("_")[0]));
  return applied.filter((v) => !local.has(v));
}

/** True when every user in the database is one the seed makes: nothing of anyone's would be lost
 * by building the database again. */
export function holdsOnlySeedUsers(): boolean {
  const seed = path.join(paths.supabase, "seed.sql");
  const emails = fs.existsSync(seed) ? [...fs.readFileSync(seed, "utf8").matchAll(/'([^'\s]+@[^'\s]+)'/g)].map((m) => m[1]) : [];
  const list = emails.map((e) => `'${e.replaceAll("'", "''")}'`).join(", ") || "null";
  return psql(`select count(*) from auth.users where email is null or email not in (${list})`) === "0";
}

/** Removes the cluster's data folder (the database and everything in it). */
export function removeCluster() {
  stopPostgres();
  fs.rmSync(PG_DATA, { recursive: true, force: true });
}
