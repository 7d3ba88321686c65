// The functions gateway, through real HTTP and real Deno processes: JWT checks, CORS, request
// ids, env injection, and isolation of throwing, crashing and broken functions.
import { SignJWT } from "jose";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { poolerSettings, poolerUrl } from "../../dev/stack/pooler.ts";
import { startFixtureGateway } from "../helpers/fixture-gateway.ts";
import { adminSql, API_URL, createUser, secrets, tokenFor } from "../helpers/stack.ts";

const sql = adminSql();
let gateway: Awaited<ReturnType<typeof startFixtureGateway>>;

async function sign(claims: Record<string, unknown>, secret = secrets().jwtSecret) {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(secret));
}
const now = () => Math.floor(Date.now() / 1000);
const call = (name: string, init: RequestInit = {}) => fetch(`${gateway.url}/functions/v1/${name}`, init);
const bearer = (t: string) => ({ headers: { Authorization: `Bearer ${t}` } });

beforeAll(async () => {
  gateway = await startFixtureGateway("gateway-test");
});
afterAll(async () => {
  await gateway?.stop();
  await sql.end();
});

describe("JWT verification", () => {
  it.each([
    ["no authorization header", {}, "missing_authorization"],
    ["a token signed with another secret", "wrong-secret", "invalid_jwt"],
    ["an expired token", "expired", "jwt_expired"],
    ["a token whose role is not a Supabase role", "bad-role", "invalid_jwt"],
    ["a malformed token", "garbage", "invalid_jwt"],
  ])("answers 401 with the error envelope for %s", async (_label, kind, code) => {
    let init: RequestInit = {};
    if (kind === "wrong-secret") init = bearer(await sign({ role: "anon", exp: now() + 60 }, "not-the-project-secret"));
    if (kind === "expired") init = bearer(await sign({ role: "authenticated", sub: crypto.randomUUID(), exp: now() - 5 }));
    if (kind === "bad-role") init = bearer(await sign({ role: "postgres", exp: now() + 60 }));
    if (kind === "garbage") init = bearer("not.a.jwt");
    const res = await call("echo", init);
    expect(res.status).toBe(401);
    const body = await res.json();
    expect(body.error.code).toBe(code);
    expect(body.request_id).toBe(res.headers.get("x-request-id"));
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
  });

  it("passes the anon key, the service_role key and a user's token through to the function", async () => {
    const user = await createUser(sql);
    const { token } = await tokenFor(sql, user.id);
    for (const t of [secrets().anonKey, secrets().serviceRoleKey, token]) {
      const res = await call("echo", { method: "POST", body: "hi", ...bearer(t) });
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(body.authorization).toBe(`Bearer ${t}`);
      expect(body.body).toBe("hi");
    }
  });

  it("serves verify_jwt = false functions without a token", async () => {
    const res = await call("public-echo");
    expect(res.status).toBe(200);
  });
});

