// Who someone is, for the columns that name a person (a file's uploader, an audit entry's actor):
// "you", their name or address from the member directory where the database lets the viewer know
// it, else their role. A user id is never shown.
import type { App } from "./app.ts";

const A_ROLE: Record<string, string> = { owner: "an owner", admin: "an admin", teacher: "a teacher", student: "a student" };

/** A function naming each user id of the organization for the viewer. */
export async function people(app: App, org: string): Promise<(id: string | null | undefined) => string> {
  const me = (await app.claims()).sub;
  // names, and addresses where policy lets this viewer know them (null otherwise)
  const { data } = await app.supabase.rpc("organization_members_directory", { org_id: org });
  const known = data ?? [];
  const byId = new Map(known.map((p) => [p.user_id, p]));
  return (id) => {
    if (!id) return "";
    if (id === me) return "you";
    const p = byId.get(id);
    if (!p) return "a former member";
    if (p.display_name && p.email) return `${p.display_name} (${p.email})`;
    return p.display_name ?? p.email ?? A_ROLE[p.role] ?? "a member";
  };
}
