// POST /object/list-v2/{bucket}: Storage's cursor-paged listing (storage-js `listV2`). Names are
// full keys; with `with_delimiter` everything below the next "/" folds into one folder entry
// ("a/b/"). The cursor is Storage's own continuation token (base64 of "l:<last key>\no:<order>
// \nc:<column>\na:<column value>") so a client that kept a cursor from hosted Storage's format
// reads ours the same way. Rows come from storage.objects as the caller, so SELECT policies decide.
import type postgres from "postgres";
import { z } from "zod";

export const ListV2Body = z.object({
  prefix: z.string().max(1024).default(""),
  limit: z.number().int().min(1).default(1000).transform((n) => Math.min(n, 1000)),
  cursor: z.string().max(4096).optional(),
  with_delimiter: z.boolean().default(false),
  sortBy: z.object({
    column: z.enum(["name", "updated_at", "created_at"]),
    order: z.enum(["asc", "desc"]).default("asc"),
  }).optional(),
});
export type ListV2Request = z.infer<typeof ListV2Body>;

interface Cursor {
  startAfter: string;
  order: "asc" | "desc";
  column: "name" | "updated_at" | "created_at";
  after?: string;
}

const PARTS = { l: "startAfter", o: "order", c: "column", a: "after" } as const;

export function encodeCursor(c: Cursor): string {
  const lines = [`l:${c.startAfter}`, `o:${c.order}`, `c:${c.column}`];
  if (c.after) lines.push(`a:${c.after}`);
  return Buffer.from(lines.join("\n")).toString("base64");
}

/** The cursor's fields, or null when it is not a continuation token this listing issued. */
export function decodeCursor(token: string): Cursor | null {
  const c: Partial<Record<(typeof PARTS)[keyof typeof PARTS], string>> = {};
  for (const part of Buffer.from(token, "base64").toString().split("\n")) {
    const m = /^(\S):(.*)$/s.exec(part);
    if (!m || !(m[1] in PARTS)) return null;
    c[PARTS[m[1] as keyof typeof PARTS]] = m[2];
  }
  const parsed = z.object({
    startAfter: z.string(),
    order: z.enum(["asc", "desc"]).default("asc"),
    column: z.enum(["name", "updated_at", "created_at"]).default("name"),
    after: z.string().regex(/^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}(:?\d{2})?|Z)$/).optional(),
  }).safeParse(c);
  return parsed.success ? parsed.data : null;
}

interface Entry {
  name: string;
  id: string | null;
  updated_at: Date | null;
  created_at: Date | null;
  last_accessed_at: Date | null;
  metadata: Record<string, unknown> | null;
}

export interface ListV2Result {
  hasNext: boolean;
  nextCursor?: string;
  folders: { name: string; key: string }[];
  objects: (Entry & { key: string })[];
}

/** One page of the listing, read through `tx` (a transaction already running as the caller). */
export async function listV2(
  tx: postgres.TransactionSql,
  bucket: string,
  req: ListV2Request,
  cursor: Cursor | null,
): Promise<ListV2Result> {
  const order = cursor?.order ?? req.sortBy?.order ?? "asc";
  const column = cursor?.column ?? req.sortBy?.column ?? "name";
  const desc = order === "desc";
  const prefix = req.prefix;
  // A folder sorts by its earliest creation and its latest update. The cursor's time goes in as
  // text: postgres.js would send a timestamptz parameter through Date, losing the microseconds.
  const rows: (Entry & { sort_at: string | null })[] = await tx`
    with visible as (
      select o.*,
             case when ${req.with_delimiter} and position('/' in substr(o.name, ${prefix.length + 1})) > 0
                  then ${prefix} || split_part(substr(o.name, ${prefix.length + 1}), '/', 1) || '/' end as folder
      from storage.objects o
      where o.bucket_id = ${bucket} and starts_with(o.name, ${prefix})
    ), entries as (
      select folder as name, null::uuid as id, max(updated_at) as updated_at, min(created_at) as created_at,
             null::timestamptz as last_accessed_at, null::jsonb as metadata
      from visible where folder is not null group by folder
      union all
      select name, id, updated_at, created_at, last_accessed_at, metadata from visible where folder is null
    )
    select *, ${column === "name" ? tx`null` : tx`${tx(column)}::text`} as sort_at from entries
    where ${cursor === null} or ${
    column === "name"
      ? desc ? tx`name collate "C" < ${cursor?.startAfter ?? ""}` : tx`name collate "C" > ${cursor?.startAfter ?? ""}`
      : desc
      ? tx`(${tx(column)}, name collate "C") < (${cursor?.after ?? null}::text::timestamptz, ${cursor?.startAfter ?? ""})`
      : tx`(${tx(column)}, name collate "C") > (${cursor?.after ?? null}::text::timestamptz, ${cursor?.startAfter ?? ""})`
  }
    order by ${column === "name" ? tx`name collate "C"` : tx(column)} ${desc ? tx`desc` : tx`asc`}, name collate "C" ${
    desc ? tx`desc` : tx`asc`
  }
    limit ${req.limit + 1}`;
  const page = rows.slice(0, req.limit);
  const last = page.at(-1);
  const hasNext = rows.length > req.limit && last !== undefined;
  return {
    hasNext,
    nextCursor: hasNext
      ? encodeCursor({
        startAfter: last.name,
        order,
        column,
        after: last.sort_at ?? undefined,
      })
      : undefined,
    folders: page.filter((e) => e.id === null).map((e) => ({ name: e.name, key: e.name })),
    objects: page.filter((e) => e.id !== null).map(({ sort_at: _, ...e }) => ({ ...e, key: e.name })),
  };
}