describe("requests", () => {
  it("answers CORS preflight without a token", async () => {
    const res = await call("echo", {
      method: "OPTIONS",
      headers: { Origin: "https://app.example", "Access-Control-Request-Method": "POST" },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-headers")).toContain("authorization");
  });

  it("keeps a caller's x-request-id and injects the hosted env names", async () => {
    const res = await call("echo", { headers: { Authorization: `Bearer ${secrets().anonKey}`, "x-request-id": "req-abc-123" } });
    const body = await res.json();
    expect(res.headers.get("x-request-id")).toBe("req-abc-123");
    expect(body.request_id).toBe("req-abc-123");
    expect(body.env).toEqual({
      SUPABASE_URL: true,
      SUPABASE_ANON_KEY: true,
      SUPABASE_SERVICE_ROLE_KEY: true,
      SUPABASE_DB_URL: true,
    });
  });

  it("answers 404 function_not_found for unknown and private (_shared) names", async () => {
    for (const name of ["nope", "_shared", "..%2Fsecrets"]) {
      const res = await call(name, bearer(secrets().anonKey));
      expect(res.status).toBe(404);
      expect((await res.json()).error.code).toBe("function_not_found");
    }
  });
});

describe("fault isolation", () => {
  it("answers 400 invalid_path for a function name that is not valid percent-encoding", async () => {
    const res = await call("bad%E0%A4%A");
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe("invalid_path");
  });

  it("turns a throw into a 500 envelope with the request id", async () => {
    const res = await call("throws", {
      headers: { Authorization: `Bearer ${secrets().anonKey}`, "x-request-id": "req-throw-1" },
    });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({
      error: { code: "internal_error", message: expect.any(String) },
      request_id: "req-throw-1",
    });
  });

  it("isolates a function that kills its process and starts it again on the next request", async () => {
    const auth = bearer(secrets().anonKey);
    const before = await (await call("crash", auth)).json();
    const echoBefore = await (await call("echo", auth)).json();
    const crashed = await call("crash?die=1", auth);
    expect(crashed.status).toBe(502);
    expect((await crashed.json()).error.code).toBe("function_crashed");
    const echoAfter = await (await call("echo", auth)).json();
    expect(echoAfter.pid).toBe(echoBefore.pid); // the other function never noticed
    const after = await call("crash", auth);
    expect(after.status).toBe(200);
    expect((await after.json()).pid).not.toBe(before.pid);
  });

  it("stops a function past the hosted memory limit (256 MB of heap), and only that one", async () => {
    const auth = bearer(secrets().anonKey);
    const echoBefore = await (await call("echo", auth)).json();
    const within = await call("hog?mb=100", auth);
    expect(within.status).toBe(200);
    expect(await within.json()).toEqual({ heap_mb: 100 });
    const past = await call("hog?mb=400", auth);
    expect(past.status).toBe(502);
    expect((await past.json()).error.code).toBe("function_crashed");
    expect((await (await call("echo", auth)).json()).pid).toBe(echoBefore.pid);
  });

  it("answers 503 function_boot_error, naming the cause, for a function that cannot load", async () => {
    const res = await call("broken", bearer(secrets().anonKey));
    expect(res.status).toBe(503);
    const body = await res.json();
    expect(body.error.code).toBe("function_boot_error");
    expect(body.error.message).toContain("does-not-exist.ts");
  });
});

describe("the stack's own gateway", () => {
  it("serves the public health function: everyone learns the status, only the service which service and why", async () => {
    const res = await fetch(`${API_URL}/functions/v1/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
    const asService = await fetch(`${API_URL}/functions/v1/health`, {
      headers: { authorization: `Bearer ${secrets().serviceRoleKey}` },
    });
    const body = await asService.json();
    expect(body.status).toBe("ok");
    for (const k of ["postgres", "redis", "clamd", "mosquitto"]) expect(body.checks[k].ok).toBe(true);
  });

  it("answers a burst of public health calls from a cached report over one Postgres connection", async () => {
    const admin = adminSql();
    const pooler = poolerSettings();
    const console_ = pooler.enabled ? new pg.Client({ connectionString: poolerUrl(pooler.port, "session", "pgbouncer") }) : null;
    await console_?.connect();
    try {
      // the health function's own connections (application_name "health"), where they end: at
      // Postgres, or at PgBouncer when [db.pooler] is on; other services' connections do not count
      const healthConnections = async () =>
        console_
          ? (await console_.query("SHOW CLIENTS")).rows.filter((c) => c.application_name === "health").length
          : (await admin`select count(*)::int as n from pg_stat_activity where application_name = 'health'`)[0].n as number;
      await fetch(`${API_URL}/functions/v1/health`).then((r) => r.body?.cancel()); // the function is up
      let most = 0;
      let bursting = true;
      const watch = (async () => {
        while (bursting) {
          most = Math.max(most, await healthConnections());
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      const statuses: number[] = [];
      for (let round = 0; round < 10; round++) {
        const answers = await Promise.all(Array.from({ length: 100 }, () => fetch(`${API_URL}/functions/v1/health`)));
        for (const a of answers) {
          statuses.push(a.status);
          await a.body?.cancel();
        }
      }
      bursting = false;
      await watch;
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(statuses).toHaveLength(1000);
      expect(most).toBe(1);
      expect(await healthConnections()).toBe(1); // kept for the next caller
    } finally {
      await console_?.end();
      await admin.end();
    }
  });
});
