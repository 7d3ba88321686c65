// Delivers pg_net requests: reads net.http_request_queue (rows appear only after their
// transaction commits), sends them, writes net._http_response under the request id, and only
// then deletes the queue row, in one transaction. A crash mid-way re-sends: at least once.
// Requests go out concurrently and independently (as pg_net's do): a slow endpoint holds up only
// its own request, never the ones queued after it.
// Beyond pg_net (which records the first failure and never retries): a request that fails to
// connect, times out, or is answered 429 or 5xx is sent again with backoff (0.25 s doubling, six
// tries in ~16 s) before its last answer is recorded, so an endpoint down for seconds loses
// nothing. Responses are recorded in batches (one transaction per batch), which keeps up with
// thousands of requests a second (npm run bench:webhooks).
import postgres from "postgres";
import { createLogger as logger } from "../../../supabase/functions/_shared/log.ts";

const log = logger("net-worker");
const DB_URL = process.env.SUPABASE_DB_URL;
if (!DB_URL) throw new Error("SUPABASE_DB_URL is required");
// Requests being sent at once, in all, per endpoint host and per organization: one tenant's slow or
// dead endpoint can hold at most MAX_PER_HOST of them, never the others' share, and a request
// waiting to be sent again holds none. Every tenant's calls to its functions go to one host (the
// API gateway), so a tenant whose function calls are slow would hold all of that host's share:
// a request that names its organization (the `X-Org-Id` header app.call_function sets) also counts
// against that organization's MAX_PER_ORG. Requests without one share only their host's.
const MAX_SENDING = 100;
const MAX_PER_HOST = 20;
const MAX_PER_ORG = 5;
const MAX_TRIES = 6;
const retryable = (x: { status_code: number | null }) => x.status_code === null || x.status_code === 429 || x.status_code >= 500;
const RESPONSE_TTL = "6 hours"; // pg_net's default ttl

const sql = postgres(DB_URL, { max: 3, onnotice: () => {}, connection: { application_name: "net-worker" } });

interface QueuedRequest {
  id: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: Buffer | null;
  timeout_milliseconds: number;
}

async function deliver(r: QueuedRequest) {
  const started = Date.now();
  try {
    const res = await fetch(r.url, {
      method: r.method.toUpperCase(),
      headers: r.headers,
      body: r.body ? new Uint8Array(r.body) : undefined,
      signal: AbortSignal.timeout(r.timeout_milliseconds),
    });
    const content = await res.text();
    if (res.status >= 400) log.info("delivered", { request_id: r.id, url: r.url, status: res.status, ms: Date.now() - started });
    return {
      id: r.id,
      status_code: res.status,
      content_type: res.headers.get("content-type"),
      headers: Object.fromEntries(res.headers),
      content,
      timed_out: false,
      error_msg: null,
    };
  } catch (err) {
    const timedOut = (err as Error).name === "TimeoutError";
    const msg = timedOut ? `Timeout of ${r.timeout_milliseconds} ms reached` : String((err as Error).cause ?? err);
    log.warn("delivery failed", { request_id: r.id, url: r.url, error: msg });
    return { id: r.id, status_code: null, content_type: null, headers: null, content: null, timed_out: timedOut, error_msg: msg };
  }
}

/** Requests taken from the queue and not yet recorded (being sent, waiting to be resent, or being recorded). */
const inFlight = new Set<string>();
const sendingTo = new Map<string, number>();
const sendingFor = new Map<string, number>();
let sending = 0;

/** host:port as split_part(url, '/', 3) gives it in SQL, so the drain can leave a busy host's rows alone. */
const hostOf = (url: string) => url.split("/")[2] ?? "";
/** The organization a request names, as ORG_OF_ROW reads it in SQL ('' for none). */
const orgOf = (headers: Record<string, string>) =>
  String(Object.entries(headers ?? {}).find(([k]) => k.toLowerCase() === "x-org-id")?.[1] ?? "");
const ORG_OF_ROW = `coalesce(case when jsonb_typeof(headers) = 'object'
  then (select v from jsonb_each_text(headers) h(k, v) where lower(k) = 'x-org-id' limit 1) end, '')`;
