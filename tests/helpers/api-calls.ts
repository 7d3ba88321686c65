// API call counts are written to Redis by each function process every API_CALLS_FLUSH_MS, not per
// request (supabase/functions/_shared/usage/api-calls.ts). Tests that read them wait for the write
// with a sentinel instead of sleeping, and can run one function in a host of their own to shut it down.
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import type { Redis } from "@upstash/redis";
import type postgres from "postgres";
import { apiCallsKey, utcDay } from "../../supabase/functions/_shared/usage/api-calls.ts";
import { paths, ROOT } from "../../dev/stack/config.ts";
import { callAsMachine, createKey } from "./machines.ts";
import { API_URL, createUser, secrets, waitUntil } from "./stack.ts";

export const countedCalls = async (redis: Redis, org: string) =>
  Number((await redis.hget(apiCallsKey(utcDay(new Date())), org)) ?? 0);

/**
 * An organization of its own whose API key calls a function once: a process writes everything it
 * counted in one transaction, so once the sentinel's call is in Redis, every call that function's
 * process counted before it is too. Only served calls count, so each is one the function serves.
 */
export async function apiCallSentinel(admin: postgres.Sql, redis: Redis) {
  const [{ id: org }] = await admin<{ id: string }[]>`
    insert into public.organizations (name, slug) values ('Sentinel', ${`sentinel-${
    crypto.randomUUID().slice(0, 8)
  }`}) returning id`;
  const user = await createUser(admin);
  await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${user.id}, 'owner')`;
  const { key } = await createKey(admin, org, user.id, ["events.write", "files.write", "org.read"]);
  const served: Record<string, [path: string, body?: unknown]> = {
    "analytics-ingest": ["analytics-ingest", {
      events: [{ type: "page.viewed", occurred_at: new Date().toISOString(), properties: { path: "/" } }],
    }],
    "file-upload": ["file-upload", { org_id: org, name: "sentinel.txt", size: 1, mime_type: "text/plain" }],
    "org-api": ["org-api/key"],
  };
  return {
    /** Resolves once every API call `fn` (analytics-ingest, file-upload, org-api) counted before now is in Redis. */
    async written(fn: string) {
      const before = await countedCalls(redis, org);
      const [path, body] = served[fn];
      const res = await callAsMachine(key, path, { body });
      if (res.status >= 400) throw new Error(`the sentinel's call of ${fn} was not served: ${res.status} ${res.body}`);
      await waitUntil(`${fn}'s API call counts in Redis`, async () => (await countedCalls(redis, org)) > before, 10_000, 50);
    },
    end: () => admin`update public.organizations set deleted_at = now() where id = ${org}`,
  };
}

/** The env the gateway gives a function, from the running stack's files. */
async function functionEnv(extra: Record<string, string>): Promise<Record<string, string>> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/tmp",
    DENO_NO_UPDATE_CHECK: "1",
  };
  if (process.env.DENO_DIR) env.DENO_DIR = process.env.DENO_DIR;
  for (const line of fs.readFileSync(paths.functionsEnv, "utf8").split("\n")) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) env[m[1]] = m[2];
  }
  env.SUPABASE_URL = API_URL;
  env.SUPABASE_SERVICE_ROLE_KEY = secrets().serviceRoleKey;
  env.SUPABASE_JWKS = await (await fetch(`${API_URL}/auth/v1/.well-known/jwks.json`)).text();
  env.LEGACY_JWT_SECRET = secrets().jwtSecret;
  return { ...env, ...extra };
}

export interface HostedFunction {
  url: string;
  proc: ChildProcess;
  /** SIGTERM, as the gateway stops a function; resolves with the exit code. */
  stop(): Promise<number | null>;
  stderr: string[];
}

/** One of the project's functions in the local function host, outside the gateway (denoFlags: e.g. --inspect). */
export async function hostFunction(
  name: string,
  extraEnv: Record<string, string>,
  denoFlags: string[] = [],
): Promise<HostedFunction> {
  const proc = spawn(path.join(ROOT, "node_modules", ".bin", "deno"), [
    "run",
    "--no-prompt",
    `--config=${path.join(ROOT, "deno.json")}`,
    "--allow-net",
    "--allow-env",
    "--allow-read",
    "--allow-sys",
    ...denoFlags,
    path.join(ROOT, "dev", "platform", "runtime", "function-host.ts"),
    path.join(ROOT, "supabase", "functions", name, "index.ts"),
  ], { cwd: ROOT, env: await functionEnv(extraEnv), stdio: ["ignore", "pipe", "pipe"] });
  const stderr: string[] = [];
  readline.createInterface({ input: proc.stderr! }).on("line", (l) => stderr.push(l));
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  const port = await new Promise<number>((resolve, reject) => {
    readline.createInterface({ input: proc.stdout! }).on("line", (line) => {
      if (line.startsWith('{"__function_host_ready":')) resolve(JSON.parse(line).__function_host_ready);
    });
    void exited.then((code) => reject(new Error(`function host exited (${code}): ${stderr.join("\n").slice(-2000)}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    proc,
    stderr,
    stop() {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      return exited;
    },
  };
}

/** The host's exit code and error output when the function fails to start. */
export async function functionBootFailure(name: string, extraEnv: Record<string, string>) {
  try {
    const hosted = await hostFunction(name, extraEnv);
    await hosted.stop();
    return null;
  } catch (e) {
    return String(e);
  }
}
