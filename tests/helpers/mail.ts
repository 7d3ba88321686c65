// Mail caught by the stack's SMTP sink, as a person would read it.
import { HOST, PORTS, waitUntil } from "./stack.ts";

export const MAIL_URL = `http://${HOST}:${PORTS.mailHttp}/messages`;

/** The newest mail to `email` whose subject matches, waiting for it to arrive. */
export async function mailTo(email: string, subject: RegExp) {
  return await waitUntil(
    `a mail to ${email}`,
    async () => {
      const all = (await (await fetch(`${MAIL_URL}?to=${encodeURIComponent(email)}`)).json()) as {
        subject: string;
        text: string;
      }[];
      return all.filter((m) => subject.test(m.subject)).at(-1) ?? null;
    },
    10_000,
    100,
  );
}

/** The auth link (…/auth/v1/verify?…) in a mail's text. */
export const linkIn = (text: string) => /(http:\/\/\S+\/auth\/v1\/verify\?\S+)/.exec(text)![1];

/** Every mail to `email` caught so far (oldest first), optionally only those whose subject matches. */
export async function mailsTo(email: string, subject?: RegExp) {
  const all = (await (await fetch(`${MAIL_URL}?to=${encodeURIComponent(email)}`)).json()) as {
    subject: string;
    text: string;
  }[];
  return subject ? all.filter((m) => subject.test(m.subject)) : all;
}

/** Waits until at least `count` mails to `email` (matching `subject`) have arrived; returns them oldest first. */
export async function waitForMails(email: string, count: number, subject?: RegExp) {
  return await waitUntil(
    `${count} mails to ${email}`,
    async () => {
      const got = await mailsTo(email, subject);
      return got.length >= count ? got : null;
    },
    10_000,
    100,
  );
}
