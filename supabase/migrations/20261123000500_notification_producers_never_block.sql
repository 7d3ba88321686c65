-- A notification must never stop the thing it reports: the producers in other features (a file
-- settling, storage passing 80 %, an invitation, usage past a limit) call app.notify through
-- app.notify_safely, which turns a failure into a warning in the log instead of rolling back the
-- file's status, the quota, the invitation or the usage figures.

create function app.notify_safely(org uuid, notification_type text, title text, body text, data jsonb, recipients jsonb,
                                  priority text default null, idempotency_key text default null, sender uuid default null)
returns void
language plpgsql volatile security definer set search_path = ''
as $$
begin
  perform app.notify(org, notification_type, title, body, data, recipients, priority, idempotency_key, sender);
exception when others then
  raise warning 'notification % for organization % not made: % (%)', notification_type, org, sqlerrm, sqlstate;
end
$$;
revoke all on function app.notify_safely(uuid, text, text, text, jsonb, jsonb, text, text, uuid) from public;

create or replace function app.notify_file_settled() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.uploaded_by is null or new.deleted_at is not null
     or not exists (select 1 from public.organization_members m where m.org_id = new.org_id and m.user_id = new.uploaded_by) then
    return null;
  end if;
  if new.status = 'clean' then
    perform app.notify_safely(new.org_id, 'file.ready', format('%s is ready', left(new.name, 150)), '',
                       jsonb_build_object('file_id', new.id), jsonb_build_object('user_ids', jsonb_build_array(new.uploaded_by)),
                       null, 'file.ready:' || new.id);
  else
    perform app.notify_safely(new.org_id, 'file.rejected', format('%s was not accepted', left(new.name, 150)), coalesce(left(new.status_reason, 500), ''),
                       jsonb_build_object('file_id', new.id, 'status', new.status), jsonb_build_object('user_ids', jsonb_build_array(new.uploaded_by)),
                       null, 'file.rejected:' || new.id);
  end if;
  return null;
end
$$;

create or replace function app.notify_quota_warning() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  limit_bytes bigint;
begin
  select t.storage_bytes into limit_bytes
  from public.organizations o join public.subscription_tiers t on t.tier = o.tier
  where o.id = new.org_id and o.deleted_at is null;
  if coalesce(limit_bytes, 0) > 0 and old.used_bytes < limit_bytes * 0.8 and new.used_bytes >= limit_bytes * 0.8 then
    perform app.notify_safely(new.org_id, 'quota.warning', 'Storage is over 80 % of the plan',
                       format('%s MB of %s MB used.', new.used_bytes / 1000000, limit_bytes / 1000000),
                       jsonb_build_object('used_bytes', new.used_bytes, 'limit_bytes', limit_bytes),
                       '{"permission": "settings.manage"}', null, 'quota.warning:' || to_char(now() at time zone 'UTC', 'YYYY-MM-DD'));
  end if;
  return null;
end
$$;

create or replace function app.notify_invitation_sent() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform app.notify_safely(new.org_id, 'invitation.sent', format('%s was invited as %s', left(new.email, 150), new.role), '',
                     jsonb_build_object('invitation_id', new.id, 'role', new.role), '{"permission": "members.manage"}',
                     null, 'invitation.sent:' || new.id, new.created_by);
  return null;
end
$$;

create or replace function app.track_usage(for_day date default current_date) returns integer
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
    perform app.notify_safely(over.org_id, 'usage.' || over.level,
                       format('%s at %s %% of the plan', replace(over.metric, '_', ' '), floor(100.0 * over.used / over.limit_value)),
                       format('%s of %s used on %s.', over.used, over.limit_value, for_day),
                       jsonb_build_object('metric', over.metric, 'used', over.used, 'limit', over.limit_value, 'day', for_day),
                       '{"permission": "settings.manage"}', null, format('usage.%s:%s:%s', over.level, over.metric, for_day));
  end loop;
  return tracked;
end
$$;
