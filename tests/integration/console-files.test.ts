// The console's files, inbox, audit log and API keys as a school's people use them, at a desktop's
// and a phone's size: files dropped on the page and chosen several at once, with who uploaded them,
// the worker's thumbnail of an image and a preview; system notifications worded as sentences (never
// a scanner's signature, a MIME check's text or a metric key) and a live line that says when quiet
// hours hold deliveries back; the audit log in sentences and pages, for owners only; every scope the
// database accepts offered with its description. Each screen passes tests/helpers/console.ts's checks.
import sharp from "sharp";
import type { Page, WebSocket } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { checked, CONSOLE, consoleHarness, SIZES } from "../helpers/console.ts";

const { admin, user, school, open, cleanup } = consoleHarness();
afterAll(cleanup, 180_000); // a loaded machine can take long to remove people

const png = () => sharp({ create: { width: 96, height: 64, channels: 3, background: "#2f6fb0" } }).png().toBuffer();

/**
 * A school whose teacher has uploaded 23 sheets in one transaction, so all share one `created_at`
 * (the stamp trigger sets it): the case where a list ordered by time alone repeats or skips files
 * between pages. And a student.
 */
async function schoolWithSheets() {
  const { org } = await school();
  const teacher = await user(org, "teacher");
  const student = await user(org, "student");
  await admin`insert into public.files (org_id, object_path, name, size_bytes, declared_mime, status, uploaded_by)
              select ${org}, ${org} || '/2026/12/07/' || gen_random_uuid() || '-sheet.txt', 'Sheet ' || i || '.txt', 100 + i,
                     'text/plain', 'clean', ${teacher.id}
              from generate_series(1, 23) i`;
  return { teacher, student };
}

/** The file names the list shows, in order. */
const shownNames = (page: Page) => page.locator("table.files tbody tr td:nth-child(2)").allInnerTexts();

