// A second gateway over tests/fixtures/supabase, so tests can exercise functions that throw,
// crash or fail to boot without shipping such functions in the real project.
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { DB_URL, ROOT } from "../../dev/stack/config.ts";
import { withFreePorts } from "../../dev/stack/ports.ts";
import { secrets, waitUntil } from "./stack.ts";

export interface FixtureGateway {
  url: string;
  stop: () => Promise<void>;
  proc: ChildProcess;
}

/** A gateway on a port the kernel hands out (another one when it loses the port before binding). */
export function startFixtureGateway(
  logName: string,
  supabaseDir = path.join(ROOT, "tests", "fixtures", "supabase"),
  env: Record<string, string> = {},
): Promise<FixtureGateway> {
  return withFreePorts(1, ([port]) => startOn(port, supabaseDir, logName, env));
}

async function startOn(
  port: number,
  supabaseDir: string,
  logName: string,
  extraEnv: Record<string, string>,
): Promise<FixtureGateway> {
  const FIXTURE_URL = `http://127.0.0.1:${port}`;
  const s = secrets();
  const proc = spawn(path.join(ROOT, "node_modules", ".bin", "node"), [
    path.join(ROOT, "dev", "platform", "runtime", "gateway.ts"),
  ], {
    env: {
      ...process.env,
      GATEWAY_PORT: String(port),
      SUPABASE_DIR: supabaseDir,
      // one folder per gateway, reused by later runs: the file that started it names it
      STACK_LOGS_DIR: path.join(ROOT, ".stack", "logs", `fixture-gateway-${logName}`),
      JWT_SECRET: s.jwtSecret,
      SUPABASE_URL: FIXTURE_URL,
      SUPABASE_ANON_KEY: s.anonKey,
      SUPABASE_SERVICE_ROLE_KEY: s.serviceRoleKey,
      SUPABASE_PUBLISHABLE_KEY: s.publishableKey,
      SUPABASE_SECRET_KEY: s.secretKey,
      SUPABASE_DB_URL: DB_URL,
      ...extraEnv,
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      if (proc.exitCode !== null) return resolve();
      proc.once("exit", () => resolve());
      proc.kill("SIGTERM");
    });
  try {
    await waitUntil("fixture gateway", async () => {
      if (proc.exitCode !== null) throw new Error(`the fixture gateway exited (code ${proc.exitCode}) on port ${port}`);
      try {
        return (await fetch(`${FIXTURE_URL}/health`)).ok;
      } catch {
        return false;
      }
    }, 15_000);
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: FIXTURE_URL, proc, stop };
}

/**
 * A copy of the project's supabase folder for a gateway of its own: its config.toml (changed by
 * `edit`) with the signing keys and the mail templates named by absolute path, and its functions.
 */
export function projectCopy(name: string, edit: (config: string) => string = (c) => c): string {
  const project = path.join(ROOT, ".stack", "scratch", `${name}-${process.pid}`);
  fs.mkdirSync(project, { recursive: true });
  const config = fs.readFileSync(path.join(ROOT, "supabase", "config.toml"), "utf8")
    .replace(
      /^signing_keys_path = .*$/m,
      `signing_keys_path = ${JSON.stringify(path.join(ROOT, "supabase", "signing_keys.json"))}`,
    )
    // paths of templates are relative to the project folder, which the copy does not have
    .replace(/^content_path = "\.\/(.*)"$/gm, (_, file: string) => `content_path = ${JSON.stringify(path.join(ROOT, file))}`);
  fs.writeFileSync(path.join(project, "config.toml"), edit(config));
  fs.symlinkSync(path.join(ROOT, "supabase", "functions"), path.join(project, "functions"));
  return project;
}
