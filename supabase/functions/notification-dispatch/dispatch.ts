// notification-dispatch: called once per batch of new notifications (a statement trigger, or the
// sweep for anything due), by the service only. In-app delivery is the row itself; this publishes
// each recipient's MQTT message on org/{org}/users/{user}/notifications (the envelope's id is the
// notification's, so a client that sees it twice knows), one `notification.batch` event on
// org/{org}/events (no content: the recipients are not everyone), and hands pending e-mail to the
// worker (notifications.email: hosted functions cannot open SMTP ports). Each delivery is claimed
// under a row lock and recorded as sent, or kept pending with a backoff when the broker is away,
// or until the next minute when the organization's, the recipient's or the role's rate limit is reached.
import type postgres from "postgres";
import { z } from "zod";
import type { ServiceCaller } from "../_shared/auth.ts";
import { asService } from "../_shared/db.ts";
import { type HandlerContext, parseJson } from "../_shared/http.ts";
import { enqueueJob } from "../_shared/jobs.ts";
import type { Logger } from "../_shared/log.ts";
import type { RateLimiter } from "../_shared/rate-limit.ts";
import { type Envelope, Envelope as EnvelopeSchema } from "../_shared/realtime/envelope.ts";
import type { Publish } from "../_shared/realtime/publisher.ts";
import { topics } from "../_shared/realtime/topics.ts";

export const DispatchRequest = z.object({
  type: z.enum(["INSERT", "SWEEP"]),
  table: z.literal("notifications"),
  schema: z.literal("public"),
  batch_id: z.uuid(),
});

export interface DispatchDeps {
  sql: postgres.Sql;
  publish: Publish;
  limiter: RateLimiter;
  chunk?: number;
  /** Chunks in flight at once; each holds one database connection while it works. */
  lanes?: number;
}

/** Deliveries per minute one member may receive from one organization, whatever the tier. */
export const PER_RECIPIENT_PER_MINUTE = 30;

/**
 * A recipient's limit is theirs in one organization: keyed by the user alone, one organization
 * sending to a member of several could hold back what the others send them.
 */
export const recipientLimitKey = (orgId: string, userId: string) => `notify:user:${orgId}:${userId}`;

/** A role's limit in one organization: the role messages (audience deliveries) its members receive. */
export const roleLimitKey = (orgId: string, role: string) => `notify:role:${orgId}:${role}`;

/** What every notification of a batch says: one send (app.notify) made them all alike. */
interface BatchContent {
  org_id: string;
  per_minute: number;
  type: string;
  title: string;
  body: string;
  data: Record<string, unknown>;
  priority: string;
  created_at: Date;
}

/** One recipient's delivery, as claimed. */
interface Due {
  notification_id: string;
  recipient_id: string;
  attempts: number;
}

