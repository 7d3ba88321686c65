// The Docker-less local stack: `start` (idempotent), `stop`, `status`, `token`, `pgtap`, `gen-types`.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { DB_URL, HOST, paths, PORTS, ROOT, STATE } from "./config.ts";
import { logger } from "./log.ts";
import * as pg from "./postgres.ts";
import { canConnect, portOwner, readPid, sleep, spawnDetached, stopProcess, waitFor } from "./processes.ts";
import { portHolder, reservePorts } from "./ports.ts";
import { functionsDbUrl, poolerSettings } from "./pooler.ts";
import { ensureSecrets, readSecrets, type StackSecrets } from "./secrets.ts";
import { type Service, services, writeFunctionsEnv } from "./services.ts";
import { loadProjectConfig } from "../platform/project-config.ts";
import { ignoredSwitches, readAsks } from "../platform/not-provided.ts";
import { parse as parseToml } from "smol-toml";
import { mintAccessToken, TokenError } from "../platform/auth/tokens.ts";
import { ensureSigningKeysFile, projectSigner } from "../platform/auth/signing-keys.ts";

const log = logger("stack");

class StartError extends Error {}

function tail(file: string, lines = 15) {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Every port this start needs must be free. A listener there is another program: nothing is
 * started. A port held only by connections (the kernel gave it to an outgoing connection as its
 * local port; see ports.ts) is waited for, briefly, since such connections end.
 */
async function checkPortsFree(todo: Service[], pgNeeded: boolean) {
  const taken: string[] = [];
  const ports = [
    ...todo.flatMap((s) => s.ports.map((p) => [s.name, p] as const)),
    ...(pgNeeded ? [["postgres", PORTS.postgres] as const] : []),
  ];
  for (const [name, port] of ports) {
    if (await canConnect(port)) {
      taken.push(`port ${port} (for ${name}) is already taken by ${portOwner(port)}`);
      continue;
    }
    const deadline = Date.now() + PORT_WAIT_MS;
    let holder = portHolder(port);
    if (holder?.kind === "connection") log.info("port held by a connection, waiting", { port, for: name, owner: holder.owner });
    while (holder?.kind === "connection" && Date.now() < deadline) {
      await sleep(250);
      holder = portHolder(port);
    }
    if (holder?.kind === "connection") {
      taken.push(
        `port ${port} (for ${name}) is held by a connection of ${holder.owner} (the kernel gave it the port as its local one)`,
      );
    }
  }
  if (taken.length) {
    throw new StartError(`cannot start: ${taken.join("; ")}. Stop that process or free the port; nothing was started.`);
  }
}

/**
 * Functions read their SUPABASE_DB_URL when they start, so a running gateway keeps its functions on
 * the pooler or off it as the stack was started. A start that would change that (the [db.pooler]
 * setting changed since) would leave some functions on each: it refuses and says how to restart.
 */
function checkFunctionsDbUrl() {
  if (!readPid("gateway")) return;
  let running: string | undefined;
  try {
    running = /^SUPABASE_DB_URL=(.*)$/m.exec(fs.readFileSync(paths.functionsEnv, "utf8"))?.[1];
  } catch { /* no file yet: nothing ran with one */ }
  const wanted = functionsDbUrl();
  if ((running ?? DB_URL) === wanted) return;
  const where = (url: string) => (url === DB_URL ? "Postgres directly" : "the pooler");
  throw new StartError(
    `[db.pooler] changed while the stack runs: its functions connect to ${where(running ?? DB_URL)}, the setting now says ${
      where(wanted)
    }. Restart the stack: npm stop && npm start`,
  );
}

/** How long a start waits for connections that hold one of its ports to end. */
const PORT_WAIT_MS = 10_000;

/** Keeps outgoing connections off the stack's ports (Linux, as root; otherwise says how, once). */
function reserveStackPorts() {
  // the pooler's too, on or off, so switching it on never finds its port held by a connection
  const ports = [...Object.values(PORTS), poolerSettings().port];
  const r = reservePorts(ports);
  if (r.state === "reserved") log.info("stack ports reserved from the ephemeral range", { ports });
  if (r.state === "not-permitted") {
    log.warn(
      "the stack's ports lie in the kernel's ephemeral range, so an outgoing connection can take one; reserve them once with",
      {
        command: r.command,
      },
    );
  }
}

function historyMismatchMessage(missing: string[], onlySeed: boolean, running: string[]) {
  const range = missing.length > 1 ? `${missing[0]} ... ${missing[missing.length - 1]}` : missing[0];
  const head = [
    `the local database was built from ${missing.length} migration(s) that supabase/migrations no longer has (${range}):`,
    "the history was rewritten (the release baseline folds the first migrations into one per concern), and",
    "`supabase migration up` refuses a database whose history it does not know.",
  ];
  if (onlySeed) {
    return [
      ...head,
      `It holds only seed data, but the stack is running on it (${running.join(", ")}). Rebuild it with:`,
      "",
      "    npm stop && npm start",
    ].join("\n");
  }
  return [
    ...head,
    "It holds data beyond the seed, so it was left as it is. To build it again from the current migrations",
    "(its data is lost; the seed is loaded again):",
    "",
    "    npm stop && rm -rf .stack/postgres && npm start",
    "",
    `To keep some of it, dump it first: pg_dump --data-only --schema=public ${DB_URL} > local-data.sql`,
  ].join("\n");
}

async function start() {
  fs.mkdirSync(STATE, { recursive: true });
  const secrets = await ensureSecrets();
  // a new project's default, as `supabase gen signing-key --algorithm ES256` makes it
  const keysFile = loadProjectConfig(paths.supabase).auth.signingKeysPath;
  if (keysFile && await ensureSigningKeysFile(keysFile)) log.info("made a JWT signing key (ES256)", { file: keysFile });
  warnIgnoredSwitches();
  const all = services(secrets);
  const todo = all.filter((s) => !readPid(s.name));
  checkFunctionsDbUrl();
  reserveStackPorts();
  const pgRunning = pg.clusterExists() && pg.pgIsRunning();
  await checkPortsFree(todo, !pgRunning);

  const startedHere: string[] = [];
  try {
    let fresh = false;
    if (!pg.clusterExists()) {
      log.info("creating postgres cluster", { data: pg.clusterExists() });
      pg.initCluster();
      fresh = true;
    }
    if (!pgRunning) {
      pg.startPostgres();
      startedHere.push("postgres");
      log.info("postgres started", { port: PORTS.postgres });
    }
    let n = pg.applyBaseline();
    const foreign = pg.appliedMigrationsMissingLocally();
    if (foreign.length) {
      // Built from a migration history this checkout no longer has (the release baseline folded
      // the first 28 migrations): the CLI refuses it, and its data cannot be carried over.
      const running = all.filter((s) => readPid(s.name)).map((s) => s.name);
      const onlySeed = pg.holdsOnlySeedUsers();
      if (!onlySeed || running.length) throw new StartError(historyMismatchMessage(foreign, onlySeed, running));
      log.info("rebuilding the local database: it was built from an older migration history and holds only seed data", {
        missing: foreign.length,
      });
      pg.removeCluster();
      pg.initCluster();
      pg.startPostgres();
      if (!startedHere.includes("postgres")) startedHere.push("postgres");
      n = pg.applyBaseline();
      fresh = true;
    }
    pg.setLoginPassword("authenticator", secrets.authenticatorPassword);
    log.info("platform baseline applied", { files: n });
    if (pg.psql(`select count(*) from pg_roles where 'session_preload_libraries=safeupdate' = any (rolconfig)`) === "0") {
      // 90-safeupdate.sql left it off: this Postgres was started before the library was built
      log.warn(
        "safeupdate is not loaded for authenticator: unfiltered writes through the Data API are refused after `npm stop && npm start`",
      );
    }
    try {
      const out = pg.applyMigrations().output;
      // The migration creates mqtt_broker without LOGIN: where a broker runs, it gets one.
      pg.setLoginPassword("mqtt_broker", secrets.mqttBrokerDbPassword);
      // What pg_net calls to functions need (app.call_function): the API URL and the service key.
      pg.setVaultSecret("project_url", `http://${HOST}:${PORTS.gateway}`);
      pg.setVaultSecret("service_role_key", secrets.serviceRoleKey);
      // PostgREST's schema cache follows the migrations (the DDL event triggers do it too).
      pg.psql("notify pgrst, 'reload schema'");
      // pg_cron makes analytics partitions a week ahead once a day (00:07); a local stack that was
      // stopped then catches up here, as a hosted database that never stops does not need to.
      pg.psql("select app.create_analytics_partitions()");
      log.info("migrations applied", { output: out.trim().split("\n")[0] });
    } catch (e) {
      if (e instanceof pg.MigrationError) throw new StartError(`a migration failed, the stack will not start:\n${e.message}`);
      throw e;
    }
    if (fresh) {
      pg.loadSeed();
      log.info("seed loaded");
    }
    writeFunctionsEnv(secrets);
    for (const s of todo) {
      s.prepare?.();
      spawnDetached(s);
      startedHere.push(s.name);
      try {
        await waitFor(s.name, s.healthy, 30_000);
      } catch {
        throw new StartError(
          `${s.name} did not become healthy. Its log (${path.join(paths.logs, s.name + ".log")}) ends:\n${
            tail(path.join(paths.logs, s.name + ".log"))
          }`,
        );
      }
      log.info("service up", { service: s.name });
    }
    await waitFor(
      "health function",
      async () => {
        try {
          return (await fetch(`http://${HOST}:${PORTS.gateway}/functions/v1/health`)).status === 200;
        } catch {
          return false;
        }
      },
      60_000,
      path.join(paths.logs, "functions", "health.log"),
    );
  } catch (e) {
    // Nothing half-started: undo what this run started.
    for (const name of startedHere.reverse()) {
      if (name === "postgres") pg.stopPostgres();
      else await stopProcess(name);
    }
    throw e;
  }
  printStatus(secrets, await statusRows(secrets));
}

async function stop() {
  const secrets = readSecrets();
  const names = secrets ? services(secrets).map((s) => s.name).reverse() : [];
  // a pooler started while [db.pooler] was on, stopped whatever the setting says now
  if (!names.includes("pgbouncer")) names.push("pgbouncer");
  for (const name of names) if (await stopProcess(name)) log.info("stopped", { service: name });
  if (pg.stopPostgres()) log.info("stopped", { service: "postgres" });
}

interface Row {
  name: string;
  pid: number | null;
  healthy: boolean;
  url: string;
}

async function statusRows(secrets: StackSecrets): Promise<Row[]> {
  const rows: Row[] = [{
    name: "postgres",
    pid: pg.pgIsRunning() ? pg.pgPid() : null,
    healthy: await canConnect(PORTS.postgres),
    url: DB_URL,
  }];
  for (const s of services(secrets)) {
    const pid = readPid(s.name);
    rows.push({ name: s.name, pid, healthy: pid !== null && (await s.healthy()), url: s.url });
  }
  return rows;
}

/** The status's pooler line, when [db.pooler] is on. */
function poolerLine() {
  const s = poolerSettings();
  return s.enabled ? `      Pooler URL: ${functionsDbUrl(s)}  (${s.poolMode} mode; functions' SUPABASE_DB_URL)\n` : "";
}

function printStatus(secrets: StackSecrets, rows: Row[]) {
  const w = Math.max(...rows.map((r) => r.name.length));
  console.log("\nLocal stack (saas-backend)\n");
  for (const r of rows) {
    const state = r.pid === null ? "stopped" : r.healthy ? "running" : "unhealthy";
    console.log(`  ${r.name.padEnd(w)}  ${state.padEnd(9)}  ${r.pid ?? "-"}\t${r.url}`);
  }
  console.log(`
         API URL: http://${HOST}:${PORTS.gateway}
   Functions URL: http://${HOST}:${PORTS.gateway}/functions/v1
          DB URL: ${DB_URL}
${poolerLine()}      JWT secret: ${secrets.jwtSecret}
 publishable key: ${secrets.publishableKey}
      secret key: ${secrets.secretKey}
        anon key: ${secrets.anonKey}  (legacy)
service_role key: ${secrets.serviceRoleKey}  (legacy)
  Upstash (REST): http://${HOST}:${PORTS.upstash}  token ${secrets.upstashToken}
            MQTT: mqtt://${HOST}:${PORTS.mqtt}  ws://${HOST}:${PORTS.mqttWs}  (password: an access token, an API key, the secret key or the service_role key)
            Logs: ${paths.logs}
`);
}

/** config.toml says what runs: a switch that asks for what the stack does not run is said out loud. */
function warnIgnoredSwitches() {
  const raw = parseToml(fs.readFileSync(path.join(paths.supabase, "config.toml"), "utf8")) as Record<string, unknown>;
  for (const f of ignoredSwitches(raw)) {
    log.warn("config.toml asks for a feature the local stack does not run", {
      switch: f.configSwitch,
      feature: f.feature,
      instead: f.instead,
    });
  }
}

function printAsks() {
  const asked = Object.entries(readAsks(paths.notProvided));
  if (asked.length === 0) return;
  console.log("\nAsked for, not provided locally (answered 501 not_provided_locally):");
  for (const [feature, a] of asked) console.log(`  ${feature}: ${a.count} request(s), last ${a.last} (${a.path})`);
}

async function status() {
  const secrets = readSecrets();
  if (!secrets) {
    console.log("The stack has never been started here. Run: npm start");
    return 1;
  }
  const rows = await statusRows(secrets);
  printStatus(secrets, rows);
  printAsks();
  return rows.every((r) => r.pid !== null && r.healthy) ? 0 : 1;
}

async function token(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      user: { type: "string" },
      email: { type: "string" },
      "expires-in": { type: "string" },
      claims: { type: "boolean" },
    },
  });
  const secrets = readSecrets();
  if (!secrets) throw new StartError("the stack has no secrets yet: run npm start first");
  const sql = postgres(DB_URL, { max: 1, onnotice: () => {} });
  try {
    const { token: t, claims } = await mintAccessToken(
      sql,
      projectSigner(loadProjectConfig(paths.supabase), secrets.jwtSecret),
      loadProjectConfig(paths.supabase),
      {
        userId: values.user,
        email: values.email,
        expiresIn: values["expires-in"] ? Number(values["expires-in"]) : undefined,
        supabaseUrl: `http://${HOST}:${PORTS.gateway}`,
      },
    );
    console.log(values.claims ? JSON.stringify(claims, null, 2) : t);
  } finally {
    await sql.end();
  }
}

