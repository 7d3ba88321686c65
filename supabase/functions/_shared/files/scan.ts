// Scanning bytes with clamd over INSTREAM (clamdjs). clamdjs resolves, not rejects, on clamd's
// "... ERROR" replies (the stream size limit among them): such a reply is neither clean nor
// infected, and is reported as an error. A clamd that cannot be reached throws ScanUnavailable,
// which callers retry later.
import clamd from "clamdjs";

export type ScanResult = { verdict: "clean" } | { verdict: "infected"; signature: string } | { verdict: "error"; reply: string };

export class ScanUnavailable extends Error {
  override name = "ScanUnavailable";
}

export async function scanBytes(host: string, port: number, bytes: Uint8Array, timeoutMs = 60_000): Promise<ScanResult> {
  let reply: string;
  try {
    reply = (await clamd.createScanner(host, port).scanBuffer(bytes, timeoutMs, 64 * 1024)).trim();
  } catch (e) {
    throw new ScanUnavailable(`clamd at ${host}:${port}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const found = /^stream: (.+) FOUND$/.exec(reply);
  if (found) return { verdict: "infected", signature: found[1] };
  if (/^stream: OK$/.test(reply)) return { verdict: "clean" };
  return { verdict: "error", reply: reply.slice(0, 300) };
}
