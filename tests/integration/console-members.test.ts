// The console's members, invitations and sharing as a school's owner, admin, teacher and student use
// them, at a desktop's and a phone's size: members by name and address (a student sees the staff's
// addresses and their own, never another student's), a person's own name, role changes and removal
// with a refusal said next to its control, several addresses invited at once with each refusal
// named, an address with a pending invitation of another role asked about (kept or replaced, never
// silently), resend keeping the role, revoke; who sees files by role, shares with Unshare, a share
// that would change nothing refused, and an infected file never listed to a student. Each screen
// passes tests/helpers/console.ts's checks.
import { afterAll, describe, expect, it } from "vitest";
import { checked, CONSOLE, consoleHarness, newEmail, noteIn, SIZES } from "../helpers/console.ts";
import { mailTo } from "../helpers/mail.ts";

const { admin, user, school, open, cleanup } = consoleHarness();
afterAll(cleanup);

const named = (id: string, name: string) =>
  admin`update auth.users set raw_user_meta_data = ${admin.json({ full_name: name })} where id = ${id}`;
const openInvitations = (org: string) =>
  admin`select email, role from public.invitations where org_id = ${org} and accepted_at is null and revoked_at is null
        order by email`;

for (const size of SIZES) {
  describe(`the console's members, invitations and sharing (${size.name}, ${size.width}×${size.height})`, () => {
    it("an owner sees members by name and address, changes a role, removes someone; an admin's refusal is said at the control", {
      timeout: 90_000,
    }, async () => {
      const { org, owner } = await school();
      const adminUser = await user(org, "admin");
      const teacher = await user(org, "teacher");
      const student = await user(org, "student");
      await named(adminUser.id, "Ada Admin");
      await named(teacher.id, "Theo Teacher");
      const { page, failures, close } = await open(size, owner.email);
      await page.goto(`${CONSOLE}/#/orgs`);
      const row = page.getByRole("row", { name: /Theo Teacher/ });
      await row.getByText(teacher.email, { exact: true }).waitFor();
      await page.getByRole("row", { name: /Ada Admin/ }).getByText(adminUser.email, { exact: true }).waitFor();
      await page.getByText(`${owner.email} (you)`).waitFor();
      await checked(page, "members-owner", size.name);
      await page.getByLabel("Role of Theo Teacher").selectOption("admin");
      await page.getByRole("button", { name: "Change role of Theo Teacher" }).click();
      await page.getByRole("status", { name: "Members" }).filter({ hasText: "Theo Teacher is now admin." }).waitFor();
      expect(await admin`select role from public.organization_members where org_id = ${org} and user_id = ${teacher.id}`)
        .toEqual([{ role: "admin" }]);
      await page.getByRole("button", { name: `Remove ${student.email}` }).click();
      await page.getByRole("status", { name: "Members" }).filter({ hasText: `${student.email} was removed.` }).waitFor();
      expect(await admin`select 1 from public.organization_members where org_id = ${org} and user_id = ${student.id}`).toEqual(
        [],
      );
      expect(failures()).toEqual([]);
      await close();

      // an admin is offered only those they outrank; a page gone stale meets the database's rule, in words
      const other = await user(org, "student");
      const adminView = await open(size, adminUser.email);
      await adminView.page.goto(`${CONSOLE}/#/orgs`);
      await adminView.page.getByRole("button", { name: `Change role of ${other.email}` }).waitFor();
      expect(await adminView.page.getByRole("button", { name: /Change role of (Theo Teacher|Ada Admin)/ }).count()).toBe(0);
      expect(await adminView.page.getByRole("button", { name: `Remove ${owner.email}` }).count()).toBe(0);
      await admin`update public.organization_members set role = 'admin' where org_id = ${org} and user_id = ${other.id}`;
      await adminView.page.getByLabel(`Role of ${other.email}`).selectOption("teacher");
      await adminView.page.getByRole("button", { name: `Change role of ${other.email}` }).click();
      const refusal = adminView.page.getByRole("row", { name: new RegExp(other.email) }).locator(".note.error");
      await refusal.filter({ hasText: "Your role may not change that member's role." }).waitFor();
      expect(await admin`select role from public.organization_members where org_id = ${org} and user_id = ${other.id}`)
        .toEqual([{ role: "admin" }]);
      await checked(adminView.page, "members-admin-refused", size.name);
      expect(adminView.failures()).toEqual([]);
      await adminView.close();
    });

    it(
      "a student sees names and roles, the staff's addresses and their own, and sets their own name",
      { timeout: 90_000 },
      async () => {
        const { org, owner } = await school();
        await named(owner.id, "Olivia Owner");
        const teacher = await user(org, "teacher");
        await named(teacher.id, "Theo Teacher");
        const classmate = await user(org, "student");
        await named(classmate.id, "Cleo Classmate");
        const student = await user(org, "student");
        const { page, failures, close } = await open(size, student.email);
        await page.goto(`${CONSOLE}/#/orgs`);
        await page.getByRole("row", { name: /Theo Teacher/ }).getByText(teacher.email).waitFor();
        await page.getByRole("row", { name: /Olivia Owner/ }).getByText(owner.email).waitFor();
        await page.getByText(`${student.email} (you)`).waitFor();
        await page.getByRole("row", { name: /Cleo Classmate/ }).waitFor();
        expect(await page.locator("body").innerText()).not.toContain(classmate.email);
        await page.getByText("Other students' e-mail addresses are not shown to students.").waitFor();
        expect(await page.getByRole("form", { name: "Invite" }).count()).toBe(0);
        expect(await page.getByRole("button", { name: /^(Change role|Remove) / }).count()).toBe(0);
        await page.getByLabel("Your name, as other members see it").fill("Sam Student");
        await page.getByRole("button", { name: "Save name" }).click();
        await noteIn(page, "Your name").filter({ hasText: "Others in your organizations now see you as Sam Student." }).waitFor();
        await page.getByText("Sam Student (you)").waitFor();
        await checked(page, "members-student", size.name);
        // the classmate's address stays hidden, also from the API the page uses
        const seen = await page.evaluate(async (org) => {
          const key = Object.keys(localStorage).find((k) => k.endsWith("-auth-token"))!;
          const token = JSON.parse(localStorage.getItem(key)!).access_token as string;
          const config = await (await fetch("/config.json")).json();
          const r = await fetch(`${config.apiUrl}/rest/v1/rpc/organization_members_directory`, {
            method: "POST",
            headers: { apikey: config.publishableKey, Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
            body: JSON.stringify({ org_id: org }),
          });
          return JSON.stringify(await r.json());
        }, org);
        expect(seen).toContain("Cleo Classmate");
        expect(seen).not.toContain(classmate.email);
        expect(failures()).toEqual([]);
        await close();
      },
    );

    it("an owner invites several addresses, is asked before a pending invitation changes role, resends and revokes", {
      timeout: 90_000,
    }, async () => {
      const { org, owner } = await school();
      const { page, failures, close } = await open(size, owner.email);
      await page.goto(`${CONSOLE}/#/orgs`);
      const a = newEmail();
      const b = newEmail();
      await page.getByLabel("E-mail addresses").fill(`${a}, not-an-address\n${b}`);
      await page.getByLabel("Role", { exact: true }).selectOption("teacher");
      await page.getByRole("button", { name: "Invite" }).click();
      const result = noteIn(page, "Invite").first();
      await result.filter({ hasText: `Invitation sent to ${a}, ${b} as teacher.` }).waitFor({ timeout: 20_000 });
      expect(await result.textContent()).toContain("Not sent: not-an-address: That is not an e-mail address.");
      expect(await page.getByLabel("E-mail addresses").inputValue()).toBe("not-an-address"); // what is left to fix
      await page.getByRole("cell", { name: a, exact: true }).waitFor(); // the list, without a reload
      expect(await openInvitations(org)).toEqual(
        [{ email: a, role: "teacher" }, { email: b, role: "teacher" }].sort((x, y) => x.email.localeCompare(y.email)),
      );
      const mail = await mailTo(a, /invit/i);
      expect(mail.text).toContain("accept-invitation");

      // the same addresses as students: asked about, nothing replaced until answered
      await page.getByLabel("E-mail addresses").fill(`${a}\n${b}`);
      await page.getByLabel("Role", { exact: true }).selectOption("student");
      await page.getByRole("button", { name: "Invite" }).click();
      await page.getByText(`${a} already has a pending teacher invitation. Replace it with a student invitation?`).waitFor();
      await page.getByText(`${b} already has a pending teacher invitation. Replace it with a student invitation?`).waitFor();
      expect((await openInvitations(org)).map((i) => i.role)).toEqual(["teacher", "teacher"]);
      await checked(page, "invitations", size.name);
      await page.getByRole("group", { name: `Invitation to ${a}` }).getByRole("button", { name: "Keep teacher" }).click();
      await page.getByText(`${a} keeps the teacher invitation.`).waitFor();
      await page.getByRole("group", { name: `Invitation to ${b}` }).getByRole("button", { name: "Replace with student" }).click();
      await page.getByText(`The teacher invitation to ${b} was replaced by a student invitation.`).waitFor({ timeout: 20_000 });
      expect(await openInvitations(org)).toEqual(
        [{ email: a, role: "teacher" }, { email: b, role: "student" }].sort((x, y) => x.email.localeCompare(y.email)),
      );

      await page.getByRole("button", { name: `Resend to ${a}` }).click();
      await page.getByText(`Invitation sent again to ${a} (teacher).`).waitFor({ timeout: 20_000 });
      expect((await openInvitations(org)).find((i) => i.email === a)).toEqual({ email: a, role: "teacher" });
      await page.getByRole("button", { name: `Revoke ${a}` }).click();
      await page.getByText(`The invitation to ${a} was withdrawn.`).waitFor();
      expect(await page.getByRole("cell", { name: a, exact: true }).count()).toBe(0);
      expect((await openInvitations(org)).map((i) => i.email)).toEqual([b]);
      expect(failures()).toEqual([]);
      await close();
    });

    it("a teacher sees who sees files, shares one and unshares it; a student never sees an infected file", {
      timeout: 90_000,
    }, async () => {
      const { org } = await school();
      const teacher = await user(org, "teacher");
      const student = await user(org, "student");
      await named(student.id, "Sam Student");
      const file = (name: string, status: string) =>
        admin`insert into public.files (org_id, object_path, name, size_bytes, declared_mime, status, sha256)
              values (${org}, ${`${org}/2026/01/01/${crypto.randomUUID()}-${name}`}, ${name}, 10, 'text/plain', ${status},
                      ${"a".repeat(64)}) returning id`;
      await file("Timetable.txt", "clean");
      await file("Suspicious.txt", "infected");
      const { page, failures, close } = await open(size, teacher.email);
      await page.goto(`${CONSOLE}/#/files`);
      await page.getByRole("link", { name: "Share Timetable.txt" }).click();
      await page.getByRole("heading", { name: "Who sees files" }).waitFor();
      await page.getByText("Students: every ready file (see and download), nothing being checked or refused.").waitFor();
      await page.getByText("Nothing is shared beyond what each role sees.").waitFor();
      const form = page.getByRole("form", { name: "Share a file" });
      await form.getByLabel("File").selectOption({ label: "Timetable.txt" });
      await form.getByLabel("With").selectOption({ label: "all students" });
      await form.getByLabel("Access").selectOption("read");
      await form.getByRole("button", { name: "Share" }).click();
      await noteIn(page, "Share a file").filter({
        hasText: "All students can already see and download every ready file: this share would change nothing.",
      }).waitFor();
      expect(await admin`select 1 from public.file_shares where org_id = ${org}`).toEqual([]);
      await form.getByLabel("Access").selectOption("write");
      await form.getByRole("button", { name: "Share" }).click();
      await noteIn(page, "Share a file").filter({
        hasText: "Timetable.txt is shared with all students: they may see, download, rename and delete it.",
      }).waitFor();
      await page.getByRole("cell", { name: "all students", exact: true }).waitFor();
      expect(await admin`select grantee_role, access from public.file_shares where org_id = ${org}`)
        .toEqual([{ grantee_role: "student", access: "write" }]);
      await checked(page, "shares", size.name);
      await page.getByRole("button", { name: "Unshare Timetable.txt with all students" }).click();
      await page.getByText("Timetable.txt is no longer shared with all students.").waitFor();
      await page.getByText("Nothing is shared beyond what each role sees.").waitFor();
      expect(await admin`select 1 from public.file_shares where org_id = ${org}`).toEqual([]);
      expect(failures()).toEqual([]);
      await close();

      const studentView = await open(size, student.email);
      const nav = studentView.page.getByRole("navigation", { name: "Screens" });
      await nav.getByRole("link", { name: "Files" }).click();
      await studentView.page.getByRole("cell", { name: "Timetable.txt", exact: true }).waitFor();
      expect(await studentView.page.getByText("Suspicious.txt").count()).toBe(0);
      expect(await nav.getByRole("link", { name: "Sharing" }).count()).toBe(0);
      expect(await studentView.page.getByRole("link", { name: /^Share / }).count()).toBe(0);
      await studentView.page.goto(`${CONSOLE}/#/shares`);
      await studentView.page.getByText("Your role does not include this screen.").waitFor();
      expect(studentView.failures()).toEqual([]);
      await studentView.close();
    });
  });
}
