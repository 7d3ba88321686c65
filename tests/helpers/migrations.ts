// Applies fixture migrations with the supabase CLI exactly as `db push`/`migration up` would:
// a scratch project folder holding the project's own migrations plus the fixtures. A fixture may
// name an address the test only knows when it runs (a fixture gateway's port): `replace` swaps
// such text in the copy, as a person would edit the file before pushing it.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DB_URL, ROOT } from "../../dev/stack/config.ts";

export function migrationUpWith(fixtures: string[], replace: Record<string, string> = {}): { status: number; output: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "migrations-"));
  const migrations = path.join(dir, "supabase", "migrations");
  fs.mkdirSync(migrations, { recursive: true });
  // the CLI reads each mail template's content_path (inside the workdir), which migrating does not need
  fs.writeFileSync(
    path.join(dir, "supabase", "config.toml"),
    fs.readFileSync(path.join(ROOT, "supabase", "config.toml"), "utf8")
      .replace(/^content_path\s*=.*$/gm, ""),
  );
  // the CLI reads config.toml's signing_keys_path while it migrates; a checkout has the file npm start made
  const keys = path.join(ROOT, "supabase", "signing_keys.json");
  if (fs.existsSync(keys)) fs.copyFileSync(keys, path.join(dir, "supabase", "signing_keys.json"));
  const own = path.join(ROOT, "supabase", "migrations");
  for (const f of fs.existsSync(own) ? fs.readdirSync(own).filter((f) => f.endsWith(".sql")) : []) {
    fs.copyFileSync(path.join(ROOT, "supabase", "migrations", f), path.join(migrations, f));
  }
  for (const f of fixtures) {
    let text = fs.readFileSync(path.join(ROOT, "tests", "fixtures", "hosted-migrations", f), "utf8");
    for (const [from, to] of Object.entries(replace)) text = text.replaceAll(from, to);
    fs.writeFileSync(path.join(migrations, f), text);
  }
  const r = spawnSync(path.join(ROOT, "node_modules", ".bin", "supabase"), [
    "migration",
    "up",
    `--remote=${DB_URL}`,
    "--yes",
    "--workdir",
    dir,
  ], {
    encoding: "utf8",
    env: { ...process.env, SUPABASE_TELEMETRY_DISABLED: "1", DO_NOT_TRACK: "1" },
  });
  fs.rmSync(dir, { recursive: true, force: true });
  return { status: r.status ?? 1, output: `${r.stdout}${r.stderr}` };
}
