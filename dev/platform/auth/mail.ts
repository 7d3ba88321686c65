// The auth stand-in's mail: what GoTrue sends (signup confirmation, invitation, magic link,
// recovery, e-mail change), with its link to /verify and the one-time code, through SMTP (the
// stack's sink locally). Templates follow Supabase's defaults.
import nodemailer from "nodemailer";

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

export interface AuthMailer {
  /** `change` names both addresses of an e-mail change: each of them gets a mail that says so. */
  send(kind: MailKind, to: string, link: string, otp: string, change?: { email: string; newEmail: string }): Promise<void>;
}

const escapeHtml = (s: string) => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll('"', "&quot;");

export function smtpMailer(url: string, from = "noreply@auth.local"): AuthMailer {
  const transport = nodemailer.createTransport(url);
  return {
    async send(kind, to, link, otp, change) {
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
