// The migrations and the declarative schema (supabase/schemas) must build the same database:
// objects, function bodies, policies, grants (column grants too), triggers, indexes, constraints,
// comments, and the rows migrations write. Each is built in a throwaway cluster of its own
// (dev/stack/compare-schemas.ts); a migration that is not the schema's difference fails here.
// The same comparison run on a copy of the schema files with one function body, one column
// grant and one policy changed must report each of the three.
import fs from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { diffSnapshots, makeTmp, SCHEMA_DIR, snapshots } from "../../dev/stack/compare-schemas.ts";

const tmp = makeTmp("schema-drift-");
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Replaces `from` with `to` in one schema file of the copy; the text must be there exactly once. */
function edit(dir: string, file: string, from: string, to: string) {
  const p = path.join(dir, file);
  const text = fs.readFileSync(p, "utf8");
  expect(text.split(from).length - 1, `${file} holds the text to change once`).toBe(1);
  fs.writeFileSync(p, text.replace(from, to));
}

describe("schema drift", () => {
  it("the migrations build what supabase/schemas declares, and a changed body, column grant or policy is reported", async () => {
    const changed = path.join(tmp, "changed-schemas");
    fs.cpSync(SCHEMA_DIR, changed, { recursive: true });
    edit(
      changed,
      "030_tenancy_rules.sql",
      "when 'owner' then 4 when 'admin' then 3",
      "when 'owner' then 5 when 'admin' then 3",
    );
    edit(
      changed,
      "040_api_keys.sql",
      "created_by, updated_by, mqtt_topics) on public.api_keys",
      "created_by, updated_by) on public.api_keys",
    );
    edit(
      changed,
      "030_tenancy_rules.sql",
      `create policy "users see their own active organization" on public.user_active_org
  for select to authenticated using (user_id = (select auth.uid()));`,
      `create policy "users see their own active organization" on public.user_active_org
  for select to authenticated using (true);`,
    );

    const started = Date.now();
    const [migrations, schema, changedSchema] = await snapshots([
      { kind: "migrations" },
      { kind: "schema", dir: SCHEMA_DIR },
      { kind: "schema", dir: changed },
    ], tmp);
    console.log(`three throwaway clusters built and compared in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // Run `npm run db:compare-schemas -- --schema` for the same diff with the files kept.
    expect(diffSnapshots(migrations, schema, tmp, ["migrations", "schema"])).toBe("");
    // the catalog rows are part of what is compared
    expect(migrations).toMatch(/^org\.read \{"key": "org\.read"/m);
    expect(migrations).toMatch(/^files-sweep \{.*"schedule": "\* \* \* \* \*"/m);

    const drift = diffSnapshots(migrations, changedSchema, tmp, ["migrations", "changed"]);
    expect(drift).toMatch(/^-\s+AS \$\$ select case role when 'owner' then 4 when 'admin' then 3/m);
    expect(drift).toMatch(/^\+\s+AS \$\$ select case role when 'owner' then 5 when 'admin' then 3/m);
    expect(drift).toMatch(/^-GRANT SELECT\(mqtt_topics\) ON TABLE public\.api_keys TO authenticated;$/m);
    expect(drift).toMatch(/^-.*POLICY "users see their own active organization" .*USING \(\(user_id = \( SELECT auth\.uid\(\)/m);
    expect(drift).toMatch(/^\+.*POLICY "users see their own active organization" .*USING \(true\)/m);
  }, 180_000);
});
