-- Roll-ups read each claimed hour's events once, and days add up what changed.
--
-- Before, a run read its claimed hours' raw events twice (for the hourly figures, then for each
-- day's set of users) and recomputed every touched day from all of its hours. Now:
--   1. the claimed hours' events are read once, grouped per bucket and user (so distinct users
--      need no sort-based count(distinct): they are the groups with a user);
--   2. the hourly rows are recomputed from those groups, as before exact for late events;
--   3. a day changes by what its claimed hours changed: events and sums by the difference between
--      the hours' new and old figures, users by the users the day's user set did not hold yet,
--      so a day is never re-read from its other hours.
-- Each run is one transaction under the same advisory lock, so the additions happen exactly
-- once: a run that dies changes nothing, and the next one claims the same marks again.

-- Adds {"property": total} objects key by key (a property in either one is in the result).
create function app.add_analytics_sums(a jsonb, b jsonb) returns jsonb
language sql immutable set search_path = ''
as $$
  select coalesce(jsonb_object_agg(key, total), '{}')
  from (select s.key, sum(s.value::numeric) as total
        from (select * from jsonb_each_text(coalesce(a, '{}')) union all select * from jsonb_each_text(coalesce(b, '{}'))) s
        group by s.key) k
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
    select count(*) into pending from analytics.marks;
    return;
  end if;

  if to_regclass('pg_temp.rollup_claimed') is null then
    -- (the type's numeric properties ride along, so the big read below joins nothing else)
    create temp table rollup_claimed (org_id uuid, event_type text, hour timestamptz, seq bigint, props text[]) on commit drop;
    create temp table rollup_user_hours (org_id uuid, event_type text, hour timestamptz, user_id uuid, events bigint,
                                         s1 numeric, s2 numeric, s3 numeric, s4 numeric) on commit drop;
    create temp table rollup_hours (org_id uuid, event_type text, hour timestamptz, events bigint, users bigint,
                                    s1 numeric, s2 numeric, s3 numeric, s4 numeric, old_events bigint,
                                    old_s1 numeric, old_s2 numeric, old_s3 numeric, old_s4 numeric) on commit drop;
  end if;
  truncate rollup_claimed, rollup_user_hours, rollup_hours;
  insert into rollup_claimed
  select m.org_id, m.event_type, m.hour, m.seq, t.numeric_properties
  from (select * from analytics.marks order by hour limit max_buckets) m
  join public.analytics_event_types t on t.key = m.event_type;
  analyze rollup_claimed;

  -- 1. The claimed hours' events, once: per bucket and user.
  insert into rollup_user_hours
  select e.org_id, e.event_type, c.hour, e.user_id, count(*),
         sum((e.properties ->> c.props[1])::numeric), sum((e.properties ->> c.props[2])::numeric),
         sum((e.properties ->> c.props[3])::numeric), sum((e.properties ->> c.props[4])::numeric)
  from rollup_claimed c
  -- the equality lets a full roll-up hash-join; the range lets a small one use the index per bucket
  join public.analytics_events e on e.org_id = c.org_id and e.event_type = c.event_type and date_trunc('hour', e.occurred_at, 'UTC') = c.hour
                                and e.occurred_at >= c.hour and e.occurred_at < c.hour + interval '1 hour'
  where e.occurred_at >= (select min(hour) from rollup_claimed) and e.occurred_at < (select max(hour) from rollup_claimed) + interval '1 hour'
  group by e.org_id, e.event_type, c.hour, e.user_id;

  -- 2. The hours: what they say now, next to what they said before (for the days).
  insert into rollup_hours
  select u.org_id, u.event_type, u.hour, u.events, u.users, u.s1, u.s2, u.s3, u.s4, h.events,
         (h.sums ->> c.props[1])::numeric, (h.sums ->> c.props[2])::numeric, (h.sums ->> c.props[3])::numeric, (h.sums ->> c.props[4])::numeric
  from (select org_id, event_type, hour, sum(events)::bigint as events, count(user_id) as users,
               sum(s1) as s1, sum(s2) as s2, sum(s3) as s3, sum(s4) as s4
        from rollup_user_hours group by org_id, event_type, hour) u
  join rollup_claimed c on c.org_id = u.org_id and c.event_type = u.event_type and c.hour = u.hour
  left join public.analytics_hourly h on h.org_id = u.org_id and h.event_type = u.event_type and h.bucket = u.hour;
  analyze rollup_hours;

  with upserted as (
    insert into public.analytics_hourly as h (org_id, event_type, bucket, events, users, sums)
    select r.org_id, r.event_type, r.hour, r.events, r.users, app.analytics_sums(r.event_type, r.s1, r.s2, r.s3, r.s4) from rollup_hours r
    on conflict (org_id, event_type, bucket) do update
      set events = excluded.events, users = excluded.users, sums = excluded.sums, updated_at = now()
    returning 1
  )
  select count(*) into hours from upserted;

  -- 3. The days change by what their claimed hours changed (an hour's events only grow, so a sum
  -- that is null now was null before), and gain the users their sets did not hold yet.
  with new_users as (
    insert into analytics.day_users (org_id, event_type, day, user_id)
    select distinct org_id, event_type, date_trunc('day', hour, 'UTC'), user_id from rollup_user_hours where user_id is not null
    on conflict do nothing
    returning org_id, event_type, day
  ), user_counts as (
    select org_id, event_type, day, count(*) as users from new_users group by 1, 2, 3
  ), day_changes as (
    select r.org_id, r.event_type, date_trunc('day', r.hour, 'UTC') as day, sum(r.events - coalesce(r.old_events, 0))::bigint as events,
           sum(r.s1 - coalesce(r.old_s1, 0)) as s1, sum(r.s2 - coalesce(r.old_s2, 0)) as s2,
           sum(r.s3 - coalesce(r.old_s3, 0)) as s3, sum(r.s4 - coalesce(r.old_s4, 0)) as s4
    from rollup_hours r group by 1, 2, 3
  ), upserted as (
    insert into public.analytics_daily as d (org_id, event_type, bucket, events, users, sums)
    select c.org_id, c.event_type, c.day, c.events, coalesce(u.users, 0), app.analytics_sums(c.event_type, c.s1, c.s2, c.s3, c.s4)
    from day_changes c
    left join user_counts u on u.org_id = c.org_id and u.event_type = c.event_type and u.day = c.day
    on conflict (org_id, event_type, bucket) do update
      set events = d.events + excluded.events, users = d.users + excluded.users,
          sums = app.add_analytics_sums(d.sums, excluded.sums), updated_at = now()
    returning 1
  )
  select count(*) into days from upserted;

  delete from analytics.marks m using rollup_claimed c
  where m.org_id = c.org_id and m.event_type = c.event_type and m.hour = c.hour and m.seq = c.seq;
  select count(*) into pending from analytics.marks;
end
$$;
revoke all on function app.add_analytics_sums(jsonb, jsonb) from public;
