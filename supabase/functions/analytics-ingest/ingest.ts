// Ingesting a batch (the analytics-ingest function): each event checked on its own (the rest of a
// batch is kept when some are refused, with a reason each), the organization and user stamped from
// the access token (the active organization in the org_id claim), the organization's per-minute
// budget for its tier taken from Redis (what is over it is refused as rate_limited; Redis away
// refuses the batch with 503, so the client keeps it and sends again), then one insert as the
// service (members hold no INSERT on the events table) that checks membership once more.
import type postgres from "postgres";
import type { UserCaller } from "../_shared/auth.ts";
import { asService, asUser } from "../_shared/db.ts";
import { HttpError } from "../_shared/errors.ts";
import { type HandlerContext, parseJson } from "../_shared/http.ts";
import type { RateLimiter } from "../_shared/rate-limit.ts";
import { type AcceptedEvent, checkEvent, IngestRequest, isRejected, type RejectedEvent } from "./events.ts";

export interface IngestDeps {
  sql: postgres.Sql;
  limiter: RateLimiter;
  now?: () => number;
}

export async function ingestEvents(req: Request, ctx: HandlerContext<UserCaller>, deps: IngestDeps): Promise<Response> {
  const { caller } = ctx;
  const orgId = caller.orgId;
  if (!orgId) throw new HttpError(403, "no_active_organization", "The access token names no active organization.");
  const body = await parseJson(req, IngestRequest);

  const now = (deps.now ?? Date.now)();
  const checked = body.events.map((e, i) => checkEvent(e, i, now));
  const rejected: RejectedEvent[] = checked.filter(isRejected);
  let accepted = checked.filter((x): x is AcceptedEvent => !isRejected(x));

  const asCaller = <T>(fn: (tx: postgres.TransactionSql) => Promise<T>) => asUser(deps.sql, caller, req, ctx.requestId, fn);
  if (accepted.length) {
    const [tier] = await asCaller((tx) =>
      tx<{ per_minute: number }[]>`
      select t.events_per_minute as per_minute from public.organizations o join public.subscription_tiers t on t.tier = o.tier
      where o.id = ${orgId} and o.id = any (array(select app.user_org_ids()))`
    );
    if (!tier) throw new HttpError(403, "forbidden", "You are not a member of the token's organization.");
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
    // Members cannot insert events themselves (nothing would bound them); the service does, in
    // the same statement as a last membership check.
    const [{ count }] = await asService(deps.sql, ctx.requestId, (tx) =>
      tx<{ count: number }[]>`
      with inserted as (
        insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
        select ${orgId}::uuid, ${caller.userId}::uuid, e.event_type, e.occurred_at, e.properties
        from jsonb_to_recordset(${
        tx.json(accepted as never)
      }::jsonb) as e(event_type text, occurred_at timestamptz, properties jsonb)
        where exists (select 1 from public.organization_members m join public.organizations o on o.id = m.org_id and o.deleted_at is null
                      where m.org_id = ${orgId}::uuid and m.user_id = ${caller.userId}::uuid)
        returning 1
      )
      select count(*)::int as count from inserted`);
    if (count === 0) throw new HttpError(403, "forbidden", "You are not a member of the token's organization.");
  }
  rejected.sort((a, b) => a.index - b.index);
  ctx.log.info("events ingested", { org_id: orgId, accepted: accepted.length, rejected: rejected.length });
  const status = accepted.length ? 200 : rejected.every((r) => r.code === "rate_limited") ? 429 : 422;
  return Response.json({ accepted: accepted.length, rejected }, { status });
}
