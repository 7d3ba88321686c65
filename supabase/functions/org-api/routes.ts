// The organization's API for machines (the org-api function): one route per thing a scope lets an
// API key read or do that no other function offers, each declared once here with its scope and the
// zod schemas of its path, query, body and answer. The router parses requests with them (a field
// that is not declared is a 400), answers through them (what is sent is exactly what is declared),
// and openapi.ts describes the API from the same schemas, so the description cannot drift from
// what the function accepts. Every route runs in the key's request context after Postgres, in the
// same transaction, found the key live and holding the route's scope (ApiKeyGate.run): RLS, the
// RPCs' own checks and the audit log see the key. Lists are pages: `limit`, and `cursor` from the
// previous page's `next_cursor` (null on the last page).
import type { SupabaseClient } from "@supabase/supabase-js";
import type postgres from "postgres";
import { z } from "zod";
import type { ApiKeyGate } from "../_shared/api-keys.ts";
import type { ApiKeyCaller } from "../_shared/auth.ts";
import type { Database } from "../_shared/database.types.ts";
import { HttpError } from "../_shared/errors.ts";
import type { Method } from "../_shared/http.ts";

export interface OrgApiDeps {
  sql: postgres.Sql;
  gate: ApiKeyGate;
  /** Storage with the service key: signs download links for what Postgres let the key read. */
  storage: SupabaseClient<Database>;
}

export interface RouteContext<P, Q, B> {
  tx: postgres.TransactionSql;
  caller: ApiKeyCaller;
  params: P;
  query: Q;
  body: B;
  deps: OrgApiDeps;
}

export interface RouteDef<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType> {
  method: Method;
  /** OpenAPI's form: /files/{file_id}. */
  path: string;
  /** The scope the key must hold; null: any live key. */
  scope: string | null;
  summary: string;
  params?: P;
  query?: Q;
  body?: B;
  /** The answer's schema; null for 204 No Content. */
  response: z.ZodType | null;
  status: 200 | 201 | 204;
  /** Error codes this route answers besides the ones every route may (docs/errors.md). */
  errors?: Record<number, string[]>;
  handle(c: RouteContext<z.output<P>, z.output<Q>, z.output<B>>): Promise<unknown>;
}

const route = <P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(r: RouteDef<P, Q, B>) => r as unknown as RouteDef;

// ---------------------------------------------------------------------------------------------
// Shapes: timestamps as ISO 8601, whole numbers as numbers (Postgres's bigint arrives as text)
const toIso = (v: unknown) => (v instanceof Date ? v.toISOString() : v);
const toNumber = (v: unknown) => (typeof v === "string" && v !== "" ? Number(v) : v);
const Timestamp = z.preprocess(toIso, z.iso.datetime({ offset: true }));
const Count = z.preprocess(toNumber, z.number().int());
const Decimal = z.preprocess(toNumber, z.number());
const Role = z.enum(["owner", "admin", "teacher", "student"]);
const Json = z.record(z.string(), z.unknown());
const PermissionKey = z.string().regex(/^[a-z_]+\.[a-z_]+$/, "a permission key, such as files.read");

const Page = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50).describe("rows per page"),
  cursor: z.string().max(400).optional().describe("next_cursor of the previous page"),
});
const page = <T extends z.ZodType>(item: T, name: string) =>
  z.object({ data: z.array(item), next_cursor: z.string().nullable() }).meta({ id: `${name}Page` });

/**
 * A position in a list: the sort values of its last row, opaque to clients. Timestamps go in as
 * Postgres writes them, and back as text cast in SQL (microseconds: a JavaScript Date, or
 * postgres.js's serializer for a timestamptz parameter, keeps milliseconds and would repeat rows).
 */