export async function dispatchBatch(req: Request, ctx: HandlerContext<ServiceCaller>, deps: DispatchDeps): Promise<Response> {
  const { batch_id } = await parseJson(req, DispatchRequest);
  const service = <T>(fn: (tx: postgres.TransactionSql) => Promise<T>) => asService(deps.sql, ctx.requestId, fn);
  const log = ctx.log.child({ batch_id });
  const chunk = deps.chunk ?? 1000;
  const lanes = deps.lanes ?? 2;
  let sent = 0, retrying = 0;

  const started = performance.now();
  // The batch's content and the organization's budget, once: each claim then carries only ids.
  const [tier] = await service((tx) =>
    tx<BatchContent[]>`
    select o.id as org_id, t.notifications_per_minute as per_minute, n.type, n.title, n.body, n.data, n.priority, n.created_at
    from public.notifications n
    join public.organizations o on o.id = n.org_id join public.subscription_tiers t on t.tier = o.tier
    where n.batch_id = ${batch_id} limit 1`
  );
  if (!tier) return Response.json({ batch_id, mqtt_sent: 0, reason: "no such batch" });
  let deferred = 0;
  // A batch sent to its audience goes out first, as one message per role; a batch it cannot reach
  // that way gets per-recipient deliveries, which the lanes below send.
  const audienceMs: Record<string, number> = { content: performance.now() - started };
  const mark = (step: string) => audienceMs[step] = performance.now() - started;
  const audience = await dispatchAudience(batch_id, tier, ctx.requestId, deps, service, log, mark);
  mark("committed");
  sent += audience.sent;
  retrying += audience.retrying;
  deferred += audience.deferred;
  // Where the time goes, for the log line (summed over lanes): claiming, asking the rate limiter,
  // publishing, recording.
  const ms = { claim: 0, limit: 0, publish: 0, record: 0 };
  // Lanes claim, limit, publish and record chunks side by side, so the database, the rate limiter
  // and the broker each work while the others answer (row locks with SKIP LOCKED keep lanes, and
  // a concurrent dispatch of the same batch, on different rows).
  const lane = async () => {
    let mark = performance.now();
    const lap = (phase: keyof typeof ms) => {
      const now = performance.now();
      ms[phase] += now - mark;
      mark = now;
    };
    for (;;) {
      // Claim a chunk: the row locks keep a concurrent dispatch of the same batch off these rows.
      const result = await service(async (tx) => {
        const due = await tx<Due[]>`
        select d.notification_id, n.recipient_id, d.attempts
        from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
        where d.batch_id = ${batch_id} and d.channel = 'mqtt' and d.status = 'pending' and d.next_attempt_at <= now()
        order by d.notification_id limit ${chunk}
        for update of d skip locked`;
        lap("claim");
        if (!due.length) return { due: 0, ok: [] as string[], failed: [] as Due[], held: 0 };

        // Rate limits: the organization's per-minute budget for its tier, then each recipient's.
        // Over them, or with the limiter away, deliveries wait for the next window: deferred, not lost.
        let allowed: Due[];
        let reason = "rate_limited";
        try {
          const orgGrant = await deps.limiter.take(`notify:org:${tier.org_id}`, due.length, tier.per_minute);
          const perUser = await deps.limiter.takeEach(
            due.slice(0, orgGrant).map((n) => recipientLimitKey(tier.org_id, n.recipient_id)),
            PER_RECIPIENT_PER_MINUTE,
          );
          allowed = due.slice(0, orgGrant).filter((_, i) => perUser[i]);
        } catch (e) {
          log.warn("rate limiter unavailable, deliveries wait", { error: String(e) });
          allowed = [];
          reason = "rate_limiter_unavailable";
        }
        const allowedSet = new Set(allowed);
        const held = due.filter((n) => !allowedSet.has(n)).map((n) => n.notification_id);
        if (held.length) {
          await tx`update public.notification_deliveries set last_error = ${reason},
                   next_attempt_at = date_trunc('minute', now()) + interval '1 minute'
                 where channel = 'mqtt' and notification_id = any(${held}::uuid[])`;
        }

        lap("limit");
        const outcomes = await Promise.allSettled(
          allowed.map((n) =>
            deps.publish(topics.notifications(tier.org_id, n.recipient_id), envelopeOf(tier, n.notification_id, ctx.requestId))
          ),
        );
        const ok = allowed.filter((_, i) => outcomes[i].status === "fulfilled").map((n) => n.notification_id);
        const failed = allowed.filter((_, i) => outcomes[i].status === "rejected");
        lap("publish");
        if (ok.length) {
          await tx`update public.notification_deliveries set status = 'sent', attempts = attempts + 1, delivered_at = now(), last_error = null
                 where channel = 'mqtt' and notification_id = any(${ok}::uuid[])`;
        }
        for (const f of failed) {
          const error = String((outcomes[allowed.indexOf(f)] as PromiseRejectedResult).reason).slice(0, 500);
          await tx`update public.notification_deliveries set attempts = attempts + 1, last_error = ${error},
                   status = case when attempts + 1 >= 10 then 'failed' else 'pending' end,
                   next_attempt_at = now() + make_interval(secs => least(5 * power(2, attempts), 600)::int)
                 where channel = 'mqtt' and notification_id = ${f.notification_id}`;
        }
        lap("record");
        return { due: due.length, ok, failed, held: held.length };
      });
      if (!result.due) break;
      sent += result.ok.length;
      retrying += result.failed.length;
      deferred += result.held;
      if (result.failed.length || result.held) break; // the sweep comes back once they are due
    }
  };
  await Promise.all(Array.from({ length: lanes }, lane));

  // E-mail goes out from the worker: one waiting job per batch while any is pending. The key on
  // notifications.email (pg-boss's short policy) skips this enqueue while the batch's job has not
  // started; once it runs, e-mail that came due meanwhile queues one more.
  const [email] = await service((tx) =>
    tx<{ org_id: string; n: number }[]>`
    select d.org_id, count(*)::int as n from public.notification_deliveries d
    where d.batch_id = ${batch_id} and d.channel = 'email' and d.status = 'pending' and not d.digest and d.next_attempt_at <= now()
    group by d.org_id`
  );
  if (email) {
    await service((tx) =>
      enqueueJob(tx, "notifications.email", { org_id: email.org_id, batch_id, correlation_id: ctx.requestId }, {
        singletonKey: `notifications.email:${batch_id}`,
      })
    );
  }
  if (sent) {
    await deps.publish(
      topics.events(tier.org_id),
      EnvelopeSchema.parse({
        v: 1,
        id: batch_id,
        ts: new Date().toISOString(),
        type: "notification.batch",
        org_id: tier.org_id,
        correlation_id: ctx.requestId,
        data: { batch_id, delivered: sent },
      }),
    ).catch((e) => log.warn("batch event not published", { error: String(e) }));
  }
  log.info("batch dispatched", {
    mqtt_sent: sent,
    mqtt_retrying: retrying,
    mqtt_deferred: deferred,
    mqtt_audience: audience.outcome,
    email_pending: email?.n ?? 0,
    ms: Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, Math.round(v)])),
    // the audience delivery's steps, in ms since the request began
    ...(audience.outcome === "none"
      ? {}
      : { audience_ms: Object.fromEntries(Object.entries(audienceMs).map(([k, v]) => [k, Math.round(v)])) }),
  });
  return Response.json({
    batch_id,
    mqtt_sent: sent,
    mqtt_retrying: retrying,
    mqtt_deferred: deferred,
    mqtt_audience: audience.outcome,
    email_pending: email?.n ?? 0,
  }, { status: retrying ? 503 : 200 });
}

