// Proves that two migration histories build the same database: each is applied with the supabase
// CLI to a throwaway cluster (the stack's own Postgres setup and platform baseline, on a port the
// operating system picks), then the catalogs are compared: pg_dump's schema (functions, policies,
// grants, triggers, indexes, constraints) with its statements put in one order, plus the rows of
// the catalog tables migrations fill and the pg_cron jobs.
//
//   node dev/stack/compare-schemas.ts <old git rev> [<new git rev>]   (new: the working tree)
//
// Used once for the release-baseline fold (its result is in the note); kept for any later
// rewrite of history. Exits 0 when equal, 1 with a unified diff otherwise.
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "./ports.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SELF = fileURLToPath(import.meta.url);

// Rows migrations write, minus columns that differ by construction (random ids, timestamps).
const CATALOG_ROWS = [
  "select tier, to_jsonb(t) from public.subscription_tiers t",
  "select key, to_jsonb(t) from public.permissions t",
  "select role || ' ' || permission, '{}'::jsonb from public.role_permissions",
  "select key, to_jsonb(t) from public.notification_types t",
  "select coalesce(org_id::text, '-') || ' ' || type || ' ' || locale, to_jsonb(t) - 'id' - 'created_at' - 'updated_at' from public.notification_templates t",
  "select key, to_jsonb(t) from public.analytics_event_types t",
  "select id, to_jsonb(t) - 'created_at' - 'updated_at' from storage.buckets t",
  "select 'lockout', to_jsonb(t) from app.password_lockout_policy t",
  "select jobname, jsonb_build_object('schedule', schedule, 'command', command, 'database', database, 'username', username, 'active', active) from cron.job",
];

/** A supabase workdir holding config.toml and the migrations of `rev` (or of the working tree). */
function workdirFor(rev: string | undefined, into: string) {
  const migrations = path.join(into, "supabase", "migrations");
  fs.mkdirSync(migrations, { recursive: true });
  fs.copyFileSync(path.join(ROOT, "supabase", "config.toml"), path.join(into, "supabase", "config.toml"));
  if (!rev) {
    fs.cpSync(path.join(ROOT, "supabase", "migrations"), migrations, { recursive: true });
    return;
  }
  const files = execFileSync("git", ["-C", ROOT, "ls-tree", "--name-only", `${rev}:supabase/migrations`], { encoding: "utf8" })
    .split("\n").filter((f) => f.endsWith(".sql"));
  for (const f of files) {
    fs.writeFileSync(path.join(migrations, f), execFileSync("git", ["-C", ROOT, "show", `${rev}:supabase/migrations/${f}`]));
  }
}

/** Runs in a child whose environment points the stack's Postgres helpers at a throwaway cluster. */
async function buildAndDump(workdir: string, out: string) {
  const { DB_URL, PG_BIN } = await import("./config.ts");
  const pg = await import("./postgres.ts");
  pg.initCluster();
  pg.startPostgres();
  try {
    pg.applyBaseline();
    pg.applyMigrations(workdir);
    const schema = spawnSync(`${PG_BIN}/pg_dump`, ["--schema-only", DB_URL], { encoding: "utf8", maxBuffer: 256 << 20 });
    if (schema.status !== 0) throw new Error(schema.stderr);
    const rows = CATALOG_ROWS.map((q) =>
      pg.psql(`select string_agg(k || ' ' || v::text, E'\\n' order by k) from (${q}) r(k, v)`)
    );
    fs.writeFileSync(out, JSON.stringify({ schema: schema.stdout, rows }));
  } finally {
    pg.stopPostgres("immediate");
  }
}

/** pg_dump's objects (each from its `-- Name:` header to the next), without session settings and
 * the per-dump \restrict key, sorted; then the catalog rows. */
function normalise(dump: { schema: string; rows: string[] }): string {
  const objects: string[] = [];
  for (const line of dump.schema.split("\n")) {
    if (line.startsWith("-- Name: ")) objects.push("");
    if (line.startsWith("--") || line.trim() === "" || /^(SET |SELECT pg_catalog\.set_config|\\(un)?restrict )/.test(line)) {
      continue;
    }
    if (objects.length) objects[objects.length - 1] += line + "\n";
  }
  return [...objects.sort(), ...dump.rows].join("\n") + "\n";
}

async function side(label: string, rev: string | undefined, tmp: string) {
  const dir = path.join(tmp, label);
  workdirFor(rev, dir);
  const out = path.join(tmp, `${label}.json`);
  const port = await freePort();
  console.log(`building ${label} (${rev ?? "working tree"}) on port ${port}`);
  const r = spawnSync(process.execPath, [SELF, "--build", dir, out], {
    stdio: "inherit",
    env: { ...process.env, STACK_STATE_DIR: path.join(dir, "state"), STACK_POSTGRES_PORT: String(port) },
  });
  if (r.status !== 0) throw new Error(`building ${label} failed`);
  const text = normalise(JSON.parse(fs.readFileSync(out, "utf8")));
  fs.writeFileSync(path.join(tmp, `${label}.sql`), text);
  return path.join(tmp, `${label}.sql`);
}

const args = process.argv.slice(2);
if (args[0] === "--build") {
  await buildAndDump(args[1], args[2]);
} else if (args.length < 1 || args.length > 2) {
  console.error("usage: node dev/stack/compare-schemas.ts <old git rev> [<new git rev>]");
  process.exitCode = 2;
} else {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "compare-schemas-"));
  if (process.getuid?.() === 0) fs.chmodSync(tmp, 0o755);
  const a = await side("old", args[0], tmp);
  const b = await side("new", args[1], tmp);
  const diff = spawnSync("diff", ["-u", a, b], { encoding: "utf8" });
  const objects = (fs.readFileSync(a, "utf8").match(/^(CREATE|ALTER|GRANT|REVOKE|COMMENT)/gm) ?? []).length;
  if (diff.status === 0) {
    console.log(`equal: ${objects} statements of pg_dump and ${CATALOG_ROWS.length} catalog tables compared`);
    fs.rmSync(tmp, { recursive: true, force: true });
  } else {
    console.log(diff.stdout);
    console.log(`DIFFERENT (files kept in ${tmp})`);
    process.exitCode = 1;
  }
}
