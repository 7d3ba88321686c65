// The rate limiter against the stack's Redis through the Upstash REST bridge (@upstash/redis, as
// hosted): partial grants per window, one scripted call for many keys and for takes asked at once,
// the script sent again after Redis forgets it, and a limiter that is away failing fast.
import crypto from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Redis } from "@upstash/redis";
import { afterAll, beforeEach, describe, expect, it } from "vitest";
import { redisRateLimiter } from "../../supabase/functions/_shared/rate-limit.ts";
import { HOST, PORTS, secrets } from "../helpers/stack.ts";

const redis = new Redis({ url: `http://${HOST}:${PORTS.upstash}`, token: secrets().upstashToken, enableTelemetry: false });
const prefix = `rl-test-${crypto.randomUUID().slice(0, 8)}`;
const limiter = redisRateLimiter(redis, prefix);
const keyOf = (k: string) => `${prefix}:${k}:${Math.floor(Date.now() / 60_000)}`;

// The windows are calendar minutes: a test that crossed into the next one would start counting
// again halfway, so each starts clear of a minute's end.
beforeEach(async () => {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < 5000) await new Promise((r) => setTimeout(r, left + 100));
});
afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
});

describe("rate limiter", () => {
  it("grants what is left of the window to a batch", async () => {
    expect(await limiter.take("org:a", 7, 10)).toBe(7);
    expect(await limiter.take("org:a", 7, 10)).toBe(3);
    expect(await limiter.take("org:a", 7, 10)).toBe(0);
    expect(await limiter.take("org:b", 7, 10)).toBe(7); // another key, its own budget
  });

  it("takes one for each of many keys in one call, allowing each up to the limit, in order", async () => {
    const users = Array.from({ length: 1000 }, (_, i) => `user:${i}`);
    expect((await limiter.takeEach(users, 2)).every(Boolean)).toBe(true);
    // user:0 and user:1 once more (a second time: still allowed), then user:0 a third time (refused)
    expect(await limiter.takeEach(["user:0", "user:1"], 2)).toEqual([true, true]);
    expect(await limiter.takeEach(["user:0", "user:2", "user:999"], 2)).toEqual([false, true, true]);
    expect(await redis.get(keyOf("user:0"))).toBe(3);
    expect(await redis.get(keyOf("user:500"))).toBe(1);
    // the window's keys expire on their own: set when the first take made them, never refreshed past 120 s
    const ttl = await redis.ttl(keyOf("user:500"));
    expect(ttl).toBeGreaterThan(100);
    expect(ttl).toBeLessThanOrEqual(120);
  });

  it("counts a key named twice in one call twice", async () => {
    expect(await limiter.takeEach(["twice", "twice", "twice"], 2)).toEqual([true, true, false]);
  });

  it("sends its script again when Redis has forgotten it (a restart, SCRIPT FLUSH)", async () => {
    await limiter.takeEach(["flush:a"], 5);
    await redis.scriptFlush();
    expect(await limiter.takeEach(["flush:a", "flush:b"], 5)).toEqual([true, true]);
    expect(await redis.get(keyOf("flush:a"))).toBe(2);
  });

  it("answers takes asked at once as if asked one after another, in one call to Redis for all that waited", async () => {
    await limiter.take("warm-up", 1, 1); // Redis knows the script: each call below is one request
    const requests: string[] = [];
    const realFetch = globalThis.fetch;
    globalThis.fetch = (input, init) => {
      requests.push(String(input instanceof Request ? input.url : input));
      return realFetch(input, init);
    };
    let grants: number[];
    try {
      grants = await Promise.all(Array.from({ length: 30 }, () => limiter.take("together", 3, 50)));
    } finally {
      globalThis.fetch = realFetch;
    }
    // in the order asked: sixteen whole grants, the 2 left, then nothing; 90 taken in all
    expect(grants).toEqual([...Array(16).fill(3), 2, ...Array(13).fill(0)]);
    expect(await redis.get(keyOf("together"))).toBe(90);
    // the first went alone; the 29 asked while it was out went together
    expect(requests).toHaveLength(2);
    // takes for other keys and takeEach share a call too, each answered with its own counts
    const [a, each, b] = await Promise.all([
      limiter.take("mixed:a", 4, 5),
      limiter.takeEach(["mixed:u", "mixed:u", "mixed:v"], 1),
      limiter.take("mixed:a", 4, 5),
    ]);
    expect([a, each, b]).toEqual([4, [true, false, true], 1]);
    // an amount Redis would refuse fails its own take only, not the takes sharing the call
    const shared = await Promise.allSettled([
      limiter.take("mixed:c", 1, 5),
      limiter.take("mixed:c", 1.5, 5),
      limiter.take("mixed:c", 1, 5),
    ]);
    expect(shared.map((r) => r.status === "fulfilled" ? r.value : "rejected")).toEqual([1, "rejected", 1]);
  });

  it("fails only the caller whose key Redis refuses, not the others sharing its call", async () => {
    await redis.hset(keyOf("not-a-counter"), { planted: 1 }); // a key holding another type
    await limiter.take("warm-up", 1, 1); // so the three below share the next call
    const first = limiter.take("refused:a", 1, 5);
    const shared = await Promise.allSettled([
      limiter.take("refused:a", 2, 5),
      limiter.takeEach(["refused:b", "not-a-counter"], 5),
      limiter.take("refused:a", 3, 5),
    ]);
    expect(await first).toBe(1);
    expect(shared.map((r) => r.status === "fulfilled" ? r.value : "rejected")).toEqual([2, "rejected", 2]);
    expect(await redis.get(keyOf("refused:a"))).toBe(6);
    expect(await redis.get(keyOf("refused:b"))).toBe(1); // taken before Redis refused its neighbour
  });

  it("answers each take within its own timeout, however long the call before it takes", async () => {
    // an endpoint that takes requests and never answers them
    const silent = http.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const { port } = silent.address() as AddressInfo;
    try {
      const slow = redisRateLimiter(new Redis({ url: `http://127.0.0.1:${port}`, token: "t", retry: false }), prefix, 1000);
      const first = slow.take("x", 1, 5).catch((e: Error) => e);
      await new Promise((r) => setTimeout(r, 100));
      const asked = performance.now();
      const second = await slow.take("x", 1, 5).catch((e: Error) => e);
      const waited = performance.now() - asked;
      expect(String(await first)).toMatch(/rate limiter did not answer/);
      expect(String(second)).toMatch(/rate limiter did not answer/);
      // its own 1 s, not what was left of the first call's (0.9 s) and then 1 s of its own
      expect(waited).toBeLessThan(1500);
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });

  it("fails fast when Redis cannot be reached, so callers hold their deliveries back", async () => {
    const away = redisRateLimiter(new Redis({ url: "http://127.0.0.1:9", token: "t", retry: false }), prefix, 500);
    await expect(away.takeEach(["x"], 5)).rejects.toThrow();
    await expect(away.take("x", 1, 5)).rejects.toThrow();
    // every take a failed call carried fails with it, none waits for ever
    const together = await Promise.allSettled(Array.from({ length: 5 }, () => away.take("x", 1, 5)));
    expect(together.map((r) => r.status)).toEqual(Array(5).fill("rejected"));
  });
});
