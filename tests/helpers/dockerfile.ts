// What a Dockerfile's final stage says about the image, read from the file itself so tests that
// lay a deployable out as its image does (which files, which install command, which environment,
// which command) follow the Dockerfile when it changes. Only the forms the project's Dockerfiles
// use: COPY without --from, ENV key=value, CMD and ENTRYPOINT in exec form, RUN with `&&`.
import fs from "node:fs";

export interface Dockerfile {
  /** FROM of every stage, in order. */
  from: string[];
  /** COPY from the build context in the final stage: sources (relative to the context) -> destination. */
  copies: { sources: string[]; dest: string }[];
  env: Record<string, string>;
  /** The first `npm install ...` of a RUN in the final stage, as argv. */
  npmInstall: string[] | null;
  cmd: string[] | null;
  entrypoint: string[] | null;
  user: string | null;
}

export function readDockerfile(file: string): Dockerfile {
  const instructions = fs.readFileSync(file, "utf8").replace(/\\\n/g, " ").split("\n")
    .map((l) => l.trim()).filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const [, op, rest] = l.match(/^(\S+)\s+(.*)$/) ?? [];
      return { op: op?.toUpperCase(), rest: rest ?? "" };
    });
  const from = instructions.filter((i) => i.op === "FROM").map((i) => i.rest.split(/\s+/)[0]);
  const last = instructions.findLastIndex((i) => i.op === "FROM");
  const d: Dockerfile = { from, copies: [], env: {}, npmInstall: null, cmd: null, entrypoint: null, user: null };
  for (const { op, rest } of instructions.slice(last + 1)) {
    if (op === "COPY" && !/--from=/.test(rest)) {
      const words = rest.split(/\s+/).filter((w) => !w.startsWith("--"));
      d.copies.push({ sources: words.slice(0, -1), dest: words.at(-1)! });
    } else if (op === "ENV") {
      for (const [, k, v] of rest.matchAll(/(\w+)=("[^"]*"|\S+)/g)) d.env[k] = v.replace(/^"|"$/g, "");
    } else if (op === "RUN" && !d.npmInstall) {
      const install = rest.split("&&").map((c) => c.trim()).find((c) => c.startsWith("npm install"));
      if (install) d.npmInstall = install.split(/\s+/);
    } else if (op === "CMD" || op === "ENTRYPOINT") {
      const exec = JSON.parse(rest) as string[];
      if (op === "CMD") d.cmd = exec;
      else d.entrypoint = exec;
    } else if (op === "USER") d.user = rest;
  }
  return d;
}

/** The context paths a Dockerfile's final stage copies, without trailing slashes. */
export function copiedPaths(d: Dockerfile): string[] {
  return d.copies.flatMap((c) => c.sources).map((p) => p.replace(/\/$/, ""));
}
