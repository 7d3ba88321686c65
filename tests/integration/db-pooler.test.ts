// The running stack connects as [db.pooler] (config.toml, or SUPABASE_DB_POOLER_ENABLED as the
// supabase CLI reads it) says: with the pooler on, functions reach Postgres only through it (a
// function that bypassed it would hold a connection to Postgres's own port), and PgBouncer's admin
// console knows them; off, they connect to Postgres and nothing listens on the pooler's port. The
// worker connects to Postgres directly either way (docs/worker.md: direct or session pooler, never
// the transaction pooler). Connections are read from the kernel (ss), per process of the stack.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { paths } from "../../dev/stack/config.ts";
import { functionsDbUrl, poolerSettings, poolerUrl } from "../../dev/stack/pooler.ts";
import { canConnect, readPid } from "../../dev/stack/processes.ts";
import { API_URL, PORTS } from "../helpers/stack.ts";

const pooler = poolerSettings();

/** A process and every process below it. */
function processTree(root: number): Set<number> {
  const parents = new Map<number, number>();
  for (const d of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      parents.set(Number(d), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch { /* ended meanwhile */ }
  }
  const tree = new Set([root]);
  let size = 0;
  while (tree.size !== size) {
    size = tree.size;
    for (const [pid, ppid] of parents) if (tree.has(ppid)) tree.add(pid);
  }
  return tree;
}

/** The remote ports of the established TCP connections these processes hold to 127.0.0.1. */
function remotePorts(pids: Set<number>): number[] {
  const out = execFileSync("ss", ["-Htnp", "state", "established"], { encoding: "utf8" });
  const ports: number[] = [];
  for (const line of out.split("\n")) {
    const peer = /\s127\.0\.0\.1:(\d+)\s+users:/.exec(line);
    const owners = [...line.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
    if (peer && owners.some((p) => pids.has(p))) ports.push(Number(peer[1]));
  }
  return ports;
}

async function callHealth() {
  // public, and its report checks Postgres on the function's one long-lived connection
  const res = await fetch(`${API_URL}/functions/v1/health`);
  expect(res.status).toBe(200);
}

describe(`the stack's database connections (pooler ${pooler.enabled ? "on" : "off"})`, () => {
  it("functions connect through the pooler when it is on, to Postgres when it is off", async () => {
    // the stack runs as the setting says (a start with SUPABASE_DB_POOLER_ENABLED needs it here too)
    const started = /^SUPABASE_DB_URL=(.*)$/m.exec(fs.readFileSync(paths.functionsEnv, "utf8"))?.[1];
    expect(started, "the SUPABASE_DB_URL the running stack gave its functions").toBe(functionsDbUrl(pooler));
    await callHealth();
    const gateway = readPid("gateway");
    expect(gateway).not.toBeNull();
    // Only the function processes below the gateway: its own stand-ins (auth, storage) connect to
    // Postgres as hosted GoTrue and Storage do.
    const functionPorts = remotePorts(new Set([...processTree(gateway!)].filter((p) => p !== gateway)));
    if (pooler.enabled) {
      expect(functionPorts).toContain(pooler.port);
      expect(functionPorts).not.toContain(PORTS.postgres);
    } else {
      expect(functionPorts).toContain(PORTS.postgres);
      expect(functionPorts).not.toContain(pooler.port);
      expect(await canConnect(pooler.port)).toBe(false);
    }
  });

  it.runIf(pooler.enabled)(
    "PgBouncer's admin console lists the health function among its clients, in the configured mode",
    async () => {
      await callHealth();
      const admin = new pg.Client({ connectionString: poolerUrl(pooler.port, "session", "pgbouncer") });
      await admin.connect();
      try {
        const clients = (await admin.query("SHOW CLIENTS")).rows;
        expect(clients.filter((c) => c.database === "postgres").map((c) => c.application_name)).toContain("health");
        const [pool] = (await admin.query("SHOW POOLS")).rows.filter((r) => r.database === "postgres");
        expect(pool.pool_mode).toBe(pooler.poolMode);
      } finally {
        await admin.end();
      }
    },
  );

  it("the worker connects to Postgres directly, never through the pooler", () => {
    const worker = readPid("worker");
    expect(worker).not.toBeNull();
    const ports = remotePorts(processTree(worker!));
    expect(ports).toContain(PORTS.postgres);
    expect(ports).not.toContain(pooler.port);
  });
});
