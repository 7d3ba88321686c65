// CPU time of the stack's processes, for benchmarks that say where the time goes, two ways:
// - threadCpuNs / cpuNsSince: /proc/<pid>/task/<tid>/schedstat, the scheduler's own count in
//   nanoseconds, per thread: fine enough for one request; what a thread used between its last
//   reading and its end is lost, so it suits processes whose threads live on (Deno's, Node's);
// - processCpuNs: /proc/<pid>/stat's utime + stime, which keeps what ended threads used (PostgREST's
//   runtime starts and ends threads) but comes in clock ticks of 10 ms: for phases of seconds.
import { execFileSync } from "node:child_process";
import fs from "node:fs";

const TICK_NS = 1e9 / Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim());

/** The whole process's CPU time (threads that ended included), in ns, to the clock tick. */
export function processCpuNs(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * TICK_NS;
}

/** Nanoseconds of CPU each of the process's threads has used so far. */
export function threadCpuNs(pid: number): Map<string, number> {
  const threads = new Map<string, number>();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      threads.set(tid, Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return threads;
}

/**
 * CPU the process used since `before` (threadCpuNs), in ns: each thread's own difference, so a
 * thread that ends meanwhile costs the count only what it used since (threads that started count whole).
 */
export function cpuNsSince(pid: number, before: Map<string, number>): number {
  let total = 0;
  for (const [tid, ns] of threadCpuNs(pid)) total += ns - (before.get(tid) ?? 0);
  return total;
}

/** CPU used by named groups of processes from now until the returned stop() is called, in ns (processCpuNs). */
export function cpuMeter(groups: Record<string, number[]>) {
  const read = () =>
    Object.fromEntries(
      Object.entries(groups).map(([name, pids]) => [
        name,
        pids.map((p) => {
          try {
            return processCpuNs(p);
          } catch {
            return 0; // the process ended: what it used is lost to the count
          }
        }),
      ]),
    );
  const before = read();
  return () => {
    const after = read();
    return Object.fromEntries(
      Object.entries(after).map(([name, ns]) => [name, ns.reduce((sum, v, i) => sum + Math.max(0, v - before[name][i]), 0)]),
    ) as Record<string, number>;
  };
}
