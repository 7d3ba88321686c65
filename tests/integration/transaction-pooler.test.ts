// Why functions connect without prepared statements and the worker does not use the transaction
// pooler. Through a PgBouncer of its own (Debian's 1.18, the stack's configuration: like
// Supavisor's transaction mode on port 6543, it keeps no prepared statement from one transaction to
// the next) against the stack's Postgres, with fewer server connections than clients, as under load:
// - node-postgres's named prepared statements fail, and so does the worker's tenantStatement as
//   soon as the pooler hands it a server connection its statements were not parsed on;
// - postgres.js with its default (prepare: true) does not come through the functions' request
//   context either, while connectDatabase's prepare: false does, each transaction keeping its own
//   context;
// - through the session pooler (the worker's documented alternative to a direct connection) the
//   worker's statements and LISTEN/NOTIFY work.
import crypto from "node:crypto";
import pg from "pg";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OwnPooler, startOwnPooler } from "../../dev/stack/pooler.ts";
import { connectDatabase, withRequestContext } from "../../supabase/functions/_shared/db.ts";
import type { TenantJob } from "../../worker/src/tenant-context.ts";
import { createStatementPool, tenantStatement } from "../../worker/src/tenant-statement.ts";
import { adminSql, DB_URL, waitUntil } from "../helpers/stack.ts";

const CLIENTS = 8;
const QUERIES = 100;
const SERVER_CONNECTIONS = 4;

const poolers: OwnPooler[] = [];
async function pooler(poolMode: "transaction" | "session") {
  const p = await startOwnPooler({ poolMode, defaultPoolSize: poolMode === "session" ? 2 * CLIENTS : SERVER_CONNECTIONS });
  poolers.push(p);
  return p;
}
afterAll(async () => {
  for (const p of poolers) await p.stop();
});

/**
 * QUERIES calls on each of CLIENTS clients at once, each client's one after another. A call that
 * has not settled after `stallMs` counts as failed and ends its client's run (its connection hangs).
 */
async function hammer(call: (client: number, i: number) => Promise<unknown>, stallMs = 20_000) {
  const failures: string[] = [];
  let ok = 0;
  await Promise.all(Array.from({ length: CLIENTS }, async (_, c) => {
    for (let i = 0; i < QUERIES; i++) {
      let timer: NodeJS.Timeout | undefined;
      const stalled = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("stalled")), stallMs)));
      try {
        await Promise.race([call(c, i), stalled]);
        ok++;
      } catch (e) {
        failures.push((e as Error).message);
        if ((e as Error).message === "stalled") return;
      } finally {
        clearTimeout(timer);
      }
    }
  }));
  return { ok, failures };
}

/** A command on PgBouncer's admin console (simple query protocol, as it requires). */
async function console_(p: OwnPooler, command: string) {
  const c = new pg.Client({ connectionString: p.adminUrl });
  await c.connect();
  try {
    return (await c.query(command)).rows;
  } finally {
    await c.end();
  }
}

const job = (): TenantJob => ({
  id: crypto.randomUUID(),
  orgId: crypto.randomUUID(),
  scopes: [],
  correlationId: crypto.randomUUID(),
});

