// Files: upload one or several (chosen or dropped) through the signed upload URL flow with a
// progress bar, the status live from MQTT (pending → scanning → ready / refused) without reloading,
// who uploaded each and when, thumbnails of images (the worker's, read with the person's own
// rights) and a preview, search and pages, download (saved under the file's name), delete for
// those who may write, and a link to sharing (screens/shares.ts: who sees files, and the shares).
import { topics } from "../../../../supabase/functions/_shared/realtime/topics.ts";
import type { App } from "../app.ts";
import { explain, type Explained } from "../errors.ts";
import { people } from "../people.ts";
import { subscribeLive } from "../realtime.ts";
import { busy, bytes, el, fail, newestOnly, note, tell, time } from "../ui.ts";

/** What the `files` bucket accepts (supabase/schemas/120_files.sql), by extension for people. */
const ACCEPTED: Record<string, string> = {
  "image/png": "PNG",
  "image/jpeg": "JPEG",
  "image/gif": "GIF",
  "image/webp": "WebP",
  "application/pdf": "PDF",
  "text/plain": "text",
  "text/csv": "CSV",
  "text/markdown": "Markdown",
  "application/json": "JSON",
  "application/zip": "ZIP",
  "audio/mpeg": "MP3",
  "video/mp4": "MP4",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "Word (.docx)",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "Excel (.xlsx)",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation": "PowerPoint (.pptx)",
};
const TYPES_HINT = `Accepted: ${Object.values(ACCEPTED).join(", ")}.`;
const UPLOAD_WORDING: Record<string, Explained> = {
  unsupported_type: { text: "That type of file is not accepted.", hint: TYPES_HINT },
  FL002: { text: "That type of file is not accepted.", hint: TYPES_HINT },
};
const PAGE = 20;

/** What a status means to the person looking at the list; never the scanner's own words. */
function statusText(status: string, reason: string | null) {
  switch (status) {
    case "clean":
      return "ready";
    case "pending":
    case "scanning":
      return "being checked";
    case "infected":
      return "refused: it looks like it carries a virus";
    case "rejected":
      return reason?.startsWith("size_mismatch")
        ? "refused: its size differs from what was announced"
        : "refused: its content does not match its type";
    default:
      return "could not be checked; upload it again";
  }
}

export async function filesScreen(app: App, root: HTMLElement, left: AbortSignal) {
  const claims = await app.claims();
  const org = claims.org_id;
  if (!org) return void root.append(el("h2", {}, "Files"), el("p", {}, "Choose an organization first."));
  const canWrite = claims.permissions.includes("files.write");
  const list = el("div", {});
  const listNote = note();
  const search = el("input", { type: "search", id: "file-search", autocomplete: "off" });
  const live = el("p", { "aria-live": "polite", id: "live" }, "Connecting for live updates…");
  const uploader = await people(app, org);
  let page = 0;
  let waitingForThumbnails = 0;
  const ticket = newestOnly();
  const render = async () => {
    const current = ticket();
    const shown = page;
    let q = app.supabase.from("files").select(
      "id, name, status, status_reason, size_bytes, object_path, created_at, uploaded_by, declared_mime, thumbnail_path",
      { count: "exact" },
    ).eq("org_id", org).is("deleted_at", null);
    if (search.value.trim()) q = q.ilike("name", `%${search.value.trim().replace(/[%_\\]/g, (c) => `\\${c}`)}%`);
    // files stamped in one transaction share created_at: id settles their order, or pages would repeat or skip them
    const { data, error, count } = await q.order("created_at", { ascending: false }).order("id", { ascending: false })
      .range(shown * PAGE, shown * PAGE + PAGE - 1);
    if (!current()) return;
    if (error) return fail(listNote, error);
    const total = count ?? 0;
    const pager = el(
      "div",
      { class: "pager" },
      el("span", {}, total ? `Showing ${shown * PAGE + 1}–${shown * PAGE + (data?.length ?? 0)} of ${total}` : "No files yet."),
      shown > 0 ? el("button", { type: "button", onclick: () => (page = shown - 1, void render()) }, "Previous page") : "",
      (shown + 1) * PAGE < total
        ? el("button", { type: "button", onclick: () => (page = shown + 1, void render()) }, "Next page")
        : "",
    );
    list.replaceChildren(
      el(
        "table",
        { class: "files" },
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            ...["", "Name", "Size", "Uploaded by", "Uploaded", "Status", ""].map((h) => el("th", { scope: "col" }, h)),
          ),
        ),
        el("tbody", {}, ...(data ?? []).map((f) => fileRow(app, org, f, uploader(f.uploaded_by), canWrite, render, listNote))),
      ),
      pager,
    );
    // a thumbnail follows a clean image by a moment (a worker job, no event): look again a few times
    const pendingThumbnail = (data ?? []).some((f) =>
      f.status === "clean" && f.declared_mime.startsWith("image/") && !f.thumbnail_path
    );
    if (pendingThumbnail && waitingForThumbnails++ < 10) setTimeout(() => document.contains(list) && void render(), 2000);
  };
  root.append(el("h2", {}, "Files"));
  const afterUpload = () => {
    waitingForThumbnails = 0;
    return render();
  };
  if (canWrite) root.append(uploadForm(app, org, afterUpload));
  root.append(
    el(
      "form",
      { role: "search", "aria-label": "Search files", onsubmit: (e: Event) => (e.preventDefault(), page = 0, void render()) },
      el("label", { for: search.id }, "Search by name"),
      el("div", { class: "row-actions" }, search, el("button", { type: "submit" }, "Search")),
    ),
    live,
    listNote,
    list,
  );
  await render();
  // a file's verdict arrives as an event on the organization's topic
  await subscribeLive(app, left, topics.events(org), (e) => {
    if (e.type !== "file.ready" && e.type !== "file.rejected") return;
    const data = e.data as { file_id?: string; status?: string };
    const cell = root.querySelector(`[data-file-status="${data.file_id}"]`);
    if (cell && data.status) cell.textContent = statusText(data.status, null); // at once; the row's actions follow
    void render();
  }, () => {
    live.textContent = "Live updates on.";
    void render(); // catch up with anything that settled before the subscription
  });
}

