// Publishing from a server (functions, the worker): the broker connection is made on the first
// publish, so a process that never publishes never connects, and each publish is bounded, so a
// broker that does not answer in time counts as away (the caller decides what that means: best
// effort for file events, a retry later for notifications). The client id is unguessable.
import { withTimeout } from "../timeout.ts";
import { connectRealtime, type RealtimeClient } from "./client.ts";
import type { Envelope } from "./envelope.ts";

export type Publish = (topic: string, envelope: Envelope) => Promise<void>;

export interface PublisherConfig {
  url: string;
  password: string;
  /** Names the client in the broker's log: `<name>-<random uuid>`. */
  name: string;
  timeoutMs: number;
}

export function lazyPublisher(config: PublisherConfig): Publish {
  let client: RealtimeClient | null = null;
  return async (topic, envelope) => {
    client ??= connectRealtime({
      url: config.url,
      password: config.password,
      maxReconnectMs: 2000,
      clientId: `${config.name}-${crypto.randomUUID()}`,
    });
    const c = client;
    await withTimeout(c.connected().then(() => c.publish(topic, envelope)), config.timeoutMs, "broker");
  };
}
