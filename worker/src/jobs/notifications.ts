// E-mail for notifications, from the worker (hosted Edge Functions cannot open SMTP ports):
// renders each pending e-mail delivery of a batch from the organization's template for the type
// (or the default), sends it through SMTP (nodemailer) and records the outcome. A delivery is
// claimed under a row lock and marked sent in the same transaction as the send, and the message
// id is the notification's, so a retry after a crash sends at most one more copy, which the
// receiving side can recognise.
import nodemailer, { type Transporter } from "nodemailer";
import { z } from "zod";
import { loadEnv } from "../../../supabase/functions/_shared/env.ts";
import { BasePayload, DEFAULT_OPTIONS, defineJob } from "../registry.ts";
import { asService } from "../tenant-context.ts";

interface PendingMail {
  notification_id: string;
  email: string | null;
  title: string;
  body: string;
  data: Record<string, unknown>;
  subject_template: string | null;
  body_template: string | null;
  attempts: number;
}

/** {{title}}, {{body}}, {{data.key}}; anything else is left as written. */
export function render(template: string, values: { title: string; body: string; data: Record<string, unknown> }) {
  return template.replace(/\{\{\s*(title|body|data\.([A-Za-z0-9_]+))\s*\}\}/g, (_, key: string, dataKey?: string) =>
    dataKey ? String(values.data[dataKey] ?? "") : key === "title" ? values.title : values.body);
}

let transport: { mailer: Transporter; from: string } | null = null;
function mailer() {
  if (transport) return transport;
  const env = loadEnv({ SMTP_URL: z.string().regex(/^smtps?:\/\//), MAIL_FROM: z.string().min(3) });
  const url = new URL(env.SMTP_URL);
  transport = {
    mailer: nodemailer.createTransport({
      host: url.hostname, port: Number(url.port || (url.protocol === "smtps:" ? 465 : 587)), secure: url.protocol === "smtps:",
      auth: url.username ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } : undefined,
      connectionTimeout: 5000, socketTimeout: 10000,
    }),
    from: env.MAIL_FROM,
  };
  return transport;
}

export const notificationsEmail = defineJob({
  queue: "notifications.email",
  payload: BasePayload.extend({ org_id: z.uuid(), batch_id: z.uuid() }),
  scopes: [],
  tenancy: "organization",
  // retried by pg-boss with backoff while SMTP is away; the deliveries keep their own state
  options: { ...DEFAULT_OPTIONS, concurrency: 2, batchSize: 1, retryLimit: 8, retryDelay: 5, retryDelayMax: 300 },
  async handler(ctx, data) {
    const { mailer: smtp, from } = mailer();
    let sent = 0;
    for (;;) {
      const done = await asService(ctx.sql, ctx.correlationId, async (tx) => {
        const due = await tx<PendingMail[]>`
          select d.notification_id, u.email, n.title, n.body, n.data, d.attempts,
                 coalesce(t_org.subject, t_default.subject) as subject_template, coalesce(t_org.body, t_default.body) as body_template
          from public.notification_deliveries d
          join public.notifications n on n.id = d.notification_id
          join auth.users u on u.id = n.recipient_id
          left join public.notification_templates t_org on t_org.org_id = n.org_id and t_org.type = n.type and t_org.locale = 'en'
          left join public.notification_templates t_default on t_default.org_id is null and t_default.type = n.type and t_default.locale = 'en'
          where n.batch_id = ${data.batch_id} and n.org_id = ${data.org_id} and d.channel = 'email' and d.status = 'pending'
            and d.next_attempt_at <= now()
          order by d.notification_id limit 50
          for update of d skip locked`;
        for (const m of due) {
          if (!m.email || !m.subject_template || !m.body_template) {
            const why = !m.email ? "recipient_has_no_email" : "no_template";
            await tx`update public.notification_deliveries set status = 'failed', last_error = ${why}, attempts = attempts + 1
                     where notification_id = ${m.notification_id} and channel = 'email'`;
            continue;
          }
          const values = { title: m.title, body: m.body, data: m.data };
          // A failure here throws: the transaction rolls back (nothing marked) and pg-boss retries the job.
          await smtp.sendMail({
            from, to: m.email, subject: render(m.subject_template, values), text: render(m.body_template, values),
            messageId: `<${m.notification_id}@notifications.local>`, headers: { "x-notification-id": m.notification_id, "x-correlation-id": ctx.correlationId },
          });
          await tx`update public.notification_deliveries set status = 'sent', delivered_at = now(), attempts = attempts + 1, last_error = null
                   where notification_id = ${m.notification_id} and channel = 'email'`;
        }
        return due.length;
      });
      sent += done;
      if (done === 0) break;
    }
    ctx.log.info("notification e-mail sent", { batch_id: data.batch_id, sent });
    return { sent };
  },
});