function fileRow(
  app: App,
  org: string,
  f: {
    id: string;
    name: string;
    status: string;
    status_reason: string | null;
    size_bytes: number;
    object_path: string;
    created_at: string;
    declared_mime: string;
    thumbnail_path: string | null;
  },
  uploadedBy: string,
  canWrite: boolean,
  render: () => Promise<void>,
  listNote: HTMLElement,
) {
  const result = note();
  const actions = el("div", { class: "row-actions" });
  if (f.status === "clean") {
    actions.append(el("button", {
      type: "button",
      onclick: async () => {
        const s = await app.supabase.storage.from("files").createSignedUrl(f.object_path, 60);
        if (s.error) return fail(result, s.error);
        // the name goes in once encoded: storage-js's { download: name } encodes it twice
        location.assign(`${s.data.signedUrl}&download=${encodeURIComponent(f.name)}`);
      },
    }, `Download ${f.name}`));
    if (previewable(f.declared_mime)) actions.append(previewButton(app, f, result));
    if (canWrite) actions.append(el("a", { href: "#/shares", "aria-label": `Share ${f.name}` }, "Share"));
  }
  if (canWrite) {
    actions.append(el("button", {
      type: "button",
      class: "danger",
      onclick: async (e: Event) => {
        if (!confirm(`Delete ${f.name}?`)) return;
        await busy(e.currentTarget as HTMLButtonElement, async () => {
          const r = await app.supabase.rpc("delete_file", { file_id: f.id });
          if (r.error) return fail(result, r.error);
          await render();
          tell(listNote, `${f.name} was deleted.`, "ok");
        });
      },
    }, `Delete ${f.name}`));
  }
  actions.append(result);
  return el(
    "tr",
    {},
    el("td", { class: "thumb" }, f.thumbnail_path ? thumbnail(app, f.thumbnail_path, f.name) : ""),
    el("td", {}, f.name),
    el("td", {}, bytes(f.size_bytes)),
    el("td", {}, uploadedBy),
    el("td", {}, time(f.created_at)),
    el("td", { "data-file-status": f.id, class: `status-${f.status}` }, statusText(f.status, f.status_reason)),
    el("td", {}, actions),
  );
}

function uploadForm(app: App, org: string, render: () => Promise<void>) {
  const input = el("input", { type: "file", multiple: true, id: "file-input", "aria-describedby": "file-types" });
  const progress = el("progress", { max: "100", value: "0", id: "upload-progress", "aria-label": "Upload progress" });
  const percent = el("output", { for: "upload-progress", "aria-hidden": "true" }, "0%");
  const result = note("Upload result");
  const button = el("button", { type: "submit" }, "Upload");
  const setProgress = (p: number) => {
    progress.value = Math.round(p);
    percent.textContent = `${Math.round(p)}%`;
  };
  const form: HTMLFormElement = el(
    "form",
    {
      "aria-label": "Upload",
      class: "dropzone",
      // files dropped on the form are uploaded at once, as if chosen and sent
      ondragover: (e: Event) => {
        e.preventDefault();
        form.classList.add("dragging");
      },
      ondragleave: () => form.classList.remove("dragging"),
      ondrop: (e: Event) => {
        e.preventDefault();
        form.classList.remove("dragging");
        const dropped = (e as DragEvent).dataTransfer?.files;
        if (!dropped?.length) return;
        if (button.disabled) return tell(result, "Wait for the upload in progress to finish, then drop again.", "info");
        input.files = dropped;
        form.requestSubmit(button);
      },
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const files = [...(input.files ?? [])];
        if (!files.length) return tell(result, { text: "Choose a file first.", hint: TYPES_HINT }, "error");
        await busy(button, async () => {
          const done: string[] = [];
          const refused: string[] = [];
          for (const [i, file] of files.entries()) {
            setProgress(0);
            tell(result, `Uploading ${file.name}${files.length > 1 ? ` (${i + 1} of ${files.length})` : ""}…`);
            const why = await uploadOne(app, org, file, setProgress);
            if (why) refused.push(`${file.name}: ${why.text}${why.hint ? ` ${why.hint}` : ""}`);
            else done.push(file.name);
          }
          if (refused.length) setProgress(0); // a refused upload leaves no bar at 100%
          input.value = "";
          await render();
          const ok = done.length ? `${done.join(", ")} uploaded; ${done.length > 1 ? "they are" : "it is"} being checked.` : "";
          if (!refused.length) return tell(result, ok, "ok");
          tell(result, `${ok}${ok ? " " : ""}Not uploaded: ${refused.join("; ")}`, "error");
        });
      },
    },
    el("label", { for: input.id }, "Files"),
    input,
    el("p", { id: "file-types", class: "hint" }, `Or drop them here. ${TYPES_HINT}`),
    el("div", { class: "progress" }, progress, percent),
    button,
    result,
  );
  return form;
}

