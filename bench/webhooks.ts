// npm run bench:webhooks — database webhooks in bulk through the stack's net-worker (pg_net's
// contract: net.http_request_queue, responses in net._http_response). A table with a database
// webhook (supabase_functions.http_request, as hosted) to an HTTP endpoint this bench starts;
// 10,000 rows in one INSERT; the time until every row's webhook was answered 2xx and every
// request has its response recorded. Three runs: the endpoint healthy; failing 10 % of requests
// (500); down for 5 s in the middle. pg_net documents ~200 requests/s and no retries; the goal
// here is 0 lost in every run and ≥ 1,000 req/s on the healthy one.
// Last line: delivered=<n> of=<N> lost=<n> req_per_s=<healthy run> p95_ms=<healthy run>, with the
// other runs' figures before it.
import http from "node:http";
import postgres from "postgres";
import { DB_URL } from "../dev/stack/config.ts";
import { freePort } from "../dev/stack/ports.ts";
import { fmt, summarize } from "./stats.ts";

const N = Number(process.env.BENCH_ROWS ?? 10_000);
const DEADLINE_MS = Number(process.env.BENCH_DEADLINE_MS ?? 120_000);
const log = (msg: string, f: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ ts: new Date().toISOString(), component: "bench:webhooks", msg, ...f }));

type Mode = "healthy" | "failing_10pct" | "down_5s";

/** The endpoint: answers 2xx (or, by mode, 500 for one request in ten), remembers when each row first got a 2xx. */
async function endpoint(port: number) {
  const delivered = new Map<number, number>();
  let requests = 0;
  let mode: Mode = "healthy";
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      requests++;
      if (mode === "failing_10pct" && Math.random() < 0.1) return void res.writeHead(500).end("planned failure");
      try {
        const id = Number(JSON.parse(body).record.id);
        if (!delivered.has(id)) delivered.set(id, performance.now());
        res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
      } catch {
        res.writeHead(400).end("bad payload");
      }
    });
  });
  const listen = () => new Promise<void>((r) => server.listen(port, "127.0.0.1", () => r()));
  await listen();
  return {
    delivered,
    requests: () => requests,
    setMode: (m: Mode) => (mode = m),
    reset: () => (delivered.clear(), (requests = 0)),
    /** Down for `ms`: connections are refused, then it listens again. */
    async outage(ms: number) {
      await new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await new Promise((r) => setTimeout(r, ms));
      await listen();
    },
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

const sql = postgres(DB_URL, { max: 2, onnotice: () => {} });
const port = await freePort();
const hook = await endpoint(port);
const url = `http://127.0.0.1:${port}/hook`;

await sql`drop table if exists public.bench_webhooks`;
await sql`create table public.bench_webhooks (id bigint primary key, note text)`;
await sql.unsafe(`create trigger bench_webhook after insert on public.bench_webhooks for each row
  execute function supabase_functions.http_request('${url}', 'POST', '{"Content-Type": "application/json"}', '{}', '5000')`);

async function run(mode: Mode, offset: number) {
  hook.reset();
  hook.setMode(mode);
  const [{ before }] = await sql<{ before: string }[]>`select coalesce(max(id), 0)::text as before from net.http_request_queue`;
  const started = performance.now();
  await sql`insert into public.bench_webhooks (id, note) select ${offset} + i, 'row ' || i from generate_series(1, ${N}) i`;
  const committed = performance.now();
  if (mode === "down_5s") setTimeout(() => void hook.outage(5000), 300);
  // every row answered 2xx, and the queue holds none of this run's requests any more
  let recorded = 0;
  while (performance.now() - started < DEADLINE_MS) {
    const [{ waiting }] = await sql<{ waiting: number }[]>`
      select count(*)::int as waiting from net.http_request_queue where id > ${before}::bigint`;
    recorded = N - waiting;
    if (hook.delivered.size >= N && waiting === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const totalMs = performance.now() - started;
  const latencies = [...hook.delivered.values()].map((t) => t - committed);
  const s = summarize(latencies);
  const delivered = hook.delivered.size;
  const figures = {
    mode,
    delivered,
    of: N,
    lost: N - delivered,
    recorded,
    requests: hook.requests(),
    total_ms: Math.round(totalMs),
    req_per_s: Math.round((delivered / totalMs) * 1000),
    p50_ms: Number(fmt(s.p50)),
    p95_ms: Number(fmt(s.p95)),
  };
  log("run", figures);
  return figures;
}

try {
  const healthy = await run("healthy", 0);
  const failing = await run("failing_10pct", N);
  const down = await run("down_5s", 2 * N);
  console.log(
    `run mode=failing_10pct delivered=${failing.delivered} lost=${failing.lost} req_per_s=${failing.req_per_s} p95_ms=${failing.p95_ms}`,
  );
  console.log(`run mode=down_5s delivered=${down.delivered} lost=${down.lost} req_per_s=${down.req_per_s} p95_ms=${down.p95_ms}`);
  const lost = healthy.lost + failing.lost + down.lost;
  console.log(
    `delivered=${healthy.delivered + failing.delivered + down.delivered} of=${
      3 * N
    } lost=${lost} req_per_s=${healthy.req_per_s} p95_ms=${healthy.p95_ms}`,
  );
} finally {
  await sql`drop table if exists public.bench_webhooks`;
  await hook.close();
  await sql.end();
}
