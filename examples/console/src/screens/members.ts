// An organization's people: members by name and address from the member directory (addresses as
// the database lets the viewer see them: a student sees the staff's and their own), each person's
// own name, role changes and removal for those who outrank a member, and invitations (several
// addresses at once, each checked; an address with a pending invitation of another role is asked
// about, never silently replaced; resend and revoke). What is offered follows the token's
// permissions and ranks; the database decides.
import { type App, type Claims, RANK, type Role } from "../app.ts";
import { explain, type Explained, readable } from "../errors.ts";
import { busy, el, fail, note, tell, time } from "../ui.ts";

const ROLES: Role[] = ["student", "teacher", "admin", "owner"];
/** What invitations.email accepts (050_invitations.sql), checked before anything is sent. */
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const A_ROLE: Record<Role, string> = { owner: "an owner", admin: "an admin", teacher: "a teacher", student: "a student" };

interface Person {
  user_id: string;
  display_name: string | null;
  email: string | null;
  role: Role;
  joined_at: string;
}

export async function membersSection(app: App, root: HTMLElement, claims: Claims, org: string) {
  const can = (p: string) => claims.permissions.includes(p);
  const myRank = claims.org_role ? RANK[claims.org_role] : 0;
  const grantable = ROLES.filter((r) => claims.org_role === "owner" || RANK[r] < myRank);
  const members = el("div", {});
  const membersNote = note("Members");
  let directory: Person[] = [];

  const label = (p: Person) => p.display_name ?? p.email ?? A_ROLE[p.role];
  const renderMembers = async () => {
    const { data, error } = await app.supabase.rpc("organization_members_directory", { org_id: org });
    if (error) return members.replaceChildren(el("p", { class: "note error" }, await readable(error)));
    directory = data as Person[];
    members.replaceChildren(
      el(
        "table",
        { class: "members" },
        el("thead", {}, el("tr", {}, ...["Member", "Role", "Joined"].map((h) => el("th", { scope: "col" }, h)))),
        el(
          "tbody",
          {},
          ...directory.map((p) => {
            const me = p.user_id === claims.sub;
            const mayChange = can("members.manage") && !me && (claims.org_role === "owner" || RANK[p.role] < myRank);
            return el(
              "tr",
              {},
              el(
                "td",
                {},
                `${label(p)}${me ? " (you)" : ""}`,
                p.display_name && p.email ? el("span", { class: "hint block" }, p.email) : "",
              ),
              el("td", {}, mayChange ? memberControls(p) : p.role),
              el("td", {}, time(p.joined_at)),
            );
          }),
        ),
      ),
      can("members.invite") || can("members.manage")
        ? ""
        : el("p", { class: "hint" }, "Other students' e-mail addresses are not shown to students."),
    );
  };

  const memberControls = (p: Person) => {
    const who = label(p);
    const result = note();
    const role = el(
      "select",
      { "aria-label": `Role of ${who}` },
      ...grantable.map((r) => el("option", { value: r, ...(r === p.role ? { selected: true } : {}) }, r)),
    );
    return el(
      "div",
      { class: "row-actions" },
      role,
      el("button", {
        type: "button",
        onclick: (e: Event) =>
          busy(e.currentTarget as HTMLButtonElement, async () => {
            if (role.value === p.role) return tell(result, `${who} is already ${A_ROLE[p.role]}.`, "info");
            const r = await app.supabase.from("organization_members").update({ role: role.value as Role })
              .eq("org_id", org).eq("user_id", p.user_id).select("role");
            if (r.error) return fail(result, r.error);
            if (!r.data.length) return tell(result, await explain({ code: "42501" }), "error");
            await renderMembers();
            tell(membersNote, `${who} is now ${role.value}.`, "ok");
          }),
      }, `Change role of ${who}`),
      el("button", {
        type: "button",
        class: "danger",
        onclick: async (e: Event) => {
          if (!confirm(`Remove ${who} from the organization?`)) return;
          await busy(e.currentTarget as HTMLButtonElement, async () => {
            const r = await app.supabase.from("organization_members").delete().eq("org_id", org).eq("user_id", p.user_id)
              .select("user_id");
            if (r.error) return fail(result, r.error);
            if (!r.data.length) return tell(result, await explain({ code: "42501" }), "error");
            await renderMembers();
            tell(membersNote, `${who} was removed.`, "ok");
          });
        },
      }, `Remove ${who}`),
      result,
    );
  };

  root.append(el("h3", {}, "Members"), membersNote, members, await nameForm(app, renderMembers));
  await renderMembers();
  if (can("members.invite")) await invitationsSection(app, root, org, grantable, () => directory);
}

