// Structured JSON logs for the stack's own processes (one object per line).
export function logger(component: string, base: Record<string, unknown> = {}) {
  const write = (level: string, msg: string, fields: Record<string, unknown> = {}) => {
    const line = JSON.stringify({ ts: new Date().toISOString(), level, component, msg, ...base, ...fields });
    (level === "error" ? process.stderr : process.stdout).write(line + "\n");
  };
  return {
    info: (msg: string, f?: Record<string, unknown>) => write("info", msg, f),
    warn: (msg: string, f?: Record<string, unknown>) => write("warn", msg, f),
    error: (msg: string, f?: Record<string, unknown>) => write("error", msg, f),
  };
}
export type Logger = ReturnType<typeof logger>;
