// The project's Redis, through Upstash's REST API (@upstash/redis), configured from the
// environment: the rate limits and the API call counters use it.
import { Redis } from "@upstash/redis";
import { z } from "zod";
import { loadEnv } from "./env.ts";

export function redisFromEnv(): Redis {
  const env = loadEnv({ UPSTASH_REDIS_REST_URL: z.string().url(), UPSTASH_REDIS_REST_TOKEN: z.string().min(1) });
  return new Redis({ url: env.UPSTASH_REDIS_REST_URL, token: env.UPSTASH_REDIS_REST_TOKEN, retry: { retries: 1 } });
}
