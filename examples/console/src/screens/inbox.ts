// Notifications: the inbox, live over MQTT, marking read, and preferences with quiet hours.
import { topics } from "../../../../supabase/functions/_shared/realtime/topics.ts";
import type { App } from "../app.ts";
import { readable } from "../errors.ts";
import { subscribeLive } from "../realtime.ts";
import { el, field, say, table } from "../ui.ts";

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
  root.append(el("h2", {}, "Inbox"), live, list, await preferencesForm(app, org, session.session.user.id));
  await render();
  // A notification comes on the member's own topic, or, for types with audience delivery, once for
  // everyone of their role on the role's topic (its id is the batch's): either way it is already a
  // row of theirs, so the inbox reads it from the database.
  const { data: member } = await app.supabase.from("organization_members").select("role")
    .eq("org_id", org).eq("user_id", session.session.user.id).maybeSingle();
  const liveTopics = [topics.notifications(org, session.session.user.id)];
  if (member) liveTopics.push(topics.roleNotifications(org, member.role));
  await subscribeLive(app, liveTopics, () => void render(), () => {
    live.textContent = "Live updates on.";
    void render();
  });
}

/** Changes the row with these keys, or makes it; the error, if any. */
async function saveRowOf(
  app: App,
  table: "notification_preferences" | "notification_settings",
  keys: Record<string, string>,
  values: Record<string, unknown>,
): Promise<unknown> {
  let update = app.supabase.from(table).update(values as never);
  for (const [k, v] of Object.entries(keys)) update = update.eq(k, v);
  const changed = await update.select();
  if (changed.error) return changed.error;
  if (changed.data.length) return null;
  const made = await app.supabase.from(table).insert({ ...keys, ...values } as never);
  return made.error;
}

/** E-mail on or off for all notification types, and quiet hours (nothing is pushed then; it waits). */
async function preferencesForm(app: App, org: string, userId: string) {
  const { data: settings } = await app.supabase.from("notification_settings").select("quiet_start, quiet_end, time_zone")
    .eq("org_id", org).eq("user_id", userId).maybeSingle();
  const { data: prefs } = await app.supabase.from("notification_preferences").select("enabled")
    .eq("org_id", org).eq("user_id", userId).eq("type", "*").eq("channel", "email").maybeSingle();
  const email = el("input", { type: "checkbox", id: "pref-email", ...(prefs?.enabled === false ? {} : { checked: true }) });
  const start = el("input", { type: "time", value: settings?.quiet_start?.slice(0, 5) ?? "" });
  const end = el("input", { type: "time", value: settings?.quiet_end?.slice(0, 5) ?? "" });
  const zone = el("input", { value: settings?.time_zone ?? Intl.DateTimeFormat().resolvedOptions().timeZone, maxlength: "64" });
  return el(
    "form",
    {
      "aria-label": "Notification preferences",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        // update, else insert: members may change only the values, not the keys (column grants),
        // which an upsert would also set
        const saveRow = (
          t: "notification_preferences" | "notification_settings",
          k: Record<string, string>,
          v: Record<string, unknown>,
        ) => saveRowOf(app, t, k, v);
        const key = { org_id: org, user_id: userId };
        const pref = { type: "*", channel: "email" };
        const p = await saveRow("notification_preferences", { ...key, ...pref }, { enabled: email.checked });
        if (p) return say(await readable(p));
        const q = await saveRow("notification_settings", key, {
          quiet_start: start.value || null,
          quiet_end: end.value || null,
          time_zone: zone.value,
        });
        say(q ? await readable(q) : "Preferences saved.", !q);
      },
    },
    el("h3", {}, "Preferences"),
    el("div", {}, email, el("label", { for: email.id }, "E-mail me notifications")),
    field("Quiet hours from", start),
    field("Quiet hours until", end),
    field("Time zone", zone),
    el("button", { type: "submit" }, "Save preferences"),
  );
}
