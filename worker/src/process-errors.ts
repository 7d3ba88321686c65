// What an unhandled rejection in the worker process means. postgres.js runs an array-type fetch
// first on every new connection and drops its promise; a connection made while Postgres shuts
// down or restarts loses that fetch as an unhandled rejection no caller can catch
// (porsager/postgres#1192, #1223). The pool reconnects by itself, so those are logged and the
// worker carries on; anything else unhandled is a bug, and the process exits for its supervisor
// to restart it (jobs it held expire and are retried).
const LOST_CONNECTION = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
  "ECONNREFUSED",
  "ECONNRESET",
  "57P01",
  "57P02",
  "57P03", // admin shutdown, crash shutdown, cannot connect now
]);

/**
 * postgres.js writing to a socket its closed connection already released (connection.js
 * nextWrite, after a restart): thrown from a timer, so uncaught; the connection is gone either way.
 */
export function isWriteAfterClose(e: unknown): boolean {
  // (by shape, not instanceof: a test runner hands it over serialized)
  const { name, message, stack } = (e ?? {}) as { name?: unknown; message?: unknown; stack?: unknown };
  return name === "TypeError" && typeof message === "string" && message.includes("reading 'write'") &&
    typeof stack === "string" && /postgres[\\/]src[\\/]connection\.js/.test(stack);
}

export function isLostConnection(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && LOST_CONNECTION.has(code);
}
