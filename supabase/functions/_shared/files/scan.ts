// Scanning bytes with clamd over INSTREAM (clamdjs). clamdjs resolves, not rejects, on clamd's
// "... ERROR" replies (the stream size limit among them): such a reply is neither clean nor
// infected, and is reported as an error. A clamd that cannot be reached throws ScanUnavailable,
// which callers retry later.
// @ts-types="../types/clamdjs.d.ts"
import clamd from "clamdjs";

export type ScanResult = { verdict: "clean" } | { verdict: "infected"; signature: string } | { verdict: "error"; reply: string };

export class ScanUnavailable extends Error {
  override name = "ScanUnavailable";
}

export async function scanBytes(host: string, port: number, bytes: Uint8Array, timeoutMs = 60_000): Promise<ScanResult> {
  let reply: string;
  try {
    // clamd ends its reply with a NUL byte
    reply = (await clamd.createScanner(host, port).scanBuffer(bytes, timeoutMs, 64 * 1024)).replaceAll("\0", "").trim();
  } catch (e) {
    throw new ScanUnavailable(`clamd at ${host}:${port}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const found = /^stream: (.+) FOUND$/.exec(reply);
  if (found) return { verdict: "infected", signature: found[1] };
  if (/^stream: OK$/.test(reply)) return { verdict: "clean" };
  // deno-lint-ignore no-control-regex -- control characters are exactly what is removed
  return { verdict: "error", reply: reply.replace(/[\u0000-\u001f\u007f]/g, " ").slice(0, 300) };
}
