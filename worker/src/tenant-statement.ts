// One statement in a job's tenant context, in one round trip: the context and the statement go
// to Postgres as one simple-protocol message, `select set_config(...); <statement>`. Postgres runs
// a message's statements in one implicit transaction, so the context (transaction-local
// settings, as PostgREST sets them) holds for the statement and ends with it, and if setting it
// fails the statement does not run. Nothing holds a connection between round trips, so jobs'
// statements pipeline on the pool like plain queries: bench:queue's ratio_db, against the three
// round trips of inTenantContext (ratio_db_tx). Values become literals (sql-literal.ts).
import type postgres from "postgres";
import { contextSettings } from "../../supabase/functions/_shared/db.ts";
import { literalSql, type LiteralValue } from "./sql-literal.ts";
import { tenantContext, type TenantJob } from "./tenant-context.ts";

/**
 * A tagged template that runs its statement in the job's context and resolves to its rows:
 * `await tenantStatement(sql, tenant)<{ id: string }[]>\`select id from public.files where id = ${id}\``.
 */
export function tenantStatement(sql: postgres.Sql, job: TenantJob) {
  const [role, claims, headers] = contextSettings(tenantContext(job));
  const context = literalSql(
    [
      "select set_config('role', ",
      ", true), set_config('request.jwt.claims', ",
      ", true), set_config('request.headers', ",
      ", true)",
    ],
    [role, claims, headers],
  );
  return async <T extends readonly object[] = postgres.Row[]>(
    strings: TemplateStringsArray,
    ...values: LiteralValue[]
  ): Promise<T> => {
    const statement = literalSql(strings, values);
    const results = await sql.unsafe(`${context}; ${statement}`).simple() as unknown as [unknown, T];
    return results[1];
  };
}
