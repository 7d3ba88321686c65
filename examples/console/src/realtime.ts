// Live updates over MQTT on WebSockets with the user's access token, on the topics and envelope
// of _shared/realtime. The client id starts with the user's id, as the broker requires.
import mqtt from "mqtt";
import { parseEnvelope } from "../../../supabase/functions/_shared/realtime/envelope.ts";
import type { Envelope } from "../../../supabase/functions/_shared/realtime/envelope.ts";
import type { App } from "./app.ts";

/**
 * Subscribes to `topic` (or several) until `left` says the person has left the screen; `onReady`
 * runs once the broker has granted every subscription (and again after a reconnect), so a screen
 * can catch up with what happened before it listened.
 */
export async function subscribeLive(
  app: App,
  left: AbortSignal,
  topic: string | string[],
  onEnvelope: (e: Envelope) => void,
  onReady?: () => void,
) {
  const { data } = await app.supabase.auth.getSession();
  const session = data.session;
  if (!session || left.aborted) return;
  const client = mqtt.connect(app.config.mqttWsUrl, {
    username: "console",
    password: session.access_token,
    clientId: `${session.user.id}-console-${crypto.randomUUID()}`,
    protocolVersion: 5,
    reconnectPeriod: 2000,
    // mqtt.js would run its keep-alive timer in a blob: worker, which the page's CSP refuses
    timerVariant: "native",
  });
  client.on("connect", () =>
    client.subscribe(topic, { qos: 1 }, (err, granted) => {
      if (!err && granted?.every((g) => g.qos < 128)) onReady?.();
    }));
  client.on("message", (_topic, payload) => {
    const parsed = parseEnvelope(payload);
    if (parsed.ok) onEnvelope(parsed.envelope);
  });
  left.addEventListener("abort", () => client.end(true), { once: true });
}
