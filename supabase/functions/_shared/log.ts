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
    if (level === "error") console.error(line);
    else console.log(line);
  };
  return {
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    child: (f) => createLogger(component, { ...base, ...f }),
  };
}
