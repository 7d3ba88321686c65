// Who someone is, for the columns that name a person (a file's uploader, an audit entry's actor):
// "you", their name or address from the member directory where the database lets the viewer know
// it, else their role. A user id is never shown.
import type { App } from "./app.ts";

interface Person {
  user_id: string;
  display_name: string | null;
  email: string | null;
  role: string;
}

const A_ROLE: Record<string, string> = { owner: "an owner", admin: "an admin", teacher: "a teacher", student: "a student" };

/** A function naming each user id of the organization for the viewer. */
export async function people(app: App, org: string): Promise<(id: string | null | undefined) => string> {
  const me = (await app.claims()).sub;
  // the directory names members (name, and address where policy allows); without it, roles only
  const rpc = app.supabase.rpc as unknown as (
    fn: string,
    args: Record<string, unknown>,
  ) => PromiseLike<{ data: Person[] | null; error: unknown }>;
  const directory = await rpc.call(app.supabase, "organization_members_directory", { org_id: org });
  let known: Person[] = directory.data ?? [];
  if (directory.error) {
    const { data } = await app.supabase.from("organization_members").select("user_id, role").eq("org_id", org);
    known = (data ?? []).map((m) => ({ user_id: m.user_id, display_name: null, email: null, role: m.role }));
  }
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
