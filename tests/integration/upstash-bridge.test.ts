// @upstash/redis, unchanged, against the local Redis through the REST bridge.
import { Redis } from "@upstash/redis";
import { afterAll, describe, expect, it } from "vitest";
import { HOST, PORTS, secrets } from "../helpers/stack.ts";

const url = `http://${HOST}:${PORTS.upstash}`;
const redis = new Redis({ url, token: secrets().upstashToken, enableTelemetry: false });
const prefix = `test:${crypto.randomUUID()}:`;

afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
});

describe("the Upstash REST bridge", () => {
  it("round-trips strings, unicode, JSON values and counters", async () => {
    await redis.set(`${prefix}s`, "héllo wörld ✓");
    expect(await redis.get(`${prefix}s`)).toBe("héllo wörld ✓");
    await redis.set(`${prefix}j`, { org: "a", n: 3 });
    expect(await redis.get(`${prefix}j`)).toEqual({ org: "a", n: 3 });
    expect(await redis.incr(`${prefix}c`)).toBe(1);
    expect(await redis.incrby(`${prefix}c`, 41)).toBe(42);
    expect(await redis.get(`${prefix}missing`)).toBeNull();
  });

  it("sets expiries the way rate limiters use them", async () => {
    await redis.set(`${prefix}ttl`, "x", { ex: 100 });
    const ttl = await redis.ttl(`${prefix}ttl`);
    expect(ttl).toBeGreaterThan(90);
    expect(ttl).toBeLessThanOrEqual(100);
  });

  it("runs pipelines and transactions", async () => {
    const p = redis.pipeline();
    p.set(`${prefix}p1`, "a");
    p.incr(`${prefix}p2`);
    p.get(`${prefix}p1`);
    expect(await p.exec()).toEqual(["OK", 1, "a"]);
    const m = redis.multi();
    m.incr(`${prefix}m`);
    m.incr(`${prefix}m`);
    expect(await m.exec()).toEqual([1, 2]);
  });

  it("works with sorted sets and hashes (sliding windows, caches)", async () => {
    await redis.zadd(`${prefix}z`, { score: 1, member: "a" }, { score: 2, member: "b" });
    expect(await redis.zrange(`${prefix}z`, 0, -1)).toEqual(["a", "b"]);
    await redis.hset(`${prefix}h`, { f1: "v1", f2: 2 });
    expect(await redis.hgetall(`${prefix}h`)).toEqual({ f1: "v1", f2: 2 });
  });

  it("reports Redis errors as errors", async () => {
    await redis.set(`${prefix}str`, "not a number");
    await expect(redis.incr(`${prefix}str`)).rejects.toThrow(/not an integer/);
  });

  it("refuses a wrong token and malformed bodies", async () => {
    const bad = new Redis({ url, token: "wrong", enableTelemetry: false, retry: false });
    await expect(bad.get("x")).rejects.toThrow();
    const res = await fetch(url, {
      method: "POST",
      headers: { Authorization: `Bearer ${secrets().upstashToken}` },
      body: "{not json",
    });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatch(/JSON/);
    const res2 = await fetch(url, {
      method: "POST",
      headers: { Authorization: `Bearer ${secrets().upstashToken}` },
      body: JSON.stringify({ cmd: "GET" }),
    });
    expect(res2.status).toBe(400);
  });
});
