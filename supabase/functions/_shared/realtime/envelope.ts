// The message envelope every MQTT message carries: { v, id, ts, type, org_id, correlation_id, data }.
// Parsing never throws: a malformed message from the wire becomes an error with a stable code.
import { z } from "zod";

export const MAX_MESSAGE_BYTES = 256 * 1024; // the broker's message_size_limit

export const Envelope = z.object({
  v: z.literal(1),
  id: z.uuid(),
  ts: z.iso.datetime({ offset: true }),
  type: z.string().regex(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/, "types are dotted lowercase names like exercise.started"),
  org_id: z.uuid().nullable(),
  correlation_id: z.string().min(1).max(200),
  data: z.record(z.string(), z.unknown()),
}).strict();
export type Envelope = z.infer<typeof Envelope>;

export type EnvelopeError = {
  code: "message_too_large" | "invalid_json" | "invalid_envelope";
  message: string;
  issues?: unknown;
};

export function makeEnvelope(
  input: { type: string; org_id: string | null; data: Record<string, unknown>; correlation_id?: string },
): Envelope {
  const id = crypto.randomUUID();
  return Envelope.parse({ v: 1, id, ts: new Date().toISOString(), correlation_id: input.correlation_id ?? id, ...input });
}

export function encodeEnvelope(envelope: Envelope): string {
  const text = JSON.stringify(Envelope.parse(envelope));
  if (new TextEncoder().encode(text).byteLength > MAX_MESSAGE_BYTES) {
    throw new RangeError(`message over ${MAX_MESSAGE_BYTES} bytes`);
  }
  return text;
}

export function parseEnvelope(
  payload: Uint8Array | string,
): { ok: true; envelope: Envelope } | { ok: false; error: EnvelopeError } {
  const bytes = typeof payload === "string" ? new TextEncoder().encode(payload).byteLength : payload.byteLength;
  if (bytes > MAX_MESSAGE_BYTES) {
    return { ok: false, error: { code: "message_too_large", message: `${bytes} bytes; the limit is ${MAX_MESSAGE_BYTES}` } };
  }
  let json: unknown;
  try {
    json = JSON.parse(typeof payload === "string" ? payload : new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch {
    return { ok: false, error: { code: "invalid_json", message: "the payload is not UTF-8 JSON" } };
  }
  const parsed = Envelope.safeParse(json);
  return parsed.success ? { ok: true, envelope: parsed.data } : {
    ok: false,
    error: { code: "invalid_envelope", message: "the payload is not a message envelope", issues: parsed.error.issues },
  };
}
