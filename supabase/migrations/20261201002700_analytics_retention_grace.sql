-- A tier downgrade no longer deletes older analytics the next day, silently (issue 16, item 19).
-- - When an organization moves to a tier with a shorter analytics retention, it keeps the old
--   tier's retention for a 30-day grace period (analytics.retention_grace), so an upgrade back,
--   or an export, can still save the figures.
-- - Each retention run records what it deleted per organization in the audit log (table
--   public.analytics_events, row_id 'retention', new_values: the counts and the cut-off), so the
--   organization's audit readers see it.

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
