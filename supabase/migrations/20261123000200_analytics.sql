-- Analytics: events from browser apps in an append-only table partitioned by day, rolled up into
-- hourly and daily tables per organization and event type, and usage per organization per day
-- against the tier's limits. Members holding analytics.read read their organization's figures.
--
-- Incremental roll-ups: inserting events marks the (organization, type, hour) buckets they touch,
-- in the same transaction (a statement trigger), so a mark is committed exactly when its events
-- are; this is the watermark, kept per bucket. A time watermark on received_at would miss rows
-- that commit out of order. A run recomputes its marked buckets from the raw events (so late
-- events and repeated runs give the same figures as a GROUP BY over everything), one run at a time.
-- Errors: AN001 a partition range out of bounds. (An unknown event type is the catalog's foreign key: 23503.)

create schema analytics;
comment on schema analytics is 'Private: the event partitions and the roll-up marks. Not exposed.';
revoke all on schema analytics from public;

-- ---------------------------------------------------------------------------------------------
-- Tier limits: how long events are kept, how fast and how many an organization may send.
alter table public.subscription_tiers
  add column analytics_retention_days integer not null default 30 check (analytics_retention_days between 1 and 3650),
  add column events_per_minute integer not null default 600 check (events_per_minute > 0),
  add column events_per_day bigint not null default 100000 check (events_per_day > 0);
update public.subscription_tiers set
  analytics_retention_days = case tier when 'free' then 30 when 'basic' then 90 when 'professional' then 365 else 730 end,
  events_per_minute = case tier when 'free' then 600 when 'basic' then 3000 when 'professional' then 12000 else 60000 end,
  events_per_day = case tier when 'free' then 100000 when 'basic' then 1000000 when 'professional' then 10000000 else 100000000 end;

-- ---------------------------------------------------------------------------------------------
-- Event types: the catalog the ingestion function validates against (its zod schemas name the
-- same keys); up to four numeric properties per type are summed in the roll-ups.
create table public.analytics_event_types (
  key text primary key check (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
  description text not null,
  numeric_properties text[] not null default '{}' check (cardinality(numeric_properties) <= 4)
);
insert into public.analytics_event_types (key, description, numeric_properties) values
  ('page.viewed', 'A page was shown', '{}'),
  ('lesson.started', 'A student opened a lesson', '{}'),
  ('lesson.completed', 'A student finished a lesson', '{duration_seconds,score}'),
  ('exercise.submitted', 'An exercise answer was handed in', '{score,attempt}'),
  ('video.watched', 'Part of a video was watched', '{seconds}'),
  ('search.performed', 'A search was run', '{results}');
alter table public.analytics_event_types enable row level security;
grant select on public.analytics_event_types to authenticated, service_role;
create policy "signed-in users read the event types" on public.analytics_event_types for select to authenticated using (true);

-- ---------------------------------------------------------------------------------------------
create sequence public.analytics_events_id_seq;
create table public.analytics_events (
  id bigint not null default nextval('public.analytics_events_id_seq'),
  org_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid,
  event_type text not null references public.analytics_event_types (key),
  occurred_at timestamptz not null,
  received_at timestamptz not null default now(),
  properties jsonb not null default '{}' check (jsonb_typeof(properties) = 'object' and pg_column_size(properties) <= 4096),
  -- also the roll-up's access path: one organization's events of one type in a time range
  primary key (org_id, event_type, occurred_at, id)
) partition by range (occurred_at);
alter sequence public.analytics_events_id_seq owned by public.analytics_events.id;
comment on table public.analytics_events is 'Append-only. Partitions (one a day) live in schema analytics.';

alter table public.analytics_events enable row level security;
revoke all on public.analytics_events from anon, authenticated;
grant select, insert (org_id, user_id, event_type, occurred_at, properties) on public.analytics_events to authenticated;
grant select on public.analytics_events to service_role;
grant insert (org_id, user_id, event_type, occurred_at, properties) on public.analytics_events to service_role;
grant usage on sequence public.analytics_events_id_seq to authenticated, service_role;
create policy "analytics readers read their organization's events" on public.analytics_events
  for select to authenticated using (org_id = any (array(select app.org_ids_with_permission('analytics.read'))));
create policy "members record their own events in their organization" on public.analytics_events
  for insert to authenticated with check (user_id = (select auth.uid()) and org_id = any (array(select app.user_org_ids())));

-- Partitions: one a day, created ahead by a schedule and dropped when older than the longest
-- retention of any tier (shorter retentions delete their rows, see app.apply_analytics_retention).
create function app.create_analytics_partitions(days_back integer default 8, days_ahead integer default 7) returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  day date;
  made integer := 0;
begin
  if days_back not between 0 and 3650 or days_ahead not between 0 and 366 then
    raise exception 'partitions are made at most 3650 days back and 366 ahead' using errcode = 'AN001';
  end if;
  for day in select generate_series(current_date - days_back, current_date + days_ahead, interval '1 day')::date loop
    if to_regclass(format('analytics.events_%s', to_char(day, 'YYYYMMDD'))) is null then
      execute format('create table analytics.%I partition of public.analytics_events for values from (%L) to (%L)',
                     'events_' || to_char(day, 'YYYYMMDD'), day::timestamp at time zone 'UTC', (day + 1)::timestamp at time zone 'UTC');
      made := made + 1;
    end if;
  end loop;
  return made;
end
$$;
revoke all on function app.create_analytics_partitions(integer, integer) from public;
grant execute on function app.create_analytics_partitions(integer, integer) to service_role;
select app.create_analytics_partitions();

-- ---------------------------------------------------------------------------------------------
-- Roll-ups: per organization, event type and UTC hour (or UTC day): events, distinct users, and
-- the sums of the type's numeric properties.
create table public.analytics_hourly (
  org_id uuid not null references public.organizations (id) on delete cascade,
  event_type text not null,
  bucket timestamptz not null,
  events bigint not null check (events >= 0),
  users bigint not null check (users >= 0),
  sums jsonb not null default '{}',
  updated_at timestamptz not null default now(),
  primary key (org_id, event_type, bucket)
);
create table public.analytics_daily (like public.analytics_hourly including all);
alter table public.analytics_daily add foreign key (org_id) references public.organizations (id) on delete cascade;

alter table public.analytics_hourly enable row level security;
alter table public.analytics_daily enable row level security;
revoke all on public.analytics_hourly, public.analytics_daily from anon, authenticated;
grant select on public.analytics_hourly, public.analytics_daily to authenticated, service_role;
create policy "analytics readers read their organization's hourly figures" on public.analytics_hourly
  for select to authenticated using (org_id = any (array(select app.org_ids_with_permission('analytics.read'))));
create policy "analytics readers read their organization's daily figures" on public.analytics_daily
  for select to authenticated using (org_id = any (array(select app.org_ids_with_permission('analytics.read'))));

-- Buckets waiting for a roll-up; seq changes whenever new events touch the bucket again.
create sequence analytics.mark_seq;
create table analytics.marks (
  org_id uuid not null,
  event_type text not null,
  hour timestamptz not null,
  seq bigint not null default nextval('analytics.mark_seq'),
  primary key (org_id, event_type, hour)
);

-- Each day's distinct users per organization and type (see app.rollup_analytics).
create table analytics.day_users (
  org_id uuid not null references public.organizations (id) on delete cascade,
  event_type text not null,
  day timestamptz not null,
  user_id uuid not null,
  primary key (org_id, event_type, day, user_id)
);

create function app.mark_analytics_buckets() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into analytics.marks as m (org_id, event_type, hour)
  select distinct n.org_id, n.event_type, date_trunc('hour', n.occurred_at, 'UTC') from new_rows n
  order by 1, 2, 3 -- one lock order for every writer
  on conflict (org_id, event_type, hour) do update set seq = nextval('analytics.mark_seq');
  return null;
end
$$;
revoke all on function app.mark_analytics_buckets() from public;
create trigger mark_analytics_buckets after insert on public.analytics_events
  referencing new table as new_rows for each statement execute function app.mark_analytics_buckets();

-- One roll-up run: up to max_buckets marked hours, their hours and their days recomputed from the
-- raw events, marks removed only if no newer events touched them meanwhile. Runs one at a time (a
-- second caller returns busy at once); a run that dies is rolled back whole.
create function app.rollup_analytics(max_buckets integer default 20000, out hours integer, out days integer, out pending bigint, out busy boolean)
language plpgsql volatile security definer set search_path = ''
-- the sorts of a run's grouping stay in memory instead of spilling (4 MB is the default)
set work_mem = '64MB'
as $$
begin
  busy := not pg_try_advisory_xact_lock(hashtext('app.rollup_analytics'));
  hours := 0;
  days := 0;
  if busy then
    select count(*) into pending from analytics.marks;
    return;
  end if;

  if to_regclass('pg_temp.rollup_claimed') is null then
    create temp table rollup_claimed (org_id uuid, event_type text, hour timestamptz, seq bigint) on commit drop;
  end if;
  truncate rollup_claimed;
  insert into rollup_claimed select m.org_id, m.event_type, m.hour, m.seq from analytics.marks m order by m.hour limit max_buckets;
  analyze rollup_claimed;

  with figures as (
    select e.org_id, e.event_type, c.hour as bucket, count(*) as events, count(distinct e.user_id) as users,
           sum((e.properties ->> t.numeric_properties[1])::numeric) as s1, sum((e.properties ->> t.numeric_properties[2])::numeric) as s2,
           sum((e.properties ->> t.numeric_properties[3])::numeric) as s3, sum((e.properties ->> t.numeric_properties[4])::numeric) as s4
    from rollup_claimed c
    -- the equality lets a full roll-up hash-join; the range lets a small one use the index per bucket
    join public.analytics_events e on e.org_id = c.org_id and e.event_type = c.event_type and date_trunc('hour', e.occurred_at, 'UTC') = c.hour
                                  and e.occurred_at >= c.hour and e.occurred_at < c.hour + interval '1 hour'
    join public.analytics_event_types t on t.key = e.event_type
    where e.occurred_at >= (select min(hour) from rollup_claimed) and e.occurred_at < (select max(hour) from rollup_claimed) + interval '1 hour'
    group by e.org_id, e.event_type, c.hour
  ), upserted as (
    insert into public.analytics_hourly as h (org_id, event_type, bucket, events, users, sums)
    select f.org_id, f.event_type, f.bucket, f.events, f.users, app.analytics_sums(f.event_type, f.s1, f.s2, f.s3, f.s4) from figures f
    on conflict (org_id, event_type, bucket) do update
      set events = excluded.events, users = excluded.users, sums = excluded.sums, updated_at = now()
    returning 1
  )
  select count(*) into hours from upserted;

  -- Each day's distinct users are kept as a set, filled from the claimed hours, so a day's figures
  -- never need the whole day's events again: counts and sums add up from the hours.
  insert into analytics.day_users (org_id, event_type, day, user_id)
  select distinct e.org_id, e.event_type, date_trunc('day', e.occurred_at, 'UTC'), e.user_id
  from rollup_claimed c
  join public.analytics_events e on e.org_id = c.org_id and e.event_type = c.event_type and date_trunc('hour', e.occurred_at, 'UTC') = c.hour
                                and e.occurred_at >= c.hour and e.occurred_at < c.hour + interval '1 hour'
  where e.user_id is not null
    and e.occurred_at >= (select min(hour) from rollup_claimed) and e.occurred_at < (select max(hour) from rollup_claimed) + interval '1 hour'
  on conflict do nothing;

  with claimed_days as (
    select distinct c.org_id, c.event_type, date_trunc('day', c.hour, 'UTC') as day from rollup_claimed c
  ), hours as (
    select d.org_id, d.event_type, d.day, h.events, h.sums
    from claimed_days d
    join public.analytics_hourly h on h.org_id = d.org_id and h.event_type = d.event_type and h.bucket >= d.day and h.bucket < d.day + interval '1 day'
  ), totals as (
    select org_id, event_type, day, sum(events)::bigint as events from hours group by 1, 2, 3
  ), sums as (
    select org_id, event_type, day, jsonb_object_agg(key, total) as sums
    from (select h.org_id, h.event_type, h.day, s.key, sum(s.value::numeric) as total
          from hours h cross join lateral jsonb_each_text(h.sums) s group by 1, 2, 3, 4) k
    group by 1, 2, 3
  ), users as (
    select d.org_id, d.event_type, d.day, count(u.user_id) as users
    from claimed_days d
    left join analytics.day_users u on u.org_id = d.org_id and u.event_type = d.event_type and u.day = d.day
    group by 1, 2, 3
  ), upserted as (
    insert into public.analytics_daily as h (org_id, event_type, bucket, events, users, sums)
    select t.org_id, t.event_type, t.day, t.events, coalesce(u.users, 0), coalesce(s.sums, '{}')
    from totals t
    left join users u on u.org_id = t.org_id and u.event_type = t.event_type and u.day = t.day
    left join sums s on s.org_id = t.org_id and s.event_type = t.event_type and s.day = t.day
    on conflict (org_id, event_type, bucket) do update
      set events = excluded.events, users = excluded.users, sums = excluded.sums, updated_at = now()
    returning 1
  )
  select count(*) into days from upserted;

  delete from analytics.marks m using rollup_claimed c
  where m.org_id = c.org_id and m.event_type = c.event_type and m.hour = c.hour and m.seq = c.seq;
  select count(*) into pending from analytics.marks;
end
$$;

-- The sums as {"property": total}, for the type's numeric properties that occurred.
create function app.analytics_sums(event_type text, s1 numeric, s2 numeric, s3 numeric, s4 numeric) returns jsonb
language sql stable set search_path = ''
as $$
  select coalesce(jsonb_object_agg(p.name, p.total) filter (where p.total is not null), '{}')
  from public.analytics_event_types t, unnest(t.numeric_properties, array[s1, s2, s3, s4]) p(name, total)
  where t.key = analytics_sums.event_type and p.name is not null
$$;
revoke all on function app.rollup_analytics(integer), app.analytics_sums(text, numeric, numeric, numeric, numeric) from public;
grant execute on function app.rollup_analytics(integer) to service_role;

-- Retention: partitions older than every tier's retention are dropped; rows of organizations on
-- shorter retentions are deleted, with their roll-ups.
create function app.apply_analytics_retention() returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  longest integer := (select max(analytics_retention_days) from public.subscription_tiers);
  part record;
  dropped integer := 0;
begin
  for part in
    select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_namespace n on n.oid = c.relnamespace
    where i.inhparent = 'public.analytics_events'::regclass and n.nspname = 'analytics'
      and c.relname ~ '^events_[0-9]{8}$' and to_date(substr(c.relname, 8), 'YYYYMMDD') < current_date - longest
  loop
    execute format('drop table analytics.%I', part.relname);
    dropped := dropped + 1;
  end loop;
  delete from public.analytics_events e using public.organizations o, public.subscription_tiers t
  where o.id = e.org_id and t.tier = o.tier and e.occurred_at < now() - make_interval(days => t.analytics_retention_days);
  delete from public.analytics_hourly h using public.organizations o, public.subscription_tiers t
  where o.id = h.org_id and t.tier = o.tier and h.bucket < now() - make_interval(days => t.analytics_retention_days);
  delete from public.analytics_daily h using public.organizations o, public.subscription_tiers t
  where o.id = h.org_id and t.tier = o.tier and h.bucket < now() - make_interval(days => t.analytics_retention_days);
  delete from analytics.day_users h using public.organizations o, public.subscription_tiers t
  where o.id = h.org_id and t.tier = o.tier and h.day < now() - make_interval(days => t.analytics_retention_days);
  return dropped;
end
$$;
revoke all on function app.apply_analytics_retention() from public;
grant execute on function app.apply_analytics_retention() to service_role;

-- ---------------------------------------------------------------------------------------------
-- Reading, for dashboards (members with analytics.read of the organization).
create function app.require_analytics_reader(org uuid) returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if not app.has_permission(org, 'analytics.read') then
    raise exception 'analytics.read is required in organization %', org using errcode = '42501';
  end if;
end
$$;
revoke all on function app.require_analytics_reader(uuid) from public;
grant execute on function app.require_analytics_reader(uuid) to authenticated;

-- A time series: one row per bucket of the range (zero where nothing happened).
create function public.analytics_series(org_id uuid, event_type text, from_at timestamptz, to_at timestamptz, granularity text default 'day')
returns table (bucket timestamptz, events bigint, users bigint, sums jsonb)
language plpgsql stable security invoker set search_path = ''
as $$
declare
  step interval := case granularity when 'hour' then interval '1 hour' when 'day' then interval '1 day' end;
begin
  perform app.require_analytics_reader(analytics_series.org_id);
  if step is null or to_at <= from_at or to_at - from_at > step * 2000 then
    raise exception 'granularity is hour or day, and a range holds at most 2000 buckets' using errcode = '22023';
  end if;
  return query
  select b.bucket, coalesce(r.events, 0), coalesce(r.users, 0), coalesce(r.sums, '{}')
  from generate_series(date_trunc(granularity, from_at, 'UTC'), to_at - interval '1 microsecond', step) b(bucket)
  left join (select h.bucket, h.events, h.users, h.sums from public.analytics_hourly h
             where granularity = 'hour' and h.org_id = analytics_series.org_id and h.event_type = analytics_series.event_type
             union all
             select d.bucket, d.events, d.users, d.sums from public.analytics_daily d
             where granularity = 'day' and d.org_id = analytics_series.org_id and d.event_type = analytics_series.event_type) r
    on r.bucket = b.bucket
  order by b.bucket;
end
$$;
revoke all on function public.analytics_series(uuid, text, timestamptz, timestamptz, text) from public, anon;
grant execute on function public.analytics_series(uuid, text, timestamptz, timestamptz, text) to authenticated;

-- The most frequent event types of a range (whole UTC days).
create function public.analytics_top_events(org_id uuid, from_at timestamptz, to_at timestamptz, max_rows integer default 10)
returns table (event_type text, events bigint)
language plpgsql stable security invoker set search_path = ''
as $$
begin
  perform app.require_analytics_reader(analytics_top_events.org_id);
  return query
  select d.event_type, sum(d.events)::bigint from public.analytics_daily d
  where d.org_id = analytics_top_events.org_id and d.bucket >= date_trunc('day', from_at, 'UTC') and d.bucket < to_at
  group by d.event_type order by 2 desc, 1 limit least(greatest(max_rows, 1), 100);
end
$$;
revoke all on function public.analytics_top_events(uuid, timestamptz, timestamptz, integer) from public, anon;
grant execute on function public.analytics_top_events(uuid, timestamptz, timestamptz, integer) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Schedules (pg_cron): partitions a week ahead and retention daily; the roll-up every minute
-- through the analytics-aggregation function (the hosted pattern: net.http_post, Vault secrets).
select cron.schedule('analytics-partitions', '7 0 * * *', 'select app.create_analytics_partitions(); select app.apply_analytics_retention()');
select cron.schedule('analytics-rollup', '* * * * *',
  $$select app.call_function('analytics-aggregation', '{"type": "SCHEDULE"}'::jsonb) where exists (select 1 from analytics.marks)$$);
