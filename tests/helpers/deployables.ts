// What the worker and the broker must do wherever they are deployed, checked against the running
// stack: from a folder laid out and installed as their Dockerfiles do (tests/integration/
// deployables.test.ts) and as the images themselves (tests/images/images.test.ts, npm run
// test:images). A process is watched through its output and exit code only, as a supervisor would.
import type { ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import mqtt from "mqtt";
import type postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { withFreePorts } from "../../dev/stack/ports.ts";
import { canConnect } from "../../dev/stack/processes.ts";
import { brokerEnv, services } from "../../dev/stack/services.ts";
import { makeEnvelope } from "../../supabase/functions/_shared/realtime/envelope.ts";
import { connectRealtime, type RealtimeClient } from "../../supabase/functions/_shared/realtime/client.ts";
import { topics } from "../../supabase/functions/_shared/realtime/topics.ts";
import { withTimeout } from "../../supabase/functions/_shared/timeout.ts";
import { enqueueJob, type Queue } from "../../supabase/functions/_shared/jobs.ts";
import { JOBS } from "../../worker/src/jobs/index.ts";
import { areaOf } from "../../worker/src/registry.ts";
import { adminSql, createUser, secrets, tokenFor, waitUntil } from "./stack.ts";

export interface Launched {
  /** stdout and stderr so far. */
  output(): string;
  /** The exit code (null: killed by a signal). */
  exit: Promise<number | null>;
  /** SIGTERM, as its supervisor sends it (docker stop). */
  terminate(): Promise<void>;
}

export function launched(child: ChildProcess, terminate?: () => Promise<void>): Launched {
  let text = "";
  child.stdout?.on("data", (d) => (text += d));
  child.stderr?.on("data", (d) => (text += d));
  const exit = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return { output: () => text, exit, terminate: terminate ?? (async () => void child.kill("SIGTERM")) };
}

/** The JSON log lines a process wrote (other lines are skipped). */
export function logLines(l: Launched): Record<string, unknown>[] {
  return l.output().split("\n").flatMap((line) => {
    try {
      const v = JSON.parse(line);
      return v && typeof v === "object" ? [v] : [];
    } catch {
      return [];
    }
  });
}

/** Waits for fn while the process runs; its exit fails the wait with what it wrote. */
export async function whileRunning<T>(l: Launched, what: string, fn: () => Promise<T | null | undefined | false>, ms = 30_000) {
  let exited: number | null | undefined;
  void l.exit.then((code) => (exited = code));
  return await waitUntil(
    what,
    async () => {
      if (exited !== undefined) throw new Error(`exited with ${exited} before ${what}:\n${l.output().slice(-4000)}`);
      return await fn();
    },
    ms,
    100,
  );
}

/** The environment the stack gives its own worker (dev/stack/services.ts). */
export function stackWorkerEnv(): Record<string, string> {
  const worker = services(secrets()).find((s) => s.name === "worker");
  if (!worker?.env) throw new Error("dev/stack/services.ts has no worker service with an environment");
  return { ...worker.env };
}

/**
 * One job of each area that uses no outside service (no `uses` in the registry) and runs over
 * every organization: they run wherever the database is, so a deployed worker can show it works.
 */
export const SELF_CONTAINED_QUEUES: Queue[] = (() => {
  const byArea = new Map<string, Queue>();
  for (const j of JOBS) {
    if (!j.uses?.length && j.tenancy === "all-organizations" && !byArea.has(areaOf(j.queue))) {
      byArea.set(areaOf(j.queue), j.queue as Queue);
    }
  }
  return [...byArea.values()];
})();

/**
 * A worker of the test's own beside the stack's: no schedules, a free port, and more fetch loops
 * on the queues the test uses than the stack's worker has, so it usually wins their jobs.
 */
export function ownWorkerEnv(port: number): Record<string, string> {
  return {
    ...stackWorkerEnv(),
    NODE_ENV: "production",
    WORKER_HOST: "127.0.0.1",
    WORKER_PORT: String(port),
    WORKER_SCHEDULES: "off",
    WORKER_SHUTDOWN_GRACE_SECONDS: "10",
    WORKER_CONCURRENCY: JSON.stringify(Object.fromEntries(SELF_CONTAINED_QUEUES.map((q) => [q, 4]))),
  };
}

/** Waits for the worker's "worker started" line; its port. */
export async function workerStarted(l: Launched, ms = 60_000): Promise<number> {
  const started = await whileRunning(
    l,
    "the worker to start",
    async () => logLines(l).find((x) => x.msg === "worker started"),
    ms,
  );
  return Number(started.port);
}

export async function workerHealth(port: number) {
  const res = await fetch(`http://127.0.0.1:${port}/health`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/**
 * Enqueues jobs on the functions' path (enqueueJob: the payload checked with the job's schema,
 * then app.enqueue_job) and waits on their state until this worker has run one to completion.
 * The stack's own worker takes from the same queues, so jobs go out a few at once (this worker
 * has more fetch loops on them, ownWorkerEnv), and only one this worker's log shows counts.
 */
export async function runJobIn(l: Launched, sql: postgres.Sql, queue: Queue, perRound = 4, rounds = 10) {
  // a queue with pg-boss's short policy holds one waiting job per key: one a round, and a null
  // (one already waits, e.g. the stack's scheduled backfill) means try again once it was taken
  const oneAtATime = JOBS.find((j) => j.queue === queue)?.policy === "short";
  let sent = 0;
  for (let round = 1; round <= rounds; round++) {
    const ids: string[] = [];
    for (let i = 0; i < (oneAtATime ? 1 : perRound); i++) {
      const id = await waitUntil(
        `${queue}: a job enqueued`,
        () => enqueueJob(sql, queue, { org_id: null, correlation_id: `deployables-${crypto.randomUUID()}` }),
        oneAtATime ? 30_000 : 1,
        200,
      ).catch(() => null);
      if (!id) throw new Error(`${queue}: nothing was enqueued`);
      ids.push(id);
    }
    sent += ids.length;
    const rows = await whileRunning(l, `${queue} jobs ${ids.join(", ")} to settle`, async () => {
      const r = await sql<{ id: string; state: string; output: unknown }[]>`
        select id::text, state::text, output from pgboss.job where id = any(${ids}::uuid[])
          and state in ('completed', 'failed', 'cancelled')`;
      return r.length === ids.length ? r : null;
    }, 120_000);
    // the outcome is logged just before pg-boss records the state, in a later write: a moment's grace
    const outcomes = await waitUntil(
      `an outcome of ${ids.join(", ")} in the log`,
      async () => {
        const mine = logLines(l).filter((x) => ids.includes(String(x.job_id)) && /^job (completed|failed)$/.test(String(x.msg)));
        return mine.length ? mine : null;
      },
      2_000,
      50,
    ).catch(() => []);
    const failed = outcomes.find((o) => o.msg !== "job completed");
    if (failed) throw new Error(`${queue} job ${failed.job_id} failed here: ${JSON.stringify(failed)}`);
    if (!outcomes.length) continue;
    const row = rows.find((r) => r.id === outcomes[0].job_id)!;
    return { queue, id: row.id, state: row.state, output: row.output, sent, ranHere: outcomes.length };
  }
  throw new Error(`${queue}: the stack's worker ran all ${sent} jobs sent; this one ran none`);
}

/** SIGTERM; the exit code and whether the worker said it stopped. */
export async function stopWorker(l: Launched) {
  await l.terminate();
  const code = await withTimeout(l.exit, 60_000, "the worker's exit after SIGTERM");
  return { code, stopped: logLines(l).some((x) => x.msg === "worker stopped") };
}

/**
 * The broker at url, as users meet it: a member's access token signs in, their organization's
 * topic is granted and delivers, another organization's is refused, and a password that is no
 * credential is refused at the door.
 */
export async function brokerChecks(sql: postgres.Sql, url: string) {
  const run = crypto.randomUUID().slice(0, 8);
  const member = await createUser(sql);
  const outsiderOwner = await createUser(sql);
  const [{ id: own }] =
    await sql`insert into public.organizations (name, slug) values ('Deploy A', ${`deploy-a-${run}`}) returning id`;
  const [{ id: other }] =
    await sql`insert into public.organizations (name, slug) values ('Deploy B', ${`deploy-b-${run}`}) returning id`;
  await sql`insert into public.organization_members (org_id, user_id, role) values
    (${own}, ${member.id}, 'student'), (${other}, ${outsiderOwner.id}, 'owner')`;
  const clients: RealtimeClient[] = [];
  const connect = async (password: string) => {
    const c = connectRealtime({ url, password, username: "deployables", minReconnectMs: 200, maxReconnectMs: 1000 });
    clients.push(c);
    await withTimeout(c.connected(), 10_000, `signing in to ${url}`);
    return c;
  };
  try {
    const user = await connect((await tokenFor(sql, member.id)).token);
    const got: string[] = [];
    await user.subscribe(topics.events(own), (envelope) => void got.push(envelope.type));
    const service = await connect(secrets().serviceRoleKey);
    await service.publish(topics.events(own), makeEnvelope({ type: "test.deployed", org_id: own, data: {} }));
    await waitUntil("the event on the member's own organization's topic", async () => got.includes("test.deployed"), 10_000, 20);
    const otherTopic = await user.subscribe(topics.events(other), () => {}).then(
      () => "granted",
      (e: { code?: string }) => e.code ?? String(e),
    );
    const forged = await new Promise<string>((resolve) => {
      const c = mqtt.connect(url, { username: "x", password: "not-a-token", protocolVersion: 5, reconnectPeriod: 0 });
      c.once("connect", () => (c.end(true), resolve("accepted")));
      c.once("error", (e) => (c.end(true), resolve(e.message)));
    });
    return { login: "accepted", ownTopic: got, otherTopic, forged, orgs: { own, other } };
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()));
    await sql`update public.organizations set deleted_at = now() where id in (${own}, ${other})`;
  }
}

/**
 * The worker checks, for a worker started by `start` with the given environment (a process from
 * a folder, or a container): it starts and answers /health, runs one job of each self-contained
 * kind to completion, and stops with exit code 0 on SIGTERM. `label` prefixes what it prints.
 */
export function workerSuite(label: string, start: (env: Record<string, string>) => Promise<Launched>, more?: () => void) {
  describe(`${label}: the worker`, () => {
    const sql = adminSql();
    let worker: Launched;
    let port: number;
    beforeAll(async () => {
      [worker, port] = await withFreePorts(1, async ([p]) => {
        const l = await start(ownWorkerEnv(p));
        try {
          return [l, await workerStarted(l)] as const;
        } catch (e) {
          await l.terminate().catch(() => {});
          throw e;
        }
      });
    }, 180_000);
    afterAll(async () => {
      await Promise.race([worker?.exit, worker?.terminate().then(() => worker.exit)]).catch(() => {});
      await sql.end({ timeout: 5 });
    });

    it("starts and answers /health", async () => {
      const health = await workerHealth(port);
      console.log(`[${label}] worker started on port ${port}; GET /health -> ${health.status} ${JSON.stringify(health.body)}`);
      expect(health).toMatchObject({ status: 200, body: { status: "ok", database: true } });
    });

    it.each(SELF_CONTAINED_QUEUES)("runs a %s job to completion", async (queue) => {
      const run = await runJobIn(worker, sql, queue);
      console.log(
        `[${label}] ${queue} job ${run.id} ${run.state} in this worker (${run.ranHere} of ${run.sent} sent ran here; the stack's worker takes from the same queue): ${
          JSON.stringify(run.output)
        }`,
      );
      expect(run.state).toBe("completed");
    }, 300_000);

    more?.(); // tests of the caller's own while the worker runs

    it("stops cleanly on SIGTERM, exit code 0", async () => {
      const stop = await stopWorker(worker);
      console.log(`[${label}] SIGTERM -> exit code ${stop.code}, "worker stopped" logged: ${stop.stopped}`);
      expect(stop).toEqual({ code: 0, stopped: true });
    }, 90_000);
  });
}

/**
 * The broker checks, for a broker started by `start` with the stack's broker environment and two
 * free ports (MQTT_PORT, MQTT_WS_PORT): a member's access token signs in, their organization's
 * topic delivers, another organization's is refused, a password that is no credential is refused.
 */
export function brokerSuite(label: string, start: (env: Record<string, string>) => Promise<Launched>) {
  describe(`${label}: the broker`, () => {
    const sql = adminSql();
    let broker: Launched;
    let url: string;
    beforeAll(async () => {
      [broker, url] = await withFreePorts(2, async ([mqttPort, wsPort]) => {
        const l = await start({ ...brokerEnv(secrets()), MQTT_PORT: String(mqttPort), MQTT_WS_PORT: String(wsPort) });
        try {
          await whileRunning(l, "the broker to listen", async () => (await canConnect(mqttPort)) && (await canConnect(wsPort)));
          return [l, `mqtt://127.0.0.1:${mqttPort}`] as const;
        } catch (e) {
          await l.terminate().catch(() => {});
          throw e;
        }
      });
    }, 180_000);
    afterAll(async () => {
      await Promise.race([broker?.exit, broker?.terminate().then(() => broker.exit)]).catch(() => {});
      await sql.end({ timeout: 5 });
    });

    it("a member's access token signs in; their organization's topic delivers, another organization's is refused", async () => {
      const r = await brokerChecks(sql, url);
      console.log(
        `[${label}] broker at ${url}: member's token ${r.login}; own organization's events delivered ${
          JSON.stringify(r.ownTopic)
        }; other organization's topic -> ${r.otherTopic}; password "not-a-token" -> ${r.forged}`,
      );
      expect(r.ownTopic).toEqual(["test.deployed"]);
      expect(r.otherTopic).toBe("subscription_refused");
      expect(r.forged).toMatch(/not authorized/i);
    }, 60_000);

    it("stops on SIGTERM, exit code 0", async () => {
      await broker.terminate();
      const code = await withTimeout(broker.exit, 30_000, "the broker's exit after SIGTERM");
      console.log(`[${label}] broker SIGTERM -> exit code ${code}`);
      expect(code).toBe(0);
    }, 60_000);
  });
}
