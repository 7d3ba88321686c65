// Sharing, for those who may write files: who sees the organization's files by role (the role
// defaults of files.read and files.write), the shares that give someone more (a person or a whole
// role, read or write, until a date), a form to add one and Unshare. A share that would give a role
// what its role already has is refused here, with the reason, so no share says more than it does.
// Files that are not ready (being checked, refused) are seen only by those who may write files,
// whatever is shared: the database hides them from readers.
import type { App, Role } from "../app.ts";
import { busy, el, fail, field, note, table, tell, when } from "../ui.ts";

const PLURAL: Record<Role, string> = { owner: "owners", admin: "admins", teacher: "teachers", student: "students" };
const ACCESS = { read: "see and download", write: "see, download, rename and delete" } as const;
type Access = keyof typeof ACCESS;

interface Share {
  id: string;
  file_id: string;
  grantee_user_id: string | null;
  grantee_role: Role | null;
  access: string;
  expires_at: string | null;
}

export async function sharesScreen(app: App, root: HTMLElement) {
  const claims = await app.claims();
  const org = claims.org_id;
  root.append(el("h2", {}, "Sharing"));
  if (!org) return void root.append(el("p", {}, "Choose an organization first."));
  const [defaults, directory] = await Promise.all([
    app.supabase.from("role_permissions").select("role, permission").in("permission", ["files.read", "files.write"]),
    app.supabase.rpc("organization_members_directory", { org_id: org }),
  ]);
  const has = (role: Role, access: Access) =>
    (defaults.data ?? []).some((d) =>
      d.role === role && (d.permission === "files.write" || (access === "read" && d.permission === "files.read"))
    );
  const people = new Map((directory.data ?? []).map((p) => [p.user_id, p.display_name ?? p.email ?? `a ${p.role}`]));
  const roles = ["owner", "admin", "teacher", "student"] as Role[];
  const writers = roles.filter((r) => has(r, "write"));
  const readers = roles.filter((r) => has(r, "read") && !has(r, "write"));
  const nobody = roles.filter((r) => !has(r, "read"));
  const sentence = (rs: Role[]) => rs.map((r) => PLURAL[r]).join(", ").replace(/^./, (c) => c.toUpperCase());
  root.append(
    el("h3", {}, "Who sees files"),
    el(
      "ul",
      {},
      writers.length
        ? el(
          "li",
          {},
          `${sentence(writers)}: every file, including those being checked or refused, and may upload, rename and delete.`,
        )
        : "",
      readers.length
        ? el("li", {}, `${sentence(readers)}: every ready file (see and download), nothing being checked or refused.`)
        : "",
      nobody.length ? el("li", {}, `${sentence(nobody)}: only what is shared with them.`) : "",
      el("li", {}, "Nobody can open a file refused as infected: its bytes are kept apart for the service."),
    ),
    el(
      "p",
      { class: "hint" },
      "Permissions an administrator sets for one member change this for them. A share adds access to one ready file.",
    ),
  );

  const list = el("div", {});
  const listNote = note();
  const fileSelect = el("select", { id: "share-file", required: true });
  const grantee = el("select", { id: "share-with", required: true });
  const access = el(
    "select",
    { id: "share-access" },
    ...(Object.keys(ACCESS) as Access[]).map((a) => el("option", { value: a }, `${a}: ${ACCESS[a]}`)),
  );
  const until = el("input", { type: "date", id: "share-until" });
  const formNote = note();
  let shares: Share[] = [];
  let names = new Map<string, string>();

  const render = async () => {
    const [s, files] = await Promise.all([
      app.supabase.from("file_shares").select("id, file_id, grantee_user_id, grantee_role, access, expires_at")
        .eq("org_id", org).order("created_at", { ascending: false }),
      app.supabase.from("files").select("id, name").eq("org_id", org).eq("status", "clean")
        .order("created_at", { ascending: false }).limit(200),
    ]);
    if (s.error) return fail(listNote, s.error);
    shares = (s.data ?? []) as Share[];
    names = new Map((files.data ?? []).map((f) => [f.id, f.name]));
    // a shared file may be older than the newest 200, or deleted (its share then grants nothing)
    const missing = shares.map((x) => x.file_id).filter((id) => !names.has(id));
    if (missing.length) {
      const { data } = await app.supabase.from("files").select("id, name").in("id", [...new Set(missing)]);
      for (const f of data ?? []) names.set(f.id, f.name);
    }
    fileSelect.replaceChildren(...(files.data ?? []).map((f) => el("option", { value: f.id }, f.name)));
    const shown = shares.filter((x) => names.has(x.file_id));
    list.replaceChildren(
      shown.length
        ? table(
          ["File", "With", "Access", "Until", ""],
          shown.map((x) => {
            const file = names.get(x.file_id)!;
            const who = withWhom(x);
            const result = note();
            return [
              file,
              who,
              ACCESS[x.access as Access] ?? x.access,
              x.expires_at ? when(x.expires_at) : "no end",
              el(
                "div",
                { class: "row-actions" },
                el("button", {
                  type: "button",
                  class: "danger",
                  onclick: (e: Event) =>
                    busy(e.currentTarget as HTMLButtonElement, async () => {
                      const r = await app.supabase.from("file_shares").delete().eq("id", x.id).select("id");
                      if (r.error) return fail(result, r.error);
                      await render();
                      tell(listNote, `${file} is no longer shared with ${who}.`, "ok");
                    }),
                }, `Unshare ${file} with ${who}`),
                result,
              ),
            ];
          }),
        )
        : el("p", {}, "Nothing is shared beyond what each role sees."),
    );
  };
  const withWhom = (x: Share) =>
    x.grantee_role ? `all ${PLURAL[x.grantee_role]}` : people.get(x.grantee_user_id ?? "") ?? "a former member";

  grantee.append(
    el(
      "optgroup",
      { label: "Everyone with the role" },
      ...roles.filter((r) => r !== "owner").map((r) => el("option", { value: `role:${r}` }, `all ${PLURAL[r]}`)),
    ),
    el(
      "optgroup",
      { label: "One person" },
      ...(directory.data ?? []).filter((p) => p.user_id !== claims.sub).map((p) =>
        el("option", { value: `user:${p.user_id}` }, `${people.get(p.user_id)} (${p.role})`)
      ),
    ),
  );

  root.append(
    el("h3", {}, "Shares"),
    listNote,
    list,
    el(
      "form",
      {
        "aria-label": "Share a file",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const [kind, id] = grantee.value.split(":");
          const wanted = access.value as Access;
          const file = names.get(fileSelect.value) ?? "";
          if (!fileSelect.value) return tell(formNote, "There is no ready file to share yet.", "error");
          if (kind === "role" && has(id as Role, wanted)) {
            return tell(formNote, {
              text: `All ${PLURAL[id as Role]} can already ${ACCESS[wanted]} every ready file: this share would change nothing.`,
              hint: wanted === "read" ? "Give write access, or share with one person whose role cannot read files." : "",
            }, "error");
          }
          const person = (directory.data ?? []).find((p) => p.user_id === id);
          if (kind === "user" && person && has(person.role, wanted)) {
            return tell(formNote, {
              text: `${people.get(id)} is a ${person.role} and can already ${ACCESS[wanted]} every ready file.`,
              hint: "",
            }, "error");
          }
          const same = shares.find((x) =>
            x.file_id === fileSelect.value && x.access === wanted &&
            (kind === "role" ? x.grantee_role === id : x.grantee_user_id === id)
          );
          if (same) return tell(formNote, `${file} is already shared that way with ${withWhom(same)}.`, "error");
          await busy((e.target as HTMLFormElement).querySelector("button")!, async () => {
            const r = await app.supabase.from("file_shares").insert({
              org_id: org,
              file_id: fileSelect.value,
              ...(kind === "role" ? { grantee_role: id as Role } : { grantee_user_id: id }),
              access: wanted,
              // until the end of the chosen day, in the person's time zone
              expires_at: until.value ? new Date(`${until.value}T23:59:59`).toISOString() : null,
            });
            if (r.error) return fail(formNote, r.error);
            await render();
            const who = kind === "role" ? `all ${PLURAL[id as Role]}` : people.get(id);
            tell(formNote, `${file} is shared with ${who}: they may ${ACCESS[wanted]} it.`, "ok");
          });
        },
      },
      el("h3", {}, "Share a file"),
      field("File", fileSelect),
      field("With", grantee),
      field("Access", access),
      field("Until (optional)", until),
      el("button", { type: "submit" }, "Share"),
      formNote,
    ),
  );
  await render();
}
