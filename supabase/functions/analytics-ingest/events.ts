// The event types browser apps may send, one zod schema each for their properties. The keys are
// those of public.analytics_event_types (a test checks both agree); the numeric properties that
// table names are the ones the roll-ups sum.
import { z } from "zod";
import { findUnstorableText, UNSTORABLE_TEXT } from "../_shared/text.ts";

const id = z.string().min(1).max(100);
const count = z.number().int().min(0).max(1_000_000_000);

export const EVENT_SCHEMAS = {
  "page.viewed": z.object({ path: z.string().min(1).max(500), referrer: z.string().max(500).optional() }).strict(),
  "lesson.started": z.object({ lesson_id: id }).strict(),
  "lesson.completed": z.object({
    lesson_id: id,
    duration_seconds: z.number().min(0).max(86_400),
    score: z.number().min(0).max(100).optional(),
  }).strict(),
  "exercise.submitted": z.object({
    exercise_id: id,
    attempt: z.number().int().min(1).max(1000),
    score: z.number().min(0).max(100).optional(),
  }).strict(),
  "video.watched": z.object({ video_id: id, seconds: z.number().min(0).max(86_400) }).strict(),
  "search.performed": z.object({ query_length: z.number().int().min(0).max(1000), results: count }).strict(),
} as const;
export type EventType = keyof typeof EVENT_SCHEMAS;

/** Limits: per request, per event, and how far from now an event may have happened. */
export const LIMITS = {
  eventsPerBatch: 500,
  propertiesBytes: 4096,
  maxAgeMs: 7 * 24 * 3600_000, // the late-event window: older events are refused
  maxFutureMs: 5 * 60_000, // clock skew allowed in the client's favour
} as const;

export const IngestRequest = z.object({
  events: z.array(z.unknown()).min(1).max(LIMITS.eventsPerBatch),
}).strict();

/** The envelope of one event; its properties are checked against its type's schema after it. */
export const Event = z.object({
  type: z.string().min(1).max(100),
  occurred_at: z.iso.datetime({ offset: true }),
  properties: z.record(z.string(), z.unknown()).default({}),
}).strict();

export interface AcceptedEvent {
  event_type: EventType;
  occurred_at: string;
  properties: Record<string, unknown>;
}
export interface RejectedEvent {
  index: number;
  code:
    | "invalid_event"
    | "unknown_event_type"
    | "invalid_properties"
    | "properties_too_large"
    | "too_old"
    | "in_the_future"
    | "rate_limited";
  message: string;
}

/** Checks one event; the reasons are per event so that the rest of a batch is kept. */
export function checkEvent(raw: unknown, index: number, now: number): AcceptedEvent | RejectedEvent {
  const shape = Event.safeParse(raw);
  if (!shape.success) {
    return {
      index,
      code: "invalid_event",
      message: shape.error.issues.map((i) => `${i.path.join(".") || "event"}: ${i.message}`).join("; "),
    };
  }
  const e = shape.data;
  const unstorable = findUnstorableText(e.properties, ["properties"]);
  if (unstorable !== null) return { index, code: "invalid_properties", message: `${unstorable}: ${UNSTORABLE_TEXT}` };
  if (!(e.type in EVENT_SCHEMAS)) return { index, code: "unknown_event_type", message: `unknown event type ${e.type}` };
  const at = Date.parse(e.occurred_at);
  if (at < now - LIMITS.maxAgeMs) return { index, code: "too_old", message: "events older than 7 days are not accepted" };
  if (at > now + LIMITS.maxFutureMs) return { index, code: "in_the_future", message: "occurred_at is in the future" };
  if (new TextEncoder().encode(JSON.stringify(e.properties)).length > LIMITS.propertiesBytes) {
    return { index, code: "properties_too_large", message: `properties are over ${LIMITS.propertiesBytes} bytes` };
  }
  const props = EVENT_SCHEMAS[e.type as EventType].safeParse(e.properties);
  if (!props.success) {
    return {
      index,
      code: "invalid_properties",
      message: props.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
    };
  }
  return { event_type: e.type as EventType, occurred_at: new Date(at).toISOString(), properties: props.data };
}

export const isRejected = (x: AcceptedEvent | RejectedEvent): x is RejectedEvent => "code" in x;

/** The answer: how many events were kept, and why each other one was refused. */
export const IngestResponse = z.object({
  accepted: z.number().int(),
  rejected: z.array(z.object({
    index: z.number().int().describe("the event's place in the batch"),
    code: z.enum([
      "invalid_event",
      "unknown_event_type",
      "invalid_properties",
      "properties_too_large",
      "too_old",
      "in_the_future",
      "rate_limited",
    ]),
    message: z.string(),
  })),
}).meta({ id: "IngestResult" });
