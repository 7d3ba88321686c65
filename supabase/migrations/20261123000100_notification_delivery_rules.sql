-- Who gets what, when, decided once per send and set-wise (a school-wide message is 10,000 rows):
-- quiet hours and e-mail digests are applied while fanning out (the per-row trigger is gone), the
-- audit log gets one entry per send instead of one per recipient row and delivery, recipients
-- can be named by a permission, an e-mail type without a template is refused up front (NT005),
-- and each member chooses a locale for e-mail. Other features produce notifications: a file
-- ready or rejected, storage passing 80 % of the plan, an invitation sent.

-- ---------------------------------------------------------------------------------------------
-- One audit entry per send (written by app.notify below). Delivery rows record their own state,
-- and read_at changes were never audited.
drop trigger audit_changes on public.notifications;
drop trigger audit_changes on public.notification_deliveries;

-- Quiet hours move into app.notify.
drop trigger defer_for_quiet_hours on public.notification_deliveries;
drop function app.defer_for_quiet_hours();

-- ---------------------------------------------------------------------------------------------
-- A member's e-mail digest (low and normal priority e-mail waits and goes out as one message,
-- hourly or daily at digest_time in their time zone) and the locale their e-mail is written in.
alter table public.notification_settings
  add column email_digest text not null default 'off' check (email_digest in ('off', 'hourly', 'daily')),
  add column digest_time time not null default '07:00',
  add column locale text not null default 'en' check (locale ~ '^[a-z]{2}(-[A-Z]{2})?$');
grant insert (email_digest, digest_time, locale), update (email_digest, digest_time, locale) on public.notification_settings to authenticated;

-- The batch on each delivery: dispatch claims a batch's deliveries by this index, a plan that
-- holds even when the table's statistics still describe it as small (a first 10,000-member send
-- otherwise meets a nested loop over both tables).
alter table public.notification_deliveries add column batch_id uuid;
update public.notification_deliveries d set batch_id = n.batch_id from public.notifications n where n.id = d.notification_id;
alter table public.notification_deliveries alter column batch_id set not null;
create index notification_deliveries_batch_idx on public.notification_deliveries (batch_id, channel) where status = 'pending';

alter table public.notification_deliveries add column digest boolean not null default false;
alter table public.notification_deliveries add constraint digests_are_email check (not digest or channel = 'email');
create index notification_deliveries_digest_due_idx on public.notification_deliveries (next_attempt_at) where status = 'pending' and digest;

-- When a member's next digest goes out, after `at`; null without a digest.
create function app.next_digest_at(s public.notification_settings, at timestamptz default now()) returns timestamptz
language sql stable set search_path = ''
as $$
  select case s.email_digest
    when 'hourly' then date_trunc('hour', at) + interval '1 hour'
    when 'daily' then
      (case when l.local_at::time < s.digest_time then l.local_at::date + s.digest_time
            else l.local_at::date + 1 + s.digest_time end) at time zone s.time_zone
  end
  from (select at at time zone s.time_zone as local_at) l
$$;
revoke all on function app.next_digest_at(public.notification_settings, timestamptz) from public;

-- ---------------------------------------------------------------------------------------------
-- Producing. recipients: {"user_ids": [...]} | {"role": "teacher"} | {"permission": "jobs.manage"}
-- | {"everyone": true}. Returns the batch id and how many notifications were made (a repeated
-- idempotency key for a recipient makes nothing new). Each delivery follows the type's channels
-- and the recipient's preferences; non-urgent ones wait out quiet hours; low and normal e-mail
-- waits for the recipient's digest when they chose one.
create or replace function app.notify(org uuid, notification_type text, title text, body text, data jsonb, recipients jsonb,
                                      priority text default null, idempotency_key text default null, sender uuid default null,
                                      out batch_id uuid, out created integer)
language plpgsql volatile security definer set search_path = ''
as $$
declare
  kind public.notification_types;
  prio text;
  outsider text;
  origin record;
