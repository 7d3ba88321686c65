// Files: upload through the signed upload URL flow with a progress bar, the status live from MQTT
// (pending → scanning → clean / rejected) without reloading, download.
import { topics } from "../../../../supabase/functions/_shared/realtime/topics.ts";
import type { App } from "../app.ts";
import { readable } from "../errors.ts";
import { subscribeLive } from "../realtime.ts";
import { el, field, say, table } from "../ui.ts";

export async function filesScreen(app: App, root: HTMLElement) {
  const org = await app.orgId();
  if (!org) return void root.append(el("p", {}, "Choose an organization first."));
  const list = el("div", {});
  const progress = el("progress", { max: "100", value: "0", "aria-label": "Upload progress" });
  const input = el("input", { type: "file" });
  const live = el("p", { "aria-live": "polite", id: "live" }, "Connecting for live updates…");
  const render = async () => {
    const { data, error } = await app.supabase.from("files").select("id, name, status, size_bytes, object_path, created_at")
      .eq("org_id", org).order("created_at", { ascending: false }).limit(50);
    if (error) return say(await readable(error));
    list.replaceChildren(table(
      ["Name", "Size", "Status", ""],
      (data ?? []).map((
        f,
      ) => [
        f.name,
        `${f.size_bytes} B`,
        el("span", { "data-file-status": f.id }, f.status),
        f.status === "clean"
          ? el(
            "span",
            {},
            el("button", {
              type: "button",
              onclick: async () => {
                const s = await app.supabase.storage.from("files").createSignedUrl(f.object_path, 60, { download: f.name });
                if (s.error) return say(await readable(s.error));
                location.assign(s.data.signedUrl);
              },
            }, `Download ${f.name}`),
            " ",
            shareForm(app, org, f),
          )
          : "",
      ]),
    ));
  };
  root.append(
    el("h2", {}, "Files"),
    el(
      "form",
      {
        "aria-label": "Upload",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const file = input.files?.[0];
          if (!file) return;
          const started = await app.supabase.functions.invoke("file-upload", {
            body: { org_id: org, name: file.name, size: file.size, mime_type: file.type || "application/octet-stream" },
          });
          if (started.error) return say(await readable(started.error));
          progress.value = 10;
          const up = await upload(app, started.data.signed_url as string, file, (p) => (progress.value = 10 + p * 0.9));
          if (!up) return say("The upload failed; try again.");
          say(`${file.name} uploaded; it is being checked.`, true);
          await render();
        },
      },
      field("File", input),
      progress,
      el("button", { type: "submit" }, "Upload"),
    ),
    live,
    list,
  );
  await render();
  // a file's verdict arrives as an event on the organization's topic
  await subscribeLive(app, topics.events(org), (e) => {
    if (e.type !== "file.ready" && e.type !== "file.rejected") return;
    const data = e.data as { file_id?: string; status?: string };
    const cell = root.querySelector(`[data-file-status="${data.file_id}"]`);
    if (cell && data.status) cell.textContent = data.status; // at once; the row's actions follow
    void render();
  }, () => {
    live.textContent = "Live updates on.";
    void render(); // catch up with anything that settled before the subscription
  });
}

/** PUT to the signed upload URL with progress (fetch has none for uploads), as storage-js would send it. */
function upload(app: App, signedUrl: string, file: File, onProgress: (percent: number) => void) {
  return new Promise<boolean>((resolve) => {
    const xhr = new XMLHttpRequest();
    const url = signedUrl.startsWith("http") ? signedUrl : `${app.config.apiUrl}/storage/v1${signedUrl}`;
    xhr.open("PUT", url);
    xhr.setRequestHeader("x-upsert", "false");
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress((e.loaded / e.total) * 100);
    xhr.onload = () => resolve(xhr.status >= 200 && xhr.status < 300);
    xhr.onerror = () => resolve(false);
    const form = new FormData();
    form.append("cacheControl", "3600");
    form.append("", file);
    xhr.send(form);
  });
}

/** Shares a file with a role of the organization (read or write), as file_shares' policies allow. */
function shareForm(app: App, org: string, f: { id: string; name: string }) {
  const role = el(
    "select",
    { "aria-label": `Share ${f.name} with` },
    ...["student", "teacher", "admin"].map((r) => el("option", { value: r }, r)),
  );
  const access = el(
    "select",
    { "aria-label": `Access to ${f.name}` },
    el("option", { value: "read" }, "read"),
    el("option", { value: "write" }, "write"),
  );
  return el(
    "form",
    {
      "aria-label": `Share ${f.name}`,
      class: "inline",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const r = await app.supabase.from("file_shares").insert({
          org_id: org,
          file_id: f.id,
          grantee_role: role.value as "student" | "teacher" | "admin",
          access: access.value,
        });
        say(r.error ? await readable(r.error) : `${f.name} shared with ${role.value}s (${access.value}).`, !r.error);
      },
    },
    role,
    access,
    el("button", { type: "submit" }, `Share ${f.name}`),
  );
}