for (const size of SIZES) {
  describe(`the console's files, inbox, audit log and keys (${size.name}, ${size.width}×${size.height})`, () => {
    it("a teacher drops and chooses files; sees who uploaded them, a thumbnail and a preview", { timeout: 90_000 }, async () => {
      const { org, owner } = await school();
      const teacher = await user(org, "teacher");
      await admin`update auth.users set raw_user_meta_data = '{"full_name": "Theo Teacher"}' where id = ${teacher.id}`;
      const { page, failures, close } = await open(size, teacher.email);
      await page.goto(`${CONSOLE}/#/files`);
      await page.getByText("Live updates on.").waitFor();
      // dropped on the upload form: uploaded at once
      const board = (await png()).toString("base64");
      await page.getByRole("form", { name: "Upload" }).evaluate((form, b64) => {
        const data = new DataTransfer();
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        data.items.add(new File([bytes], "board.png", { type: "image/png" }));
        form.dispatchEvent(new DragEvent("drop", { dataTransfer: data, bubbles: true, cancelable: true }));
      }, board);
      const upload = page.getByRole("form", { name: "Upload" }).locator(".note");
      await upload.filter({ hasText: "board.png uploaded" }).waitFor({ timeout: 20_000 });
      // the worker's thumbnail appears by itself, read with the teacher's rights
      await page.getByRole("img", { name: "Thumbnail of board.png" }).waitFor({ timeout: 30_000 });
      // (the element comes before its bytes have loaded)
      await expect.poll(
        () => page.getByRole("img", { name: "Thumbnail of board.png" }).evaluate((i) => (i as HTMLImageElement).naturalWidth),
        { timeout: 10_000 },
      ).toBeGreaterThan(0);
      // chosen, two at once; the Upload button cannot be pressed again meanwhile
      await page.getByLabel("Files", { exact: true }).setInputFiles([
        { name: "Poem.txt", mimeType: "text/plain", buffer: Buffer.from("Roses are red.\n") },
        { name: "marks.csv", mimeType: "text/csv", buffer: Buffer.from("name,mark\nA,1\n") },
      ]);
      const button = page.getByRole("button", { name: "Upload", exact: true });
      await button.click();
      expect(await button.isDisabled()).toBe(true);
      await upload.filter({ hasText: "Poem.txt, marks.csv uploaded" }).waitFor({ timeout: 20_000 });
      expect(await button.isDisabled()).toBe(false);
      expect(await page.getByRole("progressbar", { name: "Upload progress" }).evaluate((p) => (p as HTMLProgressElement).value))
        .toBe(100);
      await page.getByText("Showing 1–3 of 3").waitFor();
      const poem = page.getByRole("row", { name: /Poem\.txt/ });
      await poem.getByRole("cell", { name: "you", exact: true }).waitFor();
      await poem.getByRole("button", { name: "Preview Poem.txt" }).waitFor({ timeout: 20_000 });
      await checked(page, "files-teacher", size.name);
      await poem.getByRole("button", { name: "Preview Poem.txt" }).click();
      const preview = page.getByRole("dialog", { name: "Preview of Poem.txt" });
      await preview.getByText("Roses are red.").waitFor();
      await preview.getByRole("button", { name: "Close preview" }).click();
      await preview.waitFor({ state: "detached" });
      await close();

      // the owner sees the teacher by name and address as the uploader
      const ownerView = await open(size, owner.email);
      await ownerView.page.goto(`${CONSOLE}/#/files`);
      await ownerView.page.getByRole("row", { name: /board\.png/ }).getByText(`Theo Teacher (${teacher.email})`).waitFor();
      expect([...failures(), ...ownerView.failures()]).toEqual([]);
      await ownerView.close();
    });

    it(
      "a student pages through a long list that says which part it shows, with who uploaded each",
      { timeout: 60_000 },
      async () => {
        const { teacher, student } = await schoolWithSheets();
        await admin`update auth.users set raw_user_meta_data = '{"full_name": "Theo Teacher"}' where id = ${teacher.id}`;
        const { page, failures, close } = await open(size, student.email);
        await page.goto(`${CONSOLE}/#/files`);
        await page.getByText("Showing 1–20 of 23").waitFor();
        expect(await page.getByRole("form", { name: "Upload" }).count()).toBe(0);
        const first = await shownNames(page);
        // a student sees the staff's names (the directory's rule)
        await page.getByRole("row").filter({ has: page.getByRole("cell", { name: first[0], exact: true }) }).getByText(
          "Theo Teacher",
        )
          .waitFor();
        expect(await page.getByRole("button", { name: /^(Delete|Share) / }).count()).toBe(0);
        await checked(page, "files-student", size.name);
        await page.getByRole("button", { name: "Next page" }).click();
        await page.getByText("Showing 21–23 of 23").waitFor();
        const second = await shownNames(page);
        expect(await page.getByRole("button", { name: "Next page" }).count()).toBe(0);
        // every sheet on exactly one page
        expect([...first, ...second].sort()).toEqual(Array.from({ length: 23 }, (_, i) => `Sheet ${i + 1}.txt`).sort());
        await page.getByRole("button", { name: "Previous page" }).click();
        await page.getByText("Showing 1–20 of 23").waitFor();
        expect(await shownNames(page)).toEqual(first);
        expect(failures()).toEqual([]);
        await close();
      },
    );

    it("a slow answer for the first page never paints over the page a person moved to", { timeout: 60_000 }, async () => {
      const { student } = await schoolWithSheets();
      const { page, failures, close } = await open(size, student.email);
      await page.goto(`${CONSOLE}/#/files`);
      await page.getByText("Showing 1–20 of 23").waitFor();
      const first = await shownNames(page);
      // from now on the first page answers 2 s late (as when it is asked while live updates connect)
      let asked = 0, answered = 0;
      const firstPage = /\/rest\/v1\/files\?.*offset=0/;
      const delayed = new Set<unknown>(); // only the answers held back here (one asked before may still be arriving)
      page.on("response", (r) => void (delayed.has(r.request()) && answered++));
      await page.route(firstPage, async (route) => {
        asked++;
        delayed.add(route.request());
        await new Promise((r) => setTimeout(r, 2000));
        await route.continue();
      });
      await page.getByRole("search", { name: "Search files" }).getByRole("button", { name: "Search" }).click(); // asks for page 1
      await page.getByRole("button", { name: "Next page" }).click(); // moved on before it answered
      await page.getByText("Showing 21–23 of 23").waitFor();
      // every late answer for the first page has arrived (the one asked here, and any live update's)
      await expect.poll(() => asked >= 1 && answered === asked, { timeout: 15_000 }).toBe(true);
      await page.waitForTimeout(300); // and been handled
      // page 2 is what stays on the screen: a late first page painted over it would stay too
      await page.getByText("Showing 21–23 of 23").waitFor({ timeout: 5000 });
      const second = await shownNames(page);
      expect(second).toHaveLength(3);
      expect(second.filter((name) => first.includes(name))).toEqual([]);
      expect(failures()).toEqual([]);
      await close();
    });

    it("the inbox words system notifications as sentences and says when quiet hours hold live updates", async () => {
      const { org, owner } = await school();
      const notify = (type: string, title: string, body: string, data: object) =>
        admin`insert into public.notifications (org_id, recipient_id, batch_id, type, title, body, data, priority)
              values (${org}, ${owner.id}, gen_random_uuid(), ${type}, ${title}, ${body}, ${
          admin.json(data as never)
        }, 'normal')`;
      // rows as producers wrote them before they wrote sentences: the raw texts must not show
      await notify("file.rejected", "report.pdf was not accepted", "type_mismatch: declared application/pdf, found image/png", {
        status: "rejected",
      });
      await notify("file.rejected", "game.zip was not accepted", "Win.Test.EICAR_HDB-1", { status: "infected" });
      await notify("usage.warning", "storage_bytes at 85 % of the plan", "850000000 of 1000000000 used on 2026-12-06.", {
        metric: "storage_bytes",
        used: 850000000,
        limit: 1000000000,
        day: "2026-12-06",
      });
      await notify("job.failed", "A background job failed: data.export", "TypeError: cannot read properties of undefined", {
        queue: "data.export",
      });
      const { page, failures, close } = await open(size, owner.email);
      await page.goto(`${CONSOLE}/#/inbox`);
      await page.getByText("4 unread").waitFor();
      await page.getByText("Its content does not match its type").waitFor();
      await page.getByText("It looks like it carries a virus").waitFor();
      await page.getByRole("cell", { name: "Storage at 85 % of the plan", exact: true }).waitFor();
      await page.getByText("850 MB of 1.0 GB used").waitFor();
      await page.getByText("Open Jobs to retry it.").waitFor();
      const text = await page.locator("body").innerText();
      expect(text).not.toMatch(/type_mismatch|application\/pdf|EICAR|storage_bytes|850000000|TypeError/);
      await page.getByText("Live updates on.").waitFor();
      await checked(page, "inbox-system", size.name);

      // quiet hours around now (UTC): live delivery waits, and the page says until when
      const hhmm = (d: Date) => d.toISOString().slice(11, 16);
      const from = new Date(Date.now() - 3600_000);
      const until = new Date(Date.now() + 3600_000);
      await page.getByLabel("Quiet hours from").fill(hhmm(from));
      await page.getByLabel("Quiet hours until").fill(hhmm(until));
      await page.getByLabel("Time zone").selectOption("UTC");
      await page.getByRole("button", { name: "Save preferences" }).click();
      await page.getByText(`Live updates paused during your quiet hours until ${hhmm(until)} (UTC)`).waitFor();
      expect(await page.getByText("Live updates on.").count()).toBe(0);
      await page.reload();
      await page.getByText(`Live updates paused during your quiet hours until ${hhmm(until)} (UTC)`).waitFor();
      // quiet hours elsewhere in the day: on again
      await page.getByLabel("Quiet hours from").fill(hhmm(new Date(Date.now() + 3 * 3600_000)));
      await page.getByLabel("Quiet hours until").fill(hhmm(new Date(Date.now() + 4 * 3600_000)));
      await page.getByRole("button", { name: "Save preferences" }).click();
      await page.getByText("Live updates on.").waitFor();
      expect(failures()).toEqual([]);
      await close();
    });

    it("the audit log is in sentences and pages, for owners; a teacher is not offered it", { timeout: 60_000 }, async () => {
      const { org, owner } = await school();
      const teacher = await user(org, "teacher");
      // thirty entries of the owner's own, so there is a second page
      await admin`insert into audit.log (org_id, actor_user_id, db_role, table_name, row_id, action, changed_columns, new_values)
                  select ${org}, ${owner.id}, 'authenticated', 'public.exercises', gen_random_uuid()::text, 'INSERT', '{title}',
                         jsonb_build_object('title', 'Fractions ' || i)
                  from generate_series(1, 30) i`;
      const { page, failures, close } = await open(size, owner.email);
      await page.goto(`${CONSOLE}/#/keys`);
      await page.getByLabel("Name", { exact: true }).fill("Gradebook");
      await page.getByLabel(/^Read the organization's files/).check();
      await page.getByRole("button", { name: "Create key" }).click();
      await page.getByText("Copy the key now: it is shown only once.").waitFor();
      await page.getByRole("button", { name: "Revoke Gradebook" }).click();
      await page.getByRole("cell", { name: "revoked" }).waitFor();
      await page.getByRole("navigation", { name: "Screens" }).getByRole("link", { name: "Audit log" }).click();
      await page.getByRole("cell", { name: "revoked the API key “Gradebook”" }).waitFor();
      await page.getByRole("cell", { name: "created the API key “Gradebook”" }).waitFor();
      await page.getByRole("cell", { name: "You", exact: true }).first().waitFor();
      await page.getByRole("cell", { name: "added the exercise “Fractions 30”" }).waitFor();
      await page.getByText(/^Showing 1–25 of 3\d$/).waitFor();
      await checked(page, "audit", size.name);
      await page.getByRole("button", { name: "Older entries" }).click();
      await page.getByText(/^Showing 26–3\d of 3\d$/).waitFor();
      // the system's own steps on request: the organization's making
      await page.getByLabel("Include the system's own steps").check();
      await page.getByText(/^Showing 1–25 of \d+$/).waitFor();
      await close();

      const teacherView = await open(size, teacher.email);
      const nav = teacherView.page.getByRole("navigation", { name: "Screens" });
      await nav.getByRole("link", { name: "Files" }).waitFor();
      expect(await nav.getByRole("link", { name: "Audit log" }).count()).toBe(0);
      await teacherView.page.goto(`${CONSOLE}/#/audit`);
      await teacherView.page.getByText("Your role does not include this screen.").waitFor();
      expect([...failures(), ...teacherView.failures()]).toEqual([]);
      await teacherView.close();
    });

    it("an owner is offered every scope the database accepts, each with its description", async () => {
      const { owner } = await school();
      const { page, failures, close } = await open(size, owner.email);
      await page.goto(`${CONSOLE}/#/keys`);
      const scopes = await admin`select key, description from public.permissions order by key`;
      for (const s of scopes) await page.getByLabel(`${s.description} (${s.key})`).waitFor();
      expect(await page.getByRole("group", { name: "Scopes" }).getByRole("checkbox").count()).toBe(scopes.length);
      await page.getByLabel(/^Send analytics events/).check();
      await page.getByLabel("Name", { exact: true }).fill("LMS events");
      await page.getByRole("button", { name: "Create key" }).click();
      await page.getByRole("cell", { name: "events.write", exact: true }).waitFor();
      // the key once, with a copy button; the chosen expiry (30 days, the first offered); never used yet
      await page.getByRole("button", { name: "Copy key" }).click();
      await page.getByText(/^(Copied\.|The browser did not allow copying; the key is selected)/).waitFor();
      const row = page.getByRole("row", { name: /LMS events/ });
      expect(await row.getByRole("cell", { name: "never", exact: true }).count()).toBe(1); // last used
      const [key] = await admin`select extract(epoch from expires_at - now()) / 86400 as days from public.api_keys
                                where org_id = (select org_id from public.organization_members where user_id = ${owner.id})`;
      expect(Number(key.days)).toBeGreaterThan(29.9);
      expect(Number(key.days)).toBeLessThan(30.1);
      await checked(page, "keys-scopes", size.name);
      expect(failures()).toEqual([]);
      await close();
    });
  });
}

describe("the console's screens when a person moves on", () => {
  it("a screen left closes its live connection, and one left while loading never draws on the next", async () => {
    const { student } = await schoolWithSheets();
    const { page, failures, close } = await open(SIZES[0], student.email);
    const open_ = new Set<WebSocket>();
    page.on("websocket", (ws) => {
      open_.add(ws);
      ws.on("close", () => open_.delete(ws));
    });
    await page.goto(`${CONSOLE}/#/files`);
    await page.getByText("Live updates on.").waitFor();
    expect(open_.size).toBe(1);
    await page.goto(`${CONSOLE}/#/auth`);
    await page.getByRole("heading", { name: "Account" }).waitFor();
    await expect.poll(() => open_.size, { timeout: 5000 }).toBe(0);

    // the files screen's first question answers 2 s late; the person has moved on by then
    let answered = false;
    await page.route(/\/rest\/v1\/rpc\/organization_members_directory/, async (route) => {
      await new Promise((r) => setTimeout(r, 2000));
      await route.continue();
      answered = true;
    });
    const asked = page.waitForRequest(/\/rest\/v1\/rpc\/organization_members_directory/);
    await page.goto(`${CONSOLE}/#/files`);
    await asked;
    await page.goto(`${CONSOLE}/#/auth`);
    await page.getByRole("heading", { name: "Account" }).waitFor();
    await expect.poll(() => answered, { timeout: 10_000 }).toBe(true);
    await page.waitForTimeout(1000); // the left screen has had its answer and time to draw
    expect(await page.getByRole("heading", { name: "Files" }).count()).toBe(0);
    expect(await page.getByText(/^Showing /).count()).toBe(0);
    expect(await page.getByRole("heading", { name: "Account" }).count()).toBe(1);
    expect(open_.size).toBe(0); // nor did it connect for live updates
    expect(failures()).toEqual([]);
    await close();
  });
});
