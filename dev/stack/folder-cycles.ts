// Import circles between folders, which madge's file-level check does not see: dev/platform/runtime
// importing the auth routes that import back a runtime helper is a loop of folders even when no
// file imports itself. A folder may use its own subfolders and they may use it (a package and its
// parts); between folders where neither holds the other, imports must go one way.
//
//   node dev/stack/folder-cycles.ts <path>...   exits 1 and names each loop, 0 when there is none
import path from "node:path";
import madge from "madge";

const roots = process.argv.slice(2);
if (roots.length === 0) {
  console.error("usage: node dev/stack/folder-cycles.ts <path>...");
  process.exit(2);
}

const graph = (await madge(roots, { fileExtensions: ["ts"], tsConfig: "tsconfig.json" })).obj();
const within = (inner: string, outer: string) => inner === outer || inner.startsWith(outer + "/");

const edges = new Map<string, Set<string>>();
for (const [file, deps] of Object.entries(graph)) {
  const from = path.dirname(file);
  for (const dep of deps) {
    const to = path.dirname(dep);
    if (within(from, to) || within(to, from)) continue;
    if (!edges.has(from)) edges.set(from, new Set());
    edges.get(from)!.add(to);
  }
}

// Tarjan's strongly connected components: each component of more than one folder is a loop.
const index = new Map<string, number>(), low = new Map<string, number>(), onStack = new Set<string>();
const stack: string[] = [];
const loops: string[][] = [];
let next = 0;
function visit(v: string) {
  index.set(v, next);
  low.set(v, next++);
  stack.push(v);
  onStack.add(v);
  for (const w of edges.get(v) ?? []) {
    if (!index.has(w)) {
      visit(w);
      low.set(v, Math.min(low.get(v)!, low.get(w)!));
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
  }
  if (low.get(v) === index.get(v)) {
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1) loops.push(component.sort());
  }
}
for (const v of edges.keys()) if (!index.has(v)) visit(v);

if (loops.length === 0) {
  console.log(`no import circles between folders (${edges.size} folders import others)`);
  process.exit(0);
}
for (const loop of loops) {
  const detail = loop.flatMap((a) => [...(edges.get(a) ?? [])].filter((b) => loop.includes(b)).map((b) => `${a} -> ${b}`));
  console.error(`import circle between folders: ${loop.join(", ")}\n  ${detail.join("\n  ")}`);
}
process.exit(1);
