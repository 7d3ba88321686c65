-- Usage per organization per day, against the tier's limits: members, active users (who sent
-- events that day), storage, analytics events, jobs, API calls and MQTT messages. Most figures are
-- tracked hourly by pg_cron (app.track_usage). API calls are counted by the functions in Redis (a
-- hash a day, for requests whose token names an active organization) and copied here every few
-- minutes by the analytics-aggregation function (app.record_api_calls); MQTT messages are counted
-- by the broker's plugin per organization topic and handed over every minute
-- (mqtt.record_messages). Passing 80 % or 100 % of a limit notifies whoever manages the
-- organization's settings, once per metric, level and day (app.check_usage_limits).
-- API calls and MQTT messages of days before counting began stay null: not counted, not zero.
-- Errors: UG001 counts that are not {"<organization id>": <whole number >= 0>}, or a day out of range.

create table public.usage_daily (
  org_id uuid not null references public.organizations (id) on delete cascade,
  day date not null,
  members integer not null default 0,
  active_users integer not null default 0,
  storage_bytes bigint not null default 0,
  events bigint not null default 0,
  jobs bigint not null default 0,
  api_calls bigint default 0,
  mqtt_messages bigint default 0,
  updated_at timestamptz not null default now(),
  primary key (org_id, day)
);
alter table public.usage_daily enable row level security;
revoke all on public.usage_daily from anon, authenticated;
grant select on public.usage_daily to authenticated, service_role;
create policy "analytics readers read their organization's usage" on public.usage_daily
  for select to authenticated using (org_id = any (array(select app.org_ids_with_permission('analytics.read'))));

-- A usage metric and an amount of it as people read them (the notifications below, their e-mails).
create function app.usage_metric_label(metric text) returns text
language sql immutable set search_path = ''
as $$
  select case metric when 'members' then 'Members' when 'storage_bytes' then 'Storage' when 'events' then 'Analytics events'
                     when 'api_calls' then 'API calls' else initcap(replace(metric, '_', ' ')) end
$$;
create function app.usage_amount(metric text, amount bigint) returns text
language sql immutable set search_path = ''
as $$
  select case when metric = 'storage_bytes' then to_char(round(amount / 1e6), 'FM999,999,999,990') || ' MB'
              else to_char(amount, 'FM999,999,999,999,990') end
$$;
revoke all on function app.usage_metric_label(text), app.usage_amount(text, bigint) from public;

-- The day's usage against the limits: passing 80 % or 100 % notifies whoever manages the
-- organization's settings, once per metric, level and day (the notification's dedupe key).
create function app.check_usage_limits(for_day date) returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  over record;
  notified integer := 0;
begin
  for over in
    select v.org_id, v.metric, v.used, v.limit_value, case when v.used >= v.limit_value then 'limit' else 'warning' end as level
    from public.usage_daily u
    join public.organizations o on o.id = u.org_id and o.deleted_at is null
    join public.subscription_tiers t on t.tier = o.tier
    cross join lateral (values (u.org_id, 'members', u.members::bigint, t.max_members::bigint),
                               (u.org_id, 'storage_bytes', u.storage_bytes, t.storage_bytes),
                               (u.org_id, 'events', u.events, t.events_per_day),
                               (u.org_id, 'api_calls', u.api_calls, t.api_calls_per_day)) v(org_id, metric, used, limit_value)
    where u.day = for_day and v.limit_value > 0 and v.used >= v.limit_value * 0.8
  loop
    -- people's words: "Storage at 85 % of the plan", "850 MB of 1,000 MB used on 7 December 2026."
    perform app.notify_safely(over.org_id, 'usage.' || over.level,
                       format('%s at %s %% of the plan', app.usage_metric_label(over.metric), floor(100.0 * over.used / over.limit_value)),
                       format('%s of %s used on %s.', app.usage_amount(over.metric, over.used), app.usage_amount(over.metric, over.limit_value),
                              to_char(for_day, 'FMDD FMMonth YYYY')),
                       jsonb_build_object('metric', over.metric, 'used', over.used, 'limit', over.limit_value, 'day', for_day),
                       '{"permission": "settings.manage"}', null, format('usage.%s:%s:%s', over.level, over.metric, for_day));
    notified := notified + 1;
  end loop;
  return notified;
