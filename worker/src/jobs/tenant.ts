// Jobs for one organization.
import type { SupabaseClient } from "@supabase/supabase-js";
import type postgres from "postgres";
import type { Database } from "../../../supabase/functions/_shared/database.types.ts";
import { asService, withRequestContext } from "../../../supabase/functions/_shared/db.ts";
import { JOB_PAYLOADS } from "../../../supabase/functions/_shared/jobs.ts";
import { DEFAULT_OPTIONS, defineJob } from "../registry.ts";
import { inTenantContext, WORKER_USER_AGENT } from "../tenant-context.ts";
import { tenantStatement } from "../tenant-statement.ts";

/**
 * Hard delete after the grace period (the tier's retention since the soft delete): first every
 * stored object under the organization's folder, through the Storage API, then the rows, whose
 * audit entries keep who, what and when but lose the rows' contents (app.purge_organization).
 * Idempotent: a run that dies midway is retried and finds less to do.
 */
export const tenantDelete = defineJob({
  queue: "tenant.delete",
  payload: JOB_PAYLOADS["tenant.delete"],
  uses: ["storage"],
  scopes: [],
  tenancy: "organization",
  runsOnDeletedOrganization: true,
  options: { ...DEFAULT_OPTIONS, concurrency: 1, batchSize: 1 },
  policy: "short", // one waiting deletion per organization (key `tenant.delete:<org>`)
  async handler(ctx, data) {
    // As the service, not in the organization's request context: a deleted organization is gone
    // from every request context (the policy helpers ignore it), and purging one is no member's
    // right (app.purge_organization is the service's). Both statements name this one organization.
    const [org] = await asService(ctx.sql, ctx.correlationId, (tx) =>
      tx`
      select o.deleted_at is not null as deleted, o.deleted_at < now() - make_interval(days => t.retention_days) as past_grace
      from public.organizations o join public.subscription_tiers t on t.tier = o.tier
      where o.id = ${data.org_id}`, WORKER_USER_AGENT);
    let outcome: string;
    if (!org) outcome = "already gone";
    else if (!org.deleted) outcome = "not deleted";
    else if (!org.past_grace) outcome = "within grace period";
    else {
      if (!ctx.supabase) throw new Error("SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are required to delete stored objects");
      const removed = await removeOrganizationObjects(ctx.supabase, data.org_id);
      ctx.log.info("stored objects removed", { org_id: data.org_id, ...removed });
      const [{ purged }] = await asService(
        ctx.sql,
        ctx.correlationId,
        (tx) => tx`select app.purge_organization(${data.org_id}) as purged`,
        WORKER_USER_AGENT,
      );
      outcome = purged ? "deleted" : "already gone";
    }
    ctx.log.info("tenant delete", { org_id: data.org_id, outcome });
    return { outcome };
  },
});

/** The buckets whose objects live under `{org_id}/`. */
export const ORGANIZATION_BUCKETS = ["files", "thumbnails", "exports", "quarantine", "trash"] as const;

/** Removes every object under `{org}/` in each organization bucket; the count per bucket. */
export async function removeOrganizationObjects(storage: SupabaseClient<Database>, org: string) {
  const removed: Record<string, number> = {};
  for (const bucket of ORGANIZATION_BUCKETS) {
    removed[bucket] = 0;
    for (;;) {
      const page = await storage.storage.from(bucket).listV2({ prefix: `${org}/`, limit: 1000 });
      if (page.error) {
        if ((page.error as { statusCode?: string }).statusCode === "404") break; // no such bucket here
        throw new Error(`listing ${bucket}: ${page.error.message}`);
      }
      const names = page.data.objects.map((o) => o.name);
      if (names.length === 0) break;
      const gone = await storage.storage.from(bucket).remove(names);
      if (gone.error) throw new Error(`removing from ${bucket}: ${gone.error.message}`);
      if (gone.data.length === 0) throw new Error(`removing from ${bucket}: nothing was removed`);
      removed[bucket] += gone.data.length;
    }
  }
  return removed;
}

/** What an export reads, in order, with the permission a member needs to read each. */
export const EXPORT_SECTIONS = {
  organization: "org.read",
  members: "org.read",
  member_permissions: "members.manage",
  invitations: "members.invite",
  api_keys: "api_keys.manage",
  audit_log: "audit.read",
} as const;
type ExportSection = keyof typeof EXPORT_SECTIONS;

