// Usage against the plan's limits (bars), an events series (a line chart) and the top events.
import { CategoryScale, Chart, LinearScale, LineController, LineElement, PointElement, Tooltip } from "chart.js";
import type { App } from "../app.ts";
import { readable } from "../errors.ts";
import { el, say, table } from "../ui.ts";

Chart.register(LineController, LineElement, PointElement, LinearScale, CategoryScale, Tooltip);

export async function usageScreen(app: App, root: HTMLElement) {
  const org = await app.orgId();
  if (!org) return void root.append(el("p", {}, "Choose an organization first."));
  root.append(el("h2", {}, "Usage and analytics"));
  const usage = await app.supabase.rpc("usage_versus_limits", { org_id: org });
  if (usage.error) return say(await readable(usage.error));
  if (!usage.data?.length) root.append(el("p", {}, "No usage recorded yet today (it is counted every hour)."));
  root.append(table(
    ["Metric", "Used", "Limit", ""],
    (usage.data ?? []).map((u) => [
      u.metric,
      u.used,
      u.limit_value,
      el(
        "div",
        { class: "bar", role: "img", "aria-label": `${u.metric}: ${Math.round(u.percent)} percent of the limit` },
        el("span", { style: `width:${Math.min(100, Math.max(0, u.percent))}%` }),
      ),
    ]),
  ));
  const to = new Date();
  const from = new Date(to.getTime() - 7 * 24 * 3600_000);
  const top = await app.supabase.rpc("analytics_top_events", {
    org_id: org,
    from_at: from.toISOString(),
    to_at: to.toISOString(),
  });
  if (top.error) return say(await readable(top.error));
  root.append(
    el("h3", {}, "Top events, last 7 days"),
    table(["Event", "Count"], (top.data ?? []).map((t) => [t.event_type, t.events])),
  );
  const type = top.data?.[0]?.event_type ?? "page.viewed";
  const series = await app.supabase.rpc("analytics_series", {
    org_id: org,
    event_type: type,
    from_at: from.toISOString(),
    to_at: to.toISOString(),
  });
  if (series.error) return say(await readable(series.error));
  const canvas = el("canvas", { role: "img", "aria-label": `Daily ${type} events, last 7 days` });
  root.append(el("h3", {}, `${type} per day`), el("div", { style: "max-width:40rem" }, canvas));
  new Chart(canvas, {
    type: "line",
    data: {
      labels: (series.data ?? []).map((p) => p.bucket.slice(0, 10)),
      datasets: [{ label: type, data: (series.data ?? []).map((p) => p.events), borderColor: "#2f6fb0" }],
    },
    options: { animation: false, responsive: true },
  });
}
