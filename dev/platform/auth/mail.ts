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
  send(kind: MailKind, to: string, link: string, otp: string): Promise<void>;
}

export function smtpMailer(url: string, from = "noreply@auth.local"): AuthMailer {
  const transport = nodemailer.createTransport(url);
  return {
    async send(kind, to, link, otp) {
      const text = `${LEADS[kind]}\n${link}\n\nAlternatively, enter the code: ${otp}\n`;
      const escaped = link.replaceAll("&", "&amp;").replaceAll('"', "&quot;");
      const html = `<h2>${SUBJECTS[kind]}</h2><p>${LEADS[kind]}</p><p><a href="${escaped}">${SUBJECTS[kind]}</a></p>` +
        `<p>Alternatively, enter the code: ${otp}</p>`;
      await transport.sendMail({ from, to, subject: SUBJECTS[kind], text, html });
    },
  };
}
