-- Analytics: events from browser apps in an append-only table partitioned by day, rolled up into
-- hourly and daily tables per organization and event type. Members holding analytics.read read
-- their organization's figures. The tier's limits (retention, events per minute and per day) are
-- in public.subscription_tiers. Events enter only through validated paths: the analytics-ingest
-- function (membership, the type's properties, the time window, the tier's rate) and the
-- service; no API role inserts them directly.
--
-- Incremental roll-ups from partial figures recorded at insert time, so a run's cost follows the
-- new events, not the hours they fall into. A statement trigger on analytics_events records what
-- the statement's own rows add up to, per hour, type, organization and user
-- (analytics.rollup_pending: events and the sums of the type's numeric properties). It runs in the
-- inserting transaction, so its partials commit exactly with their events: no event is missed or
-- counted twice, however transactions interleave (a time watermark on received_at would miss rows
-- that commit out of order). A roll-up run claims partials (deleting them), adds them to the
-- hourly and daily rows, and counts as new users only those the hour's and day's user sets
-- (analytics.hour_users, analytics.day_users) did not hold yet, so the figures stay equal to a
-- GROUP BY over the raw events, late events included, and no count(distinct) sort is needed.
-- Each run is one transaction under an advisory lock: one that dies changes nothing and its
-- partials wait for the next. The raw events are never read again. `npm run bench:analytics`
-- measures it against a bare INSERT ... SELECT ... GROUP BY of the same rows.
-- Every number among an event's properties is bounded where it is stored (|n| <= 1e12), so a
-- day of any tier's events cannot overflow a sum; a partial whose sums are still not finite
-- numbers within bounds is set aside in analytics.rollup_rejected, never stopping the run for
-- everyone else.
-- Errors: AN001 a partition range out of bounds; AN002 an insert of events naming neither or both
-- of a member and an API key (app.insert_analytics_events); 23514 (check violation) an out-of-bounds number.
-- (An unknown event type is the catalog's foreign key: 23503.)

create schema analytics;
comment on schema analytics is 'Private: the event partitions and the roll-up marks. Not exposed.';
revoke all on schema analytics from public;

-- ---------------------------------------------------------------------------------------------
-- Event types: the catalog the ingestion function validates against (its zod schemas name the
-- same keys); up to four numeric properties per type are summed in the roll-ups.
create table public.analytics_event_types (
  key text primary key check (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
  description text not null,
  numeric_properties text[] not null default '{}' check (cardinality(numeric_properties) <= 4)
);
alter table public.analytics_event_types enable row level security;
revoke all on public.analytics_event_types from anon, authenticated;
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
grant select on public.analytics_events to authenticated, service_role;
-- Only the service inserts events (its table grant covers every column): no request role needs
-- the sequence Supabase's default privileges hand them.
revoke all on sequence public.analytics_events_id_seq from anon, authenticated;
create policy "analytics readers read their organization's events" on public.analytics_events
  for select to authenticated using (org_id = any (array(select app.org_ids_with_permission('analytics.read'))));

-- Partitions: one a day, created ahead by a schedule and dropped when older than the longest
-- retention of any tier (shorter retentions delete their rows, see app.apply_analytics_retention).
-- Making one locks the events table; while it waits for a long transaction that holds the table,
-- every insert queues behind it. So it waits at most 2 s (lock_timeout) and leaves that day and
-- the rest to a later run (days are made a week ahead), with a warning in the log.
create function app.create_analytics_partitions(days_back integer default 8, days_ahead integer default 7) returns integer
language plpgsql volatile security definer set search_path = '' set lock_timeout = '2s'
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
      begin
        execute format('create table analytics.%I partition of public.analytics_events for values from (%L) to (%L)',
                       'events_' || to_char(day, 'YYYYMMDD'), day::timestamp at time zone 'UTC', (day + 1)::timestamp at time zone 'UTC');
        made := made + 1;
      exception when lock_not_available then
        raise warning 'analytics partitions from % on not made: the events table stayed busy for 2 s; a later run makes them', day;
        exit;
      end;
    end if;
  end loop;
  return made;
end
$$;
revoke all on function app.create_analytics_partitions(integer, integer) from public;
grant execute on function app.create_analytics_partitions(integer, integer) to service_role;
select app.create_analytics_partitions();

-- The bound on stored numbers, checked on every inserted row: one jsonpath test in C, not a
-- function call (SQL functions with a fixed search_path are never inlined, and a jsonb_each per
-- row cost more than the insert itself). Only top-level properties are summed, so only they are
-- bounded. NOT VALID, and added after the first partitions, as on every
-- database migrated before it existed: rows stored earlier are not rescanned (validating locks
-- the table while it reads every partition; the roll-up sets aside any partial out of bounds), so
-- the partitions of that time carry it unvalidated and later ones validated.
alter table public.analytics_events add constraint analytics_events_numbers_bounded
  check (not (properties @? 'strict $.* ? (@.type() == "number" && (@ > 1e12 || @ < -1e12))')) not valid;

-- The analytics-ingest function's insert, as one statement the function sends outside any
-- transaction of its own: a call is then one round trip instead of three (BEGIN; the request
-- context and the insert; COMMIT), and nothing the driver pipelines or retries can run apart from
-- the context. The body takes the service's request context itself (service_role, the request's
-- id for the audit trail) before it reads or writes anything, then inserts the accepted events
-- with a last check of the caller in the same statement: a member of the organization
-- (p_user_id), or a key of it that is live and holds events.write now (p_api_key_id). It returns
-- how many rows it stored (0: the caller no longer qualifies). It waits at most 3 s for a lock
-- (55P03 after that: the function answers 503 and the client sends again), so a table held by
-- someone else never holds the function's connections and callers indefinitely. SECURITY
-- INVOKER: only the login role the functions connect with (SUPABASE_DB_URL's, a member of
-- service_role) may call it; the API roles may not, and could not take service_role if they did.
create function app.insert_analytics_events(p_request_id text, p_org_id uuid, p_user_id uuid, p_api_key_id uuid, p_events jsonb)
returns integer
language plpgsql volatile set search_path = '' set lock_timeout = '3s'
as $$
declare
  stored integer;
begin
  if (p_user_id is null) = (p_api_key_id is null) then
    raise exception 'events are sent by a member or by an API key, exactly one' using errcode = 'AN002';
  end if;
  perform set_config('role', 'service_role', true),
          set_config('request.jwt.claims', '{"role": "service_role"}', true),
          set_config('request.headers', jsonb_build_object('x-request-id', p_request_id)::text, true);
  with inserted as (
    insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
    select p_org_id, p_user_id, e.event_type, e.occurred_at, e.properties
    from jsonb_to_recordset(p_events) as e(event_type text, occurred_at timestamptz, properties jsonb)
    where case when p_user_id is not null then
      exists (select 1 from public.organization_members m join public.organizations o on o.id = m.org_id and o.deleted_at is null
              where m.org_id = p_org_id and m.user_id = p_user_id)
    else
      exists (select 1 from public.api_keys k join public.organizations o on o.id = k.org_id and o.deleted_at is null
              where k.id = p_api_key_id and k.org_id = p_org_id and k.revoked_at is null
                and (k.expires_at is null or k.expires_at > now()) and 'events.write' = any (app.api_key_scopes(k.id)))
    end
    returning 1
  )
  select count(*)::integer into stored from inserted;
  return stored;
end
$$;
revoke all on function app.insert_analytics_events(text, uuid, uuid, uuid, jsonb) from public, anon, authenticated, service_role;

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

-- Each day's distinct users per organization and type (see app.rollup_analytics).
create table analytics.day_users (
  org_id uuid not null references public.organizations (id) on delete cascade,
  event_type text not null,
  day timestamptz not null,
  user_id uuid not null,
  primary key (org_id, event_type, day, user_id)
);

-- Each hour's distinct users per organization and type, as analytics.day_users is for days.
create table analytics.hour_users (
  org_id uuid not null references public.organizations (id) on delete cascade,
  event_type text not null,
  hour timestamptz not null,
  user_id uuid not null,
  primary key (org_id, event_type, hour, user_id)
);

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

-- A dead-letter place an operator can read.
create table analytics.rollup_rejected (
  like analytics.rollup_pending,
  reason text not null,
  rejected_at timestamptz not null default now()
);
comment on table analytics.rollup_rejected is 'Partials a roll-up run set aside (sums not finite or out of bounds): read, fix or delete by hand.';

-- Only JSON numbers are summed (a string such as "NaN" or "1e999" is not); the check above keeps
-- them within bounds. Written out rather than as a helper function: this runs for every event.
create function app.record_analytics_partials() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  insert into analytics.rollup_pending (org_id, event_type, hour, user_id, events, s1, s2, s3, s4)
  select n.org_id, n.event_type, date_trunc('hour', n.occurred_at, 'UTC'), n.user_id, count(*),
         sum(case when jsonb_typeof(p.v1) = 'number' then p.v1::numeric end), sum(case when jsonb_typeof(p.v2) = 'number' then p.v2::numeric end),
         sum(case when jsonb_typeof(p.v3) = 'number' then p.v3::numeric end), sum(case when jsonb_typeof(p.v4) = 'number' then p.v4::numeric end)
  from new_rows n
  join public.analytics_event_types t on t.key = n.event_type
  cross join lateral (select n.properties -> t.numeric_properties[1] as v1, n.properties -> t.numeric_properties[2] as v2,
                             n.properties -> t.numeric_properties[3] as v3, n.properties -> t.numeric_properties[4] as v4) p
  group by 1, 2, 3, 4;
  return null;
end
$$;
revoke all on function app.record_analytics_partials() from public;
create trigger record_analytics_partials after insert on public.analytics_events
  referencing new table as new_rows for each statement execute function app.record_analytics_partials();

-- One roll-up run: up to max_buckets pending partials (the name is kept for its callers) added to
-- the hours and days they belong to. Runs one at a time (a second caller returns busy at once).
-- The bound on partials, building {"property": total} and adding it to a stored one are written
-- out in the statements: as helper functions (SQL functions with a fixed search_path are never
-- inlined) they were called per partial, hour and day, and cost more than the rest of a run.
create function app.rollup_analytics(max_buckets integer default 20000, out hours integer, out days integer, out pending bigint, out busy boolean)
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
    returning p.*, -- the sums a run can add up: numbers, within 10^18
              (p.s1 is null or (p.s1 <> 'NaN' and abs(p.s1) <= 1e18)) and (p.s2 is null or (p.s2 <> 'NaN' and abs(p.s2) <= 1e18))
              and (p.s3 is null or (p.s3 <> 'NaN' and abs(p.s3) <= 1e18)) and (p.s4 is null or (p.s4 <> 'NaN' and abs(p.s4) <= 1e18)) as in_bounds
  ), rejected as (
    insert into analytics.rollup_rejected (org_id, event_type, hour, user_id, events, s1, s2, s3, s4, reason)
    select c.org_id, c.event_type, c.hour, c.user_id, c.events, c.s1, c.s2, c.s3, c.s4, 'a sum is not a number within bounds'
    from claimed c where not c.in_bounds
  )
  insert into rollup_user_hours
  select c.org_id, c.event_type, c.hour, c.user_id, sum(c.events), sum(c.s1), sum(c.s2), sum(c.s3), sum(c.s4)
  from claimed c join public.organizations o on o.id = c.org_id
  where c.in_bounds
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
    select r.org_id, r.event_type, r.hour, r.events, r.new_users,
           jsonb_strip_nulls(jsonb_build_object(coalesce(t.numeric_properties[1], ''), r.s1, coalesce(t.numeric_properties[2], ''), r.s2,
                                                coalesce(t.numeric_properties[3], ''), r.s3, coalesce(t.numeric_properties[4], ''), r.s4))
    from rollup_hours r left join public.analytics_event_types t on t.key = r.event_type
    order by 1, 2, 3
    on conflict (org_id, event_type, bucket) do update
      set events = h.events + excluded.events, users = h.users + excluded.users,
          sums = h.sums || coalesce((select jsonb_object_agg(k.key, coalesce((h.sums ->> k.key)::numeric, 0) + k.value::numeric)
                                     from jsonb_each_text(excluded.sums) k), '{}'),
          updated_at = now()
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
    select f.org_id, f.event_type, f.day, f.events, coalesce(u.users, 0),
           jsonb_strip_nulls(jsonb_build_object(coalesce(t.numeric_properties[1], ''), f.s1, coalesce(t.numeric_properties[2], ''), f.s2,
                                                coalesce(t.numeric_properties[3], ''), f.s3, coalesce(t.numeric_properties[4], ''), f.s4))
    from day_figures f left join public.analytics_event_types t on t.key = f.event_type
    left join new_users u on u.org_id = f.org_id and u.event_type = f.event_type and u.day = f.day
    order by 1, 2, 3
    on conflict (org_id, event_type, bucket) do update
      set events = d.events + excluded.events, users = d.users + excluded.users,
          sums = d.sums || coalesce((select jsonb_object_agg(k.key, coalesce((d.sums ->> k.key)::numeric, 0) + k.value::numeric)
                                     from jsonb_each_text(excluded.sums) k), '{}'),
          updated_at = now()
    returning 1
  )
  select count(*) into days from upserted;

  select count(*) into pending from analytics.rollup_pending;
