// The auth stand-in's mail: what GoTrue sends (signup confirmation, invitation, magic link,
// recovery, e-mail change), with its link to /verify and the one-time code, through SMTP (the
// stack's sink locally). Without a template in config.toml the texts are Supabase's defaults; with
// one ([auth.email.template.<name>]), its subject and body are rendered as GoTrue renders them:
// Go templates over ConfirmationURL, Token, TokenHash, SiteURL, Email, RedirectTo and Data (the
// user's metadata), values HTML-escaped. The subset: {{ .Name }}, {{ .Data.key }} and
// {{ if … }}…{{ else }}…{{ end }}.
import nodemailer from "nodemailer";
import type { EmailTemplate } from "../project-config.ts";

export type MailKind = "signup" | "invite" | "magiclink" | "recovery" | "email_change";

const SUBJECTS: Record<MailKind, string> = {
  signup: "Confirm Your Signup",
  invite: "You have been invited",
  magiclink: "Your Magic Link",
  recovery: "Reset Your Password",
  email_change: "Confirm Email Change",
};
const LEADS: Record<MailKind, string> = {
  signup: "Follow this link to confirm your user:",
  invite: "You have been invited to create a user. Follow this link to accept the invite:",
  magiclink: "Follow this link to login:",
  recovery: "Follow this link to reset the password for your user:",
  email_change: "Follow this link to confirm the update of your email:",
};

/** config.toml's name of each mail's template. */
export const TEMPLATE_NAMES: Record<MailKind, string> = {
  signup: "confirmation",
  invite: "invite",
  magiclink: "magic_link",
  recovery: "recovery",
  email_change: "email_change",
};

/** What a template may read (GoTrue's names). */
export interface TemplateData {
  ConfirmationURL: string;
  Token: string;
  TokenHash?: string;
  SiteURL?: string;
  Email: string;
  RedirectTo?: string;
  Data: Record<string, unknown>;
}

export interface AuthMailer {
  /** `change` names both addresses of an e-mail change: each of them gets a mail that says so. */
  send(
    kind: MailKind,
    to: string,
    link: string,
    otp: string,
    change?: { email: string; newEmail: string },
    templated?: { template?: EmailTemplate; data: Omit<TemplateData, "ConfirmationURL" | "Token" | "Email"> },
  ): Promise<void>;
}

const escapeHtml = (s: string) =>
  s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&#34;").replaceAll("'", "&#39;");

/** A value by its path (.Data.invited_to_name); missing is empty, as Go's templates print a missing map key. */
function lookup(data: TemplateData, dotted: string): unknown {
  let v: unknown = data;
  for (const key of dotted.split(".").filter(Boolean)) v = (v as Record<string, unknown> | null | undefined)?.[key];
  return v;
}

/** Renders the Go template subset named above; anything else is refused, so a template never silently differs. */
export function renderTemplate(template: string, data: TemplateData): string {
  const tokens = template.split(/(\{\{-?\s*[^}]*?\s*-?\}\})/);
  let i = 0;
  const block = (stopAt: string[]): [string, string] => {
    let out = "";
    while (i < tokens.length) {
      const t = tokens[i++];
      const action = /^\{\{-?\s*(.*?)\s*-?\}\}$/.exec(t)?.[1];
      if (action === undefined) {
        out += t;
        continue;
      }
      if (stopAt.includes(action)) return [out, action];
      const cond = /^if\s+(\.[\w.]*)$/.exec(action);
      if (cond) {
        const [yes, stop] = block(["else", "end"]);
        const [no] = stop === "else" ? block(["end"]) : ["", "end"];
        const v = lookup(data, cond[1]);
        out += v !== undefined && v !== null && v !== false && v !== "" && v !== 0 ? yes : no;
        continue;
      }
      if (!/^\.[\w.]*$/.test(action)) throw new Error(`email template: unsupported action {{ ${action} }}`);
      const v = lookup(data, action);
      out += v === undefined || v === null ? "" : escapeHtml(String(v));
    }
    if (stopAt.length) throw new Error(`email template: missing {{ ${stopAt.join(" or ")} }}`);
    return [out, ""];
  };
  return block([])[0];
}

/** The mail's text part from a rendered HTML body: its text, links kept as they read. */
const textOf = (html: string) =>
  html.replace(/<[^>]+>/g, "").replace(/[ \t]+\n/g, "\n").replace(/\n{3,}/g, "\n\n").trim()
    .replaceAll("&#34;", '"').replaceAll("&#39;", "'").replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&amp;", "&") +
  "\n";

export function smtpMailer(url: string, from = "noreply@auth.local"): AuthMailer {
  const transport = nodemailer.createTransport(url);
  return {
    async send(kind, to, link, otp, change, templated) {
      const template = templated?.template;
      if (template?.subject || template?.content) {
        const data: TemplateData = { ...templated!.data, ConfirmationURL: link, Token: otp, Email: to };
        const subject = template.subject ? renderTemplate(template.subject, data) : SUBJECTS[kind];
        const html = template.content
          ? renderTemplate(template.content, data)
          : `<p>${escapeHtml(LEADS[kind])}</p><p>${escapeHtml(link)}</p>`;
        await transport.sendMail({ from, to, subject, text: textOf(html), html });
        return;
      }
      // GoTrue's default e-mail change template names both addresses, so the current one learns where the account would go
      const lead = change
        ? `Follow this link to confirm the update of your email from ${change.email} to ${change.newEmail}:`
        : LEADS[kind];
      const text = `${lead}\n${link}\n\nAlternatively, enter the code: ${otp}\n`;
      const html =
        `<h2>${SUBJECTS[kind]}</h2><p>${escapeHtml(lead)}</p><p><a href="${escapeHtml(link)}">${SUBJECTS[kind]}</a></p>` +
        `<p>Alternatively, enter the code: ${otp}</p>`;
      await transport.sendMail({ from, to, subject: SUBJECTS[kind], text, html });
    },
  };
}
