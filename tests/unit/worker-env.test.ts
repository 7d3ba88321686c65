// The worker's start-time configuration check: what each job's services need is required while
// the job is on, every problem is named at once with the jobs behind it, and switching jobs off
// (WORKER_DISABLED_JOBS) drops their needs.
import { describe, expect, it } from "vitest";
import { isDisabled, loadWorkerEnv, SERVICES } from "../../worker/src/env.ts";
import { JOBS } from "../../worker/src/jobs/index.ts";

const complete = {
  DATABASE_URL: "postgresql://postgres:postgres@127.0.0.1:54322/postgres",
  SUPABASE_URL: "http://127.0.0.1:54321",
  SUPABASE_SERVICE_ROLE_KEY: "a-service-role-key-long-enough",
  CLAMD_HOST: "127.0.0.1",
  CLAMD_PORT: "54330",
  SMTP_URL: "smtp://127.0.0.1:54327",
  MAIL_FROM: "School <no-reply@school.local>",
  MQTT_URL: "mqtt://127.0.0.1:54383",
  MQTT_PASSWORD: "a-service-role-key-long-enough",
};
const without = (...names: string[]) => Object.fromEntries(Object.entries(complete).filter(([k]) => !names.includes(k)));

function problemOf(env: Record<string, string>) {
  try {
    loadWorkerEnv(env, JOBS);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error("the configuration was accepted");
}

describe("the worker's configuration", () => {
  it("accepts what the local stack gives its worker, typed", () => {
    const env = loadWorkerEnv(complete, JOBS);
    expect(env).toMatchObject({ CLAMD_PORT: 54330, WORKER_PORT: 54390, WORKER_SCHEDULES: "on", WORKER_DISABLED_JOBS: [] });
  });

  it("names every missing variable in one message, each with the jobs that need it", () => {
    const message = problemOf({ DATABASE_URL: complete.DATABASE_URL });
    expect(message.split("\n")).toHaveLength(1);
    expect(message).toMatch(/^worker configuration is invalid: /);
    expect(message).toContain("CLAMD_HOST is missing (needed by files.process)");
    expect(message).toContain("CLAMD_PORT is missing (needed by files.process)");
    expect(message).toContain("SMTP_URL is missing (needed by notifications.email, notifications.digest)");
    expect(message).toContain("MAIL_FROM is missing (needed by notifications.email, notifications.digest)");
    expect(message).toContain("MQTT_URL is missing (needed by files.process)");
    expect(message).toContain("MQTT_PASSWORD is missing (needed by files.process)");
    expect(message).toMatch(/SUPABASE_URL is missing \(needed by [^)]*tenant\.export[^)]*\)/);
    expect(message).toMatch(/SUPABASE_SERVICE_ROLE_KEY is missing \(needed by [^)]*files\.thumbnail[^)]*\)/);
    expect(message).toContain("WORKER_DISABLED_JOBS");
  });

  it("names malformed values with what is wrong and who needs them, together with missing ones", () => {
    const message = problemOf({
      ...without("MAIL_FROM", "DATABASE_URL"),
      SMTP_URL: "http://mail.example.org",
      CLAMD_PORT: "clamd",
      WORKER_CONCURRENCY: "{not json",
    });
    expect(message).toContain("DATABASE_URL is missing");
    expect(message).toMatch(/SMTP_URL: must be smtp:\/\/.* \(needed by notifications\.email, notifications\.digest\)/);
    expect(message).toMatch(/CLAMD_PORT: .* \(needed by files\.process\)/);
    expect(message).toContain("MAIL_FROM is missing");
    expect(message).toMatch(/WORKER_CONCURRENCY: must be a JSON object/);
  });

  it("a job switched off needs nothing; its area's pattern switches off the area only", () => {
    const dbOnly = { DATABASE_URL: complete.DATABASE_URL, WORKER_DISABLED_JOBS: "files.*, notifications.*,tenant.*" };
    // the files sweep is maintenance work that uses Storage, so files.* leaves it on
    expect(problemOf(dbOnly)).toMatch(
      /^worker configuration is invalid: SUPABASE_URL is missing \(needed by maintenance\.files-sweep\); SUPABASE_SERVICE_ROLE_KEY is missing \(needed by maintenance\.files-sweep\); set them/,
    );
    const env = loadWorkerEnv(
      { ...dbOnly, WORKER_DISABLED_JOBS: `${dbOnly.WORKER_DISABLED_JOBS},maintenance.files-sweep` },
      JOBS,
    );
    expect(env.WORKER_DISABLED_JOBS).toEqual(["files.*", "notifications.*", "tenant.*", "maintenance.files-sweep"]);
    expect(env.SUPABASE_URL).toBeUndefined();
  });

  it("refuses a switch that names no job, and checks a variable that is set even when nothing needs it", () => {
    expect(problemOf({ ...complete, WORKER_DISABLED_JOBS: "fils.*" })).toContain(
      'WORKER_DISABLED_JOBS names no job with "fils.*"',
    );
    expect(problemOf({ ...complete, WORKER_DISABLED_JOBS: "notifications.*", MAIL_FROM: "nobody" })).toMatch(
      /MAIL_FROM: must be an address[^(]*$/,
    );
  });

  it("without the registry (tests' own workers) only the worker's own settings are checked", () => {
    expect(loadWorkerEnv({ DATABASE_URL: complete.DATABASE_URL }).CLAMD_HOST).toBeUndefined();
  });

  it("matches switches by queue name or area", () => {
    expect(isDisabled("files.process", ["files.*"])).toBe(true);
    expect(isDisabled("maintenance.files-sweep", ["files.*"])).toBe(false);
    expect(isDisabled("files.process", ["files.process"])).toBe(true);
    expect(isDisabled("files.processing", ["files.process"])).toBe(false);
  });

  it("every job declares the services its handler reaches", () => {
    // what a handler calls for each service (read from its source, so a new use shows up here)
    const reaches = { storage: /ctx\.supabase/, clamd: /filesConfig\(/, broker: /filesConfig\(/, smtp: /mailer\(/ };
    for (const job of JOBS) {
      const source = job.handler.toString();
      const used = (Object.keys(reaches) as (keyof typeof reaches)[]).filter((s) => reaches[s].test(source));
      expect([...(job.uses ?? [])].sort(), job.queue).toEqual(used.sort());
    }
    expect(Object.keys(reaches).sort()).toEqual(Object.keys(SERVICES).sort());
  });
});
