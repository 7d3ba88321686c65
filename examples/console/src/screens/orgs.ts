// Organizations: create, switch (the token's claims follow), members with their roles (change,
// remove), invitations (invite several addresses, resend, revoke); and the page an invitation link
// lands on. What is offered follows the token's permissions; the database decides.
import { type App, RANK, type Role } from "../app.ts";
import { explain, readable } from "../errors.ts";
import { busy, el, fail, field, note, tell, time } from "../ui.ts";

const ROLES: Role[] = ["student", "teacher", "admin", "owner"];

export async function orgsScreen(app: App, root: HTMLElement) {
  const claims = await app.claims();
  const active = claims.org_id;
  const { data: orgs, error } = await app.supabase.from("organizations").select("id, name, slug, tier").order("name");
  root.append(el("h2", {}, "Organizations"));
  if (error) return void root.append(el("p", { class: "note error" }, await readable(error)));
  const name = el("input", { required: true, maxlength: "100", autocomplete: "organization" });
  const slug = el("input", { required: true, pattern: "[a-z0-9\\-]{3,48}", "aria-describedby": "slug-help" });
  const switchNote = note();
  const createNote = note();
  if (!orgs?.length) {
    root.append(
      el("p", {}, "You are not in an organization yet. Create your school below, or open the invitation link you were mailed."),
    );
  }
  root.append(
    orgs?.length
      ? el(
        "table",
        {},
        el(
          "thead",
          {},
          el("tr", {}, el("th", { scope: "col" }, "Name"), el("th", { scope: "col" }, "Plan"), el("th", { scope: "col" }, "")),
        ),
        el(
          "tbody",
          {},
          ...orgs.map((o) =>
            el(
              "tr",
              {},
              el("td", {}, o.name),
              el("td", {}, o.tier),
              el(
                "td",
                {},
                o.id === active ? el("strong", {}, "active") : el("button", {
                  type: "button",
                  onclick: async (e: Event) =>
                    busy(e.currentTarget as HTMLButtonElement, async () => {
                      const r = await app.supabase.rpc("set_active_organization", { org_id: o.id });
                      if (r.error) return fail(switchNote, r.error);
                      await app.supabase.auth.refreshSession(); // the token's org claims follow
                      location.reload();
                    }),
                }, `Switch to ${o.name}`),
              ),
            )
          ),
        ),
      )
      : "",
    switchNote,
    el(
      "form",
      {
        "aria-label": "New organization",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          await busy((e.target as HTMLFormElement).querySelector("button")!, async () => {
            const r = await app.supabase.rpc("create_organization", { name: name.value, slug: slug.value });
            if (r.error) {
              return fail(createNote, r.error, {
                "23505": { text: "That short name is taken.", hint: "Choose another one." },
                "23514": {
                  text: "The name or short name is not accepted.",
                  hint: "Short names: 3 to 48 lower-case letters, digits or -.",
                },
              });
            }
            await app.supabase.auth.refreshSession();
            location.reload();
          });
        },
      },
      el("h3", {}, "New organization"),
      field("Name", name),
      field("Slug", slug),
      el("p", { id: "slug-help", class: "hint" }, "3 to 48 lower-case letters, digits or -; used in addresses."),
      el("button", { type: "submit" }, "Create organization"),
      createNote,
    ),
  );
  if (!active) return;

  const members = el("div", {});
  const membersNote = note();
  const invitations = el("div", {});
  const can = (p: string) => claims.permissions.includes(p);
  const myRank = claims.org_role ? RANK[claims.org_role] : 0;
  const renderMembers = async () => {
    const [{ data: rows, error: e1 }, { data: accepted }, { data: session }] = await Promise.all([
      app.supabase.from("organization_members").select("user_id, role, created_at").eq("org_id", active)
        .order("created_at"),
      // the addresses members were invited at: readable to those who invite (RLS)
      can("members.invite")
        ? app.supabase.from("invitations").select("email, accepted_by").eq("org_id", active).not("accepted_by", "is", null)
        : Promise.resolve({ data: [] as { email: string; accepted_by: string | null }[] }),
      app.supabase.auth.getSession(),
    ]);
    if (e1) return members.replaceChildren(el("p", { class: "note error" }, await readable(e1)));
    const emails = new Map((accepted ?? []).map((i) => [i.accepted_by, i.email]));
    const me = session.session?.user;
    const who = (id: string) =>
      id === me?.id ? `${me.email ?? "you"} (you)` : emails.get(id) ?? "A member (address not shown to your role)";
    members.replaceChildren(
      el(
        "table",
        {},
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            el("th", { scope: "col" }, "Member"),
            el("th", { scope: "col" }, "Role"),
            el("th", { scope: "col" }, "Since"),
          ),
        ),
        el(
          "tbody",
          {},
          ...(rows ?? []).map((m) => {
            const label = who(m.user_id);
            const mayChange = can("members.manage") && m.user_id !== me?.id &&
              (claims.org_role === "owner" || RANK[m.role as Role] < myRank);
            return el(
              "tr",
              {},
              el("td", {}, label),
              el("td", {}, mayChange ? memberControls(m, label) : m.role),
              el("td", {}, time(m.created_at)),
            );
          }),
        ),
      ),
    );
  };
  const memberControls = (m: { user_id: string; role: string }, label: string) => {
    const result = note();
    const role = el(
      "select",
      { "aria-label": `Role of ${label}` },
      ...ROLES.filter((r) => claims.org_role === "owner" || RANK[r] < myRank).map((r) =>
        el("option", { value: r, ...(r === m.role ? { selected: true } : {}) }, r)
      ),
    );
    return el(
      "div",
      { class: "row-actions" },
      role,
      el("button", {
        type: "button",
        onclick: async (e: Event) =>
          busy(e.currentTarget as HTMLButtonElement, async () => {
            const r = await app.supabase.from("organization_members").update({ role: role.value as Role })
              .eq("org_id", active).eq("user_id", m.user_id).select("role");
            if (r.error) return fail(result, r.error);
            if (!r.data.length) return tell(result, await explain({ code: "42501" }), "error");
            await renderMembers();
            tell(membersNote, `${label} is now ${role.value}.`, "ok");
          }),
      }, `Change role of ${label}`),
      el("button", {
        type: "button",
        class: "danger",
        onclick: async (e: Event) => {
          if (!confirm(`Remove ${label} from the organization?`)) return;
          await busy(e.currentTarget as HTMLButtonElement, async () => {
            const r = await app.supabase.from("organization_members").delete().eq("org_id", active).eq("user_id", m.user_id)
              .select("user_id");
            if (r.error) return fail(result, r.error);
            if (!r.data.length) return tell(result, await explain({ code: "42501" }), "error");
            await renderMembers();
            tell(membersNote, `${label} was removed.`, "ok");
          });
        },
      }, `Remove ${label}`),
      result,
    );
  };
  root.append(el("h3", {}, "Members"), membersNote, members);
  await renderMembers();
  if (!can("members.invite")) return;

  const renderInvitations = async () => {
    const { data, error } = await app.supabase.from("invitations")
      .select("id, email, role, expires_at").eq("org_id", active).is("accepted_at", null).is("revoked_at", null)
      .order("created_at", { ascending: false });
    if (error) return invitations.replaceChildren(el("p", { class: "note error" }, await readable(error)));
    if (!data.length) return invitations.replaceChildren(el("p", {}, "No open invitations."));
    invitations.replaceChildren(el(
      "table",
      {},
      el("thead", {}, el("tr", {}, ...["E-mail", "Role", "Expires", ""].map((h) => el("th", { scope: "col" }, h)))),
      el(
        "tbody",
        {},
        ...data.map((i) => {
          const result = note();
          return el(
            "tr",
            {},
            el("td", {}, i.email),
            el("td", {}, i.role),
            el("td", {}, time(i.expires_at)),
            el(
              "td",
              {},
              el(
                "div",
                { class: "row-actions" },
                el("button", {
                  type: "button",
                  onclick: async (e: Event) =>
                    busy(e.currentTarget as HTMLButtonElement, async () => {
                      // inviting the same address again replaces the open invitation, with the same role
                      const r = await invite(app, active, i.email, i.role as Role);
                      if (r) return tell(result, r, "error");
                      await renderInvitations();
                      tell(inviteNote, `Invitation sent again to ${i.email} (${i.role}).`, "ok");
                    }),
                }, `Resend to ${i.email}`),
                el("button", {
                  type: "button",
                  class: "danger",
                  onclick: async (e: Event) =>
                    busy(e.currentTarget as HTMLButtonElement, async () => {
                      const r = await app.supabase.rpc("revoke_invitation", { invitation_id: i.id });
                      if (r.error) return fail(result, r.error);
                      await renderInvitations();
                      tell(inviteNote, `The invitation to ${i.email} was withdrawn.`, "ok");
                    }),
                }, `Revoke ${i.email}`),
                result,
              ),
            ),
          );
        }),
      ),
    ));
  };

  const emails = el("textarea", {
    id: "invite-emails",
    required: true,
    rows: "2",
    autocomplete: "off",
    "aria-describedby": "invite-help",
  });
  const role = el(
    "select",
    { id: "invite-role" },
    ...ROLES.filter((r) => claims.org_role === "owner" || RANK[r] < myRank).map((r) => el("option", { value: r }, r)),
  );
  const inviteNote = note();
  root.append(
    el("h3", {}, "Invitations"),
    invitations,
    el(
      "form",
      {
        "aria-label": "Invite",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const addresses = [...new Set(emails.value.split(/[\s,;]+/).map((a) => a.trim().toLowerCase()).filter(Boolean))];
          if (!addresses.length) return tell(inviteNote, CODES_INVALID_EMAIL, "error");
          await busy((e.target as HTMLFormElement).querySelector("button")!, async () => {
            const sent: string[] = [];
            const refused: string[] = [];
            for (const a of addresses) {
              const r = await invite(app, active, a, role.value as Role);
              if (r) refused.push(`${a}: ${r.text} ${r.hint ?? ""}`.trim());
              else sent.push(a);
            }
            await renderInvitations();
            if (!refused.length) {
              emails.value = "";
              return tell(inviteNote, `Invitation sent to ${sent.join(", ")} as ${role.value}.`, "ok");
            }
            emails.value = refused.map((r) => r.split(":")[0]).join("\n"); // what is left to fix
            tell(
              inviteNote,
              `${sent.length ? `Invitation sent to ${sent.join(", ")} as ${role.value}. ` : ""}Not sent: ${refused.join("; ")}`,
              "error",
            );
          });
        },
      },
      el("label", { for: emails.id }, "E-mail addresses"),
      emails,
      el("p", { id: "invite-help", class: "hint" }, "One or more, separated by commas or new lines."),
      field("Role", role),
      el("button", { type: "submit" }, "Invite"),
      inviteNote,
    ),
  );
  await renderInvitations();
}

