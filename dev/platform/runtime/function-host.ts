// Runs one Edge Function in its own Deno process, as edge-runtime runs each in its own isolate.
// Deno.serve is pointed at a free loopback port that is reported to the gateway on stdout, and
// the handler is wrapped so a throw becomes a 500 error envelope with the request id, logged.
const entry = Deno.args[0];
if (!entry) throw new Error("usage: function-host.ts <path to index.ts>");
const functionName = entry.split("/").at(-2) ?? "function";
const originalServe = Deno.serve.bind(Deno);

type Handler = (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Response | Promise<Response>;

function wrap(handler: Handler): Handler {
  return async (req, info) => {
    const requestId = req.headers.get("x-request-id") ?? crypto.randomUUID();
    try {
      return await handler(req, info);
    } catch (err) {
      console.error(JSON.stringify({
        ts: new Date().toISOString(),
        level: "error",
        component: "function",
        function: functionName,
        request_id: requestId,
        msg: "unhandled error in function",
        error: String(err),
        stack: err instanceof Error ? err.stack : undefined,
      }));
      return Response.json(
        {
          error: { code: "internal_error", message: "The function failed; its logs have the details under this request id." },
          request_id: requestId,
        },
        { status: 500, headers: { "x-request-id": requestId } },
      );
    }
  };
}

// deno-lint-ignore no-explicit-any
(Deno as any).serve = (a: unknown, b?: unknown) => {
  const handler = (typeof a === "function" ? a : (b ?? (a as { handler: Handler }).handler)) as Handler;
  return originalServe({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => console.log(JSON.stringify({ __function_host_ready: port })),
  }, wrap(handler));
};

// Shutdown as edge-runtime does it: the function hears `beforeunload` (detail.reason says why), and
// what it hands EdgeRuntime.waitUntil then (a last write of buffered counts) may finish, for up to
// SHUTDOWN_GRACE_MS (under the pool's 3 s before SIGKILL), before the process exits.
const SHUTDOWN_GRACE_MS = 2000;
const pending = new Set<Promise<unknown>>();
// deno-lint-ignore no-explicit-any
const g = globalThis as any;
g.EdgeRuntime ??= {
  waitUntil(p: Promise<unknown>) {
    const kept = Promise.resolve(p).catch(() => {}).finally(() => pending.delete(kept));
    pending.add(kept);
  },
};
Deno.addSignalListener("SIGTERM", async () => {
  dispatchEvent(new CustomEvent("beforeunload", { detail: { reason: "termination" } }));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const grace = new Promise((r) => timer = setTimeout(r, SHUTDOWN_GRACE_MS));
  await Promise.race([Promise.all([...pending]), grace]);
  clearTimeout(timer);
  Deno.exit(0);
});

const url = entry.startsWith("file:") ? entry : new URL(`file://${entry}`).href;
await import(url);
