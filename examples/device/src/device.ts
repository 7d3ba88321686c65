// The reference device: what a scanner station or a classroom sensor does with its organization's
// API key, using nothing but fetch and an MQTT client (docs/machines.md):
//   1. asks who it is (GET org-api/key): its key's id, organization and scopes;
//   2. subscribes to its organization's events on the broker (password: the key; client id: the
//      key's id and a suffix), before uploading, so the verdict cannot be missed;
//   3. sends learning events (analytics-ingest);
//   4. starts an upload (file-upload) and PUTs the bytes to the signed URL it answers;
//   5. waits for file.ready or file.rejected for that file on org/{org}/events;
//   6. reads the file's record (org-api/files/{id}): status, reason, type found, checksum.
// Every call sends the project's publishable key in `apikey` and the key in `x-api-key`; 429 and
// 503 are retried after Retry-After. The last line on stdout is a JSON summary.
//
//   SAAS_URL=http://127.0.0.1:54321 SAAS_PUBLISHABLE_KEY=sb_publishable_... SAAS_API_KEY=sk_... \
//   SAAS_MQTT_URL=mqtt://127.0.0.1:54383 node src/device.ts [file]
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import mqtt from "mqtt";

const env = (name: string) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is required (see the header of this file)`);
  return v;
};
const API = `${env("SAAS_URL").replace(/\/$/, "")}/functions/v1`;
const PUBLISHABLE_KEY = env("SAAS_PUBLISHABLE_KEY");
const API_KEY = env("SAAS_API_KEY");
const MQTT_URL = env("SAAS_MQTT_URL");
const SCAN_TIMEOUT_MS = Number(process.env.SAAS_SCAN_TIMEOUT_MS ?? 60_000);

const log = (msg: string, fields: Record<string, unknown> = {}) =>
  console.error(JSON.stringify({ ts: new Date().toISOString(), msg, ...fields }));

/** One call to a function, retried after Retry-After while the answer is 429 or 503 (at most 5 times). */
async function call<T>(fn: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  for (let attempt = 1;; attempt++) {
    const res = await fetch(`${API}/${fn}`, {
      method: init.method ?? (init.body === undefined ? "GET" : "POST"),
      headers: { apikey: PUBLISHABLE_KEY, "x-api-key": API_KEY, "content-type": "application/json" },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
    const answer = await res.json().catch(() => null);
    if ((res.status === 429 || res.status === 503) && attempt < 5) {
      const wait = Number(res.headers.get("retry-after") ?? 1);
      log("busy, trying again", { fn, status: res.status, in_seconds: wait });
      await new Promise((r) => setTimeout(r, wait * 1000));
      continue;
    }
    if (!res.ok) throw new Error(`${fn}: ${res.status} ${answer?.error?.code ?? ""} ${answer?.error?.message ?? ""}`);
    return answer as T;
  }
}

interface Envelope {
  type: string;
  org_id: string;
  data: { file_id?: string; status?: string; reason?: string };
}

async function main() {
  const me = await call<{ api_key_id: string; org_id: string; scopes: string[] }>("org-api/key");
  log("signed in", { org_id: me.org_id, scopes: me.scopes });

  const broker = await mqtt.connectAsync(MQTT_URL, {
    username: "device",
    password: API_KEY,
    clientId: `${me.api_key_id}-device-${randomUUID().slice(0, 8)}`,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
  });
  const verdicts = new Map<string, Envelope>();
  const waiting = new Map<string, (e: Envelope) => void>();
  broker.on("message", (_topic, payload) => {
    let e: Envelope;
    try {
      e = JSON.parse(payload.toString());
    } catch {
      return;
    }
    const id = e.data?.file_id;
    if (!id || (e.type !== "file.ready" && e.type !== "file.rejected")) return;
    verdicts.set(id, e);
    waiting.get(id)?.(e);
  });
  await broker.subscribeAsync(`org/${me.org_id}/events`, { qos: 1 });

  const now = new Date().toISOString();
  const sent = await call<{ accepted: number; rejected: unknown[] }>("analytics-ingest", {
    body: {
      events: [
        { type: "lesson.started", occurred_at: now, properties: { lesson_id: "fractions-1" } },
        { type: "exercise.submitted", occurred_at: now, properties: { exercise_id: "fractions-1-q3", attempt: 1, score: 80 } },
      ],
    },
  });
  log("events sent", sent);

  const file = process.argv[2];
  const bytes = file ? fs.readFileSync(file) : Buffer.from(`Worksheet scanned at ${now}\nName: ______\n`);
  const name = file ? path.basename(file) : "worksheet.txt";
  const mimeType = process.env.SAAS_FILE_TYPE ?? "text/plain";
  const upload = await call<{ file_id: string; signed_url: string }>("file-upload", {
    body: { org_id: me.org_id, name, size: bytes.byteLength, mime_type: mimeType },
  });
  const put = await fetch(upload.signed_url, { method: "PUT", headers: { "content-type": mimeType }, body: bytes });
  if (!put.ok) throw new Error(`upload: ${put.status} ${await put.text()}`);
  log("uploaded", { file_id: upload.file_id, bytes: bytes.byteLength });

  const verdict = verdicts.get(upload.file_id) ?? await new Promise<Envelope>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no verdict for ${upload.file_id} within ${SCAN_TIMEOUT_MS} ms`)),
      SCAN_TIMEOUT_MS,
    );
    waiting.set(upload.file_id, (e) => {
      clearTimeout(timer);
      resolve(e);
    });
  });
  log("scanned", { file_id: upload.file_id, type: verdict.type, status: verdict.data.status });
  await broker.endAsync();

  const record = await call<Record<string, unknown>>(`org-api/files/${upload.file_id}`);
  console.log(JSON.stringify({
    api_key_id: me.api_key_id,
    org_id: me.org_id,
    events_accepted: sent.accepted,
    file_id: upload.file_id,
    verdict: { via: "mqtt", type: verdict.type, status: verdict.data.status, reason: verdict.data.reason ?? null },
    file: record,
  }));
}

main().catch((e) => {
  log("failed", { error: e instanceof Error ? e.message : String(e) });
  process.exit(1);
});
