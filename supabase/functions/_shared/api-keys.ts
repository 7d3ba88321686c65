// API keys over HTTP: how a function that serves machines admits a key (the `api_key` caller of
// serveHandler) and runs its work. A machine sends its organization's key in `x-api-key` (beside the
// project's publishable key in `apikey`, which hosted's gateway asks of every call). Per request:
// - verification: public.verify_api_key through lookupApiKey, its answer (the key's id,
//   organization, scopes and its tier's api_requests_per_minute, or why it is refused) kept in this
//   process's memory for API_KEY_CACHE_MS under the key's SHA-256, never the key itself (asked
//   once when many requests with the key find it expired together: lru-cache's fetch);
// - guessing: a refused key costs its source address one of API_KEY_FAILURES_PER_MINUTE; past
//   them every key from that address, good or not, answers 429 until the minute ends, so a guess
//   learns nothing and unknown keys stop reaching Postgres;
// - limits: the tier's api_requests_per_minute for the key and, together, for all keys of its
//   organization (the project's Redis limiter), 429 with Retry-After past either;
// - the work itself (run): in the key's request context, in one transaction whose first statement
//   asks Postgres whether the key is still live and holds the route's scope, so a revoked or
//   expired key, or one whose creator was demoted or removed, is refused at its next request
//   whatever the cache holds (the cache saves the verification query, never a decision).
// Redis away: keys are refused with 503 (limits are part of the contract), as event ingestion is.
import { LRUCache } from "lru-cache";
import type postgres from "postgres";
import type { ApiKeyCaller, ApiKeyVerifier } from "./auth.ts";
import { apiKeyContext, asService, withRequestContext } from "./db.ts";
import { HttpError } from "./errors.ts";
import type { RateLimiter } from "./rate-limit.ts";

/** How long a verification is reused; decisions are Postgres's, per request (see above). */
export const API_KEY_CACHE_MS = 10_000;
/** Refused keys one source address may send in a minute before all its keys are refused. */
export const API_KEY_FAILURES_PER_MINUTE = 30;
/** Verifications kept at most (oldest dropped first): guesses cannot grow the cache without bound. */
const CACHE_ENTRIES = 10_000;

/** Postgres errors of public.verify_api_key as HTTP answers (docs/errors.md). */
const API_KEY_ERRORS: Record<string, [string, string]> = {
  TN020: ["invalid_api_key", "The API key is not valid."],
  TN021: ["api_key_revoked", "The API key was revoked."],
  TN022: ["api_key_expired", "The API key has expired."],
};

/** The shape of every key create_api_key makes; anything else is refused without a query. */
export const API_KEY_SHAPE = /^sk_[A-Za-z0-9_-]{8,64}$/;

export type ApiKeyLookup =
  | { ok: true; apiKeyId: string; orgId: string; scopes: string[]; requestsPerMinute: number }
  | { ok: false; code: string; message: string };

/**
 * What public.verify_api_key (as the service) says of a key, with its organization's tier limit on
 * requests; a refusal (unknown, revoked, expired) as a value, other failures thrown.
 */
export async function lookupApiKey(sql: postgres.Sql, key: string, requestId: string): Promise<ApiKeyLookup> {
  if (!API_KEY_SHAPE.test(key)) return { ok: false, code: API_KEY_ERRORS.TN020[0], message: API_KEY_ERRORS.TN020[1] };
  try {
    const [k] = await asService(
      sql,
      requestId,
      (tx) =>
        tx<{ api_key_id: string; org_id: string; scopes: string[]; per_minute: number }[]>`
        select v.api_key_id, v.org_id, v.scopes, t.api_requests_per_minute as per_minute
        from public.verify_api_key(${key}) v
        join public.organizations o on o.id = v.org_id
        join public.subscription_tiers t on t.tier = o.tier`,
    );
    if (!k) return { ok: false, code: API_KEY_ERRORS.TN020[0], message: API_KEY_ERRORS.TN020[1] };
    return { ok: true, apiKeyId: k.api_key_id, orgId: k.org_id, scopes: k.scopes, requestsPerMinute: k.per_minute };
  } catch (e) {
    const known = API_KEY_ERRORS[(e as { code?: string }).code ?? ""];
    if (known) return { ok: false, code: known[0], message: known[1] };
    throw e;
  }
}

/** Verifies an organization's API key live (public.verify_api_key, as the service), uncached and unlimited. */
export function apiKeyVerifier(sql: postgres.Sql): ApiKeyVerifier {
  return async (key, requestId) => {
    const k = await lookupApiKey(sql, key, requestId);
    if (!k.ok) throw new HttpError(401, k.code, k.message);
    return { apiKeyId: k.apiKeyId, orgId: k.orgId, scopes: k.scopes };
  };
}

