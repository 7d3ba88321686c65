// Proves that two sources build the same database. A source is a migration history (of a git
// revision, or of the working tree) or the declarative schema files (supabase/schemas). Each is
// applied with the supabase CLI to a throwaway cluster (the stack's own Postgres setup and
// platform baseline, on a port the operating system picks), then the catalogs are compared:
// pg_dump's schema (functions, policies, grants, triggers, indexes, constraints, comments) with its
// statements put in one order, plus the rows of the catalog tables migrations fill, the pg_cron
// jobs and the roles.
//
//   node dev/stack/compare-schemas.ts <old git rev> [<new git rev>]   (new: the working tree)
//   node dev/stack/compare-schemas.ts --schema [<schema dir>]         (the working tree's
//                                                     migrations against supabase/schemas)
//
// Exits 0 when equal, 1 with a unified diff otherwise. `npm test` runs the second form
// (tests/integration/schema-drift.test.ts); `npm run db:diff` starts the same clusters.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PG_BIN } from "./config.ts";
import { freePort } from "./ports.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SELF = fileURLToPath(import.meta.url);
export const SCHEMA_DIR = path.join(ROOT, "supabase", "schemas");

// Rows migrations write, minus columns that differ by construction (random ids, timestamps).
export const CATALOG_ROWS = [
  "select tier, to_jsonb(t) from public.subscription_tiers t",
  "select key, to_jsonb(t) from public.permissions t",
  "select role || ' ' || permission, '{}'::jsonb from public.role_permissions",
  "select key, to_jsonb(t) from public.notification_types t",
  "select coalesce(org_id::text, '-') || ' ' || type || ' ' || locale, to_jsonb(t) - 'id' - 'created_at' - 'updated_at' from public.notification_templates t",
  "select key, to_jsonb(t) from public.analytics_event_types t",
  "select id, to_jsonb(t) - 'created_at' - 'updated_at' from storage.buckets t",
  "select 'lockout', to_jsonb(t) from app.password_lockout_policy t",
  "select jobname, jsonb_build_object('schedule', schedule, 'command', command, 'database', database, 'username', username, 'active', active) from cron.job",
  // roles and their comments live outside the database pg_dump reads
  "select rolname, jsonb_build_object('login', rolcanlogin, 'inherit', rolinherit, 'comment', shobj_description(oid, 'pg_authid')) from pg_roles where rolname !~ '^pg_'",
  // rows written anywhere else, counted where there are any. Not cron's run log (it grows while a
  // cluster runs), nor the audit log, whose entries for catalog rows say in which order a history
  // inserted them
  `select t, to_jsonb(n) from (
     select n.nspname || '.' || c.relname,
            (xpath('/row/n/text()', query_to_xml(format('select count(*) as n from %I.%I', n.nspname, c.relname), false, true, '')))[1]::text::bigint
     from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where c.relkind in ('r', 'p') and not c.relispartition and n.nspname in ('public', 'app', 'audit', 'analytics', 'mqtt', 'storage', 'cron', 'vault')
       and (n.nspname, c.relname) not in (('cron', 'job_run_details'), ('audit', 'log'))
   ) counts(t, n) where n > 0`,
];

/** Where a database comes from: migrations (`rev` of git, or the folder `dir`, by default the
 * working tree's; `extra` migration files added after them), or a folder of schema files applied
 * in file-name order. */
export type Source =
  | { kind: "migrations"; rev?: string; dir?: string; extra?: string[] }
  | { kind: "schema"; dir: string };

export function describe(source: Source) {
  return source.kind === "schema"
    ? `schema files ${path.relative(ROOT, source.dir) || source.dir}`
    : `migrations of ${source.rev ?? (source.dir ? path.relative(ROOT, source.dir) || source.dir : "the working tree")}${
      source.extra?.length ? ` + ${source.extra.map((f) => path.basename(f)).join(", ")}` : ""
    }`;
}

/** The project's config.toml for a throwaway workdir: the CLI reads signing_keys_path while it
 * migrates, and that file exists only where `npm start` has made it; it also reads each mail
 * template's content_path (inside the workdir), which migrating does not need. */
function writeConfig(into: string) {
  const config = fs.readFileSync(path.join(ROOT, "supabase", "config.toml"), "utf8")
    .replace(/^signing_keys_path\s*=.*$/m, "")
    .replace(/^content_path\s*=.*$/gm, "");
  fs.writeFileSync(path.join(into, "supabase", "config.toml"), config);
}

/** The schema files in the order the supabase CLI applies them (schema_paths sorts by name). */
export function schemaFiles(dir: string) {
  return fs.readdirSync(dir).filter((f) => f.endsWith(".sql")).sort();
}

