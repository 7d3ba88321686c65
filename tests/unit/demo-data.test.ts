// The demo organizations stay what supabase/seed.sql made: people try the stack by hand with them,
// so no test or benchmark may sign in as a demo person or write into a demo organization (each
// makes its own organizations and people, and removes them afterwards). Checked on the sources:
// nothing in tests/ or bench/ names a seeded id, slug, address or the demo password.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");
const SEED = fs.readFileSync(path.join(ROOT, "supabase/seed.sql"), "utf8");

/** The seed's ids, slugs and addresses, and the demo password. */
function seeded(): string[] {
  const ids = SEED.match(/'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'/g) ?? [];
  const emails = SEED.match(/'[^'\s]+@[^'\s]+'/g) ?? [];
  const slugs = [...SEED.matchAll(/'[^']+', '([a-z0-9-]+)', '[a-z]+', (true|false)/g)].map((m) => m[1]);
  const password = SEED.match(/crypt\('([^']+)'/)?.[1];
  return [...new Set([...ids, ...emails].map((s) => s.slice(1, -1)).concat(slugs, password ? [password] : []))];
}

function sources(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(ts|js|mjs|sql|sh)$/.test(e.name) && !e.parentPath.includes("node_modules"))
    .map((e) => path.relative(ROOT, path.join(e.parentPath, e.name)));
}

describe("the demo data", () => {
  it("is named by the seed: its organizations, people and password", () => {
    const names = seeded();
    expect(names).toEqual(expect.arrayContaining(["demo-school", "owner@demo.school", "demo-password"]));
    expect(names.filter((n) => /^[0-9a-f-]{36}$/.test(n)).length).toBeGreaterThanOrEqual(6);
  });

  it("is not used by any test or benchmark", () => {
    const names = seeded();
    const uses = [...sources("tests"), ...sources("bench")]
      .filter((f) => f !== "tests/unit/demo-data.test.ts")
      .flatMap((f) => {
        const text = fs.readFileSync(path.join(ROOT, f), "utf8");
        return names.filter((n) => text.includes(n)).map((n) => `${f}: ${n}`);
      });
    expect(uses, "tests and benchmarks make their own organizations and people").toEqual([]);
  });
});
