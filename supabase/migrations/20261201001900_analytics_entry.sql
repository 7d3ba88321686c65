-- Analytics events enter only through validated paths (issue 16, item 1). Before, any member could
-- INSERT straight into analytics_events, skipping analytics-ingest's checks, its rate limit and
-- its time window, and two events carrying {"duration_seconds": 9e131071} made every later
-- roll-up fail with "value overflows numeric format", for every organization.
-- - authenticated loses INSERT on the events table: events come through analytics-ingest (which
--   checks membership, the type's properties, the time window and the tier's rate) and the service.
-- - Every number among an event's properties is bounded where it is stored (|n| <= 1e12), and the
--   roll-up partials count only JSON numbers (a string such as "NaN" or "1e999" is not summed).
-- - A roll-up run sets aside any partial whose sums are not finite numbers within bounds, in
--   analytics.rollup_rejected (a dead-letter place an operator can read), and rolls up the rest.
-- Errors: 23514 (check violation) for an out-of-bounds number.

revoke insert on public.analytics_events from authenticated;
revoke usage on sequence public.analytics_events_id_seq from authenticated;
drop policy "members record their own events in their organization" on public.analytics_events;

-- The bound the roll-ups rely on: with it, a day of any tier's events cannot overflow a sum.
create function app.analytics_number(v jsonb) returns numeric
language sql immutable parallel safe set search_path = ''
as $$
  select case when jsonb_typeof(v) = 'number' and abs(v::numeric) <= 1e12 then v::numeric end
$$;
comment on function app.analytics_number(jsonb) is 'A property value as a number to sum: JSON numbers within ±1e12 only, anything else null.';

create function app.analytics_properties_bounded(properties jsonb) returns boolean
language sql immutable parallel safe set search_path = ''
as $$
  select not exists (
    select 1 from jsonb_each(properties) p
    where jsonb_typeof(p.value) = 'number' and app.analytics_number(p.value) is null
  )
$$;
-- NOT VALID: rows stored before are not rescanned (a big table would be locked meanwhile); their
-- partials were recorded at insert and the roll-up sets any out-of-bounds one aside.
alter table public.analytics_events add constraint analytics_events_numbers_bounded check (app.analytics_properties_bounded(properties)) not valid;

create function app.analytics_partial_in_bounds(s1 numeric, s2 numeric, s3 numeric, s4 numeric) returns boolean
language sql immutable parallel safe set search_path = ''
as $$
  select coalesce(bool_and(s is null or (s <> 'NaN'::numeric and abs(s) <= 1e18)), true) from unnest(array[s1, s2, s3, s4]) s
$$;
revoke all on function app.analytics_number(jsonb), app.analytics_properties_bounded(jsonb),
  app.analytics_partial_in_bounds(numeric, numeric, numeric, numeric) from public;
-- the check runs with the inserting role's rights
grant execute on function app.analytics_properties_bounded(jsonb), app.analytics_number(jsonb) to service_role;

create table analytics.rollup_rejected (like analytics.rollup_pending);
alter table analytics.rollup_rejected
  add column reason text not null,
  add column rejected_at timestamptz not null default now();
comment on table analytics.rollup_rejected is 'Partials a roll-up run set aside (sums not finite or out of bounds): read, fix or delete by hand.';

create or replace function app.record_analytics_partials() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into analytics.rollup_pending (org_id, event_type, hour, user_id, events, s1, s2, s3, s4)
  select n.org_id, n.event_type, date_trunc('hour', n.occurred_at, 'UTC'), n.user_id, count(*),
         sum(app.analytics_number(n.properties -> t.numeric_properties[1])), sum(app.analytics_number(n.properties -> t.numeric_properties[2])),
         sum(app.analytics_number(n.properties -> t.numeric_properties[3])), sum(app.analytics_number(n.properties -> t.numeric_properties[4]))
  from new_rows n join public.analytics_event_types t on t.key = n.event_type
  group by 1, 2, 3, 4;
  return null;
end
$$;

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
  -- A partial whose sums are out of bounds goes to analytics.rollup_rejected instead: one
  -- organization's bad figures never stop the run for everyone else.
  with claimed as (
    delete from analytics.rollup_pending p
    where p.ctid = any (array(select ctid from analytics.rollup_pending limit max_buckets))
    returning p.*
  ), rejected as (
    insert into analytics.rollup_rejected (org_id, event_type, hour, user_id, events, s1, s2, s3, s4, reason)
    select c.org_id, c.event_type, c.hour, c.user_id, c.events, c.s1, c.s2, c.s3, c.s4, 'a sum is not a number within bounds'
    from claimed c where not app.analytics_partial_in_bounds(c.s1, c.s2, c.s3, c.s4)
  )
  insert into rollup_user_hours
  select c.org_id, c.event_type, c.hour, c.user_id, sum(c.events), sum(c.s1), sum(c.s2), sum(c.s3), sum(c.s4)
  from claimed c join public.organizations o on o.id = c.org_id
  where app.analytics_partial_in_bounds(c.s1, c.s2, c.s3, c.s4)
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
