// Ports on Linux: the stack's fixed ports (54321-54392) lie inside the ephemeral range
// (net.ipv4.ip_local_port_range, 32768-60999 by default), from which the kernel picks the local
// port of every outgoing connection. A connection that happens to get 54386 blocks a listener
// that starts there later (EADDRINUSE), and nothing is listening for a port check to see. So:
// - listeners the tests and benchmarks start for themselves take a port the kernel hands out
//   (freePort), and try again with another when they lose the race for it (withFreePorts);
// - `npm start` reserves the stack's own ports from the ephemeral range when it runs as root
//   (net.ipv4.ip_local_reserved_ports), and says once how to do it otherwise;
// - a fixed port held by connections only (no listener) is waited for briefly (portHolder).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";

/** A port nothing listens on now, chosen by the kernel (bind to 0). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.once("error", reject);
    s.listen(0, host, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts something on `count` free ports; when the start fails (another process took a port
 * between our check and its bind), tries again with new ports, up to `attempts` times.
 */
export async function withFreePorts<T>(count: number, start: (ports: number[]) => Promise<T>, attempts = 3): Promise<T> {
  let last: unknown;
  for (let i = 0; i < attempts; i++) {
    const ports: number[] = [];
    while (ports.length < count) {
      const p = await freePort();
      if (!ports.includes(p)) ports.push(p);
    }
    try {
      return await start(ports);
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

export type PortHolder = { kind: "listener" | "connection"; owner: string } | null;

/** Who holds a local TCP port: a listener, connections only (their local port), or nobody. */
export function portHolder(port: number): PortHolder {
  let out: string;
  try {
    out = execFileSync("ss", ["-Htanp", `sport = :${port}`], { encoding: "utf8" });
  } catch {
    return null;
  }
  const lines = out.split("\n").filter(Boolean);
  const owner = (line: string) => {
    const m = line.match(/users:\(\("([^"]+)",pid=(\d+)/);
    return m ? `${m[1]} (pid ${m[2]})` : "an unknown process";
  };
  const listener = lines.find((l) => l.startsWith("LISTEN"));
  if (listener) return { kind: "listener", owner: owner(listener) };
  // A connection that is closing (TIME-WAIT, or FIN-WAIT-2 left behind by a server that was just
  // stopped) does not stop a listener that sets SO_REUSEADDR, as every service of the stack does.
  const closing = /^(TIME-WAIT|FIN-WAIT-1|FIN-WAIT-2|CLOSING|LAST-ACK)\s/;
  const held = lines.find((l) => !closing.test(l));
  return held ? { kind: "connection", owner: owner(held) } : null;
}

const RESERVED = "/proc/sys/net/ipv4/ip_local_reserved_ports";
const RANGE = "/proc/sys/net/ipv4/ip_local_port_range";

/** Parses the kernel's list ("54321,54322-54330") into ports. */
export function parsePortList(list: string): Set<number> {
  const ports = new Set<number>();
  for (const part of list.trim().split(",").filter(Boolean)) {
    const [a, b] = part.split("-").map(Number);
    for (let p = a; p <= (b ?? a); p++) ports.add(p);
  }
  return ports;
}

export type Reservation =
  | { state: "reserved" | "already" | "outside-range" | "not-linux" }
  | { state: "not-permitted"; command: string };

/**
 * Takes `ports` out of the kernel's ephemeral range, keeping what is reserved already. Needs root
 * (and a writable /proc/sys); otherwise answers the command that would do it.
 */
export function reservePorts(ports: number[]): Reservation {
  if (!fs.existsSync(RESERVED)) return { state: "not-linux" };
  const [low, high] = fs.readFileSync(RANGE, "utf8").trim().split(/\s+/).map(Number);
  const reserved = parsePortList(fs.readFileSync(RESERVED, "utf8"));
  const missing = ports.filter((p) => p >= low && p <= high && !reserved.has(p));
  if (!ports.some((p) => p >= low && p <= high)) return { state: "outside-range" };
  if (missing.length === 0) return { state: "already" };
  const wanted = [...new Set([...reserved, ...missing])].sort((a, b) => a - b).join(",");
  try {
    fs.writeFileSync(RESERVED, wanted);
    return { state: "reserved" };
  } catch {
    return { state: "not-permitted", command: `sudo sysctl -w net.ipv4.ip_local_reserved_ports=${wanted}` };
  }
}
