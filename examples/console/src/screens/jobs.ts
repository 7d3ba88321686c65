// Jobs (holders of jobs.manage): the organization's jobs with retry and cancel; a data export with
// its progress and download.
import type { App } from "../app.ts";
import { readable } from "../errors.ts";
import { el, say, table } from "../ui.ts";

export async function jobsScreen(app: App, root: HTMLElement) {
  const org = await app.orgId();
  if (!org) return void root.append(el("p", {}, "Choose an organization first."));
  root.append(el("h2", {}, "Jobs and exports"));
  const jobs = await app.supabase.rpc("list_jobs", { org_id: org, max_rows: 50 });
  if (jobs.error) root.append(el("p", {}, await readable(jobs.error)));
  else {
    root.append(table(
      ["Queue", "State", "Created", ""],
      (jobs.data ?? []).map((
        j,
      ) => [
        j.queue,
        j.state,
        new Date(j.created_on).toLocaleString(),
        el(
          "span",
          {},
          el("button", {
            type: "button",
            onclick: async () => say(await outcome(app.supabase.rpc("retry_job", { job_id: j.id })), true),
          }, "Retry"),
          " ",
          el("button", {
            type: "button",
            onclick: async () => say(await outcome(app.supabase.rpc("cancel_job", { job_id: j.id })), true),
          }, "Cancel"),
        ),
      ]),
    ));
  }
  const exports = el("div", { "aria-live": "polite" });
  const renderExports = async () => {
    const { data } = await app.supabase.from("data_exports").select("id, status, progress, object_path, created_at")
      .eq("org_id", org).order("created_at", { ascending: false }).limit(10);
    exports.replaceChildren(table(
      ["Requested", "Status", "Progress", ""],
      (data ?? []).map((x) => [
        new Date(x.created_at).toLocaleString(),
        x.status,
        `${x.progress}%`,
        x.object_path
          ? el("button", {
            type: "button",
            onclick: async () => {
              const s = await app.supabase.storage.from("exports").createSignedUrl(x.object_path!, 60, { download: true });
              if (s.error) return say(await readable(s.error));
              location.assign(s.data.signedUrl);
            },
          }, "Download export")
          : "",
      ]),
    ));
  };
  root.append(
    el("h3", {}, "Data export"),
    el("button", {
      type: "button",
      onclick: async () => {
        const r = await app.supabase.rpc("request_data_export", { org_id: org });
        say(r.error ? await readable(r.error) : "Export requested.", !r.error);
        for (let i = 0; i < 60 && !r.error; i++) {
          await renderExports();
          if (exports.textContent?.includes("completed") || exports.textContent?.includes("failed")) break;
          await new Promise((res) => setTimeout(res, 500));
        }
      },
    }, "Export the organization's data"),
    exports,
  );
  await renderExports();
}

async function outcome(call: PromiseLike<{ error: unknown }>) {
  const { error } = await call;
  return error ? await readable(error) : "Done.";
}
