// Delivers pg_net requests: reads net.http_request_queue (rows appear only after their
// transaction commits), sends them, writes net._http_response under the request id, and only
// then deletes the queue row, in one transaction. A crash mid-way re-sends: at least once.
// Requests go out concurrently and independently (as pg_net's do): a slow endpoint holds up only
// its own request, never the ones queued after it.
import postgres from "postgres";
import { logger } from "../../stack/log.ts";

const log = logger("net-worker");
const DB_URL = process.env.SUPABASE_DB_URL;
if (!DB_URL) throw new Error("SUPABASE_DB_URL is required");
const MAX_IN_FLIGHT = 50;
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
    log.info("delivered", { request_id: r.id, url: r.url, status: res.status, ms: Date.now() - started });
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

const inFlight = new Set<string>();
let draining = false;
let again = false;

/** Sends one request, then records its response and removes it from the queue together. */
async function deliverAndRecord(r: QueuedRequest) {
  try {
    const x = await deliver(r);
    await sql.begin(async (tx) => {
      await tx`insert into net._http_response ${tx({ ...x, headers: x.headers ? tx.json(x.headers) : null })}`;
      await tx`delete from net.http_request_queue where id = ${r.id}`;
    });
  } catch (err) {
    log.error("recording a response failed; the request will be sent again", { request_id: r.id, error: String(err) });
  } finally {
    inFlight.delete(r.id);
    void drain(); // room for another
  }
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
      const room = MAX_IN_FLIGHT - inFlight.size;
      if (room <= 0) break;
      const rows = await sql<QueuedRequest[]>`
        select id, method, url, headers, body, timeout_milliseconds from net.http_request_queue
        where id <> all(${[...inFlight]}::bigint[]) order by id limit ${room}`;
      for (const r of rows) {
        inFlight.add(r.id);
        void deliverAndRecord(r);
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
