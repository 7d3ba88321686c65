// The tests' own broker: the stack's config and plugin on ports the kernel hands out, with a short
// cache and message counts handed over every second, so tests can restart it and watch
// revocation and usage without waiting long. `env` and `plugin` (plugin_opt_ values) override.
import { brokerInstance } from "../../dev/stack/broker-instance.ts";
import { secrets } from "./stack.ts";

export function testBroker(name = "test-broker", env: Record<string, string> = {}, plugin: Record<string, string | number> = {}) {
  return brokerInstance(
    name,
    null,
    secrets(),
    { plugin: { cache_seconds: 2, stale_seconds: 30, usage_seconds: 1, ...plugin } },
    env,
  );
}