const CODES_INVALID_EMAIL = { text: "Enter at least one e-mail address.", hint: "" };

/** Sends (or sends again) an invitation; the reason when it was not sent. */
async function invite(app: App, org: string, email: string, role: Role) {
  const r = await app.supabase.functions.invoke("member-invite", { body: { org_id: org, email, role } });
  return r.error ? await explain(r.error) : null;
}

/** Where an invitation link lands: signed in by the link; a new person sets a password, then accepts. */
export async function acceptScreen(app: App, root: HTMLElement, token: string) {
  const password = el("input", { type: "password", autocomplete: "new-password", minlength: "6" });
  const result = note();
  root.append(
    el("h2", {}, "Accept the invitation"),
    el(
      "form",
      {
        "aria-label": "Accept invitation",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          await busy((e.target as HTMLFormElement).querySelector("button")!, async () => {
            if (password.value) {
              const u = await app.supabase.auth.updateUser({ password: password.value });
              if (u.error) return fail(result, u.error);
            }
            const r = await app.supabase.rpc("accept_invitation", { token });
            if (r.error) return fail(result, r.error);
            await app.supabase.rpc("set_active_organization", { org_id: r.data.org_id });
            await app.supabase.auth.refreshSession();
            result.replaceChildren();
            tell(result, `You joined as ${r.data.role}.`, "ok");
            result.append(" ", el("a", { href: "/#/files" }, "Go to the files"));
          });
        },
      },
      field("Choose a password (new accounts)", password),
      el("button", { type: "submit" }, "Accept"),
      result,
    ),
  );
}
