-- Roll-ups from partial figures recorded at insert time, so a run's cost follows the new events,
-- not the hours they fall into.
--
-- The statement trigger on analytics_events, which marked the touched hours, now records what the
-- statement's own rows add up to, per hour, type, organization and user
-- (analytics.rollup_pending: events and the sums of the type's numeric properties). It runs in
-- the inserting transaction, so its partials commit exactly with their events: no event is missed
-- or counted twice, however transactions interleave. A roll-up run claims partials (deleting
-- them), adds them to the hourly and daily rows, and counts as new users only those the hour's
-- and day's user sets (analytics.hour_users, analytics.day_users) did not hold yet, so the figures
-- stay equal to a GROUP BY over the raw events, late events included. Each run is one
-- transaction under the advisory lock: one that dies changes nothing and its partials wait for
-- the next. The hours' events are never read again.

-- No new events while the last marks are rolled up the old way and the trigger is swapped: an
-- insert meanwhile would leave a mark that no run reads any more. (The CLI runs a migration's
-- statements one by one, so the lock needs a transaction of its own, to the end of the file.)
begin;
lock table public.analytics_events in share row exclusive mode;
do $$
declare
  r record;
begin
  loop
    select * into r from app.rollup_analytics(100000);
    exit when not r.busy and r.pending = 0;
    if r.busy then perform pg_sleep(0.2); end if;
  end loop;
end
$$;

create table analytics.rollup_pending (
  org_id uuid not null,
  event_type text not null,
  hour timestamptz not null,
  user_id uuid,
  events bigint not null check (events > 0),
  s1 numeric, s2 numeric, s3 numeric, s4 numeric
);
comment on table analytics.rollup_pending is 'What inserted events add up to, per statement, hour, type, organization and user; consumed by app.rollup_analytics.';
-- A queue: rows come and go every minute. Vacuumed as soon as a run has deleted a few thousand,
-- so that claiming never scans long runs of dead rows (a backfill leaves millions).
alter table analytics.rollup_pending set (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
                                          autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 5000,
                                          autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000, autovacuum_vacuum_cost_delay = 0);

-- Each hour's distinct users per organization and type, as analytics.day_users is for days.
create table analytics.hour_users (
  org_id uuid not null references public.organizations (id) on delete cascade,
  event_type text not null,
  hour timestamptz not null,
  user_id uuid not null,
  primary key (org_id, event_type, hour, user_id)
);
insert into analytics.hour_users (org_id, event_type, hour, user_id)
select distinct org_id, event_type, date_trunc('hour', occurred_at, 'UTC'), user_id from public.analytics_events where user_id is not null;

create function app.record_analytics_partials() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into analytics.rollup_pending (org_id, event_type, hour, user_id, events, s1, s2, s3, s4)
  select n.org_id, n.event_type, date_trunc('hour', n.occurred_at, 'UTC'), n.user_id, count(*),
         sum((n.properties ->> t.numeric_properties[1])::numeric), sum((n.properties ->> t.numeric_properties[2])::numeric),
         sum((n.properties ->> t.numeric_properties[3])::numeric), sum((n.properties ->> t.numeric_properties[4])::numeric)
  from new_rows n join public.analytics_event_types t on t.key = n.event_type
  group by 1, 2, 3, 4;
  return null;
end
$$;
revoke all on function app.record_analytics_partials() from public;
drop trigger mark_analytics_buckets on public.analytics_events;
create trigger record_analytics_partials after insert on public.analytics_events
  referencing new table as new_rows for each statement execute function app.record_analytics_partials();
drop function app.mark_analytics_buckets();
drop table analytics.marks;
drop sequence analytics.mark_seq;

-- One roll-up run: up to max_buckets pending partials (the name is kept for its callers) added to
-- the hours and days they belong to. Runs one at a time (a second caller returns busy at once).
create or replace function app.rollup_analytics(max_buckets integer default 20000, out hours integer, out days integer, out pending bigint, out busy boolean)
language plpgsql volatile security definer set search_path = ''
-- the run's grouping stays in memory instead of spilling (4 MB is the default)
set work_mem = '64MB'
as $$
begin
  busy := not pg_try_advisory_xact_lock(hashtext('app.rollup_analytics'));
  hours := 0;
  days := 0;
  if busy then
    select count(*) into pending from analytics.rollup_pending;
    return;
  end if;

  if to_regclass('pg_temp.rollup_user_hours') is null then
    create temp table rollup_user_hours (org_id uuid, event_type text, hour timestamptz, user_id uuid, events bigint,
                                         s1 numeric, s2 numeric, s3 numeric, s4 numeric) on commit drop;
    create temp table rollup_new_hour_users (org_id uuid, event_type text, hour timestamptz, user_id uuid) on commit drop;
    create temp table rollup_hours (org_id uuid, event_type text, hour timestamptz, events bigint, new_users bigint,
                                    s1 numeric, s2 numeric, s3 numeric, s4 numeric) on commit drop;
  end if;
  truncate rollup_user_hours, rollup_new_hour_users, rollup_hours;

  -- 1. Claim partials, per hour and user (partials of organizations deleted since are dropped).
  with claimed as (
    delete from analytics.rollup_pending p
    where p.ctid = any (array(select ctid from analytics.rollup_pending limit max_buckets))
    returning p.*
  )
  insert into rollup_user_hours
  select c.org_id, c.event_type, c.hour, c.user_id, sum(c.events), sum(c.s1), sum(c.s2), sum(c.s3), sum(c.s4)
  from claimed c join public.organizations o on o.id = c.org_id
  group by c.org_id, c.event_type, c.hour, c.user_id;
  analyze rollup_user_hours;

  -- 2. The hours: users their sets did not hold yet, then events, users and sums added.
  with added as (
    insert into analytics.hour_users (org_id, event_type, hour, user_id)
    select org_id, event_type, hour, user_id from rollup_user_hours where user_id is not null
    order by 1, 2, 3, 4
    on conflict do nothing
    returning org_id, event_type, hour, user_id
  )
  insert into rollup_new_hour_users select * from added;

  insert into rollup_hours
  select u.org_id, u.event_type, u.hour, sum(u.events)::bigint, count(n.user_id), sum(u.s1), sum(u.s2), sum(u.s3), sum(u.s4)
  from rollup_user_hours u
  left join rollup_new_hour_users n on n.org_id = u.org_id and n.event_type = u.event_type and n.hour = u.hour and n.user_id = u.user_id
  group by u.org_id, u.event_type, u.hour;

  with upserted as (
    insert into public.analytics_hourly as h (org_id, event_type, bucket, events, users, sums)
    select r.org_id, r.event_type, r.hour, r.events, r.new_users, app.analytics_sums(r.event_type, r.s1, r.s2, r.s3, r.s4)
    from rollup_hours r
    order by 1, 2, 3
    on conflict (org_id, event_type, bucket) do update
      set events = h.events + excluded.events, users = h.users + excluded.users,
          sums = case when excluded.sums = '{}' then h.sums else app.add_analytics_sums(h.sums, excluded.sums) end, updated_at = now()
    returning 1
  )
  select count(*) into hours from upserted;

  -- 3. The days, likewise (a user new to the day is new to one of its hours first).
  with added as (
    insert into analytics.day_users (org_id, event_type, day, user_id)
    select distinct org_id, event_type, date_trunc('day', hour, 'UTC'), user_id from rollup_new_hour_users
    on conflict do nothing
    returning org_id, event_type, day
  ), new_users as (
    select org_id, event_type, day, count(*) as users from added group by 1, 2, 3
  ), day_figures as (
    select org_id, event_type, date_trunc('day', hour, 'UTC') as day, sum(events)::bigint as events,
           sum(s1) as s1, sum(s2) as s2, sum(s3) as s3, sum(s4) as s4
    from rollup_hours group by 1, 2, 3
  ), upserted as (
    insert into public.analytics_daily as d (org_id, event_type, bucket, events, users, sums)
    select f.org_id, f.event_type, f.day, f.events, coalesce(u.users, 0), app.analytics_sums(f.event_type, f.s1, f.s2, f.s3, f.s4)
    from day_figures f
    left join new_users u on u.org_id = f.org_id and u.event_type = f.event_type and u.day = f.day
    order by 1, 2, 3
    on conflict (org_id, event_type, bucket) do update
      set events = d.events + excluded.events, users = d.users + excluded.users,
          sums = case when excluded.sums = '{}' then d.sums else app.add_analytics_sums(d.sums, excluded.sums) end, updated_at = now()
    returning 1
  )
  select count(*) into days from upserted;

  select count(*) into pending from analytics.rollup_pending;
end
$$;

-- As before (20261123000200), with the hours' user sets.
create or replace function app.apply_analytics_retention() returns integer
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
  delete from analytics.hour_users h using public.organizations o, public.subscription_tiers t
  where o.id = h.org_id and t.tier = o.tier and h.hour < now() - make_interval(days => t.analytics_retention_days);
  return dropped;
end
$$;

-- The every-minute schedule calls the function only when partials wait.
select cron.alter_job(jobid, command => $$select app.call_function('analytics-aggregation', '{"type": "SCHEDULE"}'::jsonb) where exists (select 1 from analytics.rollup_pending)$$)
from cron.job where jobname = 'analytics-rollup';

commit;
