// A second gateway over tests/fixtures/supabase, so tests can exercise functions that throw,
// crash or fail to boot without shipping such functions in the real project.
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { DB_URL, ROOT } from "../../dev/stack/config.ts";
import { secrets, waitUntil } from "./stack.ts";

/** Each test file that needs one picks its own port, so files can run in parallel. */
export async function startFixtureGateway(
  port: number,
  supabaseDir = path.join(ROOT, "tests", "fixtures", "supabase"),
): Promise<{ url: string; stop: () => Promise<void>; proc: ChildProcess }> {
  const FIXTURE_URL = `http://127.0.0.1:${port}`;
  const s = secrets();
  const proc = spawn(path.join(ROOT, "node_modules", ".bin", "node"), [
    path.join(ROOT, "dev", "platform", "runtime", "gateway.ts"),
  ], {
    env: {
      ...process.env,
      GATEWAY_PORT: String(port),
      SUPABASE_DIR: supabaseDir,
      STACK_LOGS_DIR: path.join(ROOT, ".stack", "logs", `fixture-gateway-${port}`),
      JWT_SECRET: s.jwtSecret,
      SUPABASE_URL: FIXTURE_URL,
      SUPABASE_ANON_KEY: s.anonKey,
      SUPABASE_SERVICE_ROLE_KEY: s.serviceRoleKey,
      SUPABASE_DB_URL: DB_URL,
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  await waitUntil("fixture gateway", async () => {
    try {
      return (await fetch(`${FIXTURE_URL}/health`)).ok;
    } catch {
      return false;
    }
  }, 15_000);
  return {
    url: FIXTURE_URL,
    proc,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once("exit", () => resolve());
        proc.kill("SIGTERM");
      }),
  };
}
