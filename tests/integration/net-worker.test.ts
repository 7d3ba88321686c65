// The stack's net-worker keeps pg_net's contract (a request id, sent after commit, one response
// row in net._http_response) and goes further where pg_net loses requests: a request whose
// endpoint is down, or answers 5xx/429, is sent again with backoff; its last answer is recorded.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, describe, expect, it } from "vitest";
import { adminSql, waitUntil } from "../helpers/stack.ts";

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
    // an endpoint that never answers, with 150 requests for it in the queue first
    const hanging = http.createServer(() => {});
    await new Promise<void>((r) => hanging.listen(0, "127.0.0.1", () => r()));
    const healthy = await flaky(0);
    const hangingUrl = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/`;
    try {
      await sql`select net.http_post(${hangingUrl}, '{}'::jsonb, '{}'::jsonb, '{"Content-Type": "application/json"}'::jsonb, 4000)
                from generate_series(1, 150)`;
      const started = Date.now();
      const [{ id }] = await sql`select net.http_post(${healthy.url}, '{"tenant": "b"}'::jsonb) as id`;
      await waitUntil(
        "the healthy endpoint's response",
        async () => (await sql`select 1 from net._http_response where id = ${id}`)[0] ?? null,
        15_000,
        50,
      );
      // the hanging requests hold at most their host's share; this one never waited for their timeouts
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      hanging.closeAllConnections();
      hanging.close();
      healthy.close();
      await sql`delete from net.http_request_queue where url = ${hangingUrl}`;
    }
  });
});
