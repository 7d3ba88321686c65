// Structured JSON logs for the stack's own processes: the project's one logger (one object per
// line, the same shape as the functions' and the worker's).
import { createLogger, type Logger } from "../../supabase/functions/_shared/log.ts";

export const logger = (component: string, base: Record<string, unknown> = {}): Logger => createLogger(component, base);
export type { Logger };