export interface ApiKeyGate {
  /** serveHandler's verifyApiKey: the key's caller, or the HttpError (401, 429, 503) that refuses it. */
  verify: ApiKeyVerifier;
  /**
   * Runs fn in the key's request context once Postgres, in the same transaction, finds the key live
   * and holding `scope` (null: any live key): 401 with the key's refusal when it is no longer live,
   * 403 missing_scope without the scope.
   */
  run<T>(
    caller: ApiKeyCaller,
    req: Request,
    requestId: string,
    scope: string | null,
    fn: (tx: postgres.TransactionSql) => Promise<T>,
  ): Promise<T>;
  /** For work that checks liveness itself: forgets the request's key and refuses it as verification now does. */
  refuse(req: Request, requestId: string): Promise<never>;
}

export interface ApiKeyGateDeps {
  sql: postgres.Sql;
  limiter: RateLimiter;
  /** Test seams: the cache's lifetime and the clock. */
  cacheMs?: number;
  now?: () => number;
}

/** The address the platform's proxy saw: the right-most x-forwarded-for entry (the client writes the left). */
export function sourceAddress(req: Request): string {
  const entries = (req.headers.get("x-forwarded-for") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  return entries.at(-1) ?? "unknown";
}

async function keyHash(key: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

const missingScope = (scope: string) =>
  new HttpError(403, "missing_scope", `The API key does not hold ${scope} (or its creator no longer does).`);

export function apiKeyGate(deps: ApiKeyGateDeps): ApiKeyGate {
  const { sql, limiter } = deps;
  const cacheMs = deps.cacheMs ?? API_KEY_CACHE_MS;
  const now = deps.now ?? Date.now;
  // fetch() asks once for the requests that find a key missing together; a failed question is not kept.
  // refuse() forgets a key while others may be asking about it, which aborts their question: they
  // get no answer (not the abort's error) and ask again.
  const cache = new LRUCache<string, ApiKeyLookup, { key: string; requestId: string }>({
    max: CACHE_ENTRIES,
    ttl: cacheMs,
    perf: { now },
    allowStaleOnFetchAbort: true,
    fetchMethod: (_hash, _stale, { context }) => lookupApiKey(sql, context.key, context.requestId),
  });

  const limited = (what: string, detail: Record<string, unknown>) =>
    new HttpError(429, "rate_limited", what, detail, { "retry-after": String(limiter.secondsLeft()) });
  const meter = async <T>(p: Promise<T>): Promise<T> => {
    try {
      return await p;
    } catch {
      throw new HttpError(503, "rate_limiter_unavailable", "API keys cannot be metered right now; try again shortly.");
    }
  };
  const tooManyFailures = () =>
    limited("Too many refused API keys from this address; try again after the minute.", { limit: "failed_keys_per_address" });

  async function verify(key: string, requestId: string, req?: Request): Promise<Omit<ApiKeyCaller, "kind">> {
    const address = req ? sourceAddress(req) : "unknown";
    const failures = `apikey-failures:${address}`;
    const hash = await keyHash(key);
    // an address that used up its failures reaches Postgres no more this minute
    if (!cache.has(hash) && await meter(limiter.used(failures)) >= API_KEY_FAILURES_PER_MINUTE) throw tooManyFailures();
    const k = await cache.fetch(hash, { context: { key, requestId } }) ??
      await cache.fetch(hash, { context: { key, requestId }, forceRefresh: true });
    if (!k) throw new Error("API key verification gave no answer");
    if (!k.ok) {
      if (await meter(limiter.take(failures, 1, API_KEY_FAILURES_PER_MINUTE)) === 0) throw tooManyFailures();
      throw new HttpError(401, k.code, k.message);
    }
    const [keyOk, orgOk] = await meter(limiter.takeEach([`apikey:${k.apiKeyId}`, `apikey-org:${k.orgId}`], k.requestsPerMinute));
    if (!keyOk) {
      throw limited(`The key's ${k.requestsPerMinute} requests a minute are used up.`, {
        limit: "requests_per_key",
        per_minute: k.requestsPerMinute,
      });
    }
    if (!orgOk) {
      throw limited(`The organization's keys have used up their ${k.requestsPerMinute} requests a minute.`, {
        limit: "requests_per_organization",
        per_minute: k.requestsPerMinute,
      });
    }
    return { apiKeyId: k.apiKeyId, orgId: k.orgId, scopes: k.scopes };
  }

  async function refuse(req: Request, requestId: string): Promise<never> {
    const key = req.headers.get("x-api-key") ?? "";
    cache.delete(await keyHash(key));
    const k = await lookupApiKey(sql, key, requestId);
    if (k.ok) throw new HttpError(401, "invalid_api_key", "The API key is not valid.");
    throw new HttpError(401, k.code, k.message);
  }

  const GONE = Symbol("key gone");
  return {
    verify,
    refuse,
    async run(caller, req, requestId, scope, fn) {
      try {
        return await withRequestContext(sql, apiKeyContext(caller, req, requestId), async (tx) => {
          const [c] = await tx<{ live: boolean; allowed: boolean }[]>`
            select app.current_api_key_id() is not null as live,
                   ${scope}::text is null or app.has_permission(${caller.orgId}, ${scope}::text) as allowed`;
          if (!c.live) throw GONE;
          if (!c.allowed) throw missingScope(scope!);
          return await fn(tx);
        });
      } catch (e) {
        if (e === GONE) return await refuse(req, requestId);
        throw e;
      }
    },
  };
}

export { missingScope };
