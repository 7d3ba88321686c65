// A broker of the tests' own, on ports beside the stack's: the same broker/mosquitto.conf and
// plugin, with a short cache, so tests can restart it and watch revocation without waiting long.
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { HOST, STATE } from "../../dev/stack/config.ts";
import { canConnect, waitFor } from "../../dev/stack/processes.ts";
import { brokerEnv, writeBrokerConfig } from "../../dev/stack/services.ts";
import { secrets } from "./stack.ts";

export interface TestBroker {
  url: string;
  wsUrl: string;
  log(): string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function testBroker(ports = { mqtt: 54386, ws: 54387 }, options: Record<string, number> = { cache_seconds: 2, stale_seconds: 30 }): TestBroker {
  const dir = path.join(STATE, `test-broker-${ports.mqtt}`);
  const logFile = path.join(dir, "..", `test-broker-${ports.mqtt}.log`);
  let child: ChildProcess | null = null;
  return {
    url: `mqtt://${HOST}:${ports.mqtt}`,
    wsUrl: `ws://${HOST}:${ports.ws}`,
    log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : ""),
    async start() {
      const conf = writeBrokerConfig(dir, ports, options);
      const out = fs.openSync(logFile, "a");
      child = spawn("mosquitto", ["-c", conf], { env: { ...process.env, ...brokerEnv(secrets()) }, stdio: ["ignore", out, out] });
      fs.closeSync(out);
      await waitFor("the test broker", async () => (await canConnect(ports.mqtt)) && (await canConnect(ports.ws)), 10_000);
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
