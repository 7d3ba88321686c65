// A Mosquitto of its own beside the stack's, for tests and benchmarks: same broker/mosquitto.conf,
// its own state folder and log, started and stopped in-process. Without ports given it takes two
// the kernel hands out (trying others if it loses them to another process before binding), and
// keeps them across restarts, so clients reconnect where they were.
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { HOST, STATE } from "./config.ts";
import { withFreePorts } from "./ports.ts";
import { canConnect, waitFor } from "./processes.ts";
import type { StackSecrets } from "./secrets.ts";
import { type BrokerAuth, brokerEnv, writeBrokerConfig } from "./services.ts";

export interface BrokerInstance {
  /** mqtt:// and ws:// URLs; known once the broker has started. */
  readonly url: string;
  readonly wsUrl: string;
  pid(): number | undefined;
  log(): string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function brokerInstance(
  name: string,
  fixedPorts: { mqtt: number; ws: number } | null,
  secrets: StackSecrets,
  auth: BrokerAuth,
  env: Record<string, string> = {},
): BrokerInstance {
  const dir = path.join(STATE, name);
  const logFile = path.join(STATE, `${name}.log`);
  let ports = fixedPorts;
  let child: ChildProcess | null = null;
  // a test or benchmark that dies without stop() must not leave its broker running
  const kill = () => child?.kill("SIGKILL");

  async function launch(p: { mqtt: number; ws: number }) {
    const conf = writeBrokerConfig(dir, p, auth);
    const out = fs.openSync(logFile, "a");
    const c = spawn("mosquitto", ["-c", conf], {
      env: { ...process.env, ...brokerEnv(secrets), ...env },
      stdio: ["ignore", out, out],
    });
    fs.closeSync(out);
    child = c;
    process.once("exit", kill);
    try {
      await waitFor(
        `broker ${name}`,
        async () => {
          if (c.exitCode !== null) throw new Error(`broker ${name} exited (code ${c.exitCode}); see ${logFile}`);
          return (await canConnect(p.mqtt)) && (await canConnect(p.ws));
        },
        10_000,
        logFile,
      );
    } catch (e) {
      c.kill("SIGKILL");
      child = null;
      process.removeListener("exit", kill);
      throw e;
    }
  }

  const urlOf = (scheme: string, port?: number) => {
    if (!port) throw new Error(`broker ${name} has no port until it has started`);
    return `${scheme}://${HOST}:${port}`;
  };
  return {
    get url() {
      return urlOf("mqtt", ports?.mqtt);
    },
    get wsUrl() {
      return urlOf("ws", ports?.ws);
    },
    pid: () => child?.pid,
    log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : ""),
    async start() {
      if (ports) return launch(ports);
      await withFreePorts(2, async ([mqtt, ws]) => {
        await launch({ mqtt, ws });
        ports = { mqtt, ws };
      });
    },
    async stop() {
      const c = child;
      child = null;
      process.removeListener("exit", kill);
      if (!c || c.exitCode !== null) return;
      const exited = new Promise((r) => c.once("exit", r));
      c.kill("SIGTERM");
      await exited;
    },
  };
}