/** A recipient's envelope: its id is their notification's. An audience's: its id is the batch's, in data too. */
function envelopeOf(n: BatchContent, id: string, correlationId: string, batchId?: string): Envelope {
  return {
    v: 1,
    id,
    ts: new Date(n.created_at).toISOString(),
    type: n.type,
    org_id: n.org_id,
    correlation_id: correlationId,
    data: { title: n.title, body: n.body, priority: n.priority, ...n.data, ...(batchId ? { batch_id: batchId } : {}) },
  };
}

type AudienceOutcome = "none" | "sent" | "retrying" | "deferred" | "expanded" | "failed";

/**
 * The batch's audience delivery, if it has one due: claimed under a row lock, published once per
 * role, recorded as sent. One message is one message: who it reached is counted in SQL (one row
 * back, not one per recipient), and its rate limits are the organization's budget (every
 * recipient counts) and the role's own limit (PER_RECIPIENT_PER_MINUTE role messages a minute,
 * which each member of the role receives), not a key per recipient. A role over its limit waits
 * for the next window whole. It becomes per-recipient deliveries (status `expanded`) when the
 * organization's budget cannot take it all (or the limiter is away), or a recipient no longer
 * holds a role it went to: those are the cases where one message for everyone would not say what
 * each recipient's own delivery would. Budget already taken is not given back: deferred sooner,
 * never lost.
 */
