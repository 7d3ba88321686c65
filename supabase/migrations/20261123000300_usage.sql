-- Usage per organization per day, against the tier's limits: members, active users (who sent
-- events that day), storage, analytics events, jobs. Tracked hourly by pg_cron; passing 80 % or
-- 100 % of a limit notifies whoever manages the organization's settings, once per metric, level
-- and day. API calls and MQTT messages per organization are not counted anywhere here (requests
-- are counted by the hosted platform's logs; Mosquitto reports totals only), so those columns
-- stay null rather than made up.

create table public.usage_daily (
  org_id uuid not null references public.organizations (id) on delete cascade,
  day date not null,
  members integer not null default 0,
  active_users integer not null default 0,
  storage_bytes bigint not null default 0,
  events bigint not null default 0,
  jobs bigint not null default 0,
  api_calls bigint,
  mqtt_messages bigint,
  updated_at timestamptz not null default now(),
  primary key (org_id, day)
);
alter table public.usage_daily enable row level security;
revoke all on public.usage_daily from anon, authenticated;
grant select on public.usage_daily to authenticated, service_role;
create policy "analytics readers read their organization's usage" on public.usage_daily
  for select to authenticated using (org_id = any (array(select app.org_ids_with_permission('analytics.read'))));

insert into public.notification_types (key, description, default_channels, default_priority) values
  ('usage.warning', 'Usage passed 80 % of a plan limit', '{mqtt,email}', 'high'),
  ('usage.limit', 'Usage reached a plan limit', '{mqtt,email}', 'high');
insert into public.notification_templates (org_id, type, locale, subject, body)
select null, key, 'en', '{{title}}', e'{{body}}\n\n— sent by your school''s workspace' from public.notification_types
where key in ('usage.warning', 'usage.limit');

-- The day's usage of every live organization (upserted: runs during the day refine it), then the
-- limits checked. Returns how many organizations were tracked.
create function app.track_usage(for_day date default current_date) returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  from_at timestamptz := for_day::timestamp at time zone 'UTC';
  to_at timestamptz := (for_day + 1)::timestamp at time zone 'UTC';
  tracked integer;
  over record;
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

  for over in
    select v.org_id, v.metric, v.used, v.limit_value, case when v.used >= v.limit_value then 'limit' else 'warning' end as level
    from public.usage_daily u
    join public.organizations o on o.id = u.org_id and o.deleted_at is null
    join public.subscription_tiers t on t.tier = o.tier
    cross join lateral (values (u.org_id, 'members', u.members::bigint, t.max_members::bigint),
                               (u.org_id, 'storage_bytes', u.storage_bytes, t.storage_bytes),
                               (u.org_id, 'events', u.events, t.events_per_day)) v(org_id, metric, used, limit_value)
    where u.day = for_day and v.limit_value > 0 and v.used >= v.limit_value * 0.8
  loop
    perform app.notify(over.org_id, 'usage.' || over.level,
                       format('%s at %s %% of the plan', replace(over.metric, '_', ' '), floor(100.0 * over.used / over.limit_value)),
                       format('%s of %s used on %s.', over.used, over.limit_value, for_day),
                       jsonb_build_object('metric', over.metric, 'used', over.used, 'limit', over.limit_value, 'day', for_day),
                       '{"permission": "settings.manage"}', null, format('usage.%s:%s:%s', over.level, over.metric, for_day));
  end loop;
  return tracked;
end
$$;
revoke all on function app.track_usage(date) from public;
grant execute on function app.track_usage(date) to service_role;

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
                             ('events', u.events, t.events_per_day), ('active_users', u.active_users::bigint, null::bigint),
                             ('jobs', u.jobs, null::bigint)) v(metric, used, limit_value)
  where u.org_id = usage_versus_limits.org_id and u.day = for_day;
end
$$;
revoke all on function public.usage_versus_limits(uuid, date) from public, anon;
grant execute on function public.usage_versus_limits(uuid, date) to authenticated;

select cron.schedule('usage-tracking', '23 * * * *', 'select app.track_usage()');
