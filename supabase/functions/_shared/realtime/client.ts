// An MQTT client for functions, the worker and tests (mqtt.js, over mqtt:// or ws://): signs in
// with a credential (the service_role key for services, an access token for a user, an API key for
// a device), reconnects with exponential backoff and resubscribes, publishes envelopes with the
// QoS their topic calls for, and hands subscribers only valid envelopes whose org_id matches the
// topic; anything else is logged with a stable code and dropped.
import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { z } from "zod";
import { createLogger, type Logger } from "../log.ts";
import { encodeEnvelope, type Envelope, type EnvelopeError, parseEnvelope } from "./envelope.ts";
import { classifyTopic, QOS } from "./topics.ts";

export const RealtimeConfig = z.object({
  url: z.string().regex(/^(mqtts?|wss?):\/\/[^/]+/, "an mqtt://, mqtts://, ws:// or wss:// URL"),
  password: z.string().min(1),
  username: z.string().min(1).default("service"),
  clientId: z.string().regex(/^[A-Za-z0-9_.:-]{1,150}$/).optional(),
  connectTimeoutMs: z.number().int().positive().default(5000),
  minReconnectMs: z.number().int().positive().default(250),
  maxReconnectMs: z.number().int().positive().default(10_000),
});
export type RealtimeConfig = z.input<typeof RealtimeConfig>;

export type MessageHandler = (envelope: Envelope, topic: string) => void | Promise<void>;

export interface RealtimeClient {
  readonly mqtt: MqttClient;
  publish(topic: string, envelope: Envelope, opts?: { retain?: boolean }): Promise<void>;
  subscribe(filter: string, handler: MessageHandler): Promise<void>;
  unsubscribe(filter: string): Promise<void>;
  /** Resolves once connected (again). */
  connected(): Promise<void>;
  close(): Promise<void>;
  readonly dropped: Record<EnvelopeError["code"] | "org_mismatch", number>;
}

/** MQTT filter matching, for routing messages to the handlers of the subscriptions they matched. */
export function filterMatches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length || (f[i] !== "+" && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

/** An error the broker answered (a refusal), told apart from a lost connection. */
function refusal(e: unknown, code: "publish_refused" | "subscription_refused", message: string) {
  const answered = typeof e === "object" && e !== null &&
    ("packet" in e && (e as { packet?: unknown }).packet !== undefined || "code" in e);
  return answered ? Object.assign(new Error(message, { cause: e }), { code }) : e;
}

/**
 * A client id the broker accepts for this credential, never guessable: a user's starts with their
 * id (the token's `sub`; the broker refuses ids bound to anyone else), the service's is free.
 * A device (API key) must pass its own: `<api key id>-<anything>`.
 */
export function defaultClientId(password: string): string {
  const random = `rt-${crypto.randomUUID()}`;
  const parts = password.split(".");
  if (parts.length !== 3) return random;
  try {
    const claims = JSON.parse(atob(parts[1].replace(/-/g, "+").replace(/_/g, "/")));
    return typeof claims.sub === "string" && /^[0-9a-f-]{36}$/.test(claims.sub) ? `${claims.sub}-${random}` : random;
  } catch {
    return random;
  }
}

export function connectRealtime(config: RealtimeConfig, log: Logger = createLogger("realtime")): RealtimeClient {
  const cfg = RealtimeConfig.parse(config);
  const clientId = cfg.clientId ?? defaultClientId(cfg.password);
  const clog = log.child({ client_id: clientId });
  const options: IClientOptions = {
    clientId,
    username: cfg.username,
    password: cfg.password,
    clean: true,
    resubscribe: true,
    connectTimeout: cfg.connectTimeoutMs,
    reconnectPeriod: cfg.minReconnectMs,
    protocolVersion: 5,
  };
  const client = mqtt.connect(cfg.url, options);
  const handlers = new Map<string, MessageHandler>();
  const dropped = { message_too_large: 0, invalid_json: 0, invalid_envelope: 0, org_mismatch: 0 };

  // Backoff: every failed attempt doubles the wait, a successful connection resets it.
  client.on("connect", () => {
    client.options.reconnectPeriod = cfg.minReconnectMs;
    clog.info("mqtt connected");
  });
  client.on("reconnect", () => {
    client.options.reconnectPeriod = Math.min(cfg.maxReconnectMs, (client.options.reconnectPeriod ?? cfg.minReconnectMs) * 2);
  });
  client.on("close", () => clog.info("mqtt connection closed", { next_attempt_ms: client.options.reconnectPeriod }));
  client.on("error", (e) => clog.warn("mqtt error", { error: e.message }));
  client.on("message", (topic, payload) => {
    const parsed = parseEnvelope(payload);
    if (!parsed.ok) {
      dropped[parsed.error.code]++;
      clog.warn("message dropped", { topic, code: parsed.error.code, issues: parsed.error.issues });
      return;
    }
    const orgId = classifyTopic(topic)?.orgId ?? null;
    if (orgId !== null && parsed.envelope.org_id !== orgId) {
      dropped.org_mismatch++;
      clog.warn("message dropped", { topic, code: "org_mismatch", correlation_id: parsed.envelope.correlation_id });
      return;
    }
    for (const [filter, handler] of handlers) {
      if (!filterMatches(filter, topic)) continue;
      Promise.resolve(handler(parsed.envelope, topic)).catch((e) =>
        clog.error("message handler failed", { topic, correlation_id: parsed.envelope.correlation_id, error: String(e) })
      );
    }
  });

  const connected = () =>
    client.connected ? Promise.resolve() : new Promise<void>((resolve) => client.once("connect", () => resolve()));

  return {
    mqtt: client,
    dropped,
    connected,
    async publish(topic, envelope, opts = {}) {
      const kind = classifyTopic(topic);
      if (!kind) throw new TypeError(`not a topic of this backend: ${topic}`);
      if (kind.orgId !== null && envelope.org_id !== kind.orgId) {
        throw new TypeError("the envelope's org_id must be the topic's organization");
      }
      try {
        await client.publishAsync(topic, encodeEnvelope(envelope), { qos: QOS[kind.kind], retain: opts.retain ?? false });
      } catch (e) {
        // MQTT 5 acknowledges a refused QoS 1 publish with a reason code (135: not authorized).
        throw refusal(e, "publish_refused", `publishing to ${topic} was refused`);
      }
    },
    async subscribe(filter, handler) {
      try {
        const granted = await client.subscribeAsync(filter, { qos: 1 });
        if (granted.some((g) => g.qos >= 128)) throw Object.assign(new Error("refused"), { packet: { granted } });
      } catch (e) {
        throw refusal(e, "subscription_refused", `the subscription to ${filter} was refused`);
      }
      handlers.set(filter, handler);
    },
    async unsubscribe(filter) {
      handlers.delete(filter);
      await client.unsubscribeAsync(filter);
    },
    async close() {
      await client.endAsync();
    },
  };
}
