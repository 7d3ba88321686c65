// The invitation mails' templates (config.toml [auth.email.template.invite] and .magic_link, the
// files in supabase/templates) as the auth stand-in renders them, GoTrue's way: Go templates over
// the link, the code and .Data (the person's metadata, where member-invite puts the organization's
// name and the role), values HTML-escaped. A magic link without an invitation keeps Supabase's default words.
import path from "node:path";
import { describe, expect, it } from "vitest";
import { renderTemplate, type TemplateData } from "../../dev/platform/auth/mail.ts";
import { loadProjectConfig } from "../../dev/platform/project-config.ts";
import { ROOT } from "../../dev/stack/config.ts";

const templates = loadProjectConfig(path.join(ROOT, "supabase")).auth.emailTemplates;
const link = "http://127.0.0.1:54321/auth/v1/verify?token=abc&type=invite&redirect_to=x";
const data = (Data: Record<string, unknown>): TemplateData => ({
  ConfirmationURL: link,
  Token: "123456",
  Email: "a@b.org",
  Data,
});
const invited = data({ invited_to_name: "Hillside School", invited_as: "a teacher" });

describe("the invitation mails' templates", () => {
  it("say which organization invites, and as what, in the subject and the body", () => {
    for (const name of ["invite", "magic_link"]) {
      expect(renderTemplate(templates[name].subject!, invited)).toBe("Hillside School invites you as a teacher");
      const body = renderTemplate(templates[name].content!, invited);
      expect(body).toContain("You are invited to join Hillside School as a teacher.");
      expect(body).toContain(`href="${link.replaceAll("&", "&amp;")}"`); // escaped as html/template does
    }
  });
  it("keep a plain magic link and an invitation without an organization in Supabase's default words", () => {
    expect(renderTemplate(templates.magic_link.subject!, data({}))).toBe("Your Magic Link");
    expect(renderTemplate(templates.magic_link.content!, data({ invited_to_name: null }))).toContain(
      "Follow this link to login:",
    );
    expect(renderTemplate(templates.invite.subject!, data({}))).toBe("You have been invited");
  });
  it("escapes what people typed (an organization's name) and refuses what it cannot render", () => {
    expect(renderTemplate("{{ .Data.invited_to_name }}", data({ invited_to_name: `<b>"A & B"</b>` })))
      .toBe("&lt;b&gt;&#34;A &amp; B&#34;&lt;/b&gt;");
    expect(() => renderTemplate("{{ range .Data }}x{{ end }}", invited)).toThrow(/unsupported/);
    expect(() => renderTemplate("{{ if .Data.x }}open", invited)).toThrow(/missing/);
    expect(renderTemplate("{{ if .Data.a }}A{{ else }}{{ if .Data.b }}B{{ end }}{{ end }}", data({ b: 1 }))).toBe("B");
  });
});