export function encodeCursor(values: (string | number)[]): string {
  const text = JSON.stringify(values.map(String));
  return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function decodeCursor(cursor: string, parts: number): string[] {
  try {
    const text = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
    const values = z.array(z.string().max(100)).length(parts).parse(JSON.parse(text));
    return values;
  } catch {
    throw new HttpError(400, "invalid_cursor", "The cursor is not one a page of this list gave.");
  }
}

/** The page of `rows` (fetched one longer than asked) and the cursor after its last row. */
function pageOf<T>(rows: T[], limit: number, sortValues: (row: T) => (string | number)[]) {
  const data = rows.slice(0, limit);
  return { data, next_cursor: rows.length > limit ? encodeCursor(sortValues(data[data.length - 1])) : null };
}

/** Postgres's refusals as HTTP answers, per route. */
function mapSqlErrors(e: unknown, codes: Record<string, [number, string]>): never {
  const code = (e as { code?: string }).code ?? "";
  const mapped = codes[code];
  if (mapped) throw new HttpError(mapped[0], mapped[1], (e as Error).message);
  throw e;
}
const notFound = (what: string) => new HttpError(404, "not_found", `No such ${what} in the key's organization.`);

// ---------------------------------------------------------------------------------------------
export const Key = z.object({
  api_key_id: z.uuid(),
  org_id: z.uuid(),
  scopes: z.array(z.string()).describe("the key's scopes its creator still holds: what it may do now"),
  requests_per_minute: z.number().int().describe("the tier's limit, per key and for all of the organization's keys together"),
}).meta({ id: "Key" });

export const Organization = z.object({
  id: z.uuid(),
  name: z.string(),
  slug: z.string(),
  tier: z.string(),
  data_region: z.string(),
  coppa: z.boolean(),
  ferpa: z.boolean(),
  settings: Json,
  created_at: Timestamp,
}).meta({ id: "Organization" });

export const Member = z.object({ user_id: z.uuid(), role: Role, joined_at: Timestamp }).meta({ id: "Member" });
export const Override = z.object({ user_id: z.uuid(), permission: z.string(), granted: z.boolean() }).meta({
  id: "PermissionOverride",
});

export const File = z.object({
  id: z.uuid(),
  name: z.string(),
  size_bytes: Count,
  mime_type: z.string().describe("the type declared when the upload started"),
  detected_mime: z.string().nullable().describe("the type the scan found in the bytes"),
  status: z.enum(["pending", "scanning", "clean", "infected", "rejected", "failed"]),
  status_reason: z.string().nullable(),
  sha256: z.string().nullable(),
  category: z.string(),
  created_at: Timestamp,
  processed_at: Timestamp.nullable(),
}).meta({ id: "File" });

export const SignedLink = z.object({
  signed_url: z.url(),
  expires_in: z.number().int().describe("seconds the link works"),
}).meta({ id: "SignedLink" });

export const SeriesPoint = z.object({ bucket: Timestamp, events: Count, users: Count, sums: Json }).meta({ id: "SeriesPoint" });
export const TopEvent = z.object({ event_type: z.string(), events: Count }).meta({ id: "TopEvent" });
export const UsageFigure = z.object({
  metric: z.string(),
  used: Count.nullable(),
  limit: Count.nullable(),
  percent: Decimal.nullable(),
}).meta({ id: "UsageFigure" });

export const AuditEntry = z.object({
  id: z.string().describe("increasing; a decimal string (a 64-bit number)"),
  occurred_at: Timestamp,
  actor_user_id: z.uuid().nullable(),
  actor_api_key_id: z.uuid().nullable(),
  db_role: z.string(),
  table_name: z.string(),
  row_id: z.string(),
  action: z.enum(["INSERT", "UPDATE", "DELETE"]),
  changed_columns: z.array(z.string()),
  old_values: Json.nullable(),
  new_values: Json.nullable(),
  ip: z.string().nullable(),
  user_agent: z.string().nullable(),
  request_id: z.string().nullable(),
}).meta({ id: "AuditEntry" });

export const Job = z.object({
  id: z.uuid(),
  queue: z.string(),
  state: z.string(),
  priority: z.number().int(),
  data: Json.nullable(),
  output: z.unknown().nullable(),
  retry_count: z.number().int(),
  retry_limit: z.number().int(),
  created_on: Timestamp,
  started_on: Timestamp.nullable(),
  completed_on: Timestamp.nullable(),
  source_queue: z.string().nullable(),
  source_id: z.uuid().nullable(),
}).meta({ id: "Job" });

export const Export = z.object({
  id: z.uuid(),
  status: z.enum(["queued", "running", "completed", "failed"]),
  progress: z.number().int(),
  error: z.string().nullable(),
  required_permissions: z.array(z.string()),
  created_at: Timestamp,
  completed_at: Timestamp.nullable(),
}).meta({ id: "Export" });

export const ApiKeyRow = z.object({
  id: z.uuid(),
  name: z.string(),
  key_prefix: z.string(),
  scopes: z.array(z.string()),
  mqtt_topics: z.array(z.string()),
  expires_at: Timestamp.nullable(),
  last_used_at: Timestamp.nullable(),
  revoked_at: Timestamp.nullable(),
  created_at: Timestamp,
}).meta({ id: "ApiKey" });

export const Exercise = z.object({
  id: z.uuid(),
  title: z.string(),
  status: z.string(),
  created_at: Timestamp,
  teams: z.array(z.object({ id: z.uuid(), name: z.string() })),
}).meta({ id: "Exercise" });

export const NotificationRequest = z.object({
  type: z.string().min(1).max(100).describe("a notification type, such as announcement.posted"),
  title: z.string().min(1).max(200),
  body: z.string().max(4000).default(""),
  data: Json.default({}),
  recipients: z.union([
    z.object({ user_ids: z.array(z.uuid()).min(1).max(10_000) }).strict(),
    z.object({ role: Role }).strict(),
    z.object({ permission: PermissionKey }).strict(),
    z.object({ everyone: z.literal(true) }).strict(),
  ]).default({ everyone: true }),
  priority: z.enum(["low", "normal", "high", "urgent"]).optional(),
  idempotency_key: z.string().min(1).max(200).optional()
    .describe("sending again with the same key reaches nobody twice"),
}).strict().meta({ id: "NotificationRequest" });
export const NotificationSent = z.object({
  batch_id: z.uuid(),
  created: z.number().int().describe("notifications made: 0 when the idempotency key was used before"),
}).meta({ id: "NotificationSent" });

const UserParam = z.object({ user_id: z.uuid() }).strict();
const OverrideParams = z.object({ user_id: z.uuid(), permission: PermissionKey }).strict();
const FileParam = z.object({ file_id: z.uuid() }).strict();
const JobParam = z.object({ job_id: z.uuid() }).strict();
const ExportParam = z.object({ export_id: z.uuid() }).strict();
const KeyParam = z.object({ api_key_id: z.uuid() }).strict();
const DOWNLOAD_SECONDS = 300;

const MEMBER_ERRORS: Record<string, [number, string]> = {
  "42501": [403, "forbidden"],
  TN001: [409, "last_owner"],
  TN002: [403, "owners_only"],
  TN004: [403, "rank"],
  TN005: [403, "own_role"],
};
const JOB_ERRORS: Record<string, [number, string]> = {
  JB000: [503, "jobs_unavailable"],
  JB003: [404, "not_found"],
  JB004: [409, "job_state"],
};

const FILE_COLUMNS = (tx: postgres.TransactionSql) =>
  tx`id, name, size_bytes, declared_mime as mime_type, detected_mime, status::text as status, status_reason, sha256, category,
     created_at, processed_at, created_at::text as cursor_at`;

// ---------------------------------------------------------------------------------------------
export const ROUTES: RouteDef[] = [
  route({
    method: "GET",
    path: "/key",
    scope: null,
    summary: "The key itself: its organization, its scopes as they are now, and its request limit",
    response: Key,
    status: 200,
    async handle({ tx, caller }) {
      const [k] = await tx`
        select app.api_key_scopes(${caller.apiKeyId}) as scopes, t.api_requests_per_minute as requests_per_minute
        from public.organizations o join public.subscription_tiers t on t.tier = o.tier where o.id = ${caller.orgId}`;
      return { api_key_id: caller.apiKeyId, org_id: caller.orgId, ...k };
    },
  }),

  route({
    method: "GET",
    path: "/organization",
    scope: "org.read",
    summary: "The organization",
    response: Organization,
    status: 200,
    async handle({ tx, caller }) {
      const [o] = await tx`select id, name, slug, tier::text as tier, data_region, coppa, ferpa, settings, created_at
                           from public.organizations where id = ${caller.orgId}`;
      if (!o) throw notFound("organization");
      return o;
    },
  }),

  route({
    method: "PATCH",
    path: "/organization",
    scope: "settings.manage",
    summary: "Renames the organization or replaces its settings (a JSON object of at most 64 kB)",
    body: z.object({ name: z.string().trim().min(1).max(200).optional(), settings: Json.optional() }).strict()
      .refine((b) => b.name !== undefined || b.settings !== undefined, "give name, settings or both")
      .meta({ id: "OrganizationChange" }),
    response: Organization,
    status: 200,
    errors: { 400: ["invalid_settings"] },
    async handle({ tx, caller, body }) {
      try {
        const [o] = await tx`
          update public.organizations set name = coalesce(${body.name ?? null}, name),
                                          settings = coalesce(${
          body.settings ? tx.json(body.settings as never) : null
        }::jsonb, settings)
          where id = ${caller.orgId}
          returning id, name, slug, tier::text as tier, data_region, coppa, ferpa, settings, created_at`;
        if (!o) throw notFound("organization");
        return o;
      } catch (e) {
        return mapSqlErrors(e, { "23514": [400, "invalid_settings"], "42501": [403, "forbidden"] });
      }
    },
  }),

  route({
    method: "GET",
    path: "/members",
    scope: "org.read",
    summary: "The organization's members, oldest first",
    query: Page.strict(),
    response: page(Member, "Member"),
    status: 200,
    errors: { 400: ["invalid_cursor"] },
    async handle({ tx, caller, query }) {
      const after = query.cursor ? decodeCursor(query.cursor, 2) : null;
      const rows = await tx<{ user_id: string; cursor_at: string }[]>`
        select user_id, role::text as role, created_at as joined_at, created_at::text as cursor_at from public.organization_members
        where org_id = ${caller.orgId}
          ${after ? tx`and (created_at, user_id) > (${after[0]}::text::timestamptz, ${after[1]}::uuid)` : tx``}
        order by created_at, user_id limit ${query.limit + 1}`;
      return pageOf(rows, query.limit, (r) => [r.cursor_at, r.user_id]);
    },
  }),

  route({
    method: "PATCH",
    path: "/members/{user_id}",
    scope: "members.manage",
    summary: "Changes a member's role: only one ranked below the key's (its creator's, never above admin), to a role " +
      "below it; never to or from owner, never the key's creator's",
    params: UserParam,
    body: z.object({ role: Role }).strict().meta({ id: "RoleChange" }),
    response: Member,
    status: 200,
    errors: { 403: ["owners_only", "rank", "own_role"], 404: ["not_found"], 409: ["last_owner"] },
    async handle({ tx, caller, params, body }) {
      try {
        const [m] = await tx`
          update public.organization_members set role = ${body.role}::public.org_role
          where org_id = ${caller.orgId} and user_id = ${params.user_id}
          returning user_id, role::text as role, created_at as joined_at`;
        if (!m) throw notFound("member");
        return m;
      } catch (e) {
        return mapSqlErrors(e, MEMBER_ERRORS);
      }
    },
  }),

  route({
    method: "DELETE",
    path: "/members/{user_id}",
    scope: "members.manage",
    summary: "Removes a member ranked below the key (their keys and open invitations in the organization are revoked " +
      "with them)",
    params: UserParam,
    response: null,
    status: 204,
    errors: { 403: ["owners_only", "rank", "own_role"], 404: ["not_found"], 409: ["last_owner"] },
    async handle({ tx, caller, params }) {
      try {
        const gone =
          await tx`delete from public.organization_members where org_id = ${caller.orgId} and user_id = ${params.user_id}
                              returning 1`;
        if (!gone.length) throw notFound("member");
      } catch (e) {
        return mapSqlErrors(e, MEMBER_ERRORS);
      }
    },
  }),

  route({
    method: "PUT",
    path: "/members/{user_id}/permissions/{permission}",
    scope: "members.manage",
    summary: "Grants (true) or takes away (false) one permission from a member of a lower rank than the key's " +
      "(its creator's, never above admin); never the key's creator",
    params: OverrideParams,
    body: z.object({ granted: z.boolean() }).strict().meta({ id: "OverrideChange" }),
    response: Override,
    status: 200,
    errors: { 404: ["not_found"] },
    async handle({ tx, caller, params, body }) {
      try {
        const [o] = await tx`
          insert into public.member_permissions (org_id, user_id, permission, granted)
          values (${caller.orgId}, ${params.user_id}, ${params.permission}, ${body.granted})
          on conflict (org_id, user_id, permission) do update set granted = excluded.granted
          returning user_id, permission, granted`;
        return o;
      } catch (e) {
        return mapSqlErrors(e, { "42501": [403, "forbidden"], "23503": [404, "not_found"] });
      }
    },
  }),

  route({
    method: "DELETE",
    path: "/members/{user_id}/permissions/{permission}",
    scope: "members.manage",
    summary: "Removes a member's override: the role's default applies again",
    params: OverrideParams,
    response: null,
    status: 204,
    errors: { 404: ["not_found"] },
    async handle({ tx, caller, params }) {
      const gone = await tx`
        delete from public.member_permissions
        where org_id = ${caller.orgId} and user_id = ${params.user_id} and permission = ${params.permission} returning 1`;
      if (!gone.length) throw notFound("override the key may remove");
    },
  }),

  route({
    method: "GET",
    path: "/files",
    scope: "files.read",
    summary: "The organization's files the key may read, newest first",
    query: Page.extend({
      status: z.enum(["pending", "scanning", "clean", "infected", "rejected", "failed"]).optional(),
    }).strict(),
    response: page(File, "File"),
    status: 200,
    errors: { 400: ["invalid_cursor"] },
    async handle({ tx, caller, query }) {
      const before = query.cursor ? decodeCursor(query.cursor, 2) : null;
      const rows = await tx<{ id: string; cursor_at: string }[]>`
        select ${FILE_COLUMNS(tx)} from public.files
        where org_id = ${caller.orgId}
          ${query.status ? tx`and status = ${query.status}::public.file_status` : tx``}
          ${before ? tx`and (created_at, id) < (${before[0]}::text::timestamptz, ${before[1]}::uuid)` : tx``}
        order by created_at desc, id desc limit ${query.limit + 1}`;
      return pageOf(rows, query.limit, (r) => [r.cursor_at, r.id]);
    },
  }),

  route({
    method: "GET",
    path: "/files/{file_id}",
    scope: "files.read",
    summary: "One file: its status through scanning, and the verdict's reason",
    params: FileParam,
    response: File,
    status: 200,
    errors: { 404: ["not_found"] },
    async handle({ tx, caller, params }) {
      const [f] = await tx`select ${
        FILE_COLUMNS(tx)
      } from public.files where id = ${params.file_id} and org_id = ${caller.orgId}`;
      if (!f) throw notFound("file");
      return f;
    },
  }),

  route({
    method: "GET",
    path: "/files/{file_id}/download",
    scope: "files.read",
    summary: `A signed link to a clean file's bytes, working for ${DOWNLOAD_SECONDS} seconds`,
    params: FileParam,
    response: SignedLink,
    status: 200,
    errors: { 404: ["not_found"], 409: ["file_not_clean"] },
    async handle({ tx, caller, params, deps }) {
      const [f] = await tx<{ object_path: string; status: string; readable: boolean }[]>`
        select object_path, status::text as status, app.may_read_file_object(object_path) as readable
        from public.files where id = ${params.file_id} and org_id = ${caller.orgId}`;
      if (!f) throw notFound("file");
      if (f.status !== "clean") {
        throw new HttpError(409, "file_not_clean", `The file is ${f.status}; only clean files are served.`, { status: f.status });
      }
      if (!f.readable) throw notFound("file");
      return await signedLink(deps, "files", f.object_path);
    },
  }),

  route({
    method: "GET",
    path: "/analytics/series",
    scope: "analytics.read",
    summary: "One event type's counts per hour or day (zero where nothing happened), from the roll-ups",
    query: z.object({
      event_type: z.string().min(1).max(100),
      from: z.iso.datetime({ offset: true }),
      to: z.iso.datetime({ offset: true }),
      granularity: z.enum(["hour", "day"]).default("day"),
    }).strict(),
    response: z.object({ data: z.array(SeriesPoint) }).meta({ id: "Series" }),
    status: 200,
    errors: { 400: ["invalid_range"] },
    async handle({ tx, caller, query }) {
      try {
        const data = await tx`
          select bucket, events, users, sums
          from public.analytics_series(${caller.orgId}, ${query.event_type}, ${query.from}, ${query.to}, ${query.granularity})`;
        return { data };
      } catch (e) {
        return mapSqlErrors(e, { "22023": [400, "invalid_range"] });
      }
    },
  }),

  route({
    method: "GET",
    path: "/analytics/top-events",
    scope: "analytics.read",
    summary: "The most frequent event types of a range of whole UTC days",
    query: z.object({
      from: z.iso.datetime({ offset: true }),
      to: z.iso.datetime({ offset: true }),
      limit: z.coerce.number().int().min(1).max(100).default(10),
    }).strict(),
    response: z.object({ data: z.array(TopEvent) }).meta({ id: "TopEvents" }),
    status: 200,
    async handle({ tx, caller, query }) {
      const data = await tx`
        select event_type, events from public.analytics_top_events(${caller.orgId}, ${query.from}, ${query.to}, ${query.limit})`;
      return { data };
    },
  }),

  route({
    method: "GET",
    path: "/usage",
    scope: "analytics.read",
    summary: "A day's usage against the tier's limits (API calls include the keys')",
    query: z.object({ day: z.iso.date().optional().describe("UTC day; today when left out") }).strict(),
    response: z.object({ day: z.iso.date(), data: z.array(UsageFigure) }).meta({ id: "Usage" }),
    status: 200,
    async handle({ tx, caller, query }) {
      const day = query.day ?? new Date().toISOString().slice(0, 10);
      const data = await tx`
        select metric, used, limit_value as limit, percent from public.usage_versus_limits(${caller.orgId}, ${day}::date)`;
      return { day, data };
    },
  }),

  route({
    method: "GET",
    path: "/audit",
    scope: "audit.read",
    summary: "The organization's audit log, newest first",
    query: Page.strict(),
    response: page(AuditEntry, "AuditEntry"),
    status: 200,
    errors: { 400: ["invalid_cursor"] },
    async handle({ tx, caller, query }) {
      const before = query.cursor ? decodeCursor(query.cursor, 1) : null;
      if (before && !/^\d{1,19}$/.test(before[0])) throw new HttpError(400, "invalid_cursor", "The cursor is not valid.");
      const rows = await tx<{ id: string }[]>`
        select id::text as id, occurred_at, actor_user_id, actor_api_key_id, db_role, table_name, row_id, action, changed_columns,
               old_values, new_values, host(ip) as ip, user_agent, request_id
        from audit.log where org_id = ${caller.orgId} ${before ? tx`and id < ${before[0]}::bigint` : tx``}
        order by id desc limit ${query.limit + 1}`;
      return pageOf(rows, query.limit, (r) => [r.id]);
    },
  }),

  route({
    method: "GET",
    path: "/jobs",
    scope: "jobs.manage",
    summary: "The organization's background jobs, newest first (at most `limit`)",
    query: z.object({
      state: z.enum(["created", "retry", "active", "completed", "cancelled", "failed"]).optional(),
      limit: z.coerce.number().int().min(1).max(1000).default(100),
    }).strict(),
    response: z.object({ data: z.array(Job) }).meta({ id: "Jobs" }),
    status: 200,
    async handle({ tx, caller, query }) {
      const data = await tx`select * from public.list_jobs(${caller.orgId}, ${query.state ?? null}, ${query.limit})`;
      return { data };
    },
  }),

  ...(["retry", "cancel"] as const).map((action) =>
    route({
      method: "POST",
      path: `/jobs/{job_id}/${action}`,
      scope: "jobs.manage",
      summary: action === "retry" ? "Runs a failed job once more" : "Cancels a job that has not finished",
      params: JobParam,
      response: null,
      status: 204,
      errors: { 404: ["not_found"], 409: ["job_state"], 503: ["jobs_unavailable"] },
      async handle({ tx, params }) {
        try {
          if (action === "retry") await tx`select public.retry_job(${params.job_id})`;
          else await tx`select public.cancel_job(${params.job_id})`;
        } catch (e) {
          return mapSqlErrors(e, JOB_ERRORS);
        }
      },
    })
  ),

  route({
    method: "GET",
    path: "/exports",
    scope: "data.export",
    summary: "The organization's data exports, newest first (members request them; a key reads and downloads them)",
    query: Page.strict(),
    response: page(Export, "Export"),
    status: 200,
    errors: { 400: ["invalid_cursor"] },
    async handle({ tx, caller, query }) {
      const before = query.cursor ? decodeCursor(query.cursor, 2) : null;
      const rows = await tx<{ id: string; cursor_at: string }[]>`
        select id, status, progress, error, required_permissions, created_at, completed_at, created_at::text as cursor_at
        from public.data_exports
        where org_id = ${caller.orgId}
          ${before ? tx`and (created_at, id) < (${before[0]}::text::timestamptz, ${before[1]}::uuid)` : tx``}
        order by created_at desc, id desc limit ${query.limit + 1}`;
      return pageOf(rows, query.limit, (r) => [r.cursor_at, r.id]);
    },
  }),

  route({
    method: "GET",
    path: "/exports/{export_id}/download",
    scope: "data.export",
    summary: `A signed link to a finished export's archive, working for ${DOWNLOAD_SECONDS} seconds: the key needs every ` +
      "permission the archive needed (required_permissions)",
    params: ExportParam,
    response: SignedLink,
    status: 200,
    errors: { 404: ["not_found"], 409: ["export_not_ready"] },
    async handle({ tx, caller, params, deps }) {
      const [e] = await tx<{ object_path: string | null; status: string; readable: boolean }[]>`
        select object_path, status, coalesce(app.may_read_export_object(object_path), false) as readable
        from public.data_exports where id = ${params.export_id} and org_id = ${caller.orgId}`;
      if (!e) throw notFound("export");
      if (e.status !== "completed" || !e.object_path) {
        throw new HttpError(409, "export_not_ready", `The export is ${e.status}.`, { status: e.status });
      }
      if (!e.readable) throw new HttpError(403, "forbidden", "The archive needs permissions the key does not hold.");
      return await signedLink(deps, "exports", e.object_path);
    },
  }),

  route({
    method: "POST",
    path: "/notifications",
    scope: "notifications.send",
    summary: "Sends a notification to members, with the rules of the send_notification RPC (types, recipients, " +
      "idempotency key; delivery within the tier's notifications per minute)",
    body: NotificationRequest,
    response: NotificationSent,
    status: 201,
    errors: {
      400: ["unknown_notification_type", "recipient_not_member", "invalid_notification", "invalid_recipients"],
      403: ["system_notification_type"],
      422: ["no_email_template"],
    },
    async handle({ tx, caller, body }) {
      try {
        const [sent] = await tx`
          select batch_id, created from public.send_notification(${caller.orgId}, ${body.type}, ${body.title}, ${body.body},
            ${tx.json(body.data as never)}::jsonb, ${tx.json(body.recipients as never)}::jsonb, ${body.priority ?? null},
            ${body.idempotency_key ?? null})`;
        return sent;
      } catch (e) {
        return mapSqlErrors(e, {
          "42501": [403, "forbidden"],
          NT001: [400, "unknown_notification_type"],
          NT002: [400, "recipient_not_member"],
          NT003: [400, "invalid_notification"],
          NT004: [400, "invalid_recipients"],
          NT005: [422, "no_email_template"],
          NT006: [403, "system_notification_type"],
        });
      }
    },
  }),

  route({
    method: "GET",
    path: "/api-keys",
    scope: "api_keys.manage",
    summary: "The organization's API keys (never their secrets), newest first; keys are made by members only",
    query: Page.strict(),
    response: page(ApiKeyRow, "ApiKey"),
    status: 200,
    errors: { 400: ["invalid_cursor"] },
    async handle({ tx, caller, query }) {
      const before = query.cursor ? decodeCursor(query.cursor, 2) : null;
      const rows = await tx<{ id: string; cursor_at: string }[]>`
        select id, name, key_prefix, scopes, mqtt_topics, expires_at, last_used_at, revoked_at, created_at,
               created_at::text as cursor_at
        from public.api_keys
        where org_id = ${caller.orgId}
          ${before ? tx`and (created_at, id) < (${before[0]}::text::timestamptz, ${before[1]}::uuid)` : tx``}
        order by created_at desc, id desc limit ${query.limit + 1}`;
      return pageOf(rows, query.limit, (r) => [r.cursor_at, r.id]);
    },
  }),

  route({
    method: "POST",
    path: "/api-keys/{api_key_id}/revoke",
    scope: "api_keys.manage",
    summary: "Revokes a key of the organization (this one too)",
    params: KeyParam,
    response: null,
    status: 204,
    errors: { 404: ["not_found"] },
    async handle({ tx, params }) {
      try {
        await tx`select public.revoke_api_key(${params.api_key_id})`;
      } catch (e) {
        return mapSqlErrors(e, { TN026: [404, "not_found"] });
      }
    },
  }),

  route({
    method: "GET",
    path: "/exercises",
    scope: "exercises.control",
    summary: "The organization's exercises with their teams, newest first: the ids a device's control and feed topics " +
      "name on the broker",
    query: Page.strict(),
    response: page(Exercise, "Exercise"),
    status: 200,
    errors: { 400: ["invalid_cursor"] },
    async handle({ tx, caller, query }) {
      const before = query.cursor ? decodeCursor(query.cursor, 2) : null;
      const rows = await tx<{ id: string; cursor_at: string }[]>`
        select e.id, e.title, e.status, e.created_at, e.created_at::text as cursor_at,
               coalesce((select jsonb_agg(jsonb_build_object('id', t.id, 'name', t.name) order by t.name)
                         from public.exercise_teams t where t.exercise_id = e.id and t.org_id = e.org_id), '[]') as teams
        from public.exercises e
        where e.org_id = ${caller.orgId}
          ${before ? tx`and (e.created_at, e.id) < (${before[0]}::text::timestamptz, ${before[1]}::uuid)` : tx``}
        order by e.created_at desc, e.id desc limit ${query.limit + 1}`;
      return pageOf(rows, query.limit, (r) => [r.cursor_at, r.id]);
    },
  }),
];

async function signedLink(deps: OrgApiDeps, bucket: string, objectPath: string) {
  const { data, error } = await deps.storage.storage.from(bucket).createSignedUrl(objectPath, DOWNLOAD_SECONDS);
  if (error || !data) throw new HttpError(502, "storage_unavailable", "Storage did not sign a link; try again.");
  return { signed_url: data.signedUrl, expires_in: DOWNLOAD_SECONDS };
}

/** A route path as a matcher: /files/{file_id} → ^/files/(?<file_id>[^/]+)$ */
export function pathPattern(path: string): RegExp {
  return new RegExp(`^${path.replace(/\{([a-z_]+)\}/g, "(?<$1>[^/]+)")}$`);
}
