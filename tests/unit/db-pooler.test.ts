// How functions' database clients know they go through a transaction pooler (no prepared
// statements), and how the stack reads [db.pooler] from config.toml and the supabase CLI's env
// overrides. postgres.js connects lazily: these clients never open a connection.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { functionsDbUrl, poolerSettings, poolerUrl } from "../../dev/stack/pooler.ts";
import { DB_URL, PORTS } from "../../dev/stack/config.ts";
import { connectDatabase, functionsDatabaseUrl, transactionPooled } from "../../supabase/functions/_shared/db.ts";

describe("a database URL through a transaction pooler", () => {
  it("is one when it says pgbouncer=true, which is taken off before connecting", () => {
    expect(transactionPooled("postgresql://postgres:pw@127.0.0.1:54331/postgres?pgbouncer=true")).toEqual({
      url: "postgresql://postgres:pw@127.0.0.1:54331/postgres",
      pooled: true,
    });
    const sql = connectDatabase("postgresql://postgres:pw@127.0.0.1:54331/postgres?pgbouncer=true&application_name=x");
    expect(sql.options.prepare).toBe(false);
    expect(sql.options.connection).not.toHaveProperty("pgbouncer");
    expect(sql.options.connection).toMatchObject({ application_name: "x" });
  });

  it("is one on Supavisor's transaction port, 6543, unless the URL says pgbouncer=false", () => {
    const hosted = "postgresql://postgres.abcdefghijklmnop:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres";
    expect(transactionPooled(hosted)).toEqual({ url: hosted, pooled: true });
    expect(connectDatabase(hosted).options.prepare).toBe(false);
    expect(transactionPooled(`${hosted}?pgbouncer=false`).pooled).toBe(false);
  });

  it("is not one otherwise: direct connections and the session pooler keep prepared statements", () => {
    for (
      const url of [
        DB_URL,
        "postgresql://postgres:pw@db.abcdefghijklmnop.supabase.co:5432/postgres",
        "postgresql://postgres.abcdefghijklmnop:pw@aws-0-eu-central-1.pooler.supabase.com:5432/postgres",
      ]
    ) {
      expect(transactionPooled(url)).toEqual({ url, pooled: false });
      expect(connectDatabase(url).options.prepare).toBe(true);
    }
  });

  it("overrides a caller's prepare: true", () => {
    expect(connectDatabase("postgresql://u:p@h:6543/db", { prepare: true }).options.prepare).toBe(false);
  });

  it("functions take DB_POOLER_URL over SUPABASE_DB_URL when the secret is set", () => {
    const pooler = "postgresql://postgres.ref:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres";
    const before = process.env.DB_POOLER_URL;
    try {
      delete process.env.DB_POOLER_URL;
      expect(functionsDatabaseUrl(DB_URL)).toBe(DB_URL);
      process.env.DB_POOLER_URL = pooler;
      expect(functionsDatabaseUrl(DB_URL)).toBe(pooler);
      expect(connectDatabase(functionsDatabaseUrl(DB_URL)).options.prepare).toBe(false);
    } finally {
      if (before === undefined) delete process.env.DB_POOLER_URL;
      else process.env.DB_POOLER_URL = before;
    }
  });
});

describe("[db.pooler]", () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  const project = (pooler: string) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pooler-config-"));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, "config.toml"), `[db]\nport = 54322\n\n[db.pooler]\n${pooler}\n`);
    return dir;
  };

  it("of the project's config.toml is read, on a port no other service of the stack uses", () => {
    const s = poolerSettings(undefined, {});
    expect(Object.values(PORTS)).not.toContain(s.port);
    expect(functionsDbUrl(s)).toBe(s.enabled ? poolerUrl(s.port, s.poolMode) : DB_URL);
    expect(functionsDbUrl({ ...s, enabled: false })).toBe(DB_URL);
  });

  it("SUPABASE_DB_POOLER_* override the file, as the supabase CLI lets them", () => {
    const dir = project(
      `enabled = false\nport = 54340\npool_mode = "transaction"\ndefault_pool_size = 20\nmax_client_conn = 100`,
    );
    const s = poolerSettings(dir, { SUPABASE_DB_POOLER_ENABLED: "true", SUPABASE_DB_POOLER_DEFAULT_POOL_SIZE: "7" });
    expect(s).toEqual({ enabled: true, port: 54340, poolMode: "transaction", defaultPoolSize: 7, maxClientConn: 100 });
    expect(functionsDbUrl(s)).toBe("postgresql://postgres:postgres@127.0.0.1:54340/postgres?pgbouncer=true");
    expect(poolerSettings(dir, { SUPABASE_DB_POOLER_ENABLED: "" }).enabled).toBe(false);
    expect(() => poolerSettings(dir, { SUPABASE_DB_POOLER_ENABLED: "yes" })).toThrow(
      /SUPABASE_DB_POOLER_ENABLED must be true or false/,
    );
  });

  it("refuses a port another service of the stack holds, and an unknown pool mode", () => {
    expect(() => poolerSettings(project(`enabled = true\nport = 54329`), {})).toThrow(
      /port 54329 is the stack's postgrestAdmin port/,
    );
    expect(() => poolerSettings(project(`enabled = true\nport = 54340\npool_mode = "statement"`), {})).toThrow(/pool_mode/);
  });

  it("a session-mode URL carries no marker: prepared statements work there", () => {
    expect(poolerUrl(54340, "session")).toBe("postgresql://postgres:postgres@127.0.0.1:54340/postgres");
  });
});