/** A supabase workdir whose migrations folder holds what `source` applies, in order. Schema
 * files become migrations numbered in file-name order, so the same CLI parser runs them. */
export function workdirFor(source: Source, into: string) {
  const migrations = path.join(into, "supabase", "migrations");
  fs.mkdirSync(migrations, { recursive: true });
  writeConfig(into);
  if (source.kind === "schema") {
    schemaFiles(source.dir).forEach((f, i) => {
      fs.copyFileSync(path.join(source.dir, f), path.join(migrations, `${String(i + 1).padStart(14, "0")}_${f}`));
    });
    return;
  }
  if (!source.rev) {
    fs.cpSync(source.dir ?? path.join(ROOT, "supabase", "migrations"), migrations, { recursive: true });
  } else {
    const files = execFileSync("git", ["-C", ROOT, "ls-tree", "--name-only", `${source.rev}:supabase/migrations`], {
      encoding: "utf8",
    })
      .split("\n").filter((f) => f.endsWith(".sql"));
    for (const f of files) {
      fs.writeFileSync(
        path.join(migrations, f),
        execFileSync("git", ["-C", ROOT, "show", `${source.rev}:supabase/migrations/${f}`]),
      );
    }
  }
  for (const f of source.extra ?? []) fs.copyFileSync(f, path.join(migrations, path.basename(f)));
}

/** A running throwaway cluster built from a source. */
export type Cluster = { label: string; url: string; port: number; workdir: string; stop: () => Promise<void> };

/** Runs this file as a child whose environment points the stack's Postgres helpers at the
 * throwaway cluster in `dir` (config.ts reads the environment once, when imported). */
function child(args: string[], dir: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [SELF, ...args], {
      env: { ...process.env, STACK_STATE_DIR: path.join(dir, "state"), STACK_POSTGRES_PORT: String(port) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    p.on("error", reject);
    p.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`${args[0]} failed:\n${out.trim()}`))));
  });
}

/** Builds a cluster from `source` under `tmp/label` and leaves it running; stop() removes nothing
 * (the caller removes `tmp`). */
export async function startCluster(source: Source, tmp: string, label: string): Promise<Cluster> {
  const dir = path.join(tmp, label);
  workdirFor(source, dir);
  const port = await freePort();
  try {
    await child(["--build", dir], dir, port);
  } catch (e) {
    await child(["--stop"], dir, port).catch(() => {});
    throw new Error(`building ${label} (${describe(source)}) failed: ${(e as Error).message}`);
  }
  return {
    label,
    url: `postgresql://postgres:postgres@127.0.0.1:${port}/postgres`,
    port,
    workdir: dir,
    stop: () => child(["--stop"], dir, port).then(() => {}),
  };
}

/** Applies migration files to a running cluster with the supabase CLI, as `npm start` applies a
 * new migration to a database that has the ones before it. */
export async function migrateCluster(cluster: Cluster, files: string[]) {
  for (const f of files) fs.copyFileSync(f, path.join(cluster.workdir, "supabase", "migrations", path.basename(f)));
  await child(["--migrate", cluster.workdir], cluster.workdir, cluster.port);
}

/** Child side of startCluster: a new cluster, the platform baseline, the workdir's migrations. */
async function build(workdir: string) {
  const pg = await import("./postgres.ts");
  pg.initCluster();
  pg.startPostgres();
  pg.applyBaseline();
  pg.applyMigrations(workdir);
}

/** The catalog as one text: pg_dump's objects (each from its `-- Name:` header to the next),
 * without session settings and the per-dump \restrict key, sorted; then the catalog rows, each
 * table's rows sorted by key. */
export function snapshot(url: string): string {
  const dump = spawnSync(`${PG_BIN}/pg_dump`, ["--schema-only", url], { encoding: "utf8", maxBuffer: 256 << 20 });
  if (dump.status !== 0) throw new Error(dump.stderr);
  // An ACL's GRANT lines follow the order of its entries, which is the order the grants were made
  // in: the same privileges reached by another history come out in another order.
  const objects: { text: string; acl: boolean }[] = [];
  for (const line of dump.stdout.split("\n")) {
    if (line.startsWith("-- Name: ")) objects.push({ text: "", acl: /; Type: (DEFAULT )?ACL;/.test(line) });
    if (line.startsWith("--") || line.trim() === "" || /^(SET |SELECT pg_catalog\.set_config|\\(un)?restrict )/.test(line)) {
      continue;
    }
    if (objects.length) objects[objects.length - 1].text += line + "\n";
  }
  const texts = objects.map((o) => o.acl ? o.text.split("\n").filter(Boolean).sort().join("\n") + "\n" : o.text);
  return [...texts.sort(), ...catalogRows(url)].join("\n") + "\n";
}

