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
 * The one command every take is: each key taken by its amount, in order, its expiry set when this
 * window's first take made it, and the count after each take returned (false for a key Redis
 * refused, e.g. one holding another type, so only its caller fails). A pipeline of INCR and EXPIRE
 * per key cost two Upstash commands per notification recipient (20,000 for a 10,000-member send);
 * the script is one (sent by its SHA once Redis knows it).
 */
const TAKE = `local counts = {}
for i, key in ipairs(KEYS) do
  local n = tonumber(ARGV[i + 1])
  local count = redis.pcall('INCRBY', key, n)
  if type(count) == 'number' then
    if count == n then redis.pcall('EXPIRE', key, ARGV[1]) end
    counts[i] = count
  else
    counts[i] = false
  end
end
return counts`;

interface Waiting {
  keys: string[];
  amounts: number[];
  answer: (counts: number[]) => void;
  fail: (e: unknown) => void;
}

/**
 * A limiter whose take is not answered within timeoutMs of being asked counts as away (callers
 * then hold deliveries back).
 *
 * Takes are sent one script call at a time: those asked while a call is out wait for it and go
 * together in the next, whatever their keys. Each key's takes still run in the order they were
 * asked, each answered with its own count, so every caller gets the grant it would have got alone,
 * and a key Redis refuses fails only its own caller; a call that fails whole (Redis away, too slow)
 * fails every take it carried. A function serving many calls at once so pays one HTTP request to
 * Redis per round trip instead of one per call (in analytics-ingest the request, Deno's fetch and
 * the REST hop, was 40-50 % of the function's CPU per call; docs/scaling.md).
 */
export function redisRateLimiter(redis: Redis, prefix = "rl", timeoutMs = 2000): RateLimiter {
  const windowKey = (key: string) => `${prefix}:${key}:${Math.floor(Date.now() / 60_000)}`;
  const takeScript = redis.createScript<(number | null)[]>(TAKE);
  let waiting: Waiting[] = [];
  let sending = false;
  function send() {
    if (sending || !waiting.length) return;
    const batch = waiting;
    waiting = [];
    sending = true;
    const keys = batch.flatMap((w) => w.keys);
    const amounts = batch.flatMap((w) => w.amounts.map(String));
    withTimeout(takeScript.exec(keys, ["120", ...amounts]), timeoutMs, "rate limiter").then((counts) => {
      if (!Array.isArray(counts) || counts.length !== keys.length) {
        throw new Error(`rate limiter: the script answered ${JSON.stringify(counts)?.slice(0, 100)} for ${keys.length} keys`);
      }
      let at = 0;
      for (const w of batch) {
        const own = counts.slice(at, at + w.keys.length);
        at += w.keys.length;
        if (own.every((c) => typeof c === "number")) w.answer(own as number[]);
        else w.fail(new Error(`rate limiter: Redis refused a take of ${w.keys.filter((_, i) => typeof own[i] !== "number")}`));
      }
    }).catch((e) => {
      for (const w of batch) w.fail(e);
    }).finally(() => {
      sending = false;
      send();
    });
  }
  /** Each key's count after taking its amount from this window; within timeoutMs of asking, or away. */
  const takeCounts = (keys: string[], amounts: number[]) =>
    withTimeout(
      new Promise<number[]>((answer, fail) => {
        // what Redis would refuse fails here, for its caller alone, never the call it shares
        if (!amounts.every((n) => Number.isSafeInteger(n) && n > 0)) {
          return fail(new RangeError(`rate limiter: amounts must be whole numbers above 0, got ${amounts}`));
        }
        waiting.push({ keys: keys.map(windowKey), amounts, answer, fail });
        send();
      }),
      timeoutMs,
      "rate limiter",
    );
  return {
    async take(key, n, perMinute) {
      if (n === 0) return 0;
      const [used] = await takeCounts([key], [n]);
      return Math.max(0, Math.min(n, perMinute - (used - n)));
    },
    async takeEach(keys, perMinute) {
      if (!keys.length) return [];
      const counts = await takeCounts(keys, keys.map(() => 1));
      return counts.map((count) => count <= perMinute);
    },
    async used(key) {
      return Number(await withTimeout(redis.get<number>(windowKey(key)), timeoutMs, "rate limiter") ?? 0);
    },
    secondsLeft: () => Math.max(1, Math.ceil((60_000 - (Date.now() % 60_000)) / 1000)),
  };
}