function pgtap(argv: string[]) {
  const dir = path.join(ROOT, "supabase", "tests", "database");
  const files = argv.length
    ? argv
    : fs.readdirSync(dir).filter((f) => f.endsWith(".test.sql")).sort().map((f) => path.join(dir, f));
  const r = spawnSync("pg_prove", [
    "--ext",
    ".sql",
    "-h",
    HOST,
    "-p",
    String(PORTS.postgres),
    "-U",
    "postgres",
    "-d",
    "postgres",
    ...files,
  ], {
    stdio: "inherit",
    env: { ...process.env, PGPASSWORD: "postgres" },
  });
  return r.status ?? 1;
}

// The schemas supabase-js callers reach: those config.toml exposes, minus graphql_public.
const TYPES_FILE = path.join(ROOT, "supabase", "functions", "_shared", "database.types.ts");
function generatedTypes(): string {
  const r = spawnSync("supabase", [
    "gen",
    "types",
    "typescript",
    `--remote=${DB_URL}`,
    "--schema",
    "public,audit",
    "--workdir",
    ROOT,
  ], {
    encoding: "utf8",
    cwd: ROOT,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new StartError(`supabase gen types failed:\n${r.stderr}`);
  return r.stdout;
}

/** `gen-types` writes the committed types; `gen-types --check` fails when they are out of date. */
function genTypes(check: boolean) {
  const fresh = generatedTypes();
  const rel = path.relative(ROOT, TYPES_FILE);
  if (check) {
    const committed = fs.existsSync(TYPES_FILE) ? fs.readFileSync(TYPES_FILE, "utf8") : "";
    if (committed !== fresh) throw new StartError(`${rel} is out of date with the migrations: run npm run gen:types`);
    console.log(`${rel} is up to date`);
    return;
  }
  fs.writeFileSync(TYPES_FILE, fresh);
  console.log(`wrote ${rel}`);
}

const [cmd, ...rest] = process.argv.slice(2);
try {
  switch (cmd) {
    case "start":
      await start();
      break;
    case "stop":
      await stop();
      break;
    case "status":
      process.exitCode = await status();
      break;
    case "token":
      await token(rest);
      break;
    case "pgtap":
      process.exitCode = pgtap(rest);
      break;
    case "gen-types":
      genTypes(rest.includes("--check"));
      break;
    default:
      console.error("usage: stack start|stop|status|token [--email E | --user ID] [--claims]|pgtap [files]|gen-types");
      process.exitCode = 2;
  }
} catch (e) {
  if (e instanceof StartError || e instanceof TokenError) {
    console.error(`\n${e.message}\n`);
    process.exitCode = 1;
  } else throw e;
}
