// The stack's net-worker keeps pg_net's contract (a request id, sent after commit, one response
// row in net._http_response) and goes further where pg_net loses requests: a request whose
// endpoint is down, or answers 5xx/429, is sent again with backoff; its last answer is recorded.
// One tenant's slow endpoint, or slow function calls, cannot hold the other tenants' requests up:
// checked on the stack's worker and, for its per-organization share, on a worker of the test's
// own with a database of its own (nothing else's requests in its queue).
import { type ChildProcess, spawn } from "node:child_process";
import crypto from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import postgres from "postgres";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "../../dev/stack/config.ts";
import { adminSql, DB_URL, waitUntil } from "../helpers/stack.ts";

const sql = adminSql();
afterAll(() => sql.end());

/** An endpoint that answers 503 to the first `failures` requests, then 200. */
async function flaky(failures: number) {
  let seen = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      seen++;
      if (seen <= failures) res.writeHead(503).end("not yet");
      else res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, seen: () => seen, close: () => server.close() };
}

describe("the net-worker", () => {
  it("sends a request again while its endpoint answers 503, and records only the last answer", async () => {
    const endpoint = await flaky(2);
    try {
      const [{ id }] = await sql`select net.http_post(${endpoint.url}, '{"n": 1}'::jsonb) as id`;
      const response = await waitUntil(
        "the response",
        async () => (await sql`select status_code from net._http_response where id = ${id}`)[0] ?? null,
        15_000,
        100,
      );
      expect(response.status_code).toBe(200);
      expect(endpoint.seen()).toBe(3);
      expect(await sql`select 1 from net._http_response where id = ${id}`).toHaveLength(1);
      expect(await sql`select 1 from net.http_request_queue where id = ${id}`).toEqual([]);
    } finally {
      endpoint.close();
    }
  });

  it("records a client error at once, as pg_net does (it is not sent again)", async () => {
    const server = http.createServer((req, res) => (req.resume(), res.writeHead(422).end("no")));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const [{ id }] = await sql`select net.http_post(${url}, '{}'::jsonb) as id`;
      const response = await waitUntil(
        "the response",
        async () => (await sql`select status_code from net._http_response where id = ${id}`)[0] ?? null,
        10_000,
        100,
      );
      expect(response.status_code).toBe(422);
    } finally {
      server.close();
    }
  });

  it("keeps one tenant's hanging endpoint from holding up another's webhook", async () => {
    // an endpoint that never answers, with 150 requests for it in the queue first; their 60 s timeout
    // outlasts the wait below, so only requests sent beside them can pass
    let held = 0, ended = 0;
    const hanging = http.createServer((_req, res) => {
      held++;
      res.on("close", () => ended++);
    });
    await new Promise<void>((r) => hanging.listen(0, "127.0.0.1", () => r()));
    const healthy = await flaky(0);
    const hangingUrl = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/`;
    try {
      await sql`select net.http_post(${hangingUrl}, '{}'::jsonb, '{}'::jsonb, '{"Content-Type": "application/json"}'::jsonb, 60000)
                from generate_series(1, 150)`;
      await waitUntil("the hanging endpoint to hold requests", () => Promise.resolve(held > 0), 10_000, 50);
      const [{ id }] = await sql`select net.http_post(${healthy.url}, '{"tenant": "b"}'::jsonb) as id`;
      await waitUntil(
        "the healthy endpoint's response",
        async () => (await sql`select 1 from net._http_response where id = ${id}`)[0] ?? null,
        15_000,
        50,
      );
      // the cause: the hanging requests held their host's share, none had ended, none was answered
      expect(held).toBeLessThanOrEqual(20);
      expect(ended).toBe(0);
      expect(await sql`select count(*)::int as n from net.http_request_queue where url = ${hangingUrl}`).toEqual([{ n: 150 }]);
    } finally {
      hanging.closeAllConnections();
      hanging.close();
      healthy.close();
      await sql`delete from net.http_request_queue where url = ${hangingUrl}`;
    }
  });
});

/**
 * A net-worker of the test's own (the file in the tree, not the stack's running copy) against a
 * database of its own in the stack's cluster holding only pg_net's schema from the baseline.
 */
async function ownNetWorker() {
  const name = `net_worker_${crypto.randomUUID().slice(0, 8)}`;
  await sql.unsafe(`create database ${name}`);
  const url = new URL(DB_URL);
  url.pathname = `/${name}`;
  const db = postgres(url.toString(), { max: 2, onnotice: () => {} });
  await db.file(path.join(ROOT, "dev", "platform", "sql", "40-net.sql"));
  let out = "";
  const child: ChildProcess = spawn(
    path.join(ROOT, "node_modules", ".bin", "node"),
    [path.join(ROOT, "dev", "platform", "runtime", "net-worker.ts")],
    { env: { ...process.env, SUPABASE_DB_URL: url.toString() }, stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  await waitUntil("the net-worker to listen", () => Promise.resolve(out.includes('"started"')), 15_000, 50);
  return {
    db,
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((r) => child.exitCode !== null ? r(null) : child.once("exit", r));
      await db.end();
      await sql.unsafe(`drop database ${name} with (force)`);
    },
  };
}

describe("the net-worker's share per organization", () => {
  it("keeps one organization's slow function calls from holding another's calls to the same host", async () => {
    // one host for everyone, as the API gateway is: organization A's calls never answer (their 60 s
    // timeout outlasts the wait below), B's answer at once
    const orgA = crypto.randomUUID(), orgB = crypto.randomUUID();
    const open = new Set<http.ServerResponse>();
    let heldA = 0, endedA = 0, heldAtB = -1;
    const gateway = http.createServer((req, res) => {
      req.resume();
      if (req.headers["x-org-id"] === orgA) {
        heldA++;
        open.add(res);
        res.on("close", () => endedA++);
        return;
      }
      heldAtB = heldA - endedA;
      res.writeHead(200).end("{}");
    });
    await new Promise<void>((r) => gateway.listen(0, "127.0.0.1", () => r()));
    const url = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}/functions/v1/file-processing`;
    const own = await ownNetWorker();
    try {
      const headers = (org: string) => own.db.json({ "Content-Type": "application/json", "X-Org-Id": org });
      await own.db`select net.http_post(${url}, '{}'::jsonb, '{}'::jsonb, ${headers(orgA)}, 60000) from generate_series(1, 40)`;
      await waitUntil("A's calls to be held", () => Promise.resolve(heldA > 0), 10_000, 50);
      const [{ id }] = await own.db`select net.http_post(${url}, '{}'::jsonb, '{}'::jsonb, ${headers(orgB)}) as id`;
      const answer = await waitUntil(
        "B's call to be answered",
        async () => (await own.db`select status_code from net._http_response where id = ${id}`)[0] ?? null,
        15_000,
        50,
      );
      expect(answer.status_code).toBe(200);
      // the cause: A held its share of the host (5 of 20) and no more, none of A's had ended, the rest
      // of A's wait in the queue
      expect(heldAtB).toBe(5);
      expect([heldA, endedA]).toEqual([5, 0]);
      expect(await own.db`select count(*)::int as n from net.http_request_queue`).toEqual([{ n: 40 }]);
    } finally {
      for (const res of open) res.destroy();
      gateway.closeAllConnections();
      gateway.close();
      await own.stop();
    }
  }, 60_000);
});
