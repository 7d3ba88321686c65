// The worker process: configuration from the environment, the registry's jobs, SIGTERM/SIGINT
// for a graceful stop.
import { createLogger } from "../../supabase/functions/_shared/log.ts";
import { loadWorkerEnv } from "./env.ts";
import { JOBS } from "./jobs/index.ts";
import { startWorker } from "./worker.ts";

const log = createLogger("worker");
try {
  const worker = await startWorker(loadWorkerEnv(), JOBS);
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    process.once(sig, async () => {
      log.info("signal received", { signal: sig });
      await worker.stop();
      process.exit(0);
    });
  }
} catch (e) {
  log.error("worker failed to start", { error: String(e) });
  process.exit(1);
}
