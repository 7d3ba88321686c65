// The tests' own broker: the stack's config and plugin on ports beside the stack's, with a short
// cache and message counts handed over every second, so tests can restart it and watch
// revocation and usage without waiting long.
import { brokerInstance } from "../../dev/stack/broker-instance.ts";
import { secrets } from "./stack.ts";

export function testBroker(name = "test-broker", ports = { mqtt: 54386, ws: 54387 }, env: Record<string, string> = {}) {
  return brokerInstance(name, ports, secrets(), { plugin: { cache_seconds: 2, stale_seconds: 30, usage_seconds: 1 } }, env);
}
