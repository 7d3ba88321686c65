// Notifications: the inbox, live over MQTT, marking read, and preferences with quiet hours. The
// live line tells the truth: during the member's quiet hours nothing non-urgent is pushed (it waits
// until they end), so it says so instead of "on".
import { topics } from "../../../../supabase/functions/_shared/realtime/topics.ts";
import type { App } from "../app.ts";
import { readNotice } from "../notices.ts";
import { subscribeLive } from "../realtime.ts";
import { busy, el, fail, field, newestOnly, note, tell, time } from "../ui.ts";

export async function inboxScreen(app: App, root: HTMLElement, left: AbortSignal) {
  const org = await app.orgId();
  const { data: session } = await app.supabase.auth.getSession();
  if (!org || !session.session) return void root.append(el("p", {}, "Choose an organization first."));
  const list = el("div", {});
  const count = el("p", { id: "unread", "aria-live": "polite" });
  const listNote = note();
  const live = el("p", { "aria-live": "polite" }, "Connecting for live updates…");
  const markAll = el("button", {
    type: "button",
    onclick: async () =>
      busy(markAll, async () => {
        const r = await app.supabase.from("notifications").update({ read_at: new Date().toISOString() })
          .eq("org_id", org).is("read_at", null);
        if (r.error) return fail(listNote, r.error);
        await render();
        tell(listNote, "All marked read.", "ok");
      }),
  }, "Mark all read");
  const ticket = newestOnly();
  const render = async () => {
    const current = ticket();
    const [{ data, error }, unread] = await Promise.all([
      app.supabase.from("notifications").select("id, type, title, body, data, read_at, created_at")
        .eq("org_id", org).order("created_at", { ascending: false }).limit(50),
      app.supabase.from("notifications").select("id", { count: "exact" }).eq("org_id", org).is("read_at", null).limit(1),
    ]);
    if (!current()) return;
    if (error) return fail(listNote, error);
    const n = unread.count ?? 0;
    count.textContent = n ? `${n} unread` : "Nothing unread.";
    markAll.hidden = n === 0;
    document.title = n ? `(${n}) Inbox · Console` : "Inbox · Console";
    list.replaceChildren(
      data?.length
        ? el(
          "table",
          { class: "inbox" },
          el("thead", {}, el("tr", {}, ...["Received", "Title", "Message", ""].map((h) => el("th", { scope: "col" }, h)))),
          el(
            "tbody",
            {},
            ...data.map((n) => {
              const { title, message } = readNotice(n);
              return el(
                "tr",
                { class: n.read_at ? "read" : "unread" },
                el("td", {}, time(n.created_at)),
                el("td", {}, title),
                el("td", {}, message),
                el(
                  "td",
                  {},
                  n.read_at ? "read" : el("button", {
                    type: "button",
                    onclick: async () => {
                      const r = await app.supabase.from("notifications").update({ read_at: new Date().toISOString() }).eq(
                        "id",
                        n.id,
                      );
                      if (r.error) return fail(listNote, r.error);
                      await render();
                    },
                  }, `Mark "${title}" read`),
                ),
              );
            }),
          ),
        )
        : el("p", {}, "No notifications yet."),
    );
  };
  const userId = session.session.user.id;
  let connected = false;
  let quiet: QuietHours | null = null;
  const loadQuiet = async () => {
    const { data } = await app.supabase.from("notification_settings").select("quiet_start, quiet_end, time_zone")
      .eq("org_id", org).eq("user_id", userId).maybeSingle();
    quiet = data?.quiet_start && data.quiet_end ? { start: data.quiet_start, end: data.quiet_end, zone: data.time_zone } : null;
    showLive();
  };
  const showLive = () => {
    const until = quiet && quietUntil(quiet, new Date());
    live.textContent = !connected
      ? "Connecting for live updates…"
      : until
      ? `Live updates paused during your quiet hours until ${until} (${
        quiet!.zone
      }): what arrives meanwhile waits until then, except urgent messages.`
      : "Live updates on.";
  };
  // quiet hours begin and end while the page is open
  const clock = setInterval(() => document.contains(live) ? showLive() : clearInterval(clock), 30_000);
  root.append(
    el("h2", {}, "Inbox"),
    el("div", { class: "row-actions" }, count, markAll),
    live,
    listNote,
    list,
    await preferencesForm(app, org, userId, loadQuiet),
  );
  await loadQuiet();
  await render();
  // A notification comes on the member's own topic, or, for types with audience delivery, once for
  // everyone of their role on the role's topic (its id is the batch's): either way it is already a
  // row of theirs, so the inbox reads it from the database.
  const { data: member } = await app.supabase.from("organization_members").select("role")
    .eq("org_id", org).eq("user_id", session.session.user.id).maybeSingle();
  const liveTopics = [topics.notifications(org, session.session.user.id)];
  if (member) liveTopics.push(topics.roleNotifications(org, member.role));
  await subscribeLive(app, left, liveTopics, () => void render(), () => {
    connected = true;
    showLive();
    void render();
  });
}