/** The worker's thumbnail, read with the person's own rights (no link that outlives the page). */
function thumbnail(app: App, path: string, name: string) {
  const img = el("img", { alt: `Thumbnail of ${name}`, class: "thumb", hidden: true });
  void app.supabase.storage.from("thumbnails").download(path).then(({ data }) => {
    if (!data) return;
    img.src = URL.createObjectURL(data);
    img.onload = () => {
      img.hidden = false;
      URL.revokeObjectURL(img.src);
    };
  });
  return img;
}

const previewable = (mime: string) => mime.startsWith("image/") || /^(text\/|application\/json$)/.test(mime);

/** Shows an image or the start of a text file in a dialog, without leaving the page. */
function previewButton(app: App, f: { name: string; object_path: string; declared_mime: string }, result: HTMLElement) {
  return el("button", {
    type: "button",
    onclick: (e: Event) =>
      busy(e.currentTarget as HTMLButtonElement, async () => {
        const { data, error } = await app.supabase.storage.from("files").download(f.object_path);
        if (error || !data) return fail(result, error);
        let body: HTMLElement;
        if (f.declared_mime.startsWith("image/")) {
          body = el("img", { alt: f.name, class: "preview" });
          (body as HTMLImageElement).src = URL.createObjectURL(data);
        } else {
          const text = await data.text();
          body = el("pre", { class: "preview" }, text.length > 20_000 ? `${text.slice(0, 20_000)}\n…` : text);
        }
        const close = el("button", { type: "button", onclick: () => dialog.close() }, "Close preview");
        const dialog = el("dialog", { "aria-label": `Preview of ${f.name}` }, el("h3", {}, f.name), body, close);
        dialog.addEventListener("close", () => {
          if (body instanceof HTMLImageElement) URL.revokeObjectURL(body.src);
          dialog.remove();
        });
        document.body.append(dialog);
        dialog.showModal();
        close.focus();
      }),
  }, `Preview ${f.name}`);
}

/** One file through file-upload and its signed URL; the reason when it was refused. */
async function uploadOne(app: App, org: string, file: File, onProgress: (p: number) => void): Promise<Explained | null> {
  const type = file.type || "application/octet-stream";
  if (!ACCEPTED[type]) return UPLOAD_WORDING.unsupported_type;
  const started = await app.supabase.functions.invoke("file-upload", {
    body: { org_id: org, name: file.name, size: file.size, mime_type: type },
  });
  if (started.error) return explain(started.error, UPLOAD_WORDING);
  onProgress(10);
  const status = await upload(app, started.data.signed_url as string, file, (p) => onProgress(10 + p * 0.9));
  if (status >= 200 && status < 300) {
    onProgress(100); // small files may report no progress on the way
    return null;
  }
  return explain(status === 0 ? { code: "network" } : { statusCode: String(status) }, UPLOAD_WORDING);
}

/** PUT to the signed upload URL with progress (fetch has none for uploads), as storage-js would send it. */
function upload(app: App, signedUrl: string, file: File, onProgress: (percent: number) => void) {
  return new Promise<number>((resolve) => {
    const xhr = new XMLHttpRequest();
    const url = signedUrl.startsWith("http") ? signedUrl : `${app.config.apiUrl}/storage/v1${signedUrl}`;
    xhr.open("PUT", url);
    xhr.setRequestHeader("x-upsert", "false");
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress((e.loaded / e.total) * 100);
    xhr.onload = () => resolve(xhr.status);
    xhr.onerror = () => resolve(0);
    const form = new FormData();
    form.append("cacheControl", "3600");
    form.append("", file);
    xhr.send(form);
  });
}
