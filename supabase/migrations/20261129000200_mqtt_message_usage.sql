-- MQTT messages per organization per day. The broker's plugin counts the messages published on
-- each organization's topics (org/<id>/...) in memory and hands the counts over every minute
-- (plugin_opt_usage_seconds) through mqtt.record_messages, which adds them to today's usage.
-- Counts that cannot be handed over stay in the broker for the next try. (A hand-over whose
-- answer is lost after Postgres committed it is counted twice: a rare over-count, never a loss.)
-- Errors: UG001 counts that are not {"<organization id>": <messages>}.

-- Counted from now on (0 until the first message); earlier days stay null: not counted.
alter table public.usage_daily alter column mqtt_messages set default 0;

-- Counts per organization, as the usage counters hand them over: {"<org id>": <whole number ≥ 0>}.
create function app.are_organization_counts(counts jsonb) returns boolean
language sql immutable set search_path = ''
as $$
  -- (case, not and: jsonb_each of a non-object raises instead of answering false)
  select case when jsonb_typeof(counts) = 'object' then not exists (
    select 1 from jsonb_each(counts) c
    where c.key !~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
       or case when jsonb_typeof(c.value) = 'number' then c.value::numeric < 0 or c.value::numeric <> trunc(c.value::numeric) else true end)
  else false end
$$;

-- The counts of organizations that exist and are not deleted (the others are skipped).
create function app.live_organization_counts(counts jsonb) returns table (org_id uuid, n bigint)
language sql stable set search_path = ''
as $$
  select o.id, c.value::bigint from jsonb_each(counts) c join public.organizations o on o.id = c.key::uuid and o.deleted_at is null
$$;

-- As before (20261129000100), with the shape check and the organizations in functions of their own.
create or replace function app.record_api_calls(for_day date, counts jsonb) returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  stored integer;
begin
  if not coalesce(app.are_organization_counts(counts), false) then
    raise exception 'API call counts must be {"<organization id>": <calls>} with whole, non-negative numbers' using errcode = 'UG001';
  end if;
  if for_day is null or for_day > current_date + 1 or for_day < current_date - 7 then
    raise exception 'API call counts are taken for the last 7 days only' using errcode = 'UG001';
  end if;

  insert into public.usage_daily as u (org_id, day, api_calls)
  select c.org_id, for_day, c.n from app.live_organization_counts(counts) c
  order by c.org_id -- one lock order for concurrent copies
  on conflict (org_id, day) do update
    set api_calls = greatest(coalesce(u.api_calls, 0), excluded.api_calls), updated_at = now()
    where u.api_calls is distinct from greatest(coalesce(u.api_calls, 0), excluded.api_calls);
  get diagnostics stored = row_count;

  if stored > 0 then
    perform app.check_usage_limits(for_day);
  end if;
  return stored;
end
$$;

-- Messages published since the broker's last hand-over, added to today's figures. Unknown and
-- deleted organizations are skipped. Returns how many organizations' figures grew.
create function mqtt.record_messages(counts jsonb) returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  stored integer;
begin
  if not coalesce(app.are_organization_counts(counts), false) then
    raise exception 'message counts must be {"<organization id>": <messages>} with whole, non-negative numbers' using errcode = 'UG001';
  end if;
  insert into public.usage_daily as u (org_id, day, mqtt_messages)
  select c.org_id, current_date, c.n from app.live_organization_counts(counts) c where c.n > 0
  order by c.org_id
  on conflict (org_id, day) do update
    set mqtt_messages = coalesce(u.mqtt_messages, 0) + excluded.mqtt_messages, updated_at = now();
  get diagnostics stored = row_count;
  return stored;
end
$$;
revoke all on function mqtt.record_messages(jsonb) from public;
grant execute on function mqtt.record_messages(jsonb) to mqtt_broker;

-- As before (20261129000100), with MQTT messages (no tier limit on them).
create or replace function public.usage_versus_limits(org_id uuid, for_day date default current_date)
returns table (metric text, used bigint, limit_value bigint, percent numeric)
language plpgsql stable security invoker set search_path = ''
as $$
begin
  perform app.require_analytics_reader(usage_versus_limits.org_id);
  return query
  select v.metric, v.used, v.limit_value, round(100.0 * v.used / nullif(v.limit_value, 0), 1)
  from public.usage_daily u
  join public.organizations o on o.id = u.org_id
  join public.subscription_tiers t on t.tier = o.tier
  cross join lateral (values ('members', u.members::bigint, t.max_members::bigint), ('storage_bytes', u.storage_bytes, t.storage_bytes),
                             ('events', u.events, t.events_per_day), ('api_calls', u.api_calls, t.api_calls_per_day),
                             ('active_users', u.active_users::bigint, null::bigint), ('jobs', u.jobs, null::bigint),
                             ('mqtt_messages', u.mqtt_messages, null::bigint)) v(metric, used, limit_value)
  where u.org_id = usage_versus_limits.org_id and u.day = for_day;
end
$$;