/** Each CATALOG_ROWS query's rows as `key value` lines sorted by key, under a `-- rows:` line. */
export function catalogRows(url: string): string[] {
  return CATALOG_ROWS.map((q) => {
    const r = spawnSync("psql", [
      url,
      "-X",
      "-q",
      "-t",
      "-A",
      "-v",
      "ON_ERROR_STOP=1",
      "-c",
      `select string_agg(k || ' ' || v::text, E'\\n' order by k) from (${q}) r(k, v)`,
    ], {
      encoding: "utf8",
    });
    if (r.status !== 0) throw new Error(r.stderr);
    return `-- rows: ${q}\n${r.stdout.trim()}\n`;
  });
}

/** The pg_dump statements of a snapshot, counted (CREATE, ALTER, GRANT, REVOKE, COMMENT). */
export function statementCount(text: string) {
  return (text.match(/^(CREATE|ALTER|GRANT|REVOKE|COMMENT)/gm) ?? []).length;
}

/** A unified diff of two snapshots written under `tmp`; empty when they are equal. */
export function diffSnapshots(a: string, b: string, tmp: string, labels = ["a", "b"]): string {
  const fa = path.join(tmp, `${labels[0]}.sql`);
  const fb = path.join(tmp, `${labels[1]}.sql`);
  fs.writeFileSync(fa, a);
  fs.writeFileSync(fb, b);
  const d = spawnSync("diff", ["-u", fa, fb], { encoding: "utf8", maxBuffer: 64 << 20 });
  return d.status === 0 ? "" : d.stdout;
}

/** A folder for throwaway clusters that the Debian `postgres` user can enter (as root). */
export function makeTmp(prefix = "compare-schemas-") {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (process.getuid?.() === 0) fs.chmodSync(tmp, 0o755);
  return tmp;
}

/** Builds each source in its own cluster (at the same time), snapshots and stops them. */
export async function snapshots(sources: Source[], tmp: string): Promise<string[]> {
  const clusters = await Promise.allSettled(sources.map((s, i) => startCluster(s, tmp, `source${i}`)));
  try {
    const failed = clusters.find((c) => c.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    return clusters.map((c) => snapshot((c as PromiseFulfilledResult<Cluster>).value.url));
  } finally {
    await Promise.allSettled(clusters.map((c) => c.status === "fulfilled" ? c.value.stop() : undefined));
  }
}

async function main(args: string[]) {
  if (args[0] === "--build") return build(args[1]);
  if (args[0] === "--stop") return void (await import("./postgres.ts")).stopPostgres("immediate");
  if (args[0] === "--migrate") {
    const pg = await import("./postgres.ts");
    try {
      pg.applyMigrations(args[1]);
    } catch (e) {
      // the CLI's own message names the file and the statement; a stack trace adds nothing
      if (!(e instanceof pg.MigrationError)) throw e;
      console.error(e.message);
      process.exitCode = 1;
    }
    return;
  }
  let sources: [Source, Source];
  if (args[0] === "--schema" && args.length <= 2) {
    sources = [{ kind: "migrations" }, { kind: "schema", dir: path.resolve(args[1] ?? SCHEMA_DIR) }];
  } else if (args.length >= 1 && args.length <= 2 && !args[0].startsWith("-")) {
    sources = [{ kind: "migrations", rev: args[0] }, { kind: "migrations", rev: args[1] }];
  } else {
    console.error(
      "usage: node dev/stack/compare-schemas.ts <old git rev> [<new git rev>]\n" +
        "       node dev/stack/compare-schemas.ts --schema [<schema dir>]",
    );
    process.exitCode = 2;
    return;
  }
  const tmp = makeTmp();
  const started = Date.now();
  console.log(`building ${describe(sources[0])} and ${describe(sources[1])}`);
  const [a, b] = await snapshots(sources, tmp);
  const diff = diffSnapshots(a, b, tmp, ["old", "new"]);
  const took = `${((Date.now() - started) / 1000).toFixed(1)} s`;
  if (!diff) {
    console.log(`equal: ${statementCount(a)} statements of pg_dump and ${CATALOG_ROWS.length} catalog tables compared (${took})`);
    fs.rmSync(tmp, { recursive: true, force: true });
  } else {
    console.log(diff);
    console.log(`DIFFERENT (files kept in ${tmp})`);
    process.exitCode = 1;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === SELF) await main(process.argv.slice(2));
