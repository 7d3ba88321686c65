// The worker and the broker as their images lay them out, without building an image: every other
// test runs from the repository root, where the root's packages are installed too, which hid a
// package the worker image lacked (jose) until the image failed at start. Here each runs from a
// folder of its own holding only what its Dockerfile copies, installed by the Dockerfile's own
// install command, against the running stack; npm run test:images runs the same checks against
// the images.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../dev/stack/config.ts";
import { brokerSuite, launched, workerSuite } from "../helpers/deployables.ts";
import { readDockerfile } from "../helpers/dockerfile.ts";

const base = fs.mkdtempSync(path.join(os.tmpdir(), "deployables-"));
const PATH = `${path.join(ROOT, "node_modules", ".bin")}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin`;
afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

/** Lays out what a Dockerfile's final stage COPYs from the build context under dir (its WORKDIR). */
function copyAsDockerfile(dockerfile: ReturnType<typeof readDockerfile>, dir: string) {
  for (const { sources, dest } of dockerfile.copies) {
    for (const source of sources) {
      const into = dest.endsWith("/") || sources.length > 1;
      const target = path.join(dir, dest, into ? path.basename(source) : "");
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.cpSync(path.join(ROOT, source), target, { recursive: true });
    }
  }
}

describe("the folder layout", () => {
  it("has no node_modules above it that could lend the worker a package", () => {
    // Node looks for packages in every parent folder: one there would hide a missing dependency
    for (let dir = path.dirname(base);; dir = path.dirname(dir)) {
      expect(fs.existsSync(path.join(dir, "node_modules")), dir).toBe(false);
      if (dir === path.dirname(dir)) break;
    }
  });
});

const worker = readDockerfile(path.join(ROOT, "worker", "Dockerfile"));
const app = path.join(base, "worker-app");
beforeAll(() => {
  copyAsDockerfile(worker, app);
  if (!worker.npmInstall) throw new Error("worker/Dockerfile installs nothing with npm install");
  const [npm, ...args] = worker.npmInstall;
  // (--prefer-offline: the npm cache answers for what it holds, the registry for the rest)
  execFileSync(npm, [...args, "--prefer-offline", "--loglevel=error"], {
    cwd: app,
    env: { PATH, HOME: process.env.HOME ?? os.homedir() },
    stdio: ["ignore", "ignore", "pipe"],
    timeout: 300_000,
  });
}, 320_000);

workerSuite("worker from a folder as worker/Dockerfile installs it", async (env) => {
  const [command, ...args] = worker.cmd!;
  // nothing of this process's environment: only the Dockerfile's ENV and what a deployment sets
  const child = spawn(command, args, { cwd: app, env: { PATH, ...worker.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  return launched(child);
});

const broker = readDockerfile(path.join(ROOT, "broker", "Dockerfile"));
const brokerDir = path.join(base, "broker");
brokerSuite("broker from a folder as broker/Dockerfile lays it out", async (env) => {
  // the image's paths, each under brokerDir, given to the entrypoint by the variables it reads
  const layout = {
    MQTT_CONF_TEMPLATE: path.join(brokerDir, "mosquitto.conf.template"),
    MQTT_PLUGIN_PATH: path.join(brokerDir, "supabase_auth.so"),
    MQTT_CONF: path.join(brokerDir, "config", "mosquitto.conf"),
    MQTT_STATE_DIR: path.join(brokerDir, "data"),
  };
  const entrypoint = path.join(brokerDir, "docker-entrypoint.sh");
  fs.mkdirSync(path.join(brokerDir, "config"), { recursive: true });
  fs.mkdirSync(layout.MQTT_STATE_DIR, { recursive: true });
  const copied = Object.fromEntries(broker.copies.map((c) => [c.dest, c.sources[0]]));
  fs.copyFileSync(path.join(ROOT, copied["/etc/mosquitto/mosquitto.conf.template"]), layout.MQTT_CONF_TEMPLATE);
  fs.copyFileSync(path.join(ROOT, copied[broker.entrypoint![0]]), entrypoint);
  fs.chmodSync(entrypoint, 0o755);
  execFileSync("make", ["-s", "-C", path.join(ROOT, "broker", "plugin"), `OUT=${layout.MQTT_PLUGIN_PATH}`], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  // The image runs it as the user mosquitto; so does this, when it can.
  let user: { uid?: number; gid?: number } = {};
  if (process.getuid?.() === 0) {
    const [uid, gid] = ["-u", "-g"].map((f) => Number(execFileSync("id", [f, broker.user ?? "mosquitto"], { encoding: "utf8" })));
    fs.chmodSync(base, 0o755);
    execFileSync("chown", ["-R", `${uid}:${gid}`, brokerDir]);
    user = { uid, gid };
  }
  const child = spawn(entrypoint, [], {
    cwd: brokerDir,
    env: { PATH, ...broker.env, ...env, ...layout },
    stdio: ["ignore", "pipe", "pipe"],
    ...user,
  });
  return launched(child);
});
