// Usage against the plan's limits: members and storage live (storage from the same used and
// reserved bytes the upload quota enforces), the day's counters with the time they were computed;
// an events series (a line chart) and the top events.
import { CategoryScale, Chart, LinearScale, LineController, LineElement, PointElement, Tooltip } from "chart.js";
import type { App } from "../app.ts";
import { readable } from "../errors.ts";
import { bytes, el, when } from "../ui.ts";

Chart.register(LineController, LineElement, PointElement, LinearScale, CategoryScale, Tooltip);

const METRICS: Record<string, string> = {
  events: "Analytics events today",
  api_calls: "API calls today",
  active_users: "Active people today",
  jobs: "Background jobs today",
  mqtt_messages: "Live messages today",
};

function bar(label: string, used: number, limit: number | null) {
  const percent = limit ? (100 * used) / limit : 0;
  return limit
    ? el(
      "div",
      { class: "bar", role: "img", "aria-label": `${label}: ${Math.round(percent)} percent of the limit` },
      el("span", { style: `width:${Math.min(100, Math.max(0, percent))}%` }),
    )
    : "no limit";
}

export async function usageScreen(app: App, root: HTMLElement) {
  const org = await app.orgId();
  root.append(el("h2", {}, "Usage and analytics"));
  if (!org) return void root.append(el("p", {}, "Choose an organization first."));
  const failed = async (e: unknown) => void root.append(el("p", { class: "note error" }, await readable(e)));
  const [{ data: o }, members, { data: quota }, usage, daily] = await Promise.all([
    app.supabase.from("organizations").select("tier, subscription_tiers(max_members, storage_bytes)").eq("id", org).maybeSingle(),
    app.supabase.from("organization_members").select("user_id", { count: "exact" }).eq("org_id", org).limit(1),
    app.supabase.from("storage_quotas").select("used_bytes, reserved_bytes").eq("org_id", org).maybeSingle(),
    app.supabase.rpc("usage_versus_limits", { org_id: org }),
    app.supabase.from("usage_daily").select("updated_at").eq("org_id", org).order("day", { ascending: false }).limit(1),
  ]);
  if (usage.error) return failed(usage.error);
  const tier = (o?.subscription_tiers ?? null) as { max_members: number | null; storage_bytes: number | null } | null;
  const storage = Number(quota?.used_bytes ?? 0) + Number(quota?.reserved_bytes ?? 0);
  const rows: [string, string, string, Node | string][] = [
    [
      "Members",
      String(members.count ?? 0),
      tier?.max_members ? String(tier.max_members) : "no limit",
      bar("Members", members.count ?? 0, tier?.max_members ?? null),
    ],
    [
      "Storage",
      bytes(storage),
      tier?.storage_bytes ? bytes(tier.storage_bytes) : "no limit",
      bar("Storage", storage, tier?.storage_bytes ?? null),
    ],
  ];
  for (const u of usage.data ?? []) {
    if (!METRICS[u.metric]) continue; // members and storage are shown live above
    rows.push([
      METRICS[u.metric],
      u.used.toLocaleString(),
      u.limit_value?.toLocaleString() ?? "no limit",
      bar(METRICS[u.metric], u.used, u.limit_value),
    ]);
  }
  const asOf = daily.data?.[0]?.updated_at;
  root.append(
    el(
      "p",
      {},
      `Plan: ${o?.tier ?? ""}. Members and storage are as of now. `,
      asOf
        ? `Daily counters as of ${when(asOf)} (they are counted every hour).`
        : "Daily counters have not been computed yet today (they are counted every hour).",
    ),
    el(
      "table",
      { class: "usage" },
      el("thead", {}, el("tr", {}, ...["What", "Used", "Limit", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => el("td", {}, c))))),
    ),
  );
  const to = new Date();
  const from = new Date(to.getTime() - 7 * 24 * 3600_000);
  const top = await app.supabase.rpc("analytics_top_events", {
    org_id: org,
    from_at: from.toISOString(),
    to_at: to.toISOString(),
  });
  if (top.error) return failed(top.error);
  root.append(el("h3", {}, "Top events, last 7 days"));
  if (!top.data?.length) return void root.append(el("p", {}, "No events in the last 7 days."));
  root.append(el(
    "table",
    {},
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Event"), el("th", { scope: "col" }, "Count"))),
    el("tbody", {}, ...top.data.map((t) => el("tr", {}, el("td", {}, t.event_type), el("td", {}, t.events.toLocaleString())))),
  ));
  const type = top.data[0].event_type;
  const series = await app.supabase.rpc("analytics_series", {
    org_id: org,
    event_type: type,
    from_at: from.toISOString(),
    to_at: to.toISOString(),
  });
  if (series.error) return failed(series.error);
  const canvas = el("canvas", { role: "img", "aria-label": `Daily ${type} events, last 7 days` });
  root.append(el("h3", {}, `${type} per day`), el("div", { class: "chart" }, canvas));
  new Chart(canvas, {
    type: "line",
    data: {
      labels: (series.data ?? []).map((p) => p.bucket.slice(0, 10)),
      datasets: [{ label: type, data: (series.data ?? []).map((p) => p.events), borderColor: "#2f6fb0" }],
    },
    // counts: never below zero, whole numbers
    options: {
      animation: false,
      responsive: true,
      scales: { y: { beginAtZero: true, suggestedMax: 1, ticks: { precision: 0 } } },
    },
  });
}
