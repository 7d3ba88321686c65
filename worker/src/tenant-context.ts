// A job's database work runs in its organization's request context: `authenticated` with claims
// that name the job, the organization and the scopes its registry entry declares, so the same
// RLS that guards users guards jobs (see app.job_principal in supabase/schemas/020_policy_helpers.sql). Correlation id
// travels as x-request-id, so the audit log ties changes to the request that caused the job.
// Work across organizations runs as the service (asService in supabase/functions/_shared/db.ts,
// with WORKER_USER_AGENT).
import type postgres from "postgres";
import { withRequestContext } from "../../supabase/functions/_shared/db.ts";
import type { RequestContext } from "../../supabase/functions/_shared/request-context.ts";

/** How the audit log names the worker's requests. */
export const WORKER_USER_AGENT = "saas-backend-worker";

export interface TenantJob {
  id: string;
  orgId: string;
  scopes: readonly string[];
  correlationId: string;
}

/** The request context a job acts in. */
export function tenantContext(job: TenantJob): RequestContext {
  return {
    role: "authenticated",
    claims: { job_id: job.id, job_org_id: job.orgId, job_scopes: job.scopes },
    headers: { "x-request-id": job.correlationId, "user-agent": WORKER_USER_AGENT },
  };
}

/**
 * Several statements in the job's context, in one transaction (three round trips that hold a
 * connection). For one statement, tenantStatement (tenant-statement.ts) costs one round trip.
 */
export function inTenantContext<T>(
  sql: postgres.Sql,
  job: TenantJob,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  return withRequestContext(sql, tenantContext(job), fn);
}
