// Organizations: create, switch (the token's claims follow), members with roles, invite by e-mail,
// revoke an invitation; and the page an invitation link lands on.
import type { App } from "../app.ts";
import { readable } from "../errors.ts";
import { el, field, say, table } from "../ui.ts";

export async function orgsScreen(app: App, root: HTMLElement) {
  const active = await app.orgId();
  const { data: orgs, error } = await app.supabase.from("organizations").select("id, name, slug, tier").order("name");
  if (error) return say(await readable(error));
  const name = el("input", { required: true, maxlength: "100" });
  const slug = el("input", { required: true, pattern: "[a-z0-9\\-]{3,48}" });
  root.append(
    el("h2", {}, "Organizations"),
    table(
      ["Name", "Plan", ""],
      (orgs ?? []).map((o) => [
        o.name,
        o.tier,
        o.id === active ? "active" : el("button", {
          type: "button",
          onclick: async () => {
            const r = await app.supabase.rpc("set_active_organization", { org_id: o.id });
            if (r.error) return say(await readable(r.error));
            await app.supabase.auth.refreshSession(); // the token's org claims follow
            location.reload();
          },
        }, `Switch to ${o.name}`),
      ]),
    ),
    el(
      "form",
      {
        "aria-label": "New organization",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const r = await app.supabase.rpc("create_organization", { name: name.value, slug: slug.value });
          if (r.error) return say(await readable(r.error));
          await app.supabase.auth.refreshSession();
          location.reload();
        },
      },
      field("Name", name),
      field("Slug", slug),
      el("button", { type: "submit" }, "Create organization"),
    ),
  );
  if (!active) return;

  const { data: members } = await app.supabase.from("organization_members").select("user_id, role").eq("org_id", active);
  const { data: invitations } = await app.supabase.from("invitations")
    .select("id, email, role, expires_at").eq("org_id", active).is("accepted_at", null).is("revoked_at", null);
  const email = el("input", { type: "email", required: true });
  const role = el("select", {}, ...["student", "teacher", "admin", "owner"].map((r) => el("option", { value: r }, r)));
  root.append(
    el("h3", {}, "Members"),
    table(["User", "Role"], (members ?? []).map((m) => [m.user_id, m.role])),
    el("h3", {}, "Invitations"),
    table(
      ["E-mail", "Role", "Expires", ""],
      (invitations ?? []).map((i) => [
        i.email,
        i.role,
        new Date(i.expires_at).toLocaleString(),
        el("button", {
          type: "button",
          onclick: async () => {
            const r = await app.supabase.rpc("revoke_invitation", { invitation_id: i.id });
            say(r.error ? await readable(r.error) : "Invitation revoked.", !r.error);
          },
        }, `Revoke ${i.email}`),
      ]),
    ),
    el(
      "form",
      {
        "aria-label": "Invite",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const r = await app.supabase.functions.invoke("member-invite", {
            body: { org_id: active, email: email.value, role: role.value },
          });
          say(r.error ? await readable(r.error) : `Invitation sent to ${email.value}.`, !r.error);
        },
      },
      field("E-mail", email),
      field("Role", role),
      el("button", { type: "submit" }, "Invite"),
    ),
  );
}

/** Where an invitation link lands: signed in by the link; a new person sets a password, then accepts. */
export async function acceptScreen(app: App, root: HTMLElement, token: string) {
  const password = el("input", { type: "password", autocomplete: "new-password", minlength: "6" });
  root.append(
    el("h2", {}, "Accept the invitation"),
    el(
      "form",
      {
        "aria-label": "Accept invitation",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          if (password.value) {
            const u = await app.supabase.auth.updateUser({ password: password.value });
            if (u.error) return say(await readable(u.error));
          }
          const r = await app.supabase.rpc("accept_invitation", { token });
          if (r.error) return say(await readable(r.error));
          await app.supabase.rpc("set_active_organization", { org_id: r.data.org_id });
          await app.supabase.auth.refreshSession();
          say(`You joined as ${r.data.role}.`, true);
        },
      },
      field("Choose a password (new accounts)", password),
      el("button", { type: "submit" }, "Accept"),
    ),
  );
}
