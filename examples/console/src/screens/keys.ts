// API keys (holders of api_keys.manage): create (the key is shown once), scopes, revoke.
import type { App } from "../app.ts";
import { readable } from "../errors.ts";
import { el, field, say, table } from "../ui.ts";

const SCOPES = ["org.read", "files.read", "files.write", "analytics.read", "notifications.send", "members.invite"];

export async function keysScreen(app: App, root: HTMLElement) {
  const org = await app.orgId();
  if (!org) return void root.append(el("p", {}, "Choose an organization first."));
  const { data, error } = await app.supabase.from("api_keys").select("id, name, key_prefix, scopes, expires_at, revoked_at")
    .eq("org_id", org).order("created_at", { ascending: false });
  root.append(el("h2", {}, "API keys"));
  if (error) return say(await readable(error));
  const name = el("input", { required: true, maxlength: "100" });
  const boxes = SCOPES.map((s) => el("input", { type: "checkbox", value: s, id: `scope-${s}` }));
  const shown = el("output", { "aria-live": "polite" });
  root.append(
    table(
      ["Name", "Prefix", "Scopes", "Expires", ""],
      (data ?? []).map((
        k,
      ) => [
        k.name,
        k.key_prefix,
        k.scopes.join(", "),
        k.expires_at ? new Date(k.expires_at).toLocaleDateString() : "",
        k.revoked_at ? "revoked" : el("button", {
          type: "button",
          onclick: async () => {
            const r = await app.supabase.rpc("revoke_api_key", { api_key_id: k.id });
            say(r.error ? await readable(r.error) : `Key ${k.name} revoked.`, !r.error);
          },
        }, `Revoke ${k.name}`),
      ]),
    ),
    el(
      "form",
      {
        "aria-label": "New API key",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const scopes = boxes.filter((b) => b.checked).map((b) => b.value);
          const r = await app.supabase.rpc("create_api_key", { org_id: org, name: name.value, scopes });
          if (r.error) return say(await readable(r.error));
          shown.textContent = `Copy it now, it is shown once: ${r.data[0].api_key}`;
        },
      },
      field("Name", name),
      el("fieldset", {}, el("legend", {}, "Scopes"), ...boxes.map((b) => el("div", {}, b, el("label", { for: b.id }, b.value)))),
      el("button", { type: "submit" }, "Create key"),
      shown,
    ),
  );
}
