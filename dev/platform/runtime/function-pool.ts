// One Deno process per Edge Function, started on first request, restarted after a crash or a
// code change. A crash or a boot error in one function never touches the others.
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import type { Logger } from "../../../supabase/functions/_shared/log.ts";

export class FunctionBootError extends Error {}

interface Instance {
  proc: ChildProcess;
  ready: Promise<number>;
  stderrTail: string[];
}

export interface PoolOptions {
  root: string;
  functionsDir: string;
  env: () => Record<string, string>;
  logsDir: string;
  log: Logger;
  bootTimeoutMs?: number;
  /**
   * The V8 heap (old space) each function may use, in MB: the hosted edge runtime stops a function
   * at 256 MB, so a function that needs more fails here too instead of only once deployed.
   */
  maxHeapMb?: number;
}

export const FUNCTION_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/i;

export class FunctionPool {
  private instances = new Map<string, Instance>();
  private folders = new Map<string, boolean>();
  private readonly opts: PoolOptions;
  constructor(opts: PoolOptions) {
    this.opts = opts;
    fs.mkdirSync(opts.logsDir, { recursive: true });
  }

  /** Whether a function of that name exists, as last looked up (forgetFolders when the folder changes). */
  exists(name: string) {
    if (!FUNCTION_NAME.test(name) || name.startsWith("_")) return false;
    let known = this.folders.get(name);
    if (known === undefined) {
      known = fs.existsSync(this.entry(name));
      if (this.folders.size > 1000) this.folders.clear(); // names asked for that do not exist stay bounded
      this.folders.set(name, known);
    }
    return known;
  }

  forgetFolders() {
    this.folders.clear();
  }

  private entry(name: string) {
    return path.join(this.opts.functionsDir, name, "index.ts");
  }

  /** Returns the loopback port of a running instance, starting one if needed. */
  async port(name: string): Promise<number> {
    let inst = this.instances.get(name);
    if (!inst) {
      inst = this.start(name);
      this.instances.set(name, inst);
    }
    return inst.ready;
  }

  private start(name: string): Instance {
    const { root, env, log, logsDir } = this.opts;
    const host = path.join(root, "dev", "platform", "runtime", "function-host.ts");
    const proc = spawn("deno", [
      "run",
      "--no-prompt",
      `--config=${path.join(root, "deno.json")}`,
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-sys",
      `--allow-write=${process.env.TMPDIR ?? "/tmp"}`,
      ...(this.opts.maxHeapMb ? [`--v8-flags=--max-old-space-size=${this.opts.maxHeapMb}`] : []),
      host,
      this.entry(name),
    ], { cwd: root, env: env(), stdio: ["ignore", "pipe", "pipe"] });
    const out = fs.createWriteStream(path.join(logsDir, `${name}.log`), { flags: "a" });
    const stderrTail: string[] = [];
    const ready = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new FunctionBootError(`function ${name} did not start within ${this.opts.bootTimeoutMs ?? 30000} ms`));
        proc.kill("SIGKILL");
      }, this.opts.bootTimeoutMs ?? 30_000);
      // Lines are looked at until the host says it listens; after that its output goes to the log
      // file as it comes, a write per chunk rather than per line (the gateway's share of a call).
      let head: string | null = "";
      proc.stdout!.on("data", (chunk: Buffer) => {
        if (head === null) return void out.write(chunk);
        head += chunk.toString("utf8");
        for (let nl = head.indexOf("\n"); nl >= 0; nl = head.indexOf("\n")) {
          const line = head.slice(0, nl);
          head = head.slice(nl + 1);
          if (line.startsWith('{"__function_host_ready":')) {
            clearTimeout(timer);
            resolve(JSON.parse(line).__function_host_ready);
            if (head) out.write(head);
            head = null;
            return;
          }
          out.write(line + "\n");
        }
      });
      readline.createInterface({ input: proc.stderr! }).on("line", (line) => {
        out.write(line + "\n");
        stderrTail.push(line);
        if (stderrTail.length > 20) stderrTail.shift();
      });
      // Deno missing or not executable: the request answers 503 function_boot_error; the gateway lives on
      proc.once("error", (e) => {
        clearTimeout(timer);
        if (this.instances.get(name)?.proc === proc) this.instances.delete(name);
        reject(new FunctionBootError(`the function runtime could not be started: ${e.message}`));
      });
      proc.once("exit", (code, signal) => {
        clearTimeout(timer);
        if (this.instances.get(name)?.proc === proc) this.instances.delete(name);
        log.warn("function process exited", { function: name, code, signal });
        // Strip ANSI colour codes so the boot error reads cleanly in the JSON envelope.
        reject(
          new FunctionBootError(stderrTail.join("\n").replace(/\x1b\[[0-9;]*m/g, "").slice(-2000) || `exited with code ${code}`),
        );
      });
    });
    ready.then((port) => log.info("function started", { function: name, port, pid: proc.pid }), () => {});
    return { proc, ready, stderrTail };
  }

  /** Stops every instance; the next request starts a fresh one (used on code changes). */
  restartAll(reason: string) {
    for (const [name, inst] of this.instances) {
      this.opts.log.info("restarting function", { function: name, reason });
      inst.proc.kill("SIGTERM");
    }
    this.instances.clear();
  }

  async stop() {
    const procs = [...this.instances.values()].map((i) => i.proc);
    this.instances.clear();
    await Promise.all(procs.map((p) =>
      new Promise<void>((r) => {
        if (p.exitCode !== null || p.signalCode !== null) return r();
        p.once("exit", () => r());
        p.kill("SIGTERM");
        setTimeout(() => p.kill("SIGKILL"), 3000).unref();
      })
    ));
  }
}
