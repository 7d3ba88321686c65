// API keys (holders of api_keys.manage): create with scopes and an expiry (the key is shown once,
// with a copy button), when each was last used, revoke after a confirmation.
import type { App } from "../app.ts";
import { busy, el, fail, field, note, tell, time } from "../ui.ts";

const EXPIRY: [string, string][] = [["30", "in 30 days"], ["90", "in 90 days"], ["365", "in a year"], ["", "never"]];

export async function keysScreen(app: App, root: HTMLElement) {
  const claims = await app.claims();
  const org = claims.org_id;
  root.append(el("h2", {}, "API keys"));
  if (!org) return void root.append(el("p", {}, "Choose an organization first."));
  const list = el("div", {});
  const listNote = note();
  const render = async () => {
    const { data, error } = await app.supabase.from("api_keys").select(
      "id, name, key_prefix, scopes, expires_at, last_used_at, revoked_at",
    )
      .eq("org_id", org).order("created_at", { ascending: false });
    if (error) return fail(listNote, error);
    if (!data.length) return list.replaceChildren(el("p", {}, "No keys yet."));
    list.replaceChildren(el(
      "table",
      {},
      el(
        "thead",
        {},
        el("tr", {}, ...["Name", "Starts with", "Scopes", "Expires", "Last used", ""].map((h) => el("th", { scope: "col" }, h))),
      ),
      el(
        "tbody",
        {},
        ...data.map((k) => {
          const result = note();
          return el(
            "tr",
            {},
            el("td", {}, k.name),
            el("td", {}, el("code", {}, k.key_prefix)),
            el("td", {}, k.scopes.join(", ")),
            el("td", {}, k.expires_at ? time(k.expires_at) : "never"),
            el("td", {}, k.last_used_at ? time(k.last_used_at) : "never"),
            el(
              "td",
              {},
              k.revoked_at ? "revoked" : el("button", {
                type: "button",
                class: "danger",
                onclick: async (e: Event) => {
                  if (!confirm(`Revoke ${k.name}? Whatever uses it stops working at once.`)) return;
                  await busy(e.currentTarget as HTMLButtonElement, async () => {
                    const r = await app.supabase.rpc("revoke_api_key", { api_key_id: k.id });
                    if (r.error) return fail(result, r.error);
                    await render();
                    tell(listNote, `Key ${k.name} revoked.`, "ok");
                  });
                },
              }, `Revoke ${k.name}`),
              result,
            ),
          );
        }),
      ),
    ));
  };
  const name = el("input", { required: true, maxlength: "100" });
  const expiry = el("select", {}, ...EXPIRY.map(([v, label]) => el("option", { value: v }, label)));
  // every scope the database accepts is a permission of the catalog, with its description; a key
  // never gets a permission its creator lacks (TN025), so only those are offered
  const catalog = await app.supabase.from("permissions").select("key, description").order("key");
  if (catalog.error) {
    root.append(listNote);
    return fail(listNote, catalog.error);
  }
  const offered = catalog.data.filter((p) => claims.permissions.includes(p.key)).map((p) => [p.key, p.description] as const);
  const boxes = offered.map(([s]) => el("input", { type: "checkbox", value: s, id: `scope-${s}` }));
  const result = note();
  const shown = el("div", { "aria-live": "polite" });
  const form = el(
    "form",
    {
      "aria-label": "New API key",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const scopes = boxes.filter((b) => b.checked).map((b) => b.value);
        if (!scopes.length) {
          return tell(result, { text: "Tick at least one scope.", hint: "A key can only do what its scopes allow." }, "error");
        }
        await busy(form.querySelector("button[type=submit]")!, async () => {
          const days = Number(expiry.value);
          const r = await app.supabase.rpc("create_api_key", {
            org_id: org,
            name: name.value,
            scopes,
            ...(days ? { expires_at: new Date(Date.now() + days * 86_400_000).toISOString() } : {}),
          });
          if (r.error) {
            return fail(result, r.error, {
              "23514": { text: "That name is not accepted.", hint: "Use 1 to 100 characters." },
              "23505": { text: "A key with that name exists.", hint: "Choose another name." },
            });
          }
          const key = r.data[0].api_key;
          const copyNote = note();
          shown.replaceChildren(
            el("p", {}, "Copy the key now: it is shown only once."),
            el(
              "div",
              { class: "row-actions" },
              el("code", { id: "new-key" }, key),
              el("button", {
                type: "button",
                onclick: async () => {
                  try {
                    await navigator.clipboard.writeText(key);
                    tell(copyNote, "Copied.", "ok");
                  } catch {
                    getSelection()?.selectAllChildren(document.getElementById("new-key")!);
                    tell(copyNote, "The browser did not allow copying; the key is selected, press Ctrl+C.", "info");
                  }
                },
              }, "Copy key"),
              copyNote,
            ),
          );
          tell(result, `Key ${name.value} created.`, "ok");
          name.value = "";
          for (const b of boxes) b.checked = false;
          await render();
        });
      },
    },
    el("h3", {}, "New key"),
    field("Name", name),
    el(
      "fieldset",
      {},
      el("legend", {}, "Scopes"),
      ...boxes.map((b, i) => el("div", { class: "check" }, b, el("label", { for: b.id }, `${offered[i][1]} (${offered[i][0]})`))),
    ),
    field("Expires", expiry),
    el("button", { type: "submit" }, "Create key"),
    result,
    shown,
  );
  root.append(listNote, list, form);
  await render();
}
