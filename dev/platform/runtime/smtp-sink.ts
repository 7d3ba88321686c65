// The local stack's SMTP sink: accepts any mail (no relay), parses it (mailparser) and keeps it as
// JSON in MAIL_DIR, and serves what it caught over HTTP for tests and for a person to look at:
// GET /messages[?to=address] (newest last), DELETE /messages. Never part of a deployment.
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { simpleParser } from "mailparser";
import { SMTPServer } from "smtp-server";
import { z } from "zod";

const env = z.object({
  SMTP_PORT: z.coerce.number().int().positive(),
  MAIL_HTTP_PORT: z.coerce.number().int().positive(),
  MAIL_DIR: z.string().min(1),
  HOST: z.string().default("127.0.0.1"),
}).parse(process.env);
fs.mkdirSync(env.MAIL_DIR, { recursive: true });
const log = (msg: string, f: Record<string, unknown> = {}) =>
  console.log(JSON.stringify({ ts: new Date().toISOString(), level: "info", component: "smtp-sink", msg, ...f }));

const smtp = new SMTPServer({
  authOptional: true,
  disabledCommands: ["STARTTLS"],
  size: 25 * 1024 * 1024,
  onData(stream, session, done) {
    simpleParser(stream).then((mail) => {
      const to = session.envelope.rcptTo.map((r) => r.address.toLowerCase());
      const record = {
        id: `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`,
        received_at: new Date().toISOString(),
        from: session.envelope.mailFrom ? session.envelope.mailFrom.address : null,
        to,
        subject: mail.subject ?? "",
        text: mail.text ?? "",
        html: typeof mail.html === "string" ? mail.html : null,
        message_id: mail.messageId ?? null,
        headers: Object.fromEntries([...mail.headers].filter(([k]) => k.startsWith("x-")).map(([k, v]) => [k, String(v)])),
      };
      fs.writeFileSync(path.join(env.MAIL_DIR, `${record.id}.json`), JSON.stringify(record));
      log("mail caught", { to, subject: record.subject, message_id: record.message_id });
      done();
    }, (e) => done(e as Error));
  },
});
smtp.on("error", (e) => log("smtp error", { error: String(e) }));
smtp.listen(env.SMTP_PORT, env.HOST);

function messages(to: string | null) {
  return fs.readdirSync(env.MAIL_DIR).filter((f) => f.endsWith(".json")).sort()
    .map((f) => JSON.parse(fs.readFileSync(path.join(env.MAIL_DIR, f), "utf8")))
    .filter((m) => !to || m.to.includes(to.toLowerCase()));
}

http.createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://sink");
  if (url.pathname === "/messages" && req.method === "GET") {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(messages(url.searchParams.get("to"))));
  } else if (url.pathname === "/messages" && req.method === "DELETE") {
    for (const f of fs.readdirSync(env.MAIL_DIR)) fs.rmSync(path.join(env.MAIL_DIR, f));
    res.writeHead(204).end();
  } else {
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: "GET or DELETE /messages" }));
  }
}).listen(env.MAIL_HTTP_PORT, env.HOST, () => log("listening", { smtp: env.SMTP_PORT, http: env.MAIL_HTTP_PORT }));
