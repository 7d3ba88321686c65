// The worker's configuration, from the environment only, validated once at start. Each job
// declares the outside services it uses (JobDefinition.uses); a service's variables are required
// while a job that uses it is on, and WORKER_DISABLED_JOBS switches jobs off. Every missing or
// malformed variable is reported in one message naming the jobs that need it, so a deployment
// fails at start rather than in its first file or e-mail job, hours later.
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
      ctx.addIssue({ code: "custom", message: `must be a JSON object of queue -> 1..64: ${e}` });
      return z.NEVER;
    }
  }),
  // How often pg-boss looks for jobs whose worker vanished (expired) to retry them.
  WORKER_SUPERVISE_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
  WORKER_SHUTDOWN_GRACE_SECONDS: z.coerce.number().int().min(1).max(600).default(30),
  // How often pg-boss evaluates the schedules (one instance claims each pass).
  WORKER_CRON_MONITOR_SECONDS: z.coerce.number().int().min(1).max(45).default(30),
  // Cron schedules (pg-boss's) are kept off in tests that start extra workers.
  WORKER_SCHEDULES: z.enum(["on", "off"]).default("on"),
  // Jobs this worker does not run: queue names or whole areas (`files.*`), comma-separated. Their
  // queues still exist, so what is enqueued waits for a worker that runs them.
  WORKER_DISABLED_JOBS: z.string().default("").transform((s) => s.split(",").map((p) => p.trim()).filter(Boolean)),
});

/** The outside services jobs use, and the variables that reach each. */
export const SERVICES = {
  // The project's API as the service, for Storage. Hosted: the project URL and its service role key.
  storage: {
    SUPABASE_URL: z.string().url(),
    SUPABASE_SERVICE_ROLE_KEY: z.string().min(20, "must be the project's service role key"),
  },
  clamd: {
    CLAMD_HOST: z.string().min(1),
    CLAMD_PORT: z.coerce.number().int().min(1).max(65535),
  },
  smtp: {
    SMTP_URL: z.string().regex(/^smtps?:\/\/[^/\s]+/, "must be smtp://[user:password@]host[:port] or smtps://..."),
    MAIL_FROM: z.string().regex(/@/, 'must be an address, e.g. "School <no-reply@example.org>"'),
  },
  // The broker, for file events (the worker signs in as the service: password = service role key).
  broker: {
    MQTT_URL: z.string().regex(/^(mqtts?|wss?):\/\/[^/\s]+/, "must be mqtt://, mqtts://, ws:// or wss://host:port"),
    MQTT_PASSWORD: z.string().min(1),
  },
} as const;
export type Service = keyof typeof SERVICES;

type ServiceVars = { [S in Service]: { [K in keyof (typeof SERVICES)[S]]?: z.infer<(typeof SERVICES)[S][K]> } }[Service];
type UnionToIntersection<U> = (U extends unknown ? (u: U) => void : never) extends (i: infer I) => void ? I : never;

export type WorkerEnv = z.infer<typeof Env> & UnionToIntersection<ServiceVars>;

/** Every variable the worker reads (worker/.env.example lists them all). */
export const WORKER_VARIABLES: readonly string[] = [
  ...Object.keys(Env.shape),
  ...Object.values(SERVICES).flatMap((vars) => Object.keys(vars)),
];

/** What loadWorkerEnv needs of a job (a JobDefinition fits). */
export interface JobNeeds {
  queue: string;
  uses?: readonly Service[];
}

/** WORKER_DISABLED_JOBS's patterns: a queue name, or `<area>.*` for every queue of an area. */
export function isDisabled(queue: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => p === queue || (p.endsWith(".*") && queue.startsWith(p.slice(0, -1))));
}

/**
 * The configuration, or one error naming every problem. With the worker's jobs given, a
 * service's variables are required while a job using it is on.
 */
export function loadWorkerEnv(
  env: Record<string, string | undefined> = process.env,
  jobs: readonly JobNeeds[] = [],
): WorkerEnv {
  const problems: string[] = [];
  const parsed = Env.safeParse(env);
  if (!parsed.success) {
    for (const i of parsed.error.issues) {
      const name = String(i.path[0]);
      problems.push(env[name] === undefined || env[name] === "" ? `${name} is missing` : `${name}: ${i.message}`);
    }
  }
  const patterns = parsed.success ? parsed.data.WORKER_DISABLED_JOBS : [];
  if (jobs.length) {
    for (const p of patterns) {
      if (!jobs.some((j) => isDisabled(j.queue, [p]))) {
        problems.push(`WORKER_DISABLED_JOBS names no job with "${p}" (a queue, or <area>.* )`);
      }
    }
  }

  const neededBy = new Map<string, string[]>();
  for (const job of jobs) {
    if (isDisabled(job.queue, patterns)) continue;
    for (const service of job.uses ?? []) {
      for (const name of Object.keys(SERVICES[service])) neededBy.set(name, [...(neededBy.get(name) ?? []), job.queue]);
    }
  }
  const values: Record<string, unknown> = {};
  let missingNeeded = false;
  for (const vars of Object.values(SERVICES)) {
    for (const [name, schema] of Object.entries(vars) as [string, z.ZodType][]) {
      const raw = env[name] === "" ? undefined : env[name];
      const by = neededBy.get(name);
      const needs = by ? ` (needed by ${by.join(", ")})` : "";
      if (raw === undefined) {
        if (by) {
          problems.push(`${name} is missing${needs}`);
          missingNeeded = true;
        }
        continue;
      }
      // a variable that is set is checked even when nothing needs it now: a typo shows at once
      const checked = schema.safeParse(raw);
      if (checked.success) values[name] = checked.data;
      else problems.push(`${name}: ${checked.error.issues.map((i) => i.message).join(", ")}${needs}`);
    }
  }

  if (problems.length) {
    const hint = missingNeeded
      ? "; set them, or switch the jobs that need them off with WORKER_DISABLED_JOBS (e.g. files.*)"
      : "";
    throw new Error(`worker configuration is invalid: ${problems.join("; ")}${hint}`);
  }
  return { ...parsed.data!, ...values } as WorkerEnv;
}
