// The worker's configuration, from the environment only, validated once at start.
import { z } from "zod";

const Concurrency = z.record(z.string(), z.number().int().min(1).max(64));

const Env = z.object({
  DATABASE_URL: z.string().url(),
  WORKER_PORT: z.coerce.number().int().min(0).max(65535).default(54390), // 0: any free port (tests)
  WORKER_HOST: z.string().default("127.0.0.1"),
  // JSON object: queue name -> local concurrency, e.g. {"tenant.export": 2}; others use the registry's.
  WORKER_CONCURRENCY: z.string().default("{}").transform((s, ctx) => {
    try {
      return Concurrency.parse(JSON.parse(s));
    } catch (e) {
      ctx.addIssue({ code: "custom", message: `WORKER_CONCURRENCY must be a JSON object of queue -> 1..64: ${e}` });
      return z.NEVER;
    }
  }),
  // How often pg-boss looks for jobs whose worker vanished (expired) to retry them.
  WORKER_SUPERVISE_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
  WORKER_SHUTDOWN_GRACE_SECONDS: z.coerce.number().int().min(1).max(600).default(30),
  // The project's API, for Storage (exports). Hosted: the project URL and its service role key.
  SUPABASE_URL: z.string().url().optional(),
  SUPABASE_SERVICE_ROLE_KEY: z.string().min(20).optional(),
  // How often pg-boss evaluates the schedules (one instance claims each pass).
  WORKER_CRON_MONITOR_SECONDS: z.coerce.number().int().min(1).max(45).default(30),
  // Cron schedules (pg-boss's) are kept off in tests that start extra workers.
  WORKER_SCHEDULES: z.enum(["on", "off"]).default("on"),
});

export type WorkerEnv = z.infer<typeof Env>;

export function loadWorkerEnv(env: Record<string, string | undefined> = process.env): WorkerEnv {
  const parsed = Env.safeParse(env);
  if (!parsed.success) {
    throw new Error(
      `worker configuration is invalid: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  }
  return parsed.data;
}
