// E-mail for notifications, from the worker (hosted Edge Functions cannot open SMTP ports).
//   notifications.email: the pending e-mail deliveries of one batch, each rendered from the best
//     template for the recipient's locale and sent through SMTP (nodemailer).
//   notifications.digest (every minute): for each member whose digest is due, one message listing
//     the low and normal priority notifications that waited for it.
// Deliveries are claimed under row locks, a few at a time, and marked sent in the same
// transaction as the send; the Message-ID is derived from the notification(s), so a crash between
// a send and its commit resends at most one small chunk, which receivers can recognise.
import crypto from "node:crypto";
import type postgres from "postgres";
import nodemailer, { type Transporter } from "nodemailer";
import { loadEnv } from "../../../supabase/functions/_shared/env.ts";
import { asService } from "../../../supabase/functions/_shared/db.ts";
import { JOB_PAYLOADS } from "../../../supabase/functions/_shared/jobs.ts";
import { SERVICES } from "../env.ts";
import { DEFAULT_OPTIONS, defineJob } from "../registry.ts";
import { WORKER_USER_AGENT } from "../tenant-context.ts";

/** Deliveries claimed per transaction: what a crash can make us send twice. */
const CHUNK = 10;
/** Attempts before a delivery is given up as failed (SMTP refusing the message itself fails it at once). */
const MAX_ATTEMPTS = 30;

interface PendingMail {
  notification_id: string;
  email: string | null;
  title: string;
  body: string;
  data: Record<string, unknown>;
  subject_template: string | null;
  body_template: string | null;
}

/** {{title}}, {{body}}, {{data.key}}; anything else is left as written. */
export function render(template: string, values: { title: string; body: string; data: Record<string, unknown> }) {
  return template.replace(
    /\{\{\s*(title|body|data\.([A-Za-z0-9_]+))\s*\}\}/g,
    (_, key: string, dataKey?: string) =>
      dataKey ? String(values.data[dataKey] ?? "") : key === "title" ? values.title : values.body,
  );
}

let transport: { mailer: Transporter; from: string } | null = null;
function mailer() {
  if (transport) return transport;
  const env = loadEnv(SERVICES.smtp); // checked at start too, with the same schemas
  const url = new URL(env.SMTP_URL);
  transport = {
    mailer: nodemailer.createTransport({
      host: url.hostname,
      port: Number(url.port || (url.protocol === "smtps:" ? 465 : 587)),
      secure: url.protocol === "smtps:",
      auth: url.username ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } : undefined,
      connectionTimeout: 5000,
      socketTimeout: 10000,
    }),
    from: env.MAIL_FROM,
  };
  return transport;
}

/** The server refused this message for good (a 5xx reply), rather than being unreachable or busy. */
const permanent = (e: unknown) => ((e as { responseCode?: number }).responseCode ?? 0) >= 500;

/**
 * A failed send, counted on its deliveries: due again after retryInSeconds (null: a backoff that
 * doubles from a minute up to an hour); failed when permanent or out of attempts.
 */
function recordFailure(tx: postgres.TransactionSql, ids: string[], error: unknown, retryInSeconds: number | null) {
  return tx`update public.notification_deliveries set attempts = attempts + 1, last_error = ${String(error).slice(0, 500)},
              status = case when ${permanent(error)} or attempts + 1 >= ${MAX_ATTEMPTS} then 'failed' else 'pending' end,
              next_attempt_at = now() + make_interval(secs => coalesce(${retryInSeconds}::int, least(60 * power(2, attempts), 3600)::int))
            where channel = 'email' and notification_id = any(${ids}::uuid[])`;
}

function markSent(tx: postgres.TransactionSql, ids: string[]) {
  return tx`update public.notification_deliveries set status = 'sent', delivered_at = now(), attempts = attempts + 1, last_error = null
            where channel = 'email' and notification_id = any(${ids}::uuid[])`;
}

