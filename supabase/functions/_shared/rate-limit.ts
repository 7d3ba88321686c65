// Fixed one-minute windows in Redis (@upstash/redis), with partial grants: a batch (of
// notification deliveries, of analytics events) asks for n and gets what is left of the window.
// @upstash/ratelimit answers yes or no for a whole request, which would hold back a
// 10,000-member batch entirely instead of sending what fits, hence these few lines.
import type { Redis } from "@upstash/redis";
import { withTimeout } from "./timeout.ts";

export interface RateLimiter {
  /** How many of n the window for key still allows (0..n). */
  take(key: string, n: number, perMinute: number): Promise<number>;
  /** One each for many keys, in one round trip: true where allowed. */
  takeEach(keys: string[], perMinute: number): Promise<boolean[]>;
}

/** A limiter that answers slower than timeoutMs counts as away (callers then hold deliveries back). */
export function redisRateLimiter(redis: Redis, prefix = "rl", timeoutMs = 2000): RateLimiter {
  const exec = (p: ReturnType<Redis["pipeline"]>) => withTimeout(p.exec(), timeoutMs, "rate limiter");
  const windowKey = (key: string) => `${prefix}:${key}:${Math.floor(Date.now() / 60_000)}`;
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
      const p = redis.pipeline();
      for (const key of keys) {
        const k = windowKey(key);
        p.incr(k);
        p.expire(k, 120);
      }
      const results = (await exec(p)) as number[];
      return keys.map((_, i) => results[i * 2] <= perMinute);
    },
  };
}
