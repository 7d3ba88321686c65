// `npm run db:diff -- <name>`: the next migration, generated from the declarative schema. Builds
// throwaway clusters from supabase/migrations and one from supabase/schemas (compare-schemas.ts),
// asks @pgkit/migra (a TypeScript port of migra, the diff engine `supabase db diff` has used)
// for the statements that take the first to the second, applies them to a scratch cluster, and
// adds what migra leaves out: privileges as they end up (Supabase's default privileges on a new
// table, column grants, function EXECUTE, schema USAGE) and comments. The result is written as
// supabase/migrations/<timestamp>_<name>.sql, with the catalog rows, pg_cron jobs and roles that
// differ listed as comments to write by hand; then the file is applied to a cluster built from the
// migrations, with the supabase CLI as `npm start` applies it, and compared with the schema's, so
// what is still missing (docs/database.md) is reported at once, not by the next `npm test`.
// Prints "no changes" and writes nothing when the databases are equal.
//
//   node dev/stack/db-diff.ts <name> [--schema <dir>] [--migrations <dir>]
//
// Exits 0 when the written migration (or no migration) reaches the schema files, 1 when it
// needs hand-written statements (listed), 2 on bad arguments.
import { run } from "@pgkit/migra";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  catalogRows,
  type Cluster,
  diffSnapshots,
  makeTmp,
  migrateCluster,
  SCHEMA_DIR,
  snapshot,
  startCluster,
} from "./compare-schemas.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SELF = fileURLToPath(import.meta.url);

export type DiffResult =
  | { status: "no changes" }
  | { status: "written"; file: string; sql: string; complete: boolean; remaining: string };

/** The next migration version: now (UTC, as `supabase migration new` names them), and always after
 * the last migration there is. */
export function nextVersion(migrationsDir: string, now = new Date()) {
  const stamp = now.toISOString().replace(/[-:T]/g, "").slice(0, 14);
  const last = fs.readdirSync(migrationsDir).map((f) => f.match(/^(\d{14})_/)?.[1]).filter(Boolean).sort().pop();
  return last && last >= stamp ? String(BigInt(last) + 1n) : stamp;
}

/** What migra says takes database `from` to database `to` (privileges are done below). */
async function migraSql(from: string, to: string): Promise<string> {
  const m = await run(from, to, { unsafe: true, withPrivileges: false });
  try {
    return m.sql.trim();
  } finally {
    // run() opened a connection pool on each side; left open they outlive the clusters
    for (const side of [m.s_from, m.s_target] as unknown as { end?: () => Promise<void> }[]) await side.end?.();
  }
}

