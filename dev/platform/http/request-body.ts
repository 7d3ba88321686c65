// Request bodies for the platform stand-ins, read whole but bounded.
import type http from "node:http";

/** The whole body, or null when it is longer than max bytes. */
export async function readBounded(req: http.IncomingMessage, max: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > max) return null;
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

/** A small JSON body: null when too big or not JSON, so callers answer with their own validation error. */
export async function readJsonBody(req: http.IncomingMessage, maxBytes = 64 * 1024): Promise<unknown> {
  const body = await readBounded(req, maxBytes);
  try {
    return body && JSON.parse(body.toString("utf8"));
  } catch {
    return null;
  }
}
