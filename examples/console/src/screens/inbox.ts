// Notifications: the inbox, live over MQTT, marking read, and preferences with quiet hours.
import { topics } from "../../../../supabase/functions/_shared/realtime/topics.ts";
import type { App } from "../app.ts";
import { readable } from "../errors.ts";
import { subscribeLive } from "../realtime.ts";
import { el, say, table } from "../ui.ts";

export async function inboxScreen(app: App, root: HTMLElement) {
  const org = await app.orgId();
  const { data: session } = await app.supabase.auth.getSession();
  if (!org || !session.session) return void root.append(el("p", {}, "Choose an organization first."));
  const list = el("div", { "aria-live": "polite" });
  const live = el("p", { "aria-live": "polite" }, "Connecting for live updates…");
  const render = async () => {
    const { data, error } = await app.supabase.from("notifications").select("id, title, body, read_at, created_at")
      .eq("org_id", org).order("created_at", { ascending: false }).limit(50);
    if (error) return say(await readable(error));
    list.replaceChildren(table(
      ["Title", "Message", ""],
      (data ?? []).map((n) => [
        n.title,
        n.body ?? "",
        n.read_at ? "read" : el("button", {
          type: "button",
          onclick: async () => {
            const r = await app.supabase.from("notifications").update({ read_at: new Date().toISOString() }).eq("id", n.id);
            if (r.error) return say(await readable(r.error));
            await render();
          },
        }, `Mark "${n.title}" read`),
      ]),
    ));
  };
  root.append(el("h2", {}, "Inbox"), live, list);
  await render();
  await subscribeLive(app, topics.notifications(org, session.session.user.id), () => void render(), () => {
    live.textContent = "Live updates on.";
    void render();
  });
}
