// A Mosquitto of its own beside the stack's, for tests and benchmarks: same broker/mosquitto.conf,
// other ports, its own state folder and log, started and stopped in-process.
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { HOST, STATE } from "./config.ts";
import { canConnect, waitFor } from "./processes.ts";
import type { StackSecrets } from "./secrets.ts";
import { type BrokerAuth, brokerEnv, writeBrokerConfig } from "./services.ts";

export interface BrokerInstance {
  url: string;
  wsUrl: string;
  pid(): number | undefined;
  log(): string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function brokerInstance(
  name: string,
  ports: { mqtt: number; ws: number },
  secrets: StackSecrets,
  auth: BrokerAuth,
  env: Record<string, string> = {},
): BrokerInstance {
  const dir = path.join(STATE, name);
  const logFile = path.join(STATE, `${name}.log`);
  let child: ChildProcess | null = null;
  return {
    url: `mqtt://${HOST}:${ports.mqtt}`,
    wsUrl: `ws://${HOST}:${ports.ws}`,
    pid: () => child?.pid,
    log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : ""),
    async start() {
      const conf = writeBrokerConfig(dir, ports, auth);
      const out = fs.openSync(logFile, "a");
      child = spawn("mosquitto", ["-c", conf], {
        env: { ...process.env, ...brokerEnv(secrets), ...env },
        stdio: ["ignore", out, out],
      });
      fs.closeSync(out);
      const c = child;
      await waitFor(
        `broker ${name}`,
        async () => c.exitCode === null && (await canConnect(ports.mqtt)) && (await canConnect(ports.ws)),
        10_000,
        logFile,
      );
    },
    async stop() {
      const c = child;
      child = null;
      if (!c || c.exitCode !== null) return;
      const exited = new Promise((r) => c.once("exit", r));
      c.kill("SIGTERM");
      await exited;
    },
  };
}
