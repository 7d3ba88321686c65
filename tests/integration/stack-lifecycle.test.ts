// The stack's own behaviour: status tells the truth, start brings back a dead service and leaves
// the rest alone, and a start that cannot get its ports says which and starts nothing.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../dev/stack/config.ts";
import { readPid } from "../../dev/stack/processes.ts";
import { waitUntil } from "../helpers/stack.ts";

const stack = (args: string[], env: Record<string, string> = {}) =>
  spawnSync("bash", [path.join(ROOT, "dev", "bin", "stack"), ...args], {
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 120_000,
  });

describe("the local stack", () => {
  it("reports a dead service, and the next start brings back only that one", async () => {
    const gatewayPid = readPid("gateway");
    const victim = readPid("upstash-bridge");
    expect(victim).not.toBeNull();
    process.kill(victim!, "SIGKILL");
    await waitUntil("the bridge to die", async () => readPid("upstash-bridge") === null);
    const status = stack(["status"]);
    expect(status.status).toBe(1);
    expect(status.stdout).toMatch(/upstash-bridge\s+stopped/);
    const start = stack(["start"]);
    expect(start.status, start.stderr).toBe(0);
    expect(readPid("upstash-bridge")).not.toBeNull();
    expect(readPid("upstash-bridge")).not.toBe(victim);
    expect(readPid("gateway")).toBe(gatewayPid); // untouched
    expect(stack(["status"]).status).toBe(0);
  }, 120_000);

  it("refuses to start over ports that are taken, naming port and process, and starts nothing", () => {
    const state = fs.mkdtempSync(path.join(os.tmpdir(), "stack-state-"));
    const r = stack(["start"], { STACK_STATE_DIR: state });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/port 54322 \(for postgres\) is already taken by postgres \(pid \d+\)/);
    expect(r.stderr).toMatch(/nothing was started/);
    expect(fs.existsSync(path.join(state, "postgres", "data"))).toBe(false);
    expect(fs.existsSync(path.join(state, "pids"))).toBe(false);
    fs.rmSync(state, { recursive: true, force: true });
  });
});
