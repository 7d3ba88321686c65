// Integration tests run against the local stack: fail at once, with the fix, when it is not up.
import fs from "node:fs";
import net from "node:net";
import { paths, PORTS } from "../../dev/stack/config.ts";

function reachable(port: number) {
  return new Promise<boolean>((resolve) => {
    const s = net.connect({ port, host: "127.0.0.1" });
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

export default async function setup() {
  if (!fs.existsSync(paths.secrets)) {
    throw new Error("the local stack has never been started: run `npm start` (npm test does it for you)");
  }
  for (const [name, port] of Object.entries(PORTS)) {
    if (name === "worker") continue; // not part of the stack yet
    if (!(await reachable(port))) throw new Error(`the local stack is not fully up (${name} on ${port}): run \`npm start\``);
  }
}
