// The console as a school's owner, teacher and student use it (issue 33), at a desktop's and a
// phone's size: feedback next to the control that caused it and in readable words (no constraint
// names, no raw codes), each role offered only what it may do, members with their addresses, role
// changes and removal, invitations sent again and withdrawn, lists that refresh, jobs offering only
// valid actions, downloads saved under their names, the inbox's unread count, usage live. Every
// screen is checked with axe-core: no serious or critical violations (tests/helpers/console.ts).
import crypto from "node:crypto";
import fs from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { checked, CONSOLE, consoleHarness, newEmail, noteIn, SIZES } from "../helpers/console.ts";

const { admin, user, school, open, cleanup } = consoleHarness();
afterAll(cleanup, 180_000); // a loaded machine can take long to remove people

for (const size of SIZES) {
  describe(`the console for a school (${size.name}, ${size.width}×${size.height})`, () => {
    it(
      "an owner: refusals next to their control in plain words; keys and uploads refresh their lists",
      { timeout: 60_000 },
      async () => {
        const { owner } = await school();
        const { page, failures, close } = await open(size, owner.email);
        await page.goto(`${CONSOLE}/#/keys`);
        await page.getByLabel("Name", { exact: true }).fill("Timetable sync");
        await page.getByRole("button", { name: "Create key" }).click(); // no scope ticked
        await noteIn(page, "New API key").filter({ hasText: "Tick at least one scope." }).waitFor();
        await page.getByLabel(/^See the organization and its members/).check();
        await page.getByLabel("Expires").selectOption("30");
        await page.getByRole("button", { name: "Create key" }).click();
        await page.getByText("Copy the key now: it is shown only once.").waitFor();
        expect(await page.locator("#new-key").textContent()).toMatch(/^sk_/);
        await noteIn(page, "New API key").filter({ hasText: "Key Timetable sync created." }).waitFor();
        expect(await noteIn(page, "New API key").filter({ hasText: "Tick at least one scope" }).count()).toBe(0); // the old error is gone
        await page.getByRole("cell", { name: "Timetable sync", exact: true }).waitFor(); // the list, without a reload
        await checked(page, "keys", size.name);
        await page.getByRole("button", { name: "Revoke Timetable sync" }).click();
        await page.getByText("Key Timetable sync revoked.").waitFor();
        await page.getByRole("cell", { name: "revoked" }).waitFor();

        await page.goto(`${CONSOLE}/#/files`);
        await page.getByText("Live updates on.").waitFor();
        // a type the bucket refuses: said next to the Upload button, with the accepted types
        await page.getByLabel("Files", { exact: true }).setInputFiles({
          name: "tool.exe",
          mimeType: "application/x-msdownload",
          buffer: Buffer.from("MZ"),
        });
        await page.getByRole("button", { name: "Upload" }).click();
        const upload = noteIn(page, "Upload");
        await upload.filter({ hasText: "That type of file is not accepted." }).waitFor();
        expect(await upload.textContent()).toContain("Accepted: PNG, JPEG");
        expect(await page.getByRole("progressbar", { name: "Upload progress" }).evaluate((p) => (p as HTMLProgressElement).value))
          .toBe(0);
        // two files at once, then the list shows both, checked live
        await page.getByLabel("Files", { exact: true }).setInputFiles([
          { name: "Reading list.txt", mimeType: "text/plain", buffer: Buffer.from("Books.\n") },
          { name: "marks.csv", mimeType: "text/csv", buffer: Buffer.from("name,mark\nA,1\n") },
        ]);
        await page.getByRole("button", { name: "Upload" }).click();
        await upload.filter({ hasText: "Reading list.txt, marks.csv uploaded" }).waitFor();
        await page.getByRole("button", { name: "Download Reading list.txt" }).waitFor({ timeout: 20_000 });
        await checked(page, "files", size.name);
        // the download is saved under the file's name; the console stays
        const [download] = await Promise.all([
          page.waitForEvent("download"),
          page.getByRole("button", { name: "Download Reading list.txt" }).click(),
        ]);
        expect(download.suggestedFilename()).toBe("Reading list.txt");
        expect(fs.readFileSync(await download.path(), "utf8")).toBe("Books.\n");
        expect(page.url()).toContain("#/files");
        // search
        await page.getByLabel("Search by name").fill("marks");
        await page.getByRole("button", { name: "Search" }).click();
        await page.getByText("Showing 1–1 of 1").waitFor();
        // delete
        await page.getByRole("button", { name: "Delete marks.csv" }).click();
        await page.getByText("marks.csv was deleted.").waitFor();
        await page.getByText("No files yet.").waitFor();
        expect(failures()).toEqual([]);
        await close();
      },
    );

    it("a student is offered only what students may do", async () => {
      const { org } = await school();
      const student = await user(org, "student");
      const { page, failures, close } = await open(size, student.email);
      const nav = page.getByRole("navigation", { name: "Screens" });
      await nav.getByRole("link", { name: "Files" }).waitFor();
      for (const hidden of ["Usage", "Jobs", "API keys"]) expect(await nav.getByRole("link", { name: hidden }).count()).toBe(0);
      await page.getByText("Hillside School · student").waitFor();
      await page.goto(`${CONSOLE}/#/orgs`);
      await page.getByRole("heading", { name: "Members" }).waitFor();
      expect(await page.getByRole("form", { name: "Invite" }).count()).toBe(0);
      expect(await page.getByRole("button", { name: /Change role|Remove/ }).count()).toBe(0);
      await page.getByText(`${student.email} (you)`).waitFor();
      await checked(page, "orgs-student", size.name);
      await page.goto(`${CONSOLE}/#/files`);
      await page.getByText("Live updates on.").waitFor();
      expect(await page.getByRole("form", { name: "Upload" }).count()).toBe(0);
      await page.goto(`${CONSOLE}/#/keys`);
      await page.getByText("Your role does not include this screen.").waitFor();
      expect(failures()).toEqual([]);
      await close();
    });

    it("an owner sees members by address, changes a role, removes someone, resends and revokes invitations", async () => {
      const { org, owner } = await school();
      const teacher = await user();
      // the teacher joined by an invitation: their address is known to those who invite
      await admin`insert into public.invitations (org_id, email, role, token_hash, expires_at, accepted_at, accepted_by)
                  values (${org}, ${teacher.email}, 'teacher', ${
        crypto.randomBytes(32)
      }, now() + interval '1 day', now(), ${teacher.id})`;
      await admin`insert into public.organization_members (org_id, user_id, role) values (${org}, ${teacher.id}, 'teacher')`;
      const { page, failures, close } = await open(size, owner.email);
      await page.goto(`${CONSOLE}/#/orgs`);
      await page.getByRole("cell", { name: teacher.email, exact: true }).waitFor();
      await page.getByLabel(`Role of ${teacher.email}`).selectOption("admin");
      await page.getByRole("button", { name: `Change role of ${teacher.email}` }).click();
      await page.getByText(`${teacher.email} is now admin.`).waitFor();
      const [m] = await admin`select role from public.organization_members where org_id = ${org} and user_id = ${teacher.id}`;
      expect(m.role).toBe("admin");

      const a = newEmail();
      const b = newEmail();
      await page.getByLabel("E-mail addresses").fill(`${a}, ${b}`);
      await page.getByLabel("Role", { exact: true }).selectOption("teacher");
      await page.getByRole("button", { name: "Invite" }).click();
      await page.getByText(`Invitation sent to ${a}, ${b} as teacher.`).waitFor({ timeout: 20_000 });
      await page.getByRole("cell", { name: a, exact: true }).waitFor(); // the list, without a reload
      await checked(page, "orgs", size.name);
      await page.getByRole("button", { name: `Resend to ${a}` }).click();
      await page.getByText(`Invitation sent again to ${a} (teacher).`).waitFor({ timeout: 20_000 });
      const open_ = await admin`select role from public.invitations where org_id = ${org} and email = ${a}
                                and accepted_at is null and revoked_at is null`;
      expect(open_).toEqual([{ role: "teacher" }]); // the role is kept, not reset to student
      await page.getByRole("button", { name: `Revoke ${b}` }).click();
      await page.getByText(`The invitation to ${b} was withdrawn.`).waitFor();
      expect(await page.getByRole("cell", { name: b, exact: true }).count()).toBe(0);

      await page.getByRole("button", { name: `Remove ${teacher.email}` }).click();
      await page.getByText(`${teacher.email} was removed.`).waitFor();
      expect(await admin`select 1 from public.organization_members where org_id = ${org} and user_id = ${teacher.id}`).toEqual(
        [],
      );
      expect(failures()).toEqual([]);
      await close();
    });

    it("the inbox counts unread, marks all read and shows when; usage shows members and storage live", async () => {
      const { org, owner } = await school();
      await user(org, "student");
      for (const t of ["Trip on Friday", "Parents' evening"]) {
        await admin`insert into public.notifications (org_id, recipient_id, batch_id, type, title, body, priority)
                    values (${org}, ${owner.id}, gen_random_uuid(), 'announcement.posted', ${t}, 'Details inside.', 'normal')`;
      }
      await admin`update public.storage_quotas set used_bytes = 26000000 where org_id = ${org}`;
      const { page, failures, close } = await open(size, owner.email);
      await page.goto(`${CONSOLE}/#/inbox`);
      await page.getByText("2 unread").waitFor();
      expect(await page.locator("time").count()).toBeGreaterThanOrEqual(2);
      await checked(page, "inbox", size.name);
      await page.getByRole("button", { name: "Mark all read" }).click();
      await page.getByText("Nothing unread.").waitFor();
      // quiet hours with one end only: said next to the form, nothing saved
      await page.getByLabel("Quiet hours from").fill("21:00");
      await page.getByRole("button", { name: "Save preferences" }).click();
      await noteIn(page, "Notification preferences").filter({ hasText: "Quiet hours need a start and an end." }).waitFor();

      await page.goto(`${CONSOLE}/#/usage`);
      const members = page.getByRole("row", { name: /^Members/ });
      await members.getByRole("cell", { name: "2", exact: true }).waitFor();
      await page.getByRole("row", { name: /^Storage/ }).getByRole("cell", { name: "26 MB", exact: true }).waitFor();
      await page.getByText(/Daily counters (as of|have not been computed)/).waitFor();
      await checked(page, "usage", size.name);
      expect(failures()).toEqual([]);
      await close();
    });

    it("jobs offer only what their state allows; an export downloads under a readable name", { timeout: 60_000 }, async () => {
      const { owner } = await school();
      const { page, failures, close } = await open(size, owner.email);
      await page.goto(`${CONSOLE}/#/jobs`);
      await page.getByRole("button", { name: "Export the organization's data" }).click();
      await page.getByText("Your export is ready.").waitFor({ timeout: 30_000 });
      await page.getByRole("heading", { name: "Background jobs" }).waitFor();
      await page.reload();
      await page.getByRole("cell", { name: "done" }).first().waitFor();
      await page.getByRole("cell", { name: "Data export", exact: true }).first().waitFor(); // the queue in words
      // a finished job offers neither retry nor cancel
      expect(await page.getByRole("button", { name: /^(Retry|Cancel) / }).count()).toBe(0);
      await checked(page, "jobs", size.name);
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.getByRole("button", { name: "Download export" }).first().click(),
      ]);
      expect(download.suggestedFilename()).toMatch(/^hill-[0-9a-f]{8}-export-\d{4}-\d\d-\d\d\.json$/);
      expect(JSON.parse(fs.readFileSync(await download.path(), "utf8"))).toBeTypeOf("object");
      expect(failures()).toEqual([]);
      await close();
    });
  });
}
