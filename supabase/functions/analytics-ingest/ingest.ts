// Ingesting a batch (the analytics-ingest function): each event checked on its own (the rest of a
// batch is kept when some are refused, with a reason each), the organization and user stamped from
// the access token (the active organization in the org_id claim), or for an API key its own
// organization and no user; the organization's per-minute budget for its tier taken from Redis
// (what is over it is refused as rate_limited; Redis away refuses the batch with 503, so the client
// keeps it and sends again), then one insert as the service (members and keys hold no INSERT on
// the events table) that checks membership, or the key's life and events.write, once more
// (app.insert_analytics_events, supabase/schemas/160_analytics.sql).
import { LRUCache } from "lru-cache";
import type postgres from "postgres";
import { API_KEY_CACHE_MS, type ApiKeyGate, missingScope } from "../_shared/api-keys.ts";
import type { ApiKeyCaller, UserCaller } from "../_shared/auth.ts";
import { asService, asUser } from "../_shared/db.ts";
import { HttpError } from "../_shared/errors.ts";
import { type HandlerContext, parseJson } from "../_shared/http.ts";
import type { RateLimiter } from "../_shared/rate-limit.ts";
import { type AcceptedEvent, checkEvent, IngestRequest, isRejected, type RejectedEvent } from "./events.ts";

export interface IngestDeps {
  sql: postgres.Sql;
  limiter: RateLimiter;
  /** Admits API keys (callers of kind api_key). */
  apiKeys?: ApiKeyGate;
  now?: () => number;
}

/** Postgres's lock_timeout: the insert waited its 3 s for a table someone else holds. */
const LOCK_NOT_AVAILABLE = "55P03";

/** The scope an API key needs to send events. */
export const EVENTS_SCOPE = "events.write";

export async function ingestEvents(
  req: Request,
  ctx: HandlerContext<UserCaller | ApiKeyCaller>,
  deps: IngestDeps,
): Promise<Response> {
  const { caller } = ctx;
  const orgId = caller.orgId;
  if (!orgId) throw new HttpError(403, "no_active_organization", "The access token names no active organization.");
  const body = await parseJson(req, IngestRequest);

  const now = (deps.now ?? Date.now)();
  const checked = body.events.map((e, i) => checkEvent(e, i, now));
  const rejected: RejectedEvent[] = checked.filter(isRejected);
  let accepted = checked.filter((x): x is AcceptedEvent => !isRejected(x));

  let tier: { per_minute: number } | null = null;
  if (caller.kind === "api_key") {
    // Postgres decides in the insert below (the key live and holding events.write, as the user's
    // insert checks membership). Until then only a key that held the scope when it was verified,
    // at most API_KEY_CACHE_MS ago, takes from the organization's budget; a key with nothing to
    // insert is asked about at once, so a revoked key hears so at its next request.
    if (!accepted.length || !caller.scopes.includes(EVENTS_SCOPE)) {
      await keyGate(deps).run(caller, req, ctx.requestId, EVENTS_SCOPE, noop);
    }
    if (accepted.length) tier = { per_minute: await eventsPerMinute(deps, orgId, ctx.requestId) };
  }
  if (accepted.length) {
    tier ??= await memberTier(deps, caller as UserCaller, req, ctx.requestId);
    let granted: number;
    try {
      granted = await deps.limiter.take(`events:org:${orgId}`, accepted.length, tier.per_minute);
    } catch (e) {
      ctx.log.warn("rate limiter unavailable", { error: String(e) });
      throw new HttpError(503, "rate_limiter_unavailable", "Events cannot be metered right now; send them again shortly.");
    }
    const over = accepted.slice(granted);
    accepted = accepted.slice(0, granted);
    for (const e of over) {
      rejected.push({
        index: checked.indexOf(e),
        code: "rate_limited",
        message: "the organization's events per minute are used up; send again later",
      });
    }
  }
  if (accepted.length) {
    // Members and keys cannot insert events themselves (nothing would bound them); the service
    // does, in the same statement as a last check of the member or the key. One statement outside
    // any transaction of ours (app.insert_analytics_events takes the service's request context
    // itself): a call's insert is one round trip to Postgres, not three.
    let count: number;
    try {
      [{ count }] = await deps.sql<{ count: number }[]>`
        select app.insert_analytics_events(${ctx.requestId}, ${orgId}::uuid,
          ${caller.kind === "user" ? caller.userId : null}::uuid, ${caller.kind === "api_key" ? caller.apiKeyId : null}::uuid,
          ${deps.sql.json(accepted as never)}::jsonb) as count`;
    } catch (e) {
      if ((e as { code?: unknown }).code !== LOCK_NOT_AVAILABLE) throw e;
      ctx.log.warn("events not stored: the events table stayed locked", { org_id: orgId, error: String(e) });
      throw new HttpError(
        503,
        "events_unavailable",
        "The events cannot be stored right now; send them again shortly.",
        undefined,
        {
          "retry-after": "5",
        },
      );
    }
    if (count === 0) {
      if (caller.kind === "user") throw new HttpError(403, "forbidden", "You are not a member of the token's organization.");
      // revoked, expired, or without events.write now: the key's own answer
      await keyGate(deps).run(caller, req, ctx.requestId, EVENTS_SCOPE, noop);
      throw missingScope(EVENTS_SCOPE);
    }
  }
  rejected.sort((a, b) => a.index - b.index);
  ctx.log.info("events ingested", { org_id: orgId, accepted: accepted.length, rejected: rejected.length });
  const status = accepted.length ? 200 : rejected.every((r) => r.code === "rate_limited") ? 429 : 422;
  return Response.json({ accepted: accepted.length, rejected }, { status });
}

