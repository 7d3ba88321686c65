// Fixed one-minute windows in Redis (@upstash/redis), with partial grants: a batch (of
// notification deliveries, of analytics events) asks for n and gets what is left of the window.
// @upstash/ratelimit answers yes or no for a whole request, which would hold back a
// 10,000-member batch entirely instead of sending what fits, hence these few lines.
import type { Redis } from "@upstash/redis";
import { withTimeout } from "./timeout.ts";

export interface RateLimiter {
  /** How many of n the window for key still allows (0..n). */
  take(key: string, n: number, perMinute: number): Promise<number>;
  /** One each for many keys, in one round trip and one command: true where allowed. */
  takeEach(keys: string[], perMinute: number): Promise<boolean[]>;
  /** How much of the window for key is taken, without taking any (a check before costly work). */
  used(key: string): Promise<number>;
  /** Seconds until the current window ends: what a refusal's Retry-After says. */
  secondsLeft(): number;
}

/**
 * One script call for many keys: each key counted once, its expiry set when this window's first
 * take made it. A pipeline of INCR and EXPIRE per key cost two Upstash commands per notification
 * recipient (20,000 for a 10,000-member send); the script is one (sent by its SHA once Redis knows it).
 */
const TAKE_EACH = `local counts = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ARGV[1]) end
  counts[i] = n
end
return counts`;

/** A limiter that answers slower than timeoutMs counts as away (callers then hold deliveries back). */
export function redisRateLimiter(redis: Redis, prefix = "rl", timeoutMs = 2000): RateLimiter {
  const exec = (p: ReturnType<Redis["pipeline"]>) => withTimeout(p.exec(), timeoutMs, "rate limiter");
  const windowKey = (key: string) => `${prefix}:${key}:${Math.floor(Date.now() / 60_000)}`;
  const takeEachScript = redis.createScript<number[]>(TAKE_EACH);
  return {
    async take(key, n, perMinute) {
      if (n === 0) return 0;
      const k = windowKey(key);
      const p = redis.pipeline();
      p.incrby(k, n);
      p.expire(k, 120);
      const [used] = (await exec(p)) as [number, number];
      return Math.max(0, Math.min(n, perMinute - (used - n)));
    },
    async takeEach(keys, perMinute) {
      if (!keys.length) return [];
      const counts = await withTimeout(takeEachScript.exec(keys.map(windowKey), ["120"]), timeoutMs, "rate limiter");
      return keys.map((_, i) => counts[i] <= perMinute);
    },
    async used(key) {
      return Number(await withTimeout(redis.get<number>(windowKey(key)), timeoutMs, "rate limiter") ?? 0);
    },
    secondsLeft: () => Math.max(1, Math.ceil((60_000 - (Date.now() % 60_000)) / 1000)),
  };
}
