// npm run bench:gateway — latency the functions gateway adds over a bare Deno.serve handler.
// Both serve the same handler in Deno; the gateway path adds routing, JWT verification and the
// proxy hop. Requests are sequential on keep-alive connections, in interleaved rounds so drift
// on the machine hits both sides alike.
import { spawn } from "node:child_process";
import path from "node:path";
import readline from "node:readline";
import { ROOT } from "../dev/stack/config.ts";
import { startFixtureGateway } from "../tests/helpers/fixture-gateway.ts";
import { secrets, waitUntil } from "../tests/helpers/stack.ts";
import { fmt, summarize, timeRequests } from "./stats.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const PER_ROUND = Number(process.env.BENCH_REQUESTS ?? 500);
const log = (msg: string, f: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ ts: new Date().toISOString(), component: "bench:gateway", msg, ...f }));

const bare = spawn("deno", [
  "run",
  "--allow-net",
  `--config=${path.join(ROOT, "deno.json")}`,
  path.join(ROOT, "bench", "fixtures", "bare.ts"),
], {
  stdio: ["ignore", "pipe", "inherit"],
  env: { ...process.env, PATH: `${path.join(ROOT, "node_modules", ".bin")}:${process.env.PATH}` },
});
const gateway = await startFixtureGateway("bench", path.join(ROOT, "bench", "fixtures", "supabase"));
try {
  const barePort = await new Promise<number>((resolve, reject) => {
    const lines = readline.createInterface({ input: bare.stdout! });
    lines.on("line", (line) => {
      if (line.startsWith('{"ready":')) resolve(JSON.parse(line).ready);
    });
    bare.once("exit", (code) => reject(new Error(`the bare server exited (code ${code})`)));
  });
  const bareUrl = `http://127.0.0.1:${barePort}/`;
  await waitUntil("bare server", async () => fetch(bareUrl).then((r) => r.ok, () => false), 20_000);
  const token = secrets().anonKey;
  const gwUrl = `${gateway.url}/functions/v1/noop`;
  const hitBare = async () => void (await (await fetch(bareUrl)).arrayBuffer());
  const hitGateway = async () =>
    void (await (await fetch(gwUrl, { headers: { Authorization: `Bearer ${token}` } })).arrayBuffer());
  const check = await fetch(gwUrl, { headers: { Authorization: `Bearer ${token}` } });
  if (check.status !== 200) throw new Error(`gateway answered ${check.status}: ${await check.text()}`);

  log("warming up");
  await timeRequests(300, hitBare);
  await timeRequests(300, hitGateway);
  const bareSamples: number[] = [];
  const gwSamples: number[] = [];
  for (let r = 1; r <= ROUNDS; r++) {
    bareSamples.push(...(await timeRequests(PER_ROUND, hitBare)));
    gwSamples.push(...(await timeRequests(PER_ROUND, hitGateway)));
    log("round done", { round: r, of: ROUNDS });
  }
  const b = summarize(bareSamples);
  const g = summarize(gwSamples);
  console.log(`\n                 n      p50 ms   p95 ms   p99 ms`);
  console.log(`bare Deno.serve  ${b.n}   ${fmt(b.p50)}    ${fmt(b.p95)}    ${fmt(b.p99)}`);
  console.log(`via gateway      ${g.n}   ${fmt(g.p50)}    ${fmt(g.p95)}    ${fmt(g.p99)}`);
  console.log(`added: p50 ${fmt(g.p50 - b.p50)} ms, p95 ${fmt(g.p95 - b.p95)} ms\n`);
  console.log(`ratio=${(g.p50 / b.p50).toFixed(2)} p95_added_ms=${fmt(g.p95 - b.p95)}`);
} finally {
  bare.kill("SIGTERM");
  await gateway.stop();
}
