// The audit log (holders of audit.read; the log's policy decides): who did what and when, newest
// first, a page at a time, each entry as a sentence. By default only what people and API keys did;
// the system's own steps (scans, counters, deliveries) on request.
import type { SupabaseClient } from "@supabase/supabase-js";
import type { App } from "../app.ts";
import { people } from "../people.ts";
import { el, fail, newestOnly, note, time } from "../ui.ts";

const PAGE = 25;

interface Entry {
  id: number;
  occurred_at: string;
  actor_user_id: string | null;
  actor_api_key_id: string | null;
  db_role: string;
  table_name: string;
  row_id: string;
  action: "INSERT" | "UPDATE" | "DELETE";
  changed_columns: string[];
  old_values: Record<string, unknown> | null;
  new_values: Record<string, unknown> | null;
}

/** What each audited table is, for an entry with no sentence of its own. */
const THING: Record<string, string> = {
  "public.organizations": "the organization",
  "public.organization_members": "a membership",
  "public.member_permissions": "a member's own permissions",
  "public.user_active_org": "the active organization",
  "public.invitations": "an invitation",
  "public.api_keys": "an API key",
  "public.files": "a file",
  "public.file_shares": "a file's sharing",
  "public.file_versions": "a file's versions",
  "public.file_texts": "a file's searchable text",
  "public.notifications": "notifications",
  "public.notification_preferences": "notification preferences",
  "public.notification_settings": "quiet hours and digests",
  "public.notification_templates": "a notification template",
  "public.storage_quotas": "the storage counter",
  "public.data_exports": "a data export",
  "public.exercises": "an exercise",
  "public.exercise_teams": "an exercise's teams",
  "public.exercise_team_members": "a team's members",
};
const VERB = { INSERT: "added", UPDATE: "changed", DELETE: "removed" } as const;
const FILE_STATUS: Record<string, string> = {
  scanning: "started checking",
  clean: "found clean",
  infected: "refused (a virus)",
  rejected: "refused",
  failed: "could not check",
};

type Names = { person: (id: string | null | undefined) => string; file: Map<string, string>; key: Map<string, string> };

/** One entry as a sentence (after its actor): "invited ann@school.org as teacher". */
function describe(e: Entry, names: Names): string {
  const n = e.new_values ?? {};
  const o = e.old_values ?? {};
  const s = (v: unknown) => (typeof v === "string" ? v : "");
  const changed = (c: string) => e.changed_columns.includes(c);
  switch (e.table_name) {
    case "public.organizations":
      if (e.action === "INSERT") return `created the organization ${s(n.name)}`;
      if (e.action === "DELETE") return "deleted the organization";
      if (changed("deleted_at")) return n.deleted_at ? "deleted the organization" : "restored the organization";
      if (changed("tier")) return `changed the plan to ${s(n.tier)}`;
      return `changed the organization's ${e.changed_columns.map((c) => c.replace(/_/g, " ")).join(", ")}`;
    case "public.organization_members": {
      const who = names.person(s(n.user_id) || s(o.user_id) || memberOf(e.row_id));
      if (e.action === "INSERT") return `added ${who} as ${s(n.role)}`;
      if (e.action === "DELETE") return `removed ${who} (${s(o.role)})`;
      return changed("role")
        ? `changed the role of ${who} from ${s(o.role)} to ${s(n.role)}`
        : `changed the membership of ${who}`;
    }
    case "public.user_active_org":
      return "switched to this organization";
    case "public.invitations":
      if (e.action === "INSERT") return `invited ${s(n.email)} as ${s(n.role)}`;
      if (changed("accepted_at") && n.accepted_at) return "accepted an invitation";
      if (changed("revoked_at") && n.revoked_at) return "withdrew an invitation";
      return `${VERB[e.action]} an invitation`;
    case "public.api_keys": {
      const name = s(n.name) || names.key.get(e.row_id);
      const key = name ? `the API key “${name}”` : "an API key";
      if (e.action === "INSERT") return `created ${key}`;
      if (changed("revoked_at") && n.revoked_at) return `revoked ${key}`;
      return `${VERB[e.action]} ${key}`;
    }
    case "public.files": {
      const name = s(n.name) || names.file.get(e.row_id);
      const file = name ? `the file “${name}”` : "a file";
      if (e.action === "INSERT") return `started uploading ${file}`;
      if (changed("deleted_at")) return n.deleted_at ? `deleted ${file}` : `restored ${file}`;
      if (changed("status")) return `${FILE_STATUS[s(n.status)] ?? "checked"} ${file}`;
      if (changed("thumbnail_path")) return `made a thumbnail of ${file}`;
      return `changed ${file}`;
    }
    case "public.exercises":
      return s(n.title) ? `${VERB[e.action]} the exercise “${s(n.title)}”` : `${VERB[e.action]} an exercise`;
    case "public.notifications":
      return `sent the notification “${s(n.title)}”`;
    default:
      return `${VERB[e.action]} ${THING[e.table_name] ?? "a record"}`;
  }
}