/** The person's own name, as the directory shows it to the others (the account's full_name). */
async function nameForm(app: App, changed: () => Promise<void>) {
  const { data } = await app.supabase.auth.getUser();
  const name = el("input", {
    id: "my-name",
    maxlength: "100",
    autocomplete: "name",
    value: String(data.user?.user_metadata?.full_name ?? ""),
  });
  const result = note();
  return el(
    "form",
    {
      "aria-label": "Your name",
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const wanted = name.value.trim();
        if (!wanted) return tell(result, { text: "Enter your name.", hint: "Up to 100 characters." }, "error");
        await busy((e.target as HTMLFormElement).querySelector("button")!, async () => {
          const r = await app.supabase.auth.updateUser({ data: { full_name: wanted } });
          if (r.error) return fail(result, r.error);
          await changed();
          tell(result, `Others in your organizations now see you as ${wanted}.`, "ok");
        });
      },
    },
    el("label", { for: name.id }, "Your name, as other members see it"),
    el("div", { class: "row-actions" }, name, el("button", { type: "submit" }, "Save name")),
    result,
  );
}

interface Invitation {
  id: string;
  email: string;
  role: Role;
  created_at: string;
  expires_at: string;
}

async function invitationsSection(
  app: App,
  root: HTMLElement,
  org: string,
  grantable: Role[],
  directory: () => Person[],
) {
  const list = el("div", {});
  const inviteNote = note("Invitation result");
  const questions = el("div", {});
  let open: Invitation[] = [];

  const renderInvitations = async () => {
    const { data, error } = await app.supabase.from("invitations")
      .select("id, email, role, created_at, expires_at").eq("org_id", org).is("accepted_at", null).is("revoked_at", null)
      .order("created_at", { ascending: false });
    if (error) return list.replaceChildren(el("p", { class: "note error" }, await readable(error)));
    open = data as Invitation[];
    if (!open.length) return list.replaceChildren(el("p", {}, "No pending invitations."));
    list.replaceChildren(el(
      "table",
      {},
      el("thead", {}, el("tr", {}, ...["E-mail", "Role", "Sent", "Expires", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...open.map((i) => invitationRow(i))),
    ));
  };

  const invitationRow = (i: Invitation) => {
    const result = note();
    return el(
      "tr",
      {},
      el("td", {}, i.email),
      el("td", {}, i.role),
      el("td", {}, time(i.created_at)),
      el("td", {}, time(i.expires_at)),
      // resending and withdrawing follow the same rank rule as inviting (the database refuses the rest)
      !grantable.includes(i.role) ? el("td", {}, "") : el(
        "td",
        {},
        el(
          "div",
          { class: "row-actions" },
          // a new mail with a new link, for the same role; the old link stops working
          inviteButton(
            `Resend to ${i.email}`,
            i.email,
            i.role,
            result,
            () => tell(inviteNote, `Invitation sent again to ${i.email} (${i.role}).`, "ok"),
          ),
          el("button", {
            type: "button",
            class: "danger",
            onclick: async (e: Event) => {
              if (!confirm(`Withdraw the invitation to ${i.email}?`)) return;
              await busy(e.currentTarget as HTMLButtonElement, async () => {
                const r = await app.supabase.rpc("revoke_invitation", { invitation_id: i.id });
                if (r.error) return fail(result, r.error);
                await renderInvitations();
                tell(inviteNote, `The invitation to ${i.email} was withdrawn.`, "ok");
              });
            },
          }, `Revoke ${i.email}`),
          result,
        ),
      ),
    );
  };

  /** A button that sends an invitation (again); `sent` says so once it went, the refusal stays at the button. */
  const inviteButton = (label: string, email: string, role: Role, result: HTMLElement, sent: () => void) =>
    el("button", {
      type: "button",
      onclick: (e: Event) =>
        busy(e.currentTarget as HTMLButtonElement, async () => {
          const r = await invite(app, org, email, role);
          if (r) return tell(result, r, "error");
          sent();
          await renderInvitations();
        }),
    }, label);

  /** Asks before an open invitation of another role is replaced; nothing is sent until answered. */
  const ask = (pending: Invitation, role: Role) => {
    const result = note();
    const question = el(
      "div",
      { class: "question", role: "group", "aria-label": `Invitation to ${pending.email}` },
      el(
        "p",
        {},
        `${pending.email} already has a pending ${pending.role} invitation. Replace it with ${A_ROLE[role]} invitation?`,
      ),
      el(
        "div",
        { class: "row-actions" },
        // the database refuses to replace an open invitation of another role: withdrawn first, on purpose
        el("button", {
          type: "button",
          onclick: (e: Event) =>
            busy(e.currentTarget as HTMLButtonElement, async () => {
              const revoked = await app.supabase.rpc("revoke_invitation", { invitation_id: pending.id });
              if (revoked.error) return fail(result, revoked.error);
              const r = await invite(app, org, pending.email, role);
              if (r) return tell(result, r, "error");
              question.remove();
              tell(inviteNote, `The ${pending.role} invitation to ${pending.email} was replaced by a ${role} invitation.`, "ok");
              await renderInvitations();
            }),
        }, `Replace with ${role}`),
        el("button", {
          type: "button",
          onclick: () => {
            question.remove();
            tell(inviteNote, `${pending.email} keeps the ${pending.role} invitation.`, "info");
          },
        }, `Keep ${pending.role}`),
      ),
      result,
    );
    questions.append(question);
  };

  const emails = el("textarea", { id: "invite-emails", rows: "3", autocomplete: "off", "aria-describedby": "invite-help" });
  const role = el("select", { id: "invite-role" }, ...grantable.map((r) => el("option", { value: r }, r)));
  root.append(
    el("h3", {}, "Invitations"),
    list,
    el(
      "form",
      {
        "aria-label": "Invite",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          const chosen = role.value as Role;
          const addresses = [...new Set(emails.value.split(/[\s,;]+/).map((a) => a.trim().toLowerCase()).filter(Boolean))];
          if (!addresses.length) return tell(inviteNote, { text: "Enter at least one e-mail address.", hint: "" }, "error");
          questions.replaceChildren();
          await busy((e.target as HTMLFormElement).querySelector("button")!, async () => {
            await renderInvitations(); // what is pending now, not when the page loaded
            const members = new Set(directory().map((p) => p.email?.toLowerCase()).filter(Boolean));
            const sent: string[] = [];
            const again: string[] = [];
            const refused: [string, Explained][] = [];
            for (const a of addresses) {
              const pending = open.find((i) => i.email === a);
              if (a.length > 320 || !EMAIL.test(a)) refused.push([a, await explain({ code: "invalid_email" })]);
              else if (members.has(a)) refused.push([a, await explain({ code: "already_a_member" })]);
              else if (pending && pending.role !== chosen) ask(pending, chosen);
              else {
                const why = await invite(app, org, a, chosen);
                if (why) refused.push([a, why]);
                else (pending ? again : sent).push(a);
              }
            }
            await renderInvitations();
            emails.value = refused.map(([a]) => a).join("\n"); // what is left to fix
            const parts = [
              sent.length ? `Invitation sent to ${sent.join(", ")} as ${chosen}.` : "",
              again.length ? `Invitation sent again to ${again.join(", ")} (${chosen}).` : "",
              refused.length
                ? `Not sent: ${refused.map(([a, r]) => `${a}: ${r.text}${r.hint ? ` ${r.hint}` : ""}`).join("; ")}`
                : "",
              questions.childElementCount ? "Answer the question below before anything else is sent to those addresses." : "",
            ].filter(Boolean);
            tell(inviteNote, parts.join(" "), refused.length ? "error" : questions.childElementCount ? "info" : "ok");
          });
        },
      },
      el("label", { for: emails.id }, "E-mail addresses"),
      emails,
      el("p", { id: "invite-help", class: "hint" }, "One or more, separated by commas or new lines."),
      el("div", {}, el("label", { for: role.id }, "Role"), " ", role),
      el("button", { type: "submit" }, "Invite"),
      inviteNote,
      questions,
    ),
  );
  await renderInvitations();
}

/** Sends (or sends again) an invitation; the reason when it was not sent. */
async function invite(app: App, org: string, email: string, role: Role) {
  const r = await app.supabase.functions.invoke("member-invite", { body: { org_id: org, email, role } });
  return r.error ? await explain(r.error) : null;
}
