// Prometheus metrics (prom-client): jobs by queue and outcome, handler durations, and queue depth
// by state read from pg-boss at scrape time.
import type { PgBoss } from "pg-boss";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

export function createMetrics(boss: PgBoss, queues: () => string[]) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "worker_" });
  const outcomes = new Counter({
    name: "worker_jobs_total",
    help: "Jobs settled, by queue and outcome (completed, failed, dead_lettered, skipped)",
    labelNames: ["queue", "outcome"],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "worker_job_duration_seconds",
    help: "Handler run time",
    labelNames: ["queue"],
    registers: [registry],
    buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300],
  });
  new Gauge({
    name: "worker_queue_jobs",
    help: "Jobs in each queue by state (pg-boss's cached counts)",
    labelNames: ["queue", "state"],
    registers: [registry],
    async collect() {
      this.reset();
      for (const q of await boss.getQueues(queues())) {
        this.set({ queue: q.name, state: "queued" }, q.queuedCount);
        this.set({ queue: q.name, state: "active" }, q.activeCount);
        this.set({ queue: q.name, state: "deferred" }, q.deferredCount);
        this.set({ queue: q.name, state: "failed" }, q.failedCount);
      }
    },
  });
  return { registry, outcomes, duration };
}
export type Metrics = ReturnType<typeof createMetrics>;