end
$$;
revoke all on function app.rollup_analytics(integer) from public;
grant execute on function app.rollup_analytics(integer) to service_role;

-- ---------------------------------------------------------------------------------------------
-- Retention: partitions older than every tier's retention are dropped; rows of organizations on
-- shorter retentions are deleted, with their roll-ups and user sets. An organization that moves
-- to a tier with a shorter retention keeps the old one for a 30-day grace period, so an upgrade
-- back, or an export, can still save the figures. Each run records what it deleted per
-- organization in the audit log (table public.analytics_events, row_id 'retention', new_values:
-- the counts and the cut-off), where the organization's audit readers see it.
create table analytics.retention_grace (
  org_id uuid primary key references public.organizations (id) on delete cascade,
  retention_days integer not null check (retention_days > 0),
  until timestamptz not null
);
comment on table analytics.retention_grace is 'The analytics retention an organization keeps after a downgrade, until the grace period ends.';

create function app.grant_retention_grace() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  before_days integer := (select t.analytics_retention_days from public.subscription_tiers t where t.tier = old.tier);
  after_days integer := (select t.analytics_retention_days from public.subscription_tiers t where t.tier = new.tier);
begin
  if after_days < before_days then
    insert into analytics.retention_grace (org_id, retention_days, until)
    values (new.id, before_days, now() + interval '30 days')
    on conflict (org_id) do update
      set retention_days = greatest(excluded.retention_days, analytics.retention_grace.retention_days), until = excluded.until;
  end if;
  return null;
