// A job's database work runs in its organization's request context: `authenticated` with claims
// that name the job, the organization and the scopes its registry entry declares, so the same
// RLS that guards users guards jobs (see app.job_principal in the migrations). Correlation id
// travels as x-request-id, so the audit log ties changes to the request that caused the job.
import type postgres from "postgres";
import { withRequestContext } from "../../supabase/functions/_shared/db.ts";

export interface TenantJob {
  id: string;
  orgId: string;
  scopes: readonly string[];
  correlationId: string;
}

export function inTenantContext<T>(sql: postgres.Sql, job: TenantJob, fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
  return withRequestContext(sql, {
    role: "authenticated",
    claims: { job_id: job.id, job_org_id: job.orgId, job_scopes: job.scopes },
    headers: { "x-request-id": job.correlationId, "user-agent": "saas-backend-worker" },
  }, fn);
}

/** Work across organizations (maintenance) runs as the service, as ARCHITECTURE.md says service work does. */
export function asService<T>(sql: postgres.Sql, correlationId: string, fn: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> {
  return withRequestContext(sql, {
    role: "service_role",
    claims: { role: "service_role" },
    headers: { "x-request-id": correlationId, "user-agent": "saas-backend-worker" },
  }, fn);
}