/**
 * An organization's data as one JSON archive in the `exports` bucket ({org_id}/{export_id}.json),
 * read as its requester (their request context, so RLS decides as for them), only the sections
 * whose permission they hold, with progress in public.data_exports.
 * Secrets never leave: hash columns are not readable by any request role. Re-running rewrites
 * the same object (upsert), so a retry after a failure is harmless.
 */
export const tenantExport = defineJob({
  queue: "tenant.export",
  payload: JOB_PAYLOADS["tenant.export"],
  uses: ["storage"],
  scopes: ["data.export"], // for its progress only: the sections are read as the requester
  tenancy: "organization",
  options: { ...DEFAULT_OPTIONS, retryLimit: 3, retryDelay: 10, expireInSeconds: 1800, concurrency: 1, batchSize: 1 },
  async handler(ctx, data) {
    const tenant = ctx.tenant!;
    const progress = (fields: Record<string, unknown>) =>
      inTenantContext(
        ctx.sql,
        tenant,
        (tx) => tx`update public.data_exports set ${tx(fields)} where id = ${data.export_id} returning id`,
      );
    try {
      if (!ctx.supabase) throw new Error("SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are required for exports");
      const [found] = await progress({ status: "running", progress: 0, error: null });
      if (!found) return { skipped: "export not found" };
      // Who asked, read in the job's context (its data.export shows it the organization's
      // exports); what they may read, asked as them.
      const [exported] = await tenantStatement(ctx.pool, tenant)<{ created_by: string | null }[]>`
        select created_by from public.data_exports where id = ${data.export_id}`;
      const requesterId = exported?.created_by;
      const asRequester = <T>(fn: (tx: postgres.TransactionSql) => Promise<T>) =>
        withRequestContext(ctx.sql, {
          role: "authenticated",
          claims: { sub: requesterId, role: "authenticated" },
          headers: { "x-request-id": ctx.correlationId, "user-agent": WORKER_USER_AGENT },
        }, fn);
      const permissions = requesterId
        ? (await asRequester((tx) => tx<{ held: string[] }[]>`select app.caller_permissions(${data.org_id}) as held`))[0].held
        : [];
      if (!permissions.includes("data.export")) {
        await progress({ status: "failed", error: "the requester no longer holds data.export in the organization" });
        return { skipped: "requester without data.export" };
      }
      const sections = (Object.keys(EXPORT_SECTIONS) as ExportSection[])
        .filter((section) => permissions.includes(EXPORT_SECTIONS[section]));
      const archive: Record<string, unknown> = {
        format: "saas-backend-export/1",
        exported_at: new Date().toISOString(),
        org_id: data.org_id,
        sections,
      };
      for (const [i, section] of sections.entries()) {
        archive[section] = await asRequester((tx) => readSection(tx, section, data.org_id));
        await progress({ progress: Math.round(((i + 1) / (sections.length + 1)) * 100) });
        ctx.log.info("export progress", { section, export_id: data.export_id });
      }
      const objectPath = `${data.org_id}/${data.export_id}.json`;
      const { error } = await ctx.supabase.storage.from("exports")
        .upload(objectPath, JSON.stringify(archive), { contentType: "application/json", upsert: true });
      if (error) throw new Error(`upload failed: ${error.message}`);
      const required = [...new Set(sections.map((section) => EXPORT_SECTIONS[section]))].sort();
      await progress({
        status: "completed",
        progress: 100,
        object_path: objectPath,
        completed_at: new Date(),
        required_permissions: required,
      });
      return { object_path: objectPath };
    } catch (e) {
      if (ctx.job.finalAttempt) {
        await progress({ status: "failed", error: String(e instanceof Error ? e.message : e).slice(0, 2000) });
      }
      throw e;
    }
  },
});

function readSection(tx: postgres.TransactionSql, section: ExportSection, orgId: string) {
  switch (section) {
    case "organization":
      return tx`select * from public.organizations where id = ${orgId}`.then((r) => r[0] ?? null);
    case "members":
      return tx`select m.user_id, m.role, m.created_at from public.organization_members m where m.org_id = ${orgId} order by m.created_at`;
    case "member_permissions":
      return tx`select user_id, permission, granted, created_at from public.member_permissions where org_id = ${orgId}`;
    case "invitations":
      return tx`select id, email, role, expires_at, accepted_at, revoked_at, created_at from public.invitations where org_id = ${orgId}`;
    case "api_keys":
      return tx`select id, name, key_prefix, scopes, expires_at, last_used_at, revoked_at, created_at from public.api_keys where org_id = ${orgId}`;
    case "audit_log":
      return tx`select * from audit.log where org_id = ${orgId} order by id`;
  }
}
