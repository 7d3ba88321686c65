// Structured JSON logs with a correlation id, the same shape everywhere in the project.
export type LogFields = Record<string, unknown>;

export interface Logger {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export function createLogger(component: string, base: LogFields = {}): Logger {
  const write = (level: string, msg: string, fields: LogFields = {}) => {
    const line = JSON.stringify({ ts: new Date().toISOString(), level, component, msg, ...base, ...fields });
    if (batch) {
      (level === "error" ? batch.err : batch.out).push(line);
      batch.timer ??= setTimeout(flushLogWrites, 0);
    } else if (level === "error") console.error(line);
    else console.log(line);
  };
  return {
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    child: (f) => createLogger(component, { ...base, ...f }),
  };
}

let batch: { out: string[]; err: string[]; timer: ReturnType<typeof setTimeout> | null } | null = null;

/**
 * From now on, lines logged in one turn of the event loop go out in one write. Every write to a
 * pipe is a system call, and a line per job made them ~11 % of the worker's busy CPU in bench:queue on
 * the stack's 2-core machine. A line waits at most until the timers run; the caller writes what is
 * still pending when the process exits (flushLogWrites, e.g. on Node's process 'exit').
 */
export function batchLogWrites() {
  batch ??= { out: [], err: [], timer: null };
}

/** Writes the lines batchLogWrites holds, at once. */
export function flushLogWrites() {
  if (!batch) return;
  if (batch.timer) clearTimeout(batch.timer);
  batch.timer = null;
  if (batch.out.length) console.log(batch.out.splice(0).join("\n"));
  if (batch.err.length) console.error(batch.err.splice(0).join("\n"));
}