begin
  select * into kind from public.notification_types t where t.key = notification_type;
  if kind.key is null then
    raise exception 'unknown notification type %', notification_type using errcode = 'NT001';
  end if;
  prio := coalesce(notify.priority, kind.default_priority);
  if title is null or length(title) not between 1 and 200 or length(coalesce(body, '')) > 4000
     or jsonb_typeof(coalesce(data, '{}')) <> 'object' or pg_column_size(coalesce(data, '{}')) > 16384
     or prio not in ('low', 'normal', 'high', 'urgent') then
    raise exception 'a notification has a title of 1-200 characters, a body of at most 4000, data as a JSON object of at most 16 kB'
      using errcode = 'NT003';
  end if;
  if jsonb_typeof(recipients) is distinct from 'object' then
    raise exception 'recipients must be {"user_ids": [...]}, {"role": ...}, {"permission": ...} or {"everyone": true}' using errcode = 'NT004';
  elsif recipients ? 'user_ids' then
    if jsonb_typeof(recipients -> 'user_ids') <> 'array' then
      raise exception 'recipients.user_ids must be an array of user ids' using errcode = 'NT004';
    end if;
    select r into outsider from jsonb_array_elements_text(recipients -> 'user_ids') r
    where not exists (select 1 from public.organization_members m where m.org_id = org and m.user_id::text = r) limit 1;
    if outsider is not null then
      raise exception 'recipient % is not a member of organization %', outsider, org using errcode = 'NT002';
    end if;
  elsif recipients ? 'permission' then
    if not exists (select 1 from public.permissions p where p.key = recipients ->> 'permission') then
      raise exception 'unknown permission %', recipients ->> 'permission' using errcode = 'NT004';
    end if;
  elsif not (recipients ? 'role' or coalesce(recipients -> 'everyone' = 'true'::jsonb, false)) then
    raise exception 'recipients must be {"user_ids": [...]}, {"role": ...}, {"permission": ...} or {"everyone": true}' using errcode = 'NT004';
  end if;
  if 'email' = any (kind.default_channels) and not exists (
       select 1 from public.notification_templates t
       where t.type = kind.key and t.locale = 'en' and (t.org_id = org or t.org_id is null)) then
    raise exception 'notification type % has no e-mail template', kind.key using errcode = 'NT005';
  end if;

  batch_id := gen_random_uuid();
  with targets as (
    select m.user_id
    from public.organization_members m
    join public.organizations o on o.id = m.org_id and o.deleted_at is null
    where m.org_id = org
      and case when recipients ? 'user_ids' then m.user_id::text in (select jsonb_array_elements_text(recipients -> 'user_ids'))
               when recipients ? 'permission' then recipients ->> 'permission' = any (app.permissions_of(org, m.user_id))
               when recipients ? 'role' then m.role::text = recipients ->> 'role'
               else true end
  ), made as (
    insert into public.notifications (org_id, recipient_id, batch_id, type, title, body, data, priority, idempotency_key, created_by)
    select org, t.user_id, notify.batch_id, kind.key, notify.title, coalesce(notify.body, ''), coalesce(notify.data, '{}'),
           prio, notify.idempotency_key, sender
    from targets t
    on conflict on constraint notifications_org_id_recipient_id_idempotency_key_key do nothing
    returning id, recipient_id
  ), planned as materialized (
    select made.id, c.channel, s as settings, s.quiet_start is not null as has_quiet_hours,
           coalesce((select p.enabled from public.notification_preferences p
                     where p.org_id = org and p.user_id = made.recipient_id and p.channel = c.channel
                       and p.type in (kind.key, '*') order by p.type = '*' limit 1), true) as wanted,
           c.channel = 'email' and prio in ('low', 'normal') and coalesce(s.email_digest, 'off') <> 'off' as digest,
           made.recipient_id
    from made cross join unnest(kind.default_channels) c(channel)
    -- looked up per recipient (a primary key probe): most members have no settings
    left join public.notification_settings s on s.org_id = org and s.user_id = made.recipient_id
  ), channels as (
    insert into public.notification_deliveries (notification_id, org_id, batch_id, channel, status, digest, next_attempt_at)
    select p.id, org, notify.batch_id, p.channel, case when p.wanted then 'pending' else 'skipped' end, p.wanted and p.digest,
           case when p.wanted and p.digest
                  then coalesce(app.quiet_until(org, p.recipient_id, app.next_digest_at(p.settings)), app.next_digest_at(p.settings))
                when coalesce(p.has_quiet_hours, false) and prio <> 'urgent'
                  then coalesce(app.quiet_until(org, p.recipient_id), now())
                else now() end
    from planned p
    returning 1
  )
  select count(*)::integer into created from made;

  if created > 0 then
    origin := app.audit_request_origin();
    insert into audit.log (org_id, actor_user_id, actor_api_key_id, db_role, table_name, row_id, action, changed_columns,
                           new_values, ip, user_agent, request_id)
    values (org, sender, case when sender is null then nullif((select auth.jwt()) ->> 'api_key_id', '')::uuid end,
            case current_setting('role') when 'none' then session_user::text else current_setting('role') end,
            'public.notifications', batch_id::text, 'INSERT', '{batch_id,created,priority,recipients,title,type}',
            jsonb_build_object('batch_id', batch_id, 'type', kind.key, 'title', title, 'priority', prio,
                               'recipients', recipients, 'created', created),
            origin.ip, origin.user_agent, origin.request_id);
  end if;
