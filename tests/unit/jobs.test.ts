// The job payload map is the one contract between what enqueues (functions, SQL, the worker) and
// what runs (the worker's registry): every queue in it has exactly one job that runs it with the
// same schema, and a payload that does not fit is refused before it is sent.
import { describe, expect, it } from "vitest";
import { ZodError } from "zod";
import { enqueueJob, JOB_PAYLOADS } from "../../supabase/functions/_shared/jobs.ts";
import { JOBS } from "../../worker/src/jobs/index.ts";

describe("the job payload map", () => {
  it("names every queue the worker runs, each run with the map's own schema", () => {
    expect(JOBS.map((j) => j.queue).sort()).toEqual(Object.keys(JOB_PAYLOADS).sort());
    for (const job of JOBS) expect(job.payload).toBe(JOB_PAYLOADS[job.queue as keyof typeof JOB_PAYLOADS]);
  });

  it("refuses a payload that does not fit before anything is sent", async () => {
    const never = new Proxy({}, {
      get: () => {
        throw new Error("nothing may be sent");
      },
    });
    // the payload's own refusal, naming the missing field: the proxy's "nothing may be sent" would
    // mean it got as far as sending
    // @ts-expect-error a file job needs a file_id, and the compiler says so too
    await expect(enqueueJob(never as never, "files.thumbnail", { org_id: crypto.randomUUID(), correlation_id: "c" })).rejects
      .toSatisfy((e) => e instanceof ZodError && e.issues.some((i) => i.path.join(".") === "file_id"));
    await expect(
      enqueueJob(never as never, "files.thumbnail", { org_id: "not-a-uuid", file_id: crypto.randomUUID(), correlation_id: "c" }),
    )
      .rejects.toSatisfy((e) => e instanceof ZodError && e.issues.some((i) => i.path.join(".") === "org_id"));
  });
});
