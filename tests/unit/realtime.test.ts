// The realtime module's pure parts: topic building and classification, filter matching, and the
// envelope's validation of what arrives from the wire.
import crypto from "node:crypto";
import { describe, expect, it } from "vitest";
import { filterMatches } from "../../supabase/functions/_shared/realtime/client.ts";
import {
  encodeEnvelope,
  makeEnvelope,
  MAX_MESSAGE_BYTES,
  parseEnvelope,
} from "../../supabase/functions/_shared/realtime/envelope.ts";
import { classifyTopic, topics } from "../../supabase/functions/_shared/realtime/topics.ts";

const org = crypto.randomUUID();
const other = crypto.randomUUID();

describe("topics", () => {
  it("builds the contract's topics and refuses ids that would escape them", () => {
    expect(topics.events(org)).toBe(`org/${org}/events`);
    expect(topics.feed(org, other, other, "gps")).toBe(`org/${org}/exercise/${other}/team/${other}/feeds/gps`);
    expect(() => topics.events("+")).toThrow();
    expect(() => topics.notifications(org, `${other}/#`)).toThrow();
    expect(() => topics.feed(org, other, other, "gps/x")).toThrow();
  });

  it("classifies concrete topics with their organization, and nothing else", () => {
    expect(classifyTopic(topics.control(org, other))).toEqual({ kind: "control", orgId: org });
    expect(classifyTopic("system/health")).toEqual({ kind: "health", orgId: null });
    for (const t of [`org/${org}/#`, `org/+/events`, `org/${org}/events/x`, "org/not-a-uuid/events", "$SYS/broker/uptime"]) {
      expect(classifyTopic(t), t).toBeNull();
    }
  });

  it("matches MQTT filters as the broker does", () => {
    expect(filterMatches("#", "a/b")).toBe(true);
    expect(filterMatches("a/#", "a")).toBe(true);
    expect(filterMatches("a/+/c", "a/b/c")).toBe(true);
    expect(filterMatches("a/+/c", "a/b/d")).toBe(false);
    expect(filterMatches("a/+", "a/b/c")).toBe(false);
    expect(filterMatches("a/b", "a/b/c")).toBe(false);
  });
});

describe("envelope", () => {
  it("round-trips a message made by makeEnvelope", () => {
    const e = makeEnvelope({ type: "exercise.started", org_id: org, data: { n: 1 } });
    expect(e.correlation_id).toBe(e.id);
    expect(parseEnvelope(encodeEnvelope(e))).toEqual({ ok: true, envelope: e });
  });

  it("turns what is not an envelope into stable error codes", () => {
    expect(parseEnvelope("{")).toMatchObject({ ok: false, error: { code: "invalid_json" } });
    expect(parseEnvelope(new Uint8Array([0xff, 0xfe]))).toMatchObject({ ok: false, error: { code: "invalid_json" } });
    const good = makeEnvelope({ type: "a.b", org_id: null, data: {} });
    for (
      const bad of [{ ...good, v: 2 }, { ...good, type: "Shout" }, { ...good, extra: 1 }, { ...good, data: [] }, {
        ...good,
        org_id: "x",
      }]
    ) {
      expect(parseEnvelope(JSON.stringify(bad))).toMatchObject({ ok: false, error: { code: "invalid_envelope" } });
    }
    expect(parseEnvelope("x".repeat(MAX_MESSAGE_BYTES + 1))).toMatchObject({ ok: false, error: { code: "message_too_large" } });
    expect(() => encodeEnvelope(makeEnvelope({ type: "a.b", org_id: null, data: { s: "x".repeat(MAX_MESSAGE_BYTES) } }))).toThrow(
      RangeError,
    );
  });
});