end
$$;
revoke all on function app.check_usage_limits(date) from public;

-- The day's usage of every live organization (upserted: runs during the day refine it), then the
-- limits checked. Returns how many organizations were tracked.
create function app.track_usage(for_day date default current_date) returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  from_at timestamptz := for_day::timestamp at time zone 'UTC';
  to_at timestamptz := (for_day + 1)::timestamp at time zone 'UTC';
  tracked integer;
begin
  if to_regclass('pg_temp.usage_jobs') is null then
    create temp table usage_jobs (org_id uuid primary key, jobs bigint) on commit drop;
  end if;
  truncate usage_jobs;
  if to_regclass('pgboss.job') is not null then
    execute 'insert into usage_jobs select (data ->> ''org_id'')::uuid, count(*) from pgboss.job
             where created_on >= $1 and created_on < $2 and data ->> ''org_id'' ~ ''^[0-9a-f-]{36}$'' group by 1'
    using from_at, to_at;
  end if;

  insert into public.usage_daily as u (org_id, day, members, active_users, storage_bytes, events, jobs)
  select o.id, for_day,
         (select count(*) from public.organization_members m where m.org_id = o.id),
         (select count(distinct e.user_id) from public.analytics_events e where e.org_id = o.id and e.occurred_at >= from_at and e.occurred_at < to_at),
         coalesce((select q.used_bytes from public.storage_quotas q where q.org_id = o.id), 0),
         coalesce((select sum(d.events) from public.analytics_daily d where d.org_id = o.id and d.bucket = from_at), 0),
         coalesce((select j.jobs from usage_jobs j where j.org_id = o.id), 0)
  from public.organizations o where o.deleted_at is null
  on conflict (org_id, day) do update
    set members = excluded.members, active_users = excluded.active_users, storage_bytes = excluded.storage_bytes,
        events = excluded.events, jobs = excluded.jobs, updated_at = now();
  get diagnostics tracked = row_count;

  perform app.check_usage_limits(for_day);
  return tracked;
end
$$;
revoke all on function app.track_usage(date) from public;
grant execute on function app.track_usage(date) to service_role;

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
revoke all on function app.are_organization_counts(jsonb), app.live_organization_counts(jsonb) from public;

-- A day's API call counts, { "<org id>": calls }, as read from the counters: they only grow
-- during a day, so the larger of the stored and the given figure is kept, and copying the same
-- counts twice, late or at once changes nothing. Unknown and deleted organizations are skipped.
-- Returns how many organizations' figures were stored.
create function app.record_api_calls(for_day date, counts jsonb) returns integer
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
revoke all on function app.record_api_calls(date, jsonb) from public;
grant execute on function app.record_api_calls(date, jsonb) to service_role;

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

-- Today's usage against the tier's limits, for dashboards (members with analytics.read).
create function public.usage_versus_limits(org_id uuid, for_day date default current_date)
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
revoke all on function public.usage_versus_limits(uuid, date) from public, anon;
grant execute on function public.usage_versus_limits(uuid, date) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Catalog rows and schedules (pg_cron): usage hourly; the API call counters every five minutes,
-- whether or not events wait for a roll-up (this schedule copies them only; the roll-up schedule
-- does both).
insert into public.notification_types (key, description, default_channels, default_priority) values
  ('usage.warning', 'Usage passed 80 % of a plan limit', '{mqtt,email}', 'high'),
  ('usage.limit', 'Usage reached a plan limit', '{mqtt,email}', 'high');
insert into public.notification_templates (org_id, type, locale, subject, body)
select null, key, 'en', '{{title}}', e'{{body}}\n\n— sent by your school''s workspace' from public.notification_types
where key in ('usage.warning', 'usage.limit');

select cron.schedule('usage-tracking', '23 * * * *', 'select app.track_usage()');
select cron.schedule('usage-api-calls', '*/5 * * * *', $$select app.call_function('analytics-aggregation', '{"type": "SCHEDULE", "tasks": ["api_calls"]}'::jsonb)$$);
