// Starting, finding and stopping the stack's background processes by pid file.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { paths } from "./config.ts";

export function pidFile(name: string) {
  return path.join(paths.pids, `${name}.pid`);
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  // An exited process stays a zombie until its reaper (here PID 1) collects it: that is dead.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export function readPid(name: string): number | null {
  try {
    const pid = Number(fs.readFileSync(pidFile(name), "utf8").trim());
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : null;
  } catch {
    return null;
  }
}

export interface Spawnable {
  name: string;
  command: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
}

/** Starts a process in its own process group, detached from us, logging to .stack/logs/<name>.log. */
export function spawnDetached(p: Spawnable): number {
  fs.mkdirSync(paths.pids, { recursive: true });
  fs.mkdirSync(paths.logs, { recursive: true });
  const out = fs.openSync(path.join(paths.logs, `${p.name}.log`), "a");
  const child = spawn(p.command, p.args, {
    cwd: p.cwd,
    env: { ...process.env, ...p.env },
    detached: true,
    stdio: ["ignore", out, out],
  });
  fs.closeSync(out);
  if (!child.pid) throw new Error(`could not start ${p.name}: ${p.command}`);
  fs.writeFileSync(pidFile(p.name), String(child.pid));
  child.unref();
  return child.pid;
}

/** Sends SIGTERM to the process group, waits, then SIGKILL: nothing of ours is left behind. */
export async function stopProcess(name: string, timeoutMs = 10_000): Promise<boolean> {
  const pid = readPid(name);
  fs.rmSync(pidFile(name), { force: true });
  if (!pid) return false;
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch { /* already gone */ }
    }
  };
  signal("SIGTERM");
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid)) signal("SIGKILL");
  return true;
}

export function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

export function canConnect(port: number, host = "127.0.0.1", timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

/** Names the process holding a TCP port, for the "port already taken" message. */
export function portOwner(port: number): string {
  try {
    const out = execFileSync("ss", ["-Hltnp", `sport = :${port}`], { encoding: "utf8" });
    const m = out.match(/users:\(\("([^"]+)",pid=(\d+)/);
    return m ? `${m[1]} (pid ${m[2]})` : "an unknown process";
  } catch {
    return "an unknown process";
  }
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, logHint?: string) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(150);
  }
  throw new Error(`${what} did not become healthy within ${timeoutMs} ms${logHint ? `; see ${logHint}` : ""}`);
}