async function dispatchAudience(
  batchId: string,
  tier: BatchContent,
  correlationId: string,
  deps: DispatchDeps,
  service: <T>(fn: (tx: postgres.TransactionSql) => Promise<T>) => Promise<T>,
  log: Logger,
  mark: (step: string) => void,
): Promise<{ sent: number; retrying: number; deferred: number; outcome: AudienceOutcome }> {
  return await service(async (tx) => {
    const [row] = await tx<{ roles: string[]; attempts: number }[]>`
      select roles::text[] as roles, attempts from public.notification_audience_deliveries
      where batch_id = ${batchId} and status = 'pending' and next_attempt_at <= now()
      for update skip locked`;
    if (!row) return { sent: 0, retrying: 0, deferred: 0, outcome: "none" as const };
    mark("claimed");
    // Who moved: the members now outside the batch's roles that hold one of its rows, each asked
    // of the (batch, recipient) index; usually few, where a join would probe every recipient. A
    // removed member's rows went with the membership.
    const [{ recipients, moved }] = await tx<{ recipients: number; moved: number }[]>`
      select (select count(*)::int from public.notifications n where n.batch_id = ${batchId}) as recipients,
             (select count(*)::int from public.organization_members m
              where m.org_id = ${tier.org_id} and not (m.role::text = any (${row.roles}::text[]))
                and (select 1 from public.notifications n where n.batch_id = ${batchId} and n.recipient_id = m.user_id limit 1) is not null
             ) as moved`;
    mark("counted");
    const expand = async (reason: string) => {
      await tx`insert into public.notification_deliveries (notification_id, org_id, batch_id, channel)
               select n.id, n.org_id, n.batch_id, 'mqtt' from public.notifications n where n.batch_id = ${batchId}
               on conflict do nothing`;
      await tx`update public.notification_audience_deliveries set status = 'expanded', last_error = ${reason}
               where batch_id = ${batchId}`;
      log.info("audience delivery expanded to recipients", { reason, recipients });
      return { sent: 0, retrying: 0, deferred: 0, outcome: "expanded" as const };
    };
    if (!recipients) {
      await tx`update public.notification_audience_deliveries set status = 'sent', attempts = attempts + 1, delivered_at = now()
               where batch_id = ${batchId}`;
      return { sent: 0, retrying: 0, deferred: 0, outcome: "sent" as const };
    }
    if (moved) return await expand("recipient_changed_role");
    // An audience larger than the organization's whole budget for a minute can never go at once:
    // per recipient, without taking from the budget twice.
    if (row.attempts === 0 && recipients > tier.per_minute) return await expand("rate_limited");
    // Rate limits are taken on the first attempt only: a retry is the same delivery.
    if (row.attempts === 0) {
      try {
        const roleOk = await deps.limiter.takeEach(
          row.roles.map((role) => roleLimitKey(tier.org_id, role)),
          PER_RECIPIENT_PER_MINUTE,
        );
        if (roleOk.some((ok) => !ok)) {
          await tx`update public.notification_audience_deliveries set last_error = 'rate_limited',
                   next_attempt_at = date_trunc('minute', now()) + interval '1 minute'
                   where batch_id = ${batchId}`;
          return { sent: 0, retrying: 0, deferred: recipients, outcome: "deferred" as const };
        }
        const orgGrant = await deps.limiter.take(`notify:org:${tier.org_id}`, recipients, tier.per_minute);
        if (orgGrant < recipients) return await expand("rate_limited");
      } catch (e) {
        log.warn("rate limiter unavailable, audience delivery goes per recipient", { error: String(e) });
        return await expand("rate_limiter_unavailable");
      }
    }
    mark("limited");
    const envelope = envelopeOf(tier, batchId, correlationId, batchId);
    const outcomes = await Promise.allSettled(
      row.roles.map((role) => deps.publish(topics.roleNotifications(tier.org_id, role), envelope)),
    );
    mark("published");
    const failure = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
    if (!failure) {
      await tx`update public.notification_audience_deliveries set status = 'sent', attempts = attempts + 1, delivered_at = now(), last_error = null
               where batch_id = ${batchId}`;
      return { sent: recipients, retrying: 0, deferred: 0, outcome: "sent" as const };
    }
    // Roles already published get the message again on retry: the envelope's id (the batch's) lets clients drop it.
    const [after] = await tx<{ status: string }[]>`
      update public.notification_audience_deliveries set attempts = attempts + 1, last_error = ${
      String(failure.reason).slice(0, 500)
    },
             status = case when attempts + 1 >= 10 then 'failed' else 'pending' end,
             next_attempt_at = now() + make_interval(secs => least(5 * power(2, attempts), 600)::int)
      where batch_id = ${batchId} returning status`;
    return {
      sent: 0,
      retrying: recipients,
      deferred: 0,
      outcome: after.status === "failed" ? "failed" as const : "retrying" as const,
    };
  });
}
