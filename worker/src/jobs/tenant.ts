// Jobs for one organization.
import { BasePayload, DEFAULT_OPTIONS, defineJob } from "../registry.ts";
import { asService } from "../tenant-context.ts";
import { z } from "zod";

const ForOrganization = BasePayload.extend({ org_id: z.uuid() });

/**
 * Hard delete after the grace period (the tier's retention since the soft delete). The audit log
 * is kept: it has no foreign key to the organization. Idempotent: a second run finds nothing.
 */
export const tenantDelete = defineJob({
  queue: "tenant.delete",
  payload: ForOrganization,
  scopes: [],
  tenancy: "organization",
  runsOnDeletedOrganization: true,
  options: { ...DEFAULT_OPTIONS, concurrency: 1, batchSize: 1 },
  async handler(ctx, data) {
    // Deleting organizations is the service's work (no member may); it is confined to this one.
    const outcome = await asService(ctx.sql, ctx.correlationId, async (tx) => {
      const [org] = await tx`
        select o.id, o.deleted_at, o.deleted_at < now() - make_interval(days => t.retention_days) as past_grace
        from public.organizations o join public.subscription_tiers t on t.tier = o.tier
        where o.id = ${data.org_id} for update of o`;
      if (!org) return "already gone";
      if (!org.deleted_at) return "not deleted";
      if (!org.past_grace) return "within grace period";
      await tx`delete from public.organizations where id = ${data.org_id}`;
      return "deleted";
    });
    ctx.log.info("tenant delete", { org_id: data.org_id, outcome });
    return { outcome };
  },
});