interface QuietHours {
  start: string;
  end: string;
  zone: string;
}

/** The end of the quiet hours ("07:00", in their time zone) if `at` falls within them; null otherwise. */
export function quietUntil(q: QuietHours, at: Date): string | null {
  const minutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
  let local: number;
  try {
    const parts = new Intl.DateTimeFormat("en-GB", { timeZone: q.zone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
      .formatToParts(at);
    local = minutes(`${parts.find((p) => p.type === "hour")!.value}:${parts.find((p) => p.type === "minute")!.value}`);
  } catch {
    return null; // a zone the browser does not know: the database judges it
  }
  const [start, end] = [minutes(q.start), minutes(q.end)];
  const inside = start < end ? local >= start && local < end : local >= start || local < end;
  return inside ? q.end.slice(0, 5) : null;
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
async function preferencesForm(app: App, org: string, userId: string, onSaved: () => Promise<void>) {
  const { data: settings } = await app.supabase.from("notification_settings").select("quiet_start, quiet_end, time_zone")
    .eq("org_id", org).eq("user_id", userId).maybeSingle();
  const { data: prefs } = await app.supabase.from("notification_preferences").select("enabled")
    .eq("org_id", org).eq("user_id", userId).eq("type", "*").eq("channel", "email").maybeSingle();
  const email = el("input", { type: "checkbox", id: "pref-email", ...(prefs?.enabled === false ? {} : { checked: true }) });
  const start = el("input", { type: "time", value: settings?.quiet_start?.slice(0, 5) ?? "" });
  const end = el("input", { type: "time", value: settings?.quiet_end?.slice(0, 5) ?? "" });
  // a list of the zones the browser knows, so no one types one the database does not
  const current = settings?.time_zone ?? Intl.DateTimeFormat().resolvedOptions().timeZone;
  const zones = Intl.supportedValuesOf("timeZone");
  if (!zones.includes(current)) zones.unshift(current);
  const zone = el("select", {}, ...zones.map((z) => el("option", { value: z, ...(z === current ? { selected: true } : {}) }, z)));
  const result = note();
  return el(
    "form",
    {
      "aria-label": "Notification preferences",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        if (!!start.value !== !!end.value) {
          return tell(
            result,
            { text: "Quiet hours need a start and an end.", hint: "Fill in both times, or clear both." },
            "error",
          );
        }
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
        if (p) return fail(result, p);
        const q = await saveRow("notification_settings", key, {
          quiet_start: start.value || null,
          quiet_end: end.value || null,
          time_zone: zone.value,
        });
        if (q) return fail(result, q, { "22023": { text: "That time zone is not known.", hint: "Choose one from the list." } });
        await onSaved();
        tell(
          result,
          start.value
            ? `Preferences saved. From ${start.value} to ${end.value} (${zone.value}) notifications wait and arrive afterwards.`
            : "Preferences saved.",
          "ok",
        );
      },
    },
    el("h3", {}, "Preferences"),
    el("div", {}, email, el("label", { for: email.id }, "E-mail me notifications")),
    field("Quiet hours from", start),
    field("Quiet hours until", end),
    field("Time zone", zone),
    el("button", { type: "submit" }, "Save preferences"),
    result,
  );
}
