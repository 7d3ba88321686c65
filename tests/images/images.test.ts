// The deployables' images, built by dev/bin/test-images (npm run test:images), as containers on
// the host's network against the running stack: the checks tests/integration/deployables.test.ts
// runs on folders laid out like the images, plus what only an image has (its user, its
// HEALTHCHECK). IMAGE_PODMAN and IMAGE_RUN_FLAGS are podman and `podman run` with the flags this
// machine needs (dev/bin/test-images says why).
import { execFileSync, spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "../../dev/stack/config.ts";
import { brokerSuite, launched, workerSuite } from "../helpers/deployables.ts";
import { readDockerfile } from "../helpers/dockerfile.ts";

const [podman, ...flags] = (process.env.IMAGE_PODMAN ?? "podman").split(" ");
const runFlags = (process.env.IMAGE_RUN_FLAGS ?? "").split(" ").filter(Boolean);
const pm = (...args: string[]) =>
  execFileSync(podman, [...flags, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
const WORKER_IMAGE = process.env.WORKER_IMAGE ?? "localhost/saas-backend-worker:test";
const BROKER_IMAGE = process.env.BROKER_IMAGE ?? "localhost/saas-backend-broker:test";

// secrets go to podman in a file only this user reads, not on its command line
const envDir = fs.mkdtempSync(path.join(os.tmpdir(), "images-env-"));
afterAll(() => fs.rmSync(envDir, { recursive: true, force: true }));

/** A container of image on the host's network (the stack listens on 127.0.0.1), attached like `docker run`. */
function container(image: string, env: Record<string, string>) {
  const name = `images-test-${crypto.randomUUID().slice(0, 8)}`;
  const envFile = path.join(envDir, name);
  fs.writeFileSync(envFile, Object.entries(env).map(([k, v]) => `${k}=${v}`).join("\n") + "\n", { mode: 0o600 });
  const child = spawn(podman, [
    ...flags,
    "run",
    ...runFlags,
    "--rm",
    "--name",
    name,
    "--network",
    "host",
    "--env-file",
    envFile,
    image,
  ], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  // SIGTERM to the container's main process, as `docker stop` sends it
  const l = launched(child, async () => void pm("kill", "--signal", "TERM", name));
  return { name, ...l };
}

describe("the images", () => {
  it("run as their Dockerfiles' users, and the worker keeps its HEALTHCHECK", () => {
    const users = [WORKER_IMAGE, BROKER_IMAGE].map((image) => pm("image", "inspect", "--format", "{{.Config.User}}", image));
    const healthcheck = JSON.parse(pm("image", "inspect", "--format", "{{json .Config.Healthcheck}}", WORKER_IMAGE));
    console.log(
      `[images] users: worker ${users[0]}, broker ${users[1]}; worker HEALTHCHECK ${JSON.stringify(healthcheck?.Test)}`,
    );
    expect(users).toEqual([
      readDockerfile(path.join(ROOT, "worker", "Dockerfile")).user,
      readDockerfile(path.join(ROOT, "broker", "Dockerfile")).user,
    ]);
    expect(healthcheck?.Test?.join(" ")).toContain("/health");
  });
});

let workerName = "";
workerSuite("worker image", async (env) => {
  const c = container(WORKER_IMAGE, env);
  workerName = c.name;
  return c;
}, () => {
  it("its HEALTHCHECK passes in the running container", () => {
    // podman healthcheck run: the image's own check, run now (no systemd timer needed)
    const out = pm("healthcheck", "run", workerName);
    console.log(`[worker image] podman healthcheck run -> ${out || "healthy"}`);
    expect(out === "" || out === "healthy").toBe(true);
  });
});

brokerSuite("broker image", async (env) => container(BROKER_IMAGE, env));
