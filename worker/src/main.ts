// The worker process: configuration from the environment, the registry's jobs, SIGTERM/SIGINT
// for a graceful stop.
import { batchLogWrites, createLogger, flushLogWrites } from "../../supabase/functions/_shared/log.ts";
import { loadWorkerEnv } from "./env.ts";
import { JOBS } from "./jobs/index.ts";
import { isLostConnection, isWriteAfterClose } from "./process-errors.ts";
import { startWorker } from "./worker.ts";

const log = createLogger("worker");
batchLogWrites();
process.on("exit", flushLogWrites); // (process.exit below runs 'exit' handlers; pipes and files are written synchronously)
process.on("unhandledRejection", (e) => {
  if (isLostConnection(e)) {
    log.warn("database connection lost while opening; the pool reconnects", { error: String(e) });
    return;
  }
  log.error("unhandled rejection", { error: String(e), stack: e instanceof Error ? e.stack : undefined });
  process.exit(1);
});
process.on("uncaughtException", (e) => {
  if (isWriteAfterClose(e)) {
    log.warn("database connection closed under a pending write; the pool reconnects", { error: String(e) });
    return;
  }
  log.error("uncaught exception", { error: String(e), stack: e.stack });
  process.exit(1);
});
try {
  const worker = await startWorker(loadWorkerEnv(process.env, JOBS), JOBS);
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
