// The worker image installs only worker/package.json's dependencies and copies only what its
// Dockerfile names, while every test runs from the repository root, where the root's packages
// happen to be installed too. So a package the worker reaches only through a shared file (jose,
// through _shared/db.ts and auth.ts) passed every test and broke the image at start. This walks
// the worker's import graph as Node loads it and holds it to both lists, without building an image.
import fs from "node:fs";
import { builtinModules } from "node:module";
import path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { copiedPaths, readDockerfile } from "../helpers/dockerfile.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const ENTRY = "worker/src/main.ts";

interface Graph {
  /** Repository-relative files Node loads, entry first. */
  files: string[];
  /** Package name -> the files that import it. */
  packages: Map<string, string[]>;
  /** Relative imports that name no file. */
  unresolved: string[];
}

/**
 * The specifiers a module loads at run time. Node's type stripping erases `import type` and
 * `export type ... from` only: `import { type A } from "x"` still loads x (checked on Node 22).
 */
function runtimeSpecifiers(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      if (!node.importClause?.isTypeOnly) found.push(node.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      if (!node.isTypeOnly) found.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      // an import() of a computed name cannot be checked here, so it is not allowed to hide
      if (!arg || !ts.isStringLiteralLike(arg)) throw new Error(`${file}: import() of a computed specifier`);
      found.push(arg.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

function packageOf(specifier: string): string | null {
  if (specifier.startsWith("node:") || builtinModules.includes(specifier.split("/")[0])) return null;
  const parts = specifier.split("/");
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
}

function importGraph(entry: string, root = ROOT): Graph {
  const files: string[] = [];
  const packages = new Map<string, string[]>();
  const unresolved: string[] = [];
  const seen = new Set<string>();
  const queue = [path.resolve(root, entry)];
  while (queue.length) {
    const file = queue.shift()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const rel = path.relative(root, file);
    files.push(rel);
    if (!/\.[cm]?[jt]s$/.test(file)) continue;
    for (const spec of runtimeSpecifiers(rel, fs.readFileSync(file, "utf8"))) {
      if (spec.startsWith(".") || spec.startsWith("/")) {
        const target = path.resolve(path.dirname(file), spec);
        if (fs.existsSync(target) && fs.statSync(target).isFile()) queue.push(target);
        else unresolved.push(`${rel} -> ${spec}`);
        continue;
      }
      const pkg = packageOf(spec);
      if (pkg) packages.set(pkg, [...(packages.get(pkg) ?? []), rel]);
    }
  }
  return { files, packages, unresolved };
}

describe("the worker's dependencies", () => {
  const graph = importGraph(ENTRY);
  const declared = JSON.parse(fs.readFileSync(path.join(ROOT, "worker/package.json"), "utf8")).dependencies ?? {};

  it("every package the worker loads is in worker/package.json's dependencies", () => {
    expect(graph.unresolved).toEqual([]);
    const missing = [...graph.packages].filter(([pkg]) => !(pkg in declared))
      .map(([pkg, by]) => `${pkg} (imported by ${[...new Set(by)].join(", ")})`);
    expect(missing, "add these to worker/package.json (npm install from the root keeps the lock in step)").toEqual([]);
  });

  it("every file the worker loads is one its Dockerfile copies", () => {
    const copied = copiedPaths(readDockerfile(path.join(ROOT, "worker/Dockerfile")));
    expect(copied).toContain("worker/src");
    const outside = graph.files.filter((f) => !copied.some((c) => f === c || f.startsWith(`${c}/`)));
    expect(outside).toEqual([]);
  });

  it("sees through the shared files (the walk reaches jose through _shared/auth.ts)", () => {
    expect(graph.files).toContain("supabase/functions/_shared/auth.ts");
    expect(graph.packages.get("jose")).toContain("supabase/functions/_shared/auth.ts");
  });

  it("counts what Node loads and nothing it erases", () => {
    const specs = runtimeSpecifiers(
      "x.ts",
      `import type A from "erased"; import { type B } from "loaded-anyway"; export type { C } from "erased-too";
       export * from "./re-exported.ts"; const m = await import("@scope/pkg/sub"); import "node:fs";`,
    );
    expect(specs).toEqual(["loaded-anyway", "./re-exported.ts", "@scope/pkg/sub", "node:fs"]);
    expect(specs.filter((s) => !s.startsWith(".")).map(packageOf)).toEqual(["loaded-anyway", "@scope/pkg", null]);
    expect(() => runtimeSpecifiers("y.ts", "await import(name);")).toThrow(/computed/);
  });
});