/**
 * The member's organization's events budget, or 403 when they are not a member of it. A member's
 * answer is kept API_KEY_CACHE_MS, as a key's verification is: a browser app sends events often,
 * and the insert checks membership again, so someone removed within that time can at most take
 * from the budget, never add an event.
 */
const members = new LRUCache<
  string,
  { per_minute: number },
  { deps: IngestDeps; caller: UserCaller; req: Request; requestId: string }
>({
  max: 10_000,
  ttl: API_KEY_CACHE_MS,
  // asked once however many of the member's calls find the answer gone; a refusal (403) is not kept
  fetchMethod: async (_key, _stale, { context: { deps, caller, req, requestId } }) => {
    const [tier] = await asUser(deps.sql, caller, req, requestId, (tx) =>
      tx<{ per_minute: number }[]>`
      select t.events_per_minute as per_minute from public.organizations o join public.subscription_tiers t on t.tier = o.tier
      where o.id = ${caller.orgId} and o.id = any (array(select app.user_org_ids()))`);
    if (!tier) throw new HttpError(403, "forbidden", "You are not a member of the token's organization.");
    return { per_minute: tier.per_minute };
  },
});
async function memberTier(deps: IngestDeps, caller: UserCaller, req: Request, requestId: string) {
  const tier = await members.fetch(`${caller.orgId}:${caller.userId}`, { context: { deps, caller, req, requestId } });
  if (!tier) throw new Error("analytics-ingest: the member's tier gave no answer");
  return tier;
}

const noop = async () => {};
const keyGate = (deps: IngestDeps) => {
  if (!deps.apiKeys) throw new Error("analytics-ingest: API key callers need the gate");
  return deps.apiKeys;
};

/** Organizations' events per minute as the service last read them: a tier changes rarely, a key calls often. */
const budgets = new LRUCache<string, number, { deps: IngestDeps; requestId: string }>({
  max: 10_000,
  ttl: API_KEY_CACHE_MS,
  fetchMethod: async (orgId, _stale, { context: { deps, requestId } }) => {
    const [t] = await asService(deps.sql, requestId, (tx) =>
      tx<{ per_minute: number }[]>`
      select t.events_per_minute as per_minute from public.organizations o join public.subscription_tiers t on t.tier = o.tier
      where o.id = ${orgId}`);
    if (!t) throw new HttpError(403, "forbidden", "The key's organization is gone.");
    return t.per_minute;
  },
});
async function eventsPerMinute(deps: IngestDeps, orgId: string, requestId: string): Promise<number> {
  const perMinute = await budgets.fetch(orgId, { context: { deps, requestId } });
  if (perMinute === undefined) throw new Error("analytics-ingest: the organization's budget gave no answer");
  return perMinute;
}