function query(url: string, sql: string): string[][] {
  const r = spawnSync("psql", [
    url,
    "-X",
    "-q",
    "-t",
    "-A",
    "-F",
    "\t",
    "-v",
    "ON_ERROR_STOP=1",
    "-c",
    `set search_path to ''; ${sql}`,
  ], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.split("\n").filter(Boolean).map((l) => l.split("\t"));
}

function apply(url: string, sql: string, tmp: string) {
  const file = path.join(tmp, `apply-${Date.now()}.sql`);
  fs.writeFileSync(file, sql);
  const r = spawnSync("psql", [url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", file], {
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(r.stderr.trim());
}

// Every privilege as `kind, object, column, grantee, privilege, grantable`, names qualified (the
// session's search_path is empty). A null ACL is the owner's default, spelt out by acldefault.
const PRIVILEGES = `
  with objects as (
    select case when c.relkind = 'S' then 'sequence' else 'table' end as kind, c.oid::regclass::text as obj, '' as col,
           coalesce(c.relacl, acldefault(case when c.relkind = 'S' then 's' else 'r' end::"char", c.relowner)) as acl
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
    union all
    select 'table', c.oid::regclass::text, quote_ident(a.attname), a.attacl
    from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
    where a.attacl is not null and a.attnum > 0 and not a.attisdropped
    union all
    select case p.prokind when 'p' then 'procedure' else 'function' end, p.oid::regprocedure::text, '',
           coalesce(p.proacl, acldefault('f', p.proowner))
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    union all
    select 'schema', quote_ident(n.nspname), '', coalesce(n.nspacl, acldefault('n', n.nspowner)) from pg_namespace n
  )
  select o.kind, o.obj, o.col, case when e.grantee = 0 then 'public' else quote_ident(r.rolname) end, e.privilege_type, e.is_grantable::text
  from objects o cross join lateral aclexplode(o.acl) e left join pg_roles r on r.oid = e.grantee
  where o.obj !~ '^(pg_catalog|information_schema|pg_toast)\\.' and o.obj not in ('pg_catalog', 'information_schema', 'pg_toast')`;

/** GRANT and REVOKE statements that give database `from` the privileges of database `to`. */
export function privilegeStatements(from: string, to: string): string {
  const key = (r: string[]) => r.join("\t");
  const [a, b] = [query(from, PRIVILEGES), query(to, PRIVILEGES)];
  const [inA, inB] = [new Set(a.map(key)), new Set(b.map(key))];
  const statements = (verb: "grant" | "revoke", rows: string[][]) => {
    // one statement per object, grantee and grant option: its privileges (or columns) together
    const groups = new Map<string, { head: string[]; items: string[] }>();
    for (const [kind, obj, col, grantee, privilege, grantable] of rows) {
      const g = col ? `${kind}\t${obj}\t${grantee}\t${grantable}\t${privilege}` : `${kind}\t${obj}\t${grantee}\t${grantable}`;
      const entry = groups.get(g) ?? { head: [kind, obj, grantee, grantable, col ? privilege : ""], items: [] };
      entry.items.push(col || privilege);
      groups.set(g, entry);
    }
    return [...groups.values()].map(({ head: [kind, obj, grantee, grantable, columnPrivilege], items }) => {
      const what = columnPrivilege
        ? `${columnPrivilege.toLowerCase()} (${items.join(", ")})`
        : items.map((p) => p.toLowerCase()).join(", ");
      const option = grantable === "true" ? (verb === "grant" ? " with grant option" : "") : "";
      return verb === "grant"
        ? `grant ${what} on ${kind} ${obj} to ${grantee}${option};`
        : `revoke ${what} on ${kind} ${obj} from ${grantee};`;
    });
  };
  return [
    ...statements("revoke", a.filter((r) => !inB.has(key(r)))),
    ...statements("grant", b.filter((r) => !inA.has(key(r)))),
  ].join("\n");
}

// Comments on everything COMMENT ON reaches by pg_identify_object's identity.
const COMMENT_KINDS: Record<string, string> = {
  "table": "table",
  "table column": "column",
  "view": "view",
  "materialized view": "materialized view",
  "foreign table": "foreign table",
  "index": "index",
  "sequence": "sequence",
  "function": "function",
  "procedure": "procedure",
  "schema": "schema",
  "type": "type",
  "policy": "policy",
  "trigger": "trigger",
  "table constraint": "constraint",
};
const COMMENTS = `
  select i.type, i.identity, to_json(d.description)
  from pg_description d cross join lateral pg_identify_object(d.classoid, d.objoid, d.objsubid) i
  where i.type in (${Object.keys(COMMENT_KINDS).map((k) => `'${k}'`).join(", ")})
    and coalesce(i.schema, i.identity) not in ('pg_catalog', 'information_schema', 'pg_toast')`;

/** COMMENT ON statements that give database `from` the comments of database `to`. */
export function commentStatements(from: string, to: string): string {
  const read = (url: string) =>
    new Map(query(url, COMMENTS).map(([type, identity, json]) => [`${type}\t${identity}`, JSON.parse(json) as string]));
  const [a, b] = [read(from), read(to)];
  const out: string[] = [];
  for (const [k, text] of b) {
    if (a.get(k) !== text) {
      out.push(`comment on ${COMMENT_KINDS[k.split("\t")[0]]} ${k.split("\t")[1]} is '${text.replaceAll("'", "''")}';`);
    }
  }
  for (const k of a.keys()) if (!b.has(k)) out.push(`comment on ${COMMENT_KINDS[k.split("\t")[0]]} ${k.split("\t")[1]} is null;`);
  return out.join("\n");
}

/** The catalog rows (CATALOG_ROWS) that differ between two clusters, as `-`/`+` lines per table. */
function rowDifferences(a: string, b: string): string {
  const [ra, rb] = [catalogRows(a), catalogRows(b)];
  const out: string[] = [];
  ra.forEach((section, i) => {
    if (section === rb[i]) return;
    const [header, ...linesA] = section.trim().split("\n");
    const linesB = rb[i].trim().split("\n").slice(1);
    out.push(header);
    for (const l of linesA) if (!linesB.includes(l)) out.push(`- ${l}`);
    for (const l of linesB) if (!linesA.includes(l)) out.push(`+ ${l}`);
  });
  return out.join("\n");
}

export async function dbDiff(
  name: string,
  { schemaDir = SCHEMA_DIR, migrationsDir = path.join(ROOT, "supabase", "migrations"), log = console.log } = {},
): Promise<DiffResult> {
  const tmp = makeTmp("db-diff-");
  const clusters: Cluster[] = [];
  try {
    // current: where the new migration is applied at the end, as npm start would apply it;
    // scratch: where its parts are tried as they are made
    const started = await Promise.allSettled([
      startCluster({ kind: "migrations", dir: migrationsDir }, tmp, "current"),
      startCluster({ kind: "migrations", dir: migrationsDir }, tmp, "scratch"),
      startCluster({ kind: "schema", dir: schemaDir }, tmp, "schema"),
    ]);
    for (const s of started) if (s.status === "fulfilled") clusters.push(s.value);
    for (const s of started) if (s.status === "rejected") throw s.reason;
    const [current, scratch, wanted] = clusters;

    const parts: string[] = [];
    let failed = "";
    try {
      const schema = await migraSql(scratch.url, wanted.url);
      if (schema) {
        apply(scratch.url, schema, tmp);
        parts.push(schema);
      }
      // after the schema part: a new table has its default privileges by now
      const extra = [privilegeStatements(scratch.url, wanted.url), commentStatements(scratch.url, wanted.url)].filter(Boolean)
        .join("\n");
      if (extra) {
        apply(scratch.url, extra, tmp);
        parts.push(extra);
      }
    } catch (e) {
      failed = `a generated statement fails: ${(e as Error).message}`;
    }
    const rows = rowDifferences(scratch.url, wanted.url);
    if (!parts.length && !rows && !failed) {
      log("no changes");
      return { status: "no changes" };
    }

    const sql = parts.join("\n\n");
    const file = path.join(migrationsDir, `${nextVersion(migrationsDir)}_${name}.sql`);
    const text = [
      `-- Generated by \`npm run db:diff -- ${name}\` from ${
        path.relative(ROOT, schemaDir) || schemaDir
      }: review before committing.`,
      sql ? `${sql}\n` : "-- (no schema statements)\n",
      ...(rows
        ? [
          "-- Not expressed by the diff engine: write these by hand (docs/database.md), then run npm test.",
          ...rows.split("\n").map((l) => `-- ${l}`),
          "",
        ]
        : []),
    ].join("\n");
    fs.writeFileSync(file, text);
    log(`wrote ${path.relative(process.cwd(), file)}`);

    // The proof: the migrations with the new file build what the schema files build.
    let remaining = failed;
    if (!remaining) {
      try {
        await migrateCluster(current, [file]);
        remaining = diffSnapshots(snapshot(current.url), snapshot(wanted.url), tmp, ["migrated", "schema"]);
      } catch (e) {
        remaining = `the migration does not apply: ${(e as Error).message}`;
      }
    }
    if (remaining) {
      log(remaining);
      log("the migration does not reach the schema files yet: finish it by hand (docs/database.md)");
    } else {
      log("checked: the migrations with it build what the schema files build");
    }
    return { status: "written", file, sql, complete: !remaining, remaining };
  } finally {
    await Promise.allSettled(clusters.map((c) => c.stop()));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

async function main(args: string[]) {
  const name = args[0];
  const opt = (flag: string) => {
    const i = args.indexOf(flag);
    return i > 0 ? path.resolve(args[i + 1]) : undefined;
  };
  if (!name || !/^[a-z0-9_]+$/.test(name)) {
    console.error("usage: npm run db:diff -- <name> [--schema <dir>] [--migrations <dir>]   (name: lower case, digits, _)");
    process.exitCode = 2;
    return;
  }
  const result = await dbDiff(name, { schemaDir: opt("--schema"), migrationsDir: opt("--migrations") });
  if (result.status === "written" && !result.complete) process.exitCode = 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === SELF) await main(process.argv.slice(2));
