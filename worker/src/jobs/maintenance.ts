// Maintenance over every organization, scheduled with pg-boss cron and run as the service.
import { asService } from "../../../supabase/functions/_shared/db.ts";
import { enqueueJob, JOB_PAYLOADS } from "../../../supabase/functions/_shared/jobs.ts";
import { DEFAULT_OPTIONS, defineJob } from "../registry.ts";
import { WORKER_USER_AGENT } from "../tenant-context.ts";

/** Invitations nobody accepted, kept this long past expiry so a late invitee still hears "expired". */
export const EXPIRED_INVITATION_RETENTION_DAYS = 30;

export const expireInvitations = defineJob({
  queue: "maintenance.expire-invitations",
  payload: JOB_PAYLOADS["maintenance.expire-invitations"],
  scopes: [],
  tenancy: "all-organizations",
  options: { ...DEFAULT_OPTIONS, concurrency: 1, batchSize: 1 },
  schedule: { cron: "17 * * * *" },
  async handler(ctx) {
    const deleted = await asService(ctx.sql, ctx.correlationId, (tx) =>
      tx`
      delete from public.invitations
      where accepted_at is null and expires_at < now() - make_interval(days => ${EXPIRED_INVITATION_RETENTION_DAYS})
      returning id`, WORKER_USER_AGENT);
    ctx.log.info("expired invitations removed", { count: deleted.length });
    return { deleted: deleted.length };
  },
});

/** Organizations soft-deleted longer ago than their tier's retention: one tenant.delete job each. */
export const purgeSoftDeleted = defineJob({
  queue: "maintenance.purge-soft-deleted",
  payload: JOB_PAYLOADS["maintenance.purge-soft-deleted"],
  scopes: [],
  tenancy: "all-organizations",
  options: { ...DEFAULT_OPTIONS, concurrency: 1, batchSize: 1 },
  schedule: { cron: "43 3 * * *" },
  async handler(ctx) {
    const due = await asService(ctx.sql, ctx.correlationId, (tx) =>
      tx<{ id: string }[]>`
      select o.id from public.organizations o join public.subscription_tiers t on t.tier = o.tier
      where o.deleted_at is not null and o.deleted_at < now() - make_interval(days => t.retention_days)
      order by o.deleted_at limit 1000`, WORKER_USER_AGENT);
    for (const org of due) {
      // tenant.delete keeps one waiting job per key (pg-boss's short policy): a sweep while this
      // organization's deletion has not started adds none; after it started, one more may wait,
      // and finds less to do.
      await enqueueJob(ctx.sql, "tenant.delete", { org_id: org.id, correlation_id: ctx.correlationId }, {
        singletonKey: `tenant.delete:${org.id}`,
      });
    }
    ctx.log.info("organizations past retention queued for deletion", { count: due.length });
    return { queued: due.length };
  },
});