describe("through a transaction pooler", () => {
  it("node-postgres's named prepared statements fail under concurrency (8 clients × 100 queries), and not without the pooler", async () => {
    const p = await pooler("transaction");
    const run = async (url: string) => {
      const clients = await Promise.all(Array.from({ length: CLIENTS }, async () => {
        const c = new pg.Client({ connectionString: url });
        c.on("error", () => {});
        await c.connect();
        return c;
      }));
      try {
        return await hammer((c, i) => clients[c].query({ name: "pooler_named", text: "select $1::int + 1 as n", values: [i] }));
      } finally {
        await Promise.all(clients.map((c) => c.end().catch(() => {})));
      }
    };
    const direct = await run(DB_URL);
    expect(direct).toEqual({ ok: CLIENTS * QUERIES, failures: [] });
    const pooled = await run(p.plainUrl);
    expect(pooled.failures.length).toBeGreaterThan(0);
    for (const f of pooled.failures) expect(f).toMatch(/^prepared statement "pooler_named" (already exists|does not exist)$/);
  });

  it("the worker's tenantStatement fails once the pooler gives it a server connection its statements were not parsed on", async () => {
    const p = await pooler("transaction");
    const pool = createStatementPool(p.plainUrl, 1);
    try {
      expect(await tenantStatement(pool, job())`select ${1}::int as n`).toEqual([{ n: 1 }]);
      // What server_lifetime, server_idle_timeout or a failover do to a pooler's connections, now.
      await console_(p, "RECONNECT postgres");
      await waitUntil("the pooler to close its server connection", async () => {
        const [pool] = await console_(p, "SHOW POOLS").then((rows) => rows.filter((r) => r.database === "postgres"));
        return Number(pool?.sv_idle ?? 0) + Number(pool?.sv_used ?? 0) === 0;
      });
      await expect(tenantStatement(pool, job())`select ${2}::int as n`).rejects.toMatchObject({
        code: "26000",
        message: expect.stringMatching(/^prepared statement "tenant_(context_v1|[0-9a-f]{32})" does not exist$/),
      });
    } finally {
      await pool.end();
    }
  });

  it("postgres.js with its default prepare: true does not come through the functions' request context", async () => {
    const p = await pooler("transaction");
    const clients = Array.from({ length: CLIENTS }, () => postgres(p.plainUrl, { max: 1, onnotice: () => {} }));
    try {
      const { failures } = await hammer(
        (c, i) =>
          withRequestContext(clients[c], { role: "service_role", claims: {} }, (tx) => tx`select ${i}::int + ${c}::int as n`),
        5_000,
      );
      expect(failures.length).toBeGreaterThan(0);
      for (const f of failures) expect(f).toMatch(/^(prepared statement "[^"]+" does not exist|stalled)$/);
    } finally {
      await Promise.all(clients.map((c) => c.end({ timeout: 0 })));
    }
  });

  it("the functions' connectDatabase (prepare: false) comes through: 8 clients × 100 transactions, each with its own context", async () => {
    const p = await pooler("transaction");
    const [before] = (await console_(p, "SHOW STATS")).filter((r) => r.database === "postgres");
    const users = Array.from({ length: CLIENTS }, () => crypto.randomUUID());
    const clients = users.map(() => connectDatabase(p.url, { max: 2, onnotice: () => {} }));
    const seen: string[] = [];
    try {
      const result = await hammer(async (c, i) => {
        const [row] = await withRequestContext(
          clients[c],
          { role: "authenticated", claims: { sub: users[c] } },
          (tx) => tx`select auth.uid()::text as uid, current_user as role, ${i}::int as i`,
        );
        seen.push(`${row.role} ${row.uid === users[c]} ${row.i === i}`);
      });
      expect(result).toEqual({ ok: CLIENTS * QUERIES, failures: [] });
      expect(new Set(seen)).toEqual(new Set(["authenticated true true"]));
      // They came through the pooler: its transactions grew by at least theirs.
      const [after] = (await console_(p, "SHOW STATS")).filter((r) => r.database === "postgres");
      expect(Number(after.total_xact_count) - Number(before?.total_xact_count ?? 0)).toBeGreaterThanOrEqual(CLIENTS * QUERIES);
      const [pool] = (await console_(p, "SHOW POOLS")).filter((r) => r.database === "postgres");
      expect(pool.pool_mode).toBe("transaction");
    } finally {
      await Promise.all(clients.map((c) => c.end({ timeout: 5 })));
    }
  });
});

describe("through a session pooler, the worker's documented alternative to a direct connection", () => {
  let p: OwnPooler;
  beforeAll(async () => {
    p = await pooler("session");
  });

  it("tenantStatement works under the same load, and across a RECONNECT (a session keeps its server connection)", async () => {
    const pools = Array.from({ length: CLIENTS }, () => createStatementPool(p.plainUrl, 1));
    try {
      const round = () => hammer((c, i) => tenantStatement(pools[c], job())`select ${i}::int + ${c}::int as n`);
      expect(await round()).toEqual({ ok: CLIENTS * QUERIES, failures: [] });
      await console_(p, "RECONNECT postgres");
      expect(await round()).toEqual({ ok: CLIENTS * QUERIES, failures: [] });
    } finally {
      await Promise.all(pools.map((pool) => pool.end()));
    }
  });

  it("LISTEN/NOTIFY, on which pg-boss wakes its workers, reaches a listener through it", async () => {
    const listener = new pg.Client({ connectionString: p.plainUrl });
    await listener.connect();
    const admin = adminSql(1);
    try {
      const got: string[] = [];
      listener.on("notification", (n) => got.push(n.payload ?? ""));
      await listener.query("listen pooler_test");
      const payload = crypto.randomUUID();
      await admin`select pg_notify('pooler_test', ${payload})`;
      await waitUntil("the notification", async () => got.includes(payload));
    } finally {
      await listener.end();
      await admin.end();
    }
  });
});