const hostIsBusy = (host: string) => (sendingTo.get(host) ?? 0) >= MAX_PER_HOST;
const orgIsBusy = (org: string) => org !== "" && (sendingFor.get(org) ?? 0) >= MAX_PER_ORG;
const busy = (r: QueuedRequest) => hostIsBusy(hostOf(r.url)) || orgIsBusy(orgOf(r.headers));
function count(m: Map<string, number>, key: string, by: number) {
  const n = (m.get(key) ?? 0) + by;
  if (n > 0) m.set(key, n);
  else m.delete(key);
}
function sendingStarted(r: QueuedRequest) {
  sending++;
  count(sendingTo, hostOf(r.url), 1);
  if (orgOf(r.headers)) count(sendingFor, orgOf(r.headers), 1);
}
function sendingEnded(r: QueuedRequest) {
  sending--;
  count(sendingTo, hostOf(r.url), -1);
  if (orgOf(r.headers)) count(sendingFor, orgOf(r.headers), -1);
}
let draining = false;
let again = false;

type Answer = Awaited<ReturnType<typeof deliver>>;
let pending: Answer[] = [];
let flushing: Promise<void> | null = null;

/** Records answers and removes their requests from the queue, many per transaction. */
async function flush() {
  while (pending.length) {
    const batch = pending.splice(0, 500);
    try {
      await sql.begin(async (tx) => {
        await tx`insert into net._http_response ${
          tx(batch.map((x) => ({ ...x, headers: x.headers ? tx.json(x.headers) : null })))
        }`;
        await tx`delete from net.http_request_queue where id = any(${batch.map((x) => x.id)}::bigint[])`;
      });
    } catch (err) {
      log.error("recording responses failed; their requests will be sent again", { requests: batch.length, error: String(err) });
    }
    for (const x of batch) inFlight.delete(x.id);
    void drain(); // room for more
  }
}

/** Sends one request (again, with backoff, while it fails in a way that may pass), then queues its answer for recording. */
async function deliverAndRecord(r: QueuedRequest, tries = 1): Promise<void> {
  if (tries > 1 && (busy(r) || sending >= MAX_SENDING)) {
    setTimeout(() => void deliverAndRecord(r, tries).catch(() => inFlight.delete(r.id)), 250); // its turn later
    return;
  }
  sendingStarted(r);
  let x: Answer;
  try {
    x = await deliver(r);
  } finally {
    sendingEnded(r);
    void drain(); // its sending slot is free
  }
  if (retryable(x) && tries < MAX_TRIES) {
    const wait = 250 * 2 ** (tries - 1);
    log.warn("will send again", { request_id: r.id, try: tries, in_ms: wait, status: x.status_code, error: x.error_msg });
    setTimeout(() => void deliverAndRecord(r, tries + 1).catch(() => inFlight.delete(r.id)), wait);
    return;
  }
  pending.push(x);
  scheduleFlush();
}

function scheduleFlush() {
  flushing ??= flush().finally(() => {
    flushing = null;
    if (pending.length) scheduleFlush(); // answers that arrived as the last batch finished
  });
}

async function drain() {
  if (draining) {
    again = true;
    return;
  }
  draining = true;
  try {
    do {
      again = false;
      const room = MAX_SENDING - sending;
      if (room <= 0) break;
      const busyHosts = [...sendingTo.keys()].filter(hostIsBusy);
      const busyOrgs = [...sendingFor.keys()].filter(orgIsBusy);
      const rows = await sql<QueuedRequest[]>`
        select id, method, url, headers, body, timeout_milliseconds from net.http_request_queue
        where id <> all(${[...inFlight]}::bigint[]) and split_part(url, '/', 3) <> all(${busyHosts}::text[])
          and ${sql.unsafe(ORG_OF_ROW)} <> all(${busyOrgs}::text[])
        order by id limit ${room}`;
      for (const r of rows) {
        if (busy(r)) continue; // its host or organization filled up within this batch; a later drain takes it
        inFlight.add(r.id);
        void deliverAndRecord(r).catch((err) => {
          inFlight.delete(r.id); // sent again by a later drain
          log.error("delivery crashed", { request_id: r.id, error: String(err) });
        });
      }
      if (rows.length === room) again = true;
    } while (again);
  } catch (err) {
    log.error("drain failed; will retry", { error: String(err) });
  } finally {
    draining = false;
  }
}

await sql.listen("net_http_request_queue", () => void drain(), () => void drain());
setInterval(() => void drain(), 1000).unref();
setInterval(
  () => void sql`delete from net._http_response where created < now() - ${RESPONSE_TTL}::interval`.catch(() => {}),
  60_000,
).unref();
log.info("started");
void drain();

for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, async () => {
    await sql.end({ timeout: 5 });
    process.exit(0);
  });
}
