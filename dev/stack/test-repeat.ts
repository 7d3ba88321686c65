// `npm run test:repeat -- N`: the whole suite (dev/bin/test: static checks, pgTAP, vitest) N times
// in a row against one stack, as a person would rerun it, to find tests that fail by chance
// (order, leftovers of an earlier run, timing, shared ids). Each run's output is kept in
// .stack/repeat/<n>.log with its vitest report; the end is a table of runs with their durations
// and what failed, and a line `N passed, N failed` counting runs. Not for CI: .ci/run stays one run.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ROOT, STATE } from "./config.ts";

interface Run {
  n: number;
  seconds: number;
  ok: boolean;
  summary: string;
  failures: string[];
}

const times = Number(process.argv[2] ?? 10);
if (!Number.isInteger(times) || times < 1 || times > 100) {
  console.error("usage: npm run test:repeat -- <runs, 1-100>");
  process.exit(2);
}
const dir = path.join(STATE, "repeat");
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir, { recursive: true });

function runOnce(n: number): Promise<Run> {
  const logFile = path.join(dir, `${n}.log`);
  const out = fs.openSync(logFile, "w");
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn("bash", [path.join(ROOT, "dev", "bin", "test")], { cwd: ROOT, stdio: ["ignore", out, out] });
    child.once("exit", (code) => {
      fs.closeSync(out);
      const seconds = Math.round((Date.now() - started) / 1000);
      const log = fs.readFileSync(logFile, "utf8");
      const summary = log.match(/^\d+ passed, \d+ failed.*$/m)?.[0] ?? "no summary line";
      const failures = [...log.matchAll(/^ {2}FAILED (.+)$/gm)].map((m) => m[1]);
      const report = path.join(STATE, "vitest.json");
      if (fs.existsSync(report)) {
        fs.copyFileSync(report, path.join(dir, `${n}.vitest.json`));
        const r = JSON.parse(fs.readFileSync(report, "utf8"));
        for (const file of r.testResults ?? []) {
          for (const t of file.assertionResults ?? []) {
            if (t.status === "failed") failures.push(`${path.relative(ROOT, file.name)} > ${t.fullName}`);
          }
          if (file.status === "failed" && !(file.assertionResults ?? []).some((t: { status: string }) => t.status === "failed")) {
            failures.push(`${path.relative(ROOT, file.name)}: ${String(file.message ?? "failed").split("\n")[0]}`);
          }
        }
      }
      // pg_prove's summary report names each file that failed: `<file> (Wstat: ... Failed: n)`
      for (const m of log.matchAll(/^(\S+\.test\.sql) \(Wstat.*$/gm)) failures.push(`pgTAP ${m[0]}`);
      resolve({ n, seconds, ok: code === 0, summary, failures });
    });
  });
}

const runs: Run[] = [];
for (let n = 1; n <= times; n++) {
  const r = await runOnce(n);
  runs.push(r);
  console.log(JSON.stringify({ run: n, of: times, ok: r.ok, seconds: r.seconds, summary: r.summary, failures: r.failures }));
}
console.log("\nrun  seconds  result");
for (const r of runs) {
  console.log(`${String(r.n).padStart(3)}  ${String(r.seconds).padStart(7)}  ${r.ok ? "green" : "FAILED"}  ${r.summary}`);
  for (const f of r.failures) console.log(`                   ${f}`);
}
const green = runs.filter((r) => r.ok).length;
console.log(`\nlogs in ${path.relative(ROOT, dir)}/`);
console.log(`${green} passed, ${runs.length - green} failed`);
process.exitCode = green === runs.length ? 0 : 1;
