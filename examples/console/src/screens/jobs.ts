// Jobs (holders of jobs.manage): the organization's jobs, each offering only what its state allows
// (cancel while unfinished, retry once failed); a data export (data.export) with its progress and
// download, saved under a readable name.
import type { App } from "../app.ts";
import { readable } from "../errors.ts";
import { busy, el, fail, note, tell, time } from "../ui.ts";

const STATE: Record<string, string> = {
  created: "waiting",
  retry: "waiting to retry",
  active: "running",
  completed: "done",
  cancelled: "cancelled",
  failed: "failed",
};

/** What each queue does, in words (the queue's own name is the worker's). */
const QUEUE: Record<string, string> = {
  "tenant.export": "Data export",
  "tenant.delete": "Deleting the organization",
  "files.thumbnail": "Thumbnail of an image",
  "files.extract-text": "Text of a file, for search",
  "files.process": "Checking a large file",
  "files.place": "Moving a deleted or restored file",
  "notifications.email": "Notification e-mails",
  "notifications.digest": "E-mail digest",
  "analytics.rollup": "Usage counts",
};
const queueName = (q: string) => QUEUE[q] ?? (q.startsWith("maintenance.") ? "Maintenance" : q);

export async function jobsScreen(app: App, root: HTMLElement) {
  const claims = await app.claims();
  const org = claims.org_id;
  if (!org) return void root.append(el("h2", {}, "Jobs and exports"), el("p", {}, "Choose an organization first."));
  root.append(el("h2", {}, "Jobs and exports"));
  if (claims.permissions.includes("data.export")) root.append(...await exportSection(app, org));
  if (!claims.permissions.includes("jobs.manage")) return;

  const jobs = el("div", {});
  const jobsNote = note();
  const renderJobs = async () => {
    const r = await app.supabase.rpc("list_jobs", { org_id: org, max_rows: 50 });
    if (r.error) return fail(jobsNote, r.error);
    if (!r.data.length) return jobs.replaceChildren(el("p", {}, "No jobs yet."));
    jobs.replaceChildren(el(
      "table",
      {},
      el("thead", {}, el("tr", {}, ...["Job", "State", "Created", ""].map((h) => el("th", { scope: "col" }, h)))),
      el(
        "tbody",
        {},
        ...r.data.map((j) => {
          const what = queueName(j.queue);
          const result = note();
          const act = (label: string, call: () => PromiseLike<{ error: unknown }>, done: string) =>
            el("button", {
              type: "button",
              onclick: async (e: Event) =>
                busy(e.currentTarget as HTMLButtonElement, async () => {
                  const { error } = await call();
                  if (error) return fail(result, error);
                  await renderJobs();
                  tell(jobsNote, done, "ok");
                }),
            }, label);
          const actions = el("div", { class: "row-actions" });
          if (["created", "retry", "active"].includes(j.state)) {
            actions.append(
              act(`Cancel ${what}`, () => app.supabase.rpc("cancel_job", { job_id: j.id }), `${what}: cancelled.`),
            );
          }
          if (j.state === "failed") {
            actions.append(
              act(`Retry ${what}`, () => app.supabase.rpc("retry_job", { job_id: j.id }), `${what}: retrying.`),
            );
          }
          actions.append(result);
          return el(
            "tr",
            {},
            el("td", {}, what),
            el("td", {}, STATE[j.state] ?? j.state),
            el("td", {}, time(j.created_on)),
            el("td", {}, actions),
          );
        }),
      ),
    ));
  };
  root.append(el("h3", {}, "Background jobs"), jobsNote, jobs);
  await renderJobs();
}

async function exportSection(app: App, org: string) {
  const exports = el("div", {});
  const result = note();
  const { data: o } = await app.supabase.from("organizations").select("slug").eq("id", org).maybeSingle();
  const renderExports = async () => {
    const { data, error } = await app.supabase.from("data_exports").select("id, status, progress, object_path, created_at")
      .eq("org_id", org).order("created_at", { ascending: false }).limit(10);
    if (error) return fail(result, error);
    exports.replaceChildren(
      data.length
        ? el(
          "table",
          {},
          el("thead", {}, el("tr", {}, ...["Requested", "Status", "Progress", ""].map((h) => el("th", { scope: "col" }, h)))),
          el(
            "tbody",
            {},
            ...data.map((x) =>
              el(
                "tr",
                {},
                el("td", {}, time(x.created_at)),
                el("td", {}, x.status),
                el(
                  "td",
                  {},
                  el("progress", { max: "100", value: String(x.progress), "aria-label": "Export progress" }),
                  ` ${x.progress}%`,
                ),
                el(
                  "td",
                  {},
                  x.object_path
                    ? el("button", {
                      type: "button",
                      onclick: async () => {
                        const s = await app.supabase.storage.from("exports").createSignedUrl(x.object_path!, 60);
                        if (s.error) return fail(result, s.error);
                        const name = `${o?.slug ?? "organization"}-export-${x.created_at.slice(0, 10)}.json`;
                        location.assign(`${s.data.signedUrl}&download=${encodeURIComponent(name)}`);
                      },
                    }, "Download export")
                    : "",
                ),
              )
            ),
          ),
        )
        : el("p", {}, "No exports yet."),
    );
    return data;
  };
  const button = el("button", {
    type: "button",
    onclick: async () =>
      busy(button, async () => {
        const r = await app.supabase.rpc("request_data_export", { org_id: org });
        if (r.error) return fail(result, r.error);
        tell(result, "Export requested; it appears below when ready.", "ok");
        // follow the export just requested (the newest), not any older one
        for (let i = 0; i < 120; i++) {
          const rows = await renderExports();
          const newest = rows?.[0];
          if (newest && (newest.status === "completed" || newest.status === "failed")) {
            tell(
              result,
              newest.status === "completed" ? "Your export is ready." : await readable({ code: "internal_error" }),
              newest.status === "completed" ? "ok" : "error",
            );
            break;
          }
          await new Promise((res) => setTimeout(res, 500));
        }
      }),
  }, "Export the organization's data");
  await renderExports();
  return [el("h3", {}, "Data export"), button, result, exports];
}