/** A membership's row id is its key columns as JSON ({"org_id": …, "user_id": …}). */
function memberOf(rowId: string) {
  try {
    return (JSON.parse(rowId) as { user_id?: string }).user_id ?? null;
  } catch {
    return null;
  }
}

function actor(e: Entry, names: Names) {
  if (e.actor_user_id) {
    const who = names.person(e.actor_user_id);
    return /^(you|an? )/.test(who) ? who.charAt(0).toUpperCase() + who.slice(1) : who;
  }
  if (e.actor_api_key_id) {
    const name = names.key.get(e.actor_api_key_id);
    return name ? `The API key “${name}”` : "An API key";
  }
  return "The system";
}

export async function auditScreen(app: App, root: HTMLElement) {
  const org = await app.orgId();
  root.append(el("h2", {}, "Audit log"));
  if (!org) return void root.append(el("p", {}, "Choose an organization first."));
  // the audit schema is not in the generated types (the console reads it as any client would)
  const audit = (app.supabase as unknown as SupabaseClient).schema("audit");
  const person = await people(app, org);
  const list = el("div", {});
  const listNote = note();
  const system = el("input", { type: "checkbox", id: "audit-system" });
  let page = 0;
  const ticket = newestOnly();
  const render = async () => {
    const current = ticket();
    const shown = page;
    let q = audit.from("log").select(
      "id, occurred_at, actor_user_id, actor_api_key_id, db_role, table_name, row_id, action, changed_columns, old_values, new_values",
      { count: "exact" },
    ).eq("org_id", org);
    if (!system.checked) q = q.or("actor_user_id.not.is.null,actor_api_key_id.not.is.null");
    const { data, error, count } = await q.order("occurred_at", { ascending: false }).order("id", { ascending: false })
      .range(shown * PAGE, shown * PAGE + PAGE - 1);
    if (!current()) return;
    if (error) return fail(listNote, error);
    const entries = (data ?? []) as Entry[];
    const fileIds = entries.filter((e) => e.table_name === "public.files").map((e) => e.row_id);
    const keyIds = [
      ...entries.filter((e) => e.table_name === "public.api_keys").map((e) => e.row_id),
      ...entries.map((e) => e.actor_api_key_id).filter((k): k is string => !!k),
    ];
    const [files, keys] = await Promise.all([
      fileIds.length ? app.supabase.from("files").select("id, name").in("id", [...new Set(fileIds)]) : { data: [] },
      keyIds.length ? app.supabase.from("api_keys").select("id, name").in("id", [...new Set(keyIds)]) : { data: [] },
    ]);
    if (!current()) return; // the names are asked after the page: a newer draw may have come meanwhile
    const names: Names = {
      person,
      file: new Map((files.data ?? []).map((f) => [f.id, f.name])),
      key: new Map((keys.data ?? []).map((k) => [k.id, k.name])),
    };
    const total = count ?? 0;
    list.replaceChildren(
      entries.length
        ? el(
          "table",
          { class: "audit" },
          el("thead", {}, el("tr", {}, ...["When", "Who", "What"].map((h) => el("th", { scope: "col" }, h)))),
          el(
            "tbody",
            {},
            ...entries.map((e) =>
              el("tr", {}, el("td", {}, time(e.occurred_at)), el("td", {}, actor(e, names)), el("td", {}, describe(e, names)))
            ),
          ),
        )
        : el("p", {}, "Nothing recorded yet."),
      el(
        "div",
        { class: "pager" },
        total ? el("span", {}, `Showing ${shown * PAGE + 1}–${shown * PAGE + entries.length} of ${total}`) : "",
        shown > 0 ? el("button", { type: "button", onclick: () => (page = shown - 1, void render()) }, "Newer entries") : "",
        (shown + 1) * PAGE < total
          ? el("button", { type: "button", onclick: () => (page = shown + 1, void render()) }, "Older entries")
          : "",
      ),
    );
  };
  system.addEventListener("change", () => (page = 0, void render()));
  root.append(
    el("p", {}, "Who changed what in the organization, newest first."),
    el("div", { class: "check" }, system, el("label", { for: system.id }, "Include the system's own steps (checks, counters)")),
    listNote,
    list,
  );
  await render();
}