end
$$;
revoke all on function app.grant_retention_grace() from public;
create trigger grant_retention_grace after update of tier on public.organizations
  for each row when (old.tier is distinct from new.tier) execute function app.grant_retention_grace();

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

  delete from analytics.retention_grace where until <= now();
  drop table if exists pg_temp.retention_cutoff, pg_temp.retention_deleted;
  create temp table retention_cutoff on commit drop as
    select o.id as org_id, now() - make_interval(days => greatest(t.analytics_retention_days, coalesce(g.retention_days, 0))) as cutoff
    from public.organizations o join public.subscription_tiers t on t.tier = o.tier
    left join analytics.retention_grace g on g.org_id = o.id;
  create temp table retention_deleted (org_id uuid, what text, n bigint) on commit drop;

  with d as (delete from public.analytics_events e using retention_cutoff c where c.org_id = e.org_id and e.occurred_at < c.cutoff returning e.org_id)
  insert into retention_deleted select org_id, 'events', count(*) from d group by 1;
  with d as (delete from public.analytics_hourly h using retention_cutoff c where c.org_id = h.org_id and h.bucket < c.cutoff returning h.org_id)
  insert into retention_deleted select org_id, 'hourly', count(*) from d group by 1;
  with d as (delete from public.analytics_daily h using retention_cutoff c where c.org_id = h.org_id and h.bucket < c.cutoff returning h.org_id)
  insert into retention_deleted select org_id, 'daily', count(*) from d group by 1;
  delete from analytics.day_users h using retention_cutoff c where c.org_id = h.org_id and h.day < c.cutoff;
  delete from analytics.hour_users h using retention_cutoff c where c.org_id = h.org_id and h.hour < c.cutoff;

  insert into audit.log (org_id, db_role, table_name, row_id, action, changed_columns, new_values)
  select r.org_id, current_user, 'public.analytics_events', 'retention', 'DELETE', '{}',
         jsonb_object_agg(r.what, r.n) || jsonb_build_object('before', min(c.cutoff))
  from retention_deleted r join retention_cutoff c on c.org_id = r.org_id
  group by r.org_id;
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
-- Catalog rows and schedules (pg_cron): partitions a week ahead and retention daily;
-- the roll-up every minute through the analytics-aggregation function (the hosted pattern:
-- net.http_post, Vault secrets), called only when partials wait.
insert into public.analytics_event_types (key, description, numeric_properties) values
  ('page.viewed', 'A page was shown', '{}'),
  ('lesson.started', 'A student opened a lesson', '{}'),
  ('lesson.completed', 'A student finished a lesson', '{duration_seconds,score}'),
  ('exercise.submitted', 'An exercise answer was handed in', '{score,attempt}'),
  ('video.watched', 'Part of a video was watched', '{seconds}'),
  ('search.performed', 'A search was run', '{results}');

select cron.schedule('analytics-partitions', '7 0 * * *', 'select app.create_analytics_partitions(); select app.apply_analytics_retention()');
select cron.schedule('analytics-rollup', '* * * * *',
  $$select app.call_function('analytics-aggregation', '{"type": "SCHEDULE"}'::jsonb) where exists (select 1 from analytics.rollup_pending)$$);
