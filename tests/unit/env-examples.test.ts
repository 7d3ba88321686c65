// The .env.example files are what a deployment starts from, so each must name every variable its
// deployable reads, and nothing it does not: the worker's from worker/src/env.ts, the functions'
// from their loadEnv/readEnv calls and the file the local stack writes for them.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { WORKER_VARIABLES } from "../../worker/src/env.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const read = (p: string) => fs.readFileSync(path.join(ROOT, p), "utf8");

/** NAME=value lines, set or commented out (`#NAME=`), and whether any has a value. */
function example(file: string) {
  const lines = [...read(file).matchAll(/^#?([A-Z][A-Z0-9_]*)=(.*)$/gm)];
  return { names: lines.map((m) => m[1]).sort(), lines: lines.map((m) => ({ name: m[1], value: m[2] })) };
}

function sources(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => path.join(path.relative(ROOT, e.parentPath), e.name));
}

describe("worker/.env.example", () => {
  it("names every variable the worker reads, and only those", () => {
    expect(example("worker/.env.example").names).toEqual([...WORKER_VARIABLES].sort());
  });
});

describe("supabase/functions/.env.example", () => {
  // Names the platform sets itself (hosted refuses secrets that start with SUPABASE_).
  const platform = (n: string) => n.startsWith("SUPABASE_");
  it("names every secret the functions read, and every one the local stack gives them", () => {
    const read_ = new Set<string>();
    for (const file of sources("supabase/functions")) {
      const text = read(file);
      // (configuration schemas are the only zod objects with UPPER_CASE keys here)
      for (const m of text.matchAll(/\b([A-Z][A-Z0-9_]{2,}): z\./g)) read_.add(m[1]);
      for (const m of text.matchAll(/readEnv\("([A-Z0-9_]+)"\)/g)) read_.add(m[1]);
    }
    const stack = [...read("dev/stack/services.ts").matchAll(/^\s+`([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]);
    const names = example("supabase/functions/.env.example").names;
    expect(names).toEqual([...read_].filter((n) => !platform(n)).sort());
    expect(names).toEqual(expect.arrayContaining(stack.filter((n) => !platform(n))));
  });

  it("hold no secrets: every key, token and password is left empty", () => {
    for (const file of ["worker/.env.example", "supabase/functions/.env.example"]) {
      for (const { name, value } of example(file).lines) {
        if (/KEY|TOKEN|PASSWORD|SECRET/.test(name)) expect(value, `${file} ${name}`).toBe("");
      }
    }
  });
});
