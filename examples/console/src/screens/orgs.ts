// Organizations: create, switch (the token's claims follow), the active one's members and
// invitations (members.ts); and the page an invitation link lands on.
import type { App } from "../app.ts";
import { readable } from "../errors.ts";
import { busy, el, fail, field, note, tell } from "../ui.ts";
import { membersSection } from "./members.ts";

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
                  onclick: (e: Event) =>
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

  await membersSection(app, root, claims, active);
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