export const notificationsEmail = defineJob({
  queue: "notifications.email",
  payload: JOB_PAYLOADS["notifications.email"],
  uses: ["smtp"],
  scopes: [],
  tenancy: "organization",
  // retried by pg-boss with backoff while SMTP is away; the deliveries keep their own state
  options: { ...DEFAULT_OPTIONS, concurrency: 2, batchSize: 1, retryLimit: 8, retryDelay: 5, retryDelayMax: 300 },
  policy: "short", // one waiting job per batch (key `notifications.email:<batch>`)
  async handler(ctx, data) {
    const { mailer: smtp, from } = mailer();
    let sent = 0;
    for (;;) {
      // As the service, not in the organization's request context: the recipients' addresses are
      // in auth.users, which no request role reads, and deliveries are written only by the
      // service (app.notify, notification-dispatch); members hold the same role as jobs. Every
      // row is reached through the payload's organization and batch (d.org_id, d.batch_id).
      const outcome = await asService(ctx.sql, ctx.correlationId, async (tx) => {
        // The template: the recipient's locale, then its language, then English; the organization's before the default.
        const due = await tx<PendingMail[]>`
          select d.notification_id, u.email, n.title, n.body, n.data, tpl.subject as subject_template, tpl.body as body_template
          from public.notification_deliveries d
          join public.notifications n on n.id = d.notification_id
          join auth.users u on u.id = n.recipient_id
          left join public.notification_settings s on s.org_id = n.org_id and s.user_id = n.recipient_id
          left join lateral (
            select t.subject, t.body from public.notification_templates t
            where t.type = n.type and (t.org_id = n.org_id or t.org_id is null)
              and t.locale in (coalesce(s.locale, 'en'), split_part(coalesce(s.locale, 'en'), '-', 1), 'en')
            order by case t.locale when coalesce(s.locale, 'en') then 0 when split_part(coalesce(s.locale, 'en'), '-', 1) then 1 else 2 end,
                     t.org_id is null
            limit 1) tpl on true
          where d.batch_id = ${data.batch_id} and d.org_id = ${data.org_id} and d.channel = 'email' and d.status = 'pending'
            and not d.digest and d.next_attempt_at <= now()
          order by d.notification_id limit ${CHUNK}
          for update of d skip locked`;
        let done = 0;
        for (const m of due) {
          if (!m.email || !m.subject_template || !m.body_template) {
            const why = !m.email ? "recipient_has_no_email" : "no_template";
            await tx`update public.notification_deliveries set status = 'failed', last_error = ${why}, attempts = attempts + 1
                     where notification_id = ${m.notification_id} and channel = 'email'`;
            continue;
          }
          const values = { title: m.title, body: m.body, data: m.data };
          try {
            await smtp.sendMail({
              from,
              to: m.email,
              subject: render(m.subject_template, values),
              text: render(m.body_template, values),
              messageId: `<${m.notification_id}@notifications.local>`,
              headers: { "x-notification-id": m.notification_id, "x-correlation-id": ctx.correlationId },
            });
          } catch (e) {
            if (permanent(e)) {
              await recordFailure(tx, [m.notification_id], e, 0);
              continue;
            }
            // What was sent stays marked; this one stays due and pg-boss retries the job with backoff.
            // After the job's last attempt it waits ten minutes, then the sweep hands it to a new job.
            await recordFailure(tx, [m.notification_id], e, ctx.job.finalAttempt ? 600 : 0);
            return { due: due.length, done, error: e };
          }
          await markSent(tx, [m.notification_id]);
          done++;
        }
        return { due: due.length, done, error: null };
      }, WORKER_USER_AGENT);
      sent += outcome.done;
      if (outcome.error) throw outcome.error;
      if (outcome.due === 0) break;
    }
    ctx.log.info("notification e-mail sent", { batch_id: data.batch_id, sent });
    return { sent };
  },
});

interface DigestItem {
  notification_id: string;
  email: string | null;
  org_name: string;
  title: string;
  body: string;
  created_at: Date;
}

/** One digest message: the notifications, oldest first. */
export function renderDigest(orgName: string, items: { title: string; body: string; created_at: Date }[]) {
  const subject = `${items.length} notification${items.length === 1 ? "" : "s"} from ${orgName}`;
  const text = items.map((i) =>
    `• ${i.title} (${i.created_at.toISOString().slice(0, 16).replace("T", " ")} UTC)` +
    (i.body ? `\n  ${i.body.replace(/\n/g, "\n  ")}` : "")
  )
    .join("\n\n") + `\n\n— your ${orgName} digest`;
  return { subject, text };
}

export const notificationsDigest = defineJob({
  queue: "notifications.digest",
  payload: JOB_PAYLOADS["notifications.digest"],
  uses: ["smtp"],
  scopes: [],
  tenancy: "all-organizations",
  options: { ...DEFAULT_OPTIONS, concurrency: 1, batchSize: 1, retryLimit: 2 },
  schedule: { cron: "* * * * *" },
  async handler(ctx) {
    const { mailer: smtp, from } = mailer();
    const recipients = await asService(ctx.sql, ctx.correlationId, (tx) =>
      tx<{ org_id: string; recipient_id: string }[]>`
      select distinct d.org_id, n.recipient_id from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
      where d.digest and d.status = 'pending' and d.next_attempt_at <= now() limit 500`, WORKER_USER_AGENT);
    let sent = 0, failed = 0;
    for (const r of recipients) {
      await asService(ctx.sql, ctx.correlationId, async (tx) => {
        const items = await tx<DigestItem[]>`
          select d.notification_id, u.email, o.name as org_name, n.title, n.body, n.created_at
          from public.notification_deliveries d
          join public.notifications n on n.id = d.notification_id
          join public.organizations o on o.id = n.org_id
          join auth.users u on u.id = n.recipient_id
          where d.digest and d.status = 'pending' and d.next_attempt_at <= now() and d.org_id = ${r.org_id} and n.recipient_id = ${r.recipient_id}
          order by n.created_at, n.id limit 200
          for update of d skip locked`;
        if (!items.length) return;
        const ids = items.map((i) => i.notification_id);
        if (!items[0].email) {
          await tx`update public.notification_deliveries set status = 'failed', last_error = 'recipient_has_no_email', attempts = attempts + 1
                   where channel = 'email' and notification_id = any(${ids}::uuid[])`;
          return;
        }
        const { subject, text } = renderDigest(items[0].org_name, items);
        const digestId = crypto.createHash("sha256").update([...ids].sort().join(",")).digest("hex").slice(0, 32);
        try {
          await smtp.sendMail({
            from,
            to: items[0].email,
            subject,
            text,
            messageId: `<digest-${digestId}@notifications.local>`,
            headers: { "x-notification-digest": String(items.length), "x-correlation-id": ctx.correlationId },
          });
        } catch (e) {
          // the schedule comes back every minute; a digest that failed waits longer each time, up to an hour
          await recordFailure(tx, ids, e, null);
          failed++;
          ctx.log.warn("digest not sent, will retry", { org_id: r.org_id, recipient_id: r.recipient_id, error: String(e) });
          return;
        }
        await markSent(tx, ids);
        sent++;
      }, WORKER_USER_AGENT);
    }
    ctx.log.info("digests sent", { sent, failed });
    return { sent, failed };
  },
});
