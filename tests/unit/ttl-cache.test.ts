import { describe, expect, it } from "vitest";
import { ttlCache } from "../../supabase/functions/_shared/ttl-cache.ts";

function clock() {
  let t = 1_000;
  return { now: () => t, pass: (ms: number) => void (t += ms) };
}

describe("ttlCache", () => {
  it("asks once for the requests that want the same answer at the same moment", async () => {
    const c = clock();
    const cache = ttlCache<number>({ ttlMs: 100, maxEntries: 10, now: c.now });
    let asked = 0;
    let answer!: (n: number) => void;
    const load = () => {
      asked++;
      return new Promise<number>((resolve) => (answer = resolve));
    };
    const waiting = Array.from({ length: 50 }, () => cache.get("k", load));
    answer(7);
    expect(await Promise.all(waiting)).toEqual(Array(50).fill(7));
    expect(asked).toBe(1);
  });

  it("keeps an answer ttlMs, then asks again", async () => {
    const c = clock();
    const cache = ttlCache<number>({ ttlMs: 100, maxEntries: 10, now: c.now });
    let asked = 0;
    const load = () => Promise.resolve(++asked);
    expect(await cache.get("k", load)).toBe(1);
    c.pass(99);
    expect(cache.holds("k")).toBe(true);
    expect(await cache.get("k", load)).toBe(1);
    c.pass(1);
    expect(cache.holds("k")).toBe(false);
    expect(await cache.get("k", load)).toBe(2);
  });

  it("keeps no failure: those waiting share it, the next request asks again", async () => {
    const cache = ttlCache<number>({ ttlMs: 100, maxEntries: 10, now: clock().now });
    let asked = 0;
    const failing = () => {
      asked++;
      return Promise.reject(new Error("database away"));
    };
    const both = await Promise.allSettled([cache.get("k", failing), cache.get("k", failing)]);
    expect(both.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(asked).toBe(1);
    await Promise.resolve(); // the failure is forgotten once it settles
    expect(cache.holds("k")).toBe(false);
    expect(await cache.get("k", () => Promise.resolve(3))).toBe(3);
  });

  it("drops the oldest answer past maxEntries", async () => {
    const cache = ttlCache<string>({ ttlMs: 1_000, maxEntries: 2, now: clock().now });
    for (const k of ["a", "b", "c"]) await cache.get(k, () => Promise.resolve(k));
    expect(["a", "b", "c"].map((k) => cache.holds(k))).toEqual([false, true, true]);
    cache.delete("b");
    expect(cache.holds("b")).toBe(false);
  });
});