end
$$;

-- The sweep resends what is due, except digests, which the worker's notifications.digest sends.
create or replace function app.sweep_notifications() returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  sent integer := 0;
  batch uuid;
begin
  for batch in
    select distinct d.batch_id from public.notification_deliveries d
    where d.status = 'pending' and not d.digest and d.next_attempt_at <= now() - interval '30 seconds' limit 100
  loop
    if app.call_function('notification-dispatch', jsonb_build_object('type', 'SWEEP', 'table', 'notifications', 'schema', 'public', 'batch_id', batch)) then
      sent := sent + 1;
    end if;
  end loop;
  return sent;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Producers. Each is idempotent by key, so a repeated event notifies once.

-- A file settles: its uploader hears it is ready, or why it was not accepted.
create function app.notify_file_settled() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.uploaded_by is null or new.deleted_at is not null
     or not exists (select 1 from public.organization_members m where m.org_id = new.org_id and m.user_id = new.uploaded_by) then
    return null;
  end if;
  if new.status = 'clean' then
    perform app.notify(new.org_id, 'file.ready', format('%s is ready', left(new.name, 150)), '',
                       jsonb_build_object('file_id', new.id), jsonb_build_object('user_ids', jsonb_build_array(new.uploaded_by)),
                       null, 'file.ready:' || new.id);
  else
    perform app.notify(new.org_id, 'file.rejected', format('%s was not accepted', left(new.name, 150)), coalesce(left(new.status_reason, 500), ''),
                       jsonb_build_object('file_id', new.id, 'status', new.status), jsonb_build_object('user_ids', jsonb_build_array(new.uploaded_by)),
                       null, 'file.rejected:' || new.id);
  end if;
  return null;
end
$$;
revoke all on function app.notify_file_settled() from public;
create trigger notify_file_settled after update of status on public.files
  for each row when (old.status in ('pending', 'scanning') and new.status in ('clean', 'infected', 'rejected', 'failed'))
  execute function app.notify_file_settled();

-- Storage passes 80 % of the plan: whoever manages the organization's settings hears it, once a day at most.
create function app.notify_quota_warning() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  limit_bytes bigint;
begin
  select t.storage_bytes into limit_bytes
  from public.organizations o join public.subscription_tiers t on t.tier = o.tier
  where o.id = new.org_id and o.deleted_at is null;
  if coalesce(limit_bytes, 0) > 0 and old.used_bytes < limit_bytes * 0.8 and new.used_bytes >= limit_bytes * 0.8 then
    perform app.notify(new.org_id, 'quota.warning', 'Storage is over 80 % of the plan',
                       format('%s MB of %s MB used.', new.used_bytes / 1000000, limit_bytes / 1000000),
                       jsonb_build_object('used_bytes', new.used_bytes, 'limit_bytes', limit_bytes),
                       '{"permission": "settings.manage"}', null, 'quota.warning:' || to_char(now() at time zone 'UTC', 'YYYY-MM-DD'));
  end if;
  return null;
end
$$;
revoke all on function app.notify_quota_warning() from public;
create trigger notify_quota_warning after update of used_bytes on public.storage_quotas
  for each row when (new.used_bytes > old.used_bytes) execute function app.notify_quota_warning();

-- An invitation goes out: the members who manage members hear it.
create function app.notify_invitation_sent() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  perform app.notify(new.org_id, 'invitation.sent', format('%s was invited as %s', left(new.email, 150), new.role), '',
                     jsonb_build_object('invitation_id', new.id, 'role', new.role), '{"permission": "members.manage"}',
                     null, 'invitation.sent:' || new.id, new.created_by);
  return null;
end
$$;
revoke all on function app.notify_invitation_sent() from public;
create trigger notify_invitation_sent after insert on public.invitations
  for each row execute function app.notify_invitation_sent();
