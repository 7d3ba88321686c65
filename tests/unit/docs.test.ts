// The docs name things that exist: every repository path they give, every `npm run` script, and
// every error code docs/errors.md documents is in the code. A renamed file, a dropped script or a
// code nobody raises any more fails here instead of misleading a reader.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../..");
const DOCS = [
  "README.md",
  "broker/README.md",
  ...fs.readdirSync(path.join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`),
];
const text = (f: string) => fs.readFileSync(path.join(ROOT, f), "utf8");
const TOP = ["supabase/", "dev/", "worker/", "broker/", "tests/", "bench/", "examples/", "docs/", ".ci/"];

/** Backticked or linked repository paths: `dev/stack/cli.ts`, [x](docs/deploy.md), `supabase/schemas/<concern>.sql`. */
function pathsIn(doc: string): string[] {
  const found = new Set<string>();
  for (const m of doc.matchAll(/`([^`\s]+)`|\]\(([^)\s#]+)\)/g)) {
    let p = (m[1] ?? m[2]).replace(/[.,:;]+$/, "").replace(/:\d+(-\d+)?$/, "");
    if (p.startsWith("../")) continue;
    if (p.startsWith("./")) p = p.slice(2);
    if (p.startsWith("_shared/")) p = `supabase/functions/${p}`; // how the docs name the functions' shared code
    if (!TOP.some((t) => p.startsWith(t))) continue;
    found.add(p);
  }
  return [...found];
}

/** Whether a documented path exists; placeholders (<name>, *, {a,b}) match any entry at their place. */
function exists(p: string, from: string): boolean {
  const candidates = [p, path.join(path.dirname(from), p)];
  return candidates.some((c) => {
    const parts = c.replace(/\/$/, "").split("/");
    let dirs = [ROOT];
    for (const part of parts) {
      const pattern = part.includes("<") || part.includes("*") || part.includes("{")
        ? new RegExp(
          `^${
            part.replace(/[.+?^$()|[\]\\]/g, "\\$&").replace(/<[^>]*>|\*/g, ".*").replace(
              /\{([^}]*)\}/g,
              (_, a) => `(${a.split(",").join("|")})`,
            )
          }$`,
        )
        : null;
      dirs = dirs.flatMap((d) => {
        if (!pattern) return fs.existsSync(path.join(d, part)) ? [path.join(d, part)] : [];
        try {
          return fs.readdirSync(d).filter((e) => pattern.test(e)).map((e) => path.join(d, e));
        } catch {
          return [];
        }
      });
      if (dirs.length === 0) return false;
    }
    return true;
  });
}

describe("the docs", () => {
  it("name only repository paths that exist", () => {
    const missing: string[] = [];
    for (const doc of DOCS) {
      for (const p of pathsIn(text(doc))) {
        // generated or per-machine places the docs name on purpose
        if (/^(supabase\/signing_keys\.json|supabase\/functions\/\.env|worker\/\.env|broker\/\.env)$/.test(p)) continue;
        if (!exists(p, doc)) missing.push(`${doc}: ${p}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it("name only npm scripts that exist", () => {
    const scripts = new Set(Object.keys(JSON.parse(text("package.json")).scripts));
    const missing: string[] = [];
    for (const doc of DOCS) {
      for (const m of text(doc).matchAll(/npm run (?:-s )?([a-z][\w:.-]*[\w])(?![\w*:])/g)) {
        if (!scripts.has(m[1])) missing.push(`${doc}: npm run ${m[1]}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it("document only error codes the code raises", () => {
    const sources: string[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) {
          if (!["node_modules", "migrations", "tests", "fixtures"].includes(e.name)) walk(p);
        } else if (/\.(ts|sql|c)$/.test(e.name) && !e.name.endsWith("database.types.ts")) sources.push(text(p));
      }
    };
    for (const dir of ["supabase", "dev", "broker", "worker/src"]) walk(dir);
    const code = sources.join("\n");
    const documented = new Set<string>();
    for (const line of text("docs/errors.md").split("\n")) {
      const cells = line.split("|").map((c) => c.trim());
      if (cells.length < 4 || !/^(\d{3}|[A-Z0-9]{5})$/.test(cells[1])) continue;
      // the SQLSTATE itself (project codes like TN001), and each backticked snake_case code
      if (/^[A-Z]{2}\d{3}$/.test(cells[1])) documented.add(cells[1]);
      for (const m of cells[2].matchAll(/`([a-z][a-z0-9_]+)`/g)) if (m[1].includes("_")) documented.add(m[1]);
    }
    expect(documented.size).toBeGreaterThan(40);
    const unraised = [...documented].filter((c) => !new RegExp(`['"\`]${c}['"\`]|'${c}'|\\b${c}\\b`).test(code));
    expect(unraised).toEqual([]);
  });

  it("document every error code the functions, the gateway and the auth stand-in answer with", () => {
    const errors = text("docs/errors.md");
    const raised = new Set<string>();
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith(".ts")) {
          const src = text(p);
          const patterns = [
            /(?:new HttpError|errorResponse|AuthError|\bfail)\(\s*\d{3},\s*"([a-z][a-z0-9_]+)"/g,
            /sendError\(\s*res,\s*\d{3},\s*"([a-z][a-z0-9_]+)"/g,
            /\[\s*\d{3},\s*"([a-z][a-z0-9_]+)"\s*\]/g, // SQLSTATE -> [status, code] tables
          ];
          for (const re of patterns) for (const m of src.matchAll(re)) raised.add(m[1]);
        }
      }
    };
    for (const dir of ["supabase/functions", "dev/platform/auth", "dev/platform/runtime"]) walk(dir);
    expect(raised.size).toBeGreaterThan(30);
    expect([...raised].filter((c) => !errors.includes(`\`${c}\``)).sort()).toEqual([]);
  });

  it("list every queue of the worker in docs/worker.md", () => {
    const queues = [...text("supabase/functions/_shared/jobs.ts").matchAll(/^\s+"([a-z]+\.[a-z-]+)":/gm)].map((m) => m[1]);
    expect(queues.length).toBeGreaterThan(10);
    const worker = text("docs/worker.md");
    expect(queues.filter((q) => !worker.includes(`| \`${q}\` |`))).toEqual([]);
  });
});
