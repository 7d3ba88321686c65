-- Notifications: a catalog of types, organization templates per type and locale, notifications
-- (one row per recipient user, made by app.notify from a user, a role or the whole organization,
-- deduplicated by an idempotency key), and the state of each delivery channel. Members read and
-- mark read only their own; holders of notifications.send send within their organization.
-- Producing calls the notification-dispatch function once per batch (statement), which delivers
-- MQTT and hands e-mail to the worker; a sweep resends what is due.
-- Errors: NT001 unknown type, NT002 recipient not in the organization, NT003 bad content (title,
-- body or data too large or empty), NT004 recipients not given as one of the three forms.

create table public.notification_types (
  key text primary key check (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
  description text not null,
  default_channels text[] not null check (default_channels <@ array['mqtt', 'email']),
  default_priority text not null default 'normal' check (default_priority in ('low', 'normal', 'high', 'urgent'))
);
insert into public.notification_types (key, description, default_channels, default_priority) values
  ('announcement.posted', 'A message from the organization', '{mqtt,email}', 'normal'),
  ('file.ready', 'A file finished processing', '{mqtt}', 'low'),
  ('file.rejected', 'A file was rejected or quarantined', '{mqtt,email}', 'normal'),
  ('invitation.sent', 'An invitation was sent', '{mqtt}', 'low'),
  ('job.failed', 'A background job failed', '{mqtt,email}', 'high'),
  ('quota.warning', 'Storage use passed 80 % of the plan', '{mqtt,email}', 'high');
alter table public.notification_types enable row level security;
grant select on public.notification_types to authenticated;
create policy "signed-in users read the notification types" on public.notification_types for select to authenticated using (true);

-- Templates: an organization's own per type and locale; rows without an organization are the
-- defaults. {{title}}, {{body}} and {{data.<key>}} are filled in when rendering.
create table public.notification_templates (
  id uuid primary key default gen_random_uuid(),
  org_id uuid references public.organizations (id) on delete cascade,
  type text not null references public.notification_types (key) on delete cascade,
  locale text not null default 'en' check (locale ~ '^[a-z]{2}(-[A-Z]{2})?$'),
  subject text not null check (length(subject) between 1 and 200),
  body text not null check (length(body) between 1 and 20000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid references auth.users (id) on delete set null,
  updated_by uuid references auth.users (id) on delete set null
);
create unique index notification_templates_key on public.notification_templates (coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid), type, locale);
create index notification_templates_org_idx on public.notification_templates (org_id);
insert into public.notification_templates (org_id, type, locale, subject, body)
select null, key, 'en', '{{title}}', e'{{body}}\n\n— sent by your school''s workspace' from public.notification_types;

-- ---------------------------------------------------------------------------------------------
create table public.notifications (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  recipient_id uuid not null,
  batch_id uuid not null,
  type text not null references public.notification_types (key),
  title text not null check (length(title) between 1 and 200),
  body text not null check (length(body) <= 4000),
  data jsonb not null default '{}' check (jsonb_typeof(data) = 'object' and pg_column_size(data) <= 16384),
  priority text not null check (priority in ('low', 'normal', 'high', 'urgent')),
  idempotency_key text check (length(idempotency_key) between 1 and 200),
  read_at timestamptz,
  created_at timestamptz not null default now(),
  created_by uuid references auth.users (id) on delete set null,
  unique (org_id, id),
  unique (org_id, recipient_id, idempotency_key),
  foreign key (org_id, recipient_id) references public.organization_members (org_id, user_id) on delete cascade
);
create index notifications_recipient_idx on public.notifications (recipient_id, created_at desc);
create index notifications_org_idx on public.notifications (org_id, created_at desc);
create index notifications_batch_idx on public.notifications (batch_id);

-- One row per notification and channel it goes out on (in-app is the notification itself).
create table public.notification_deliveries (
  notification_id uuid not null,
  org_id uuid not null,
  channel text not null check (channel in ('mqtt', 'email')),
  status text not null default 'pending' check (status in ('pending', 'sent', 'failed', 'skipped')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_error text check (length(last_error) <= 500),
  delivered_at timestamptz,
  primary key (notification_id, channel),
  foreign key (org_id, notification_id) references public.notifications (org_id, id) on delete cascade
);
create index notification_deliveries_org_idx on public.notification_deliveries (org_id);
create index notification_deliveries_due_idx on public.notification_deliveries (next_attempt_at) where status = 'pending';

-- A member's choices: a channel off for a type (or for '*', every type).
create table public.notification_preferences (
  org_id uuid not null,
  user_id uuid not null,
  type text not null check (type = '*' or type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
  channel text not null check (channel in ('mqtt', 'email')),
  enabled boolean not null,
  updated_at timestamptz not null default now(),
  primary key (org_id, user_id, type, channel),
  foreign key (org_id, user_id) references public.organization_members (org_id, user_id) on delete cascade
);

select app.enable_audit('public.notification_templates', 'org_id', '{id}');
select app.enable_audit('public.notifications', 'org_id', '{id}', '{}', '{read_at}');
select app.enable_audit('public.notification_deliveries', 'org_id', '{notification_id,channel}', '{}', '{status,attempts,next_attempt_at,last_error,delivered_at}');
select app.enable_audit('public.notification_preferences', 'org_id', '{user_id,type,channel}');
create trigger stamp_row before insert or update on public.notification_templates for each row execute function app.stamp_row();

-- ---------------------------------------------------------------------------------------------
alter table public.notification_templates enable row level security;
alter table public.notifications enable row level security;
alter table public.notification_deliveries enable row level security;
alter table public.notification_preferences enable row level security;
revoke all on public.notification_templates, public.notifications, public.notification_deliveries, public.notification_preferences from anon, authenticated;
grant select, insert (org_id, type, locale, subject, body), update (subject, body), delete on public.notification_templates to authenticated;
grant select, update (read_at) on public.notifications to authenticated;
grant select on public.notification_deliveries to authenticated;
grant select, insert (org_id, user_id, type, channel, enabled), update (enabled), delete on public.notification_preferences to authenticated;

create policy "members read their organization's templates and the defaults" on public.notification_templates
  for select to authenticated using (org_id is null or org_id = any (array(select app.user_org_ids())));
create policy "settings managers write their organization's templates" on public.notification_templates
  for insert to authenticated with check (org_id = any (array(select app.org_ids_with_permission('settings.manage'))));
create policy "settings managers change their organization's templates" on public.notification_templates
  for update to authenticated
  using (org_id = any (array(select app.org_ids_with_permission('settings.manage'))))
  with check (org_id = any (array(select app.org_ids_with_permission('settings.manage'))));
create policy "settings managers delete their organization's templates" on public.notification_templates
  for delete to authenticated using (org_id = any (array(select app.org_ids_with_permission('settings.manage'))));

create policy "users read their own notifications" on public.notifications
  for select to authenticated using (recipient_id = (select auth.uid()) and org_id = any (array(select app.user_org_ids())));
create policy "users mark their own notifications read" on public.notifications
  for update to authenticated
  using (recipient_id = (select auth.uid()) and org_id = any (array(select app.user_org_ids())))
  with check (recipient_id = (select auth.uid()));

create policy "users see how their own notifications went out" on public.notification_deliveries
  for select to authenticated
  using (org_id = any (array(select app.user_org_ids()))
         and exists (select 1 from public.notifications n where n.id = notification_id and n.recipient_id = (select auth.uid())));

create policy "users read their own preferences" on public.notification_preferences
  for select to authenticated using (user_id = (select auth.uid()) and org_id = any (array(select app.user_org_ids())));
create policy "users set their own preferences" on public.notification_preferences
  for insert to authenticated with check (user_id = (select auth.uid()) and org_id = any (array(select app.user_org_ids())));
create policy "users change their own preferences" on public.notification_preferences
  for update to authenticated
  using (user_id = (select auth.uid()) and org_id = any (array(select app.user_org_ids())))
  with check (user_id = (select auth.uid()));
create policy "users remove their own preferences" on public.notification_preferences
  for delete to authenticated using (user_id = (select auth.uid()) and org_id = any (array(select app.user_org_ids())));

-- ---------------------------------------------------------------------------------------------
-- Producing. recipients: {"user_ids": [...]} | {"role": "teacher"} | {"everyone": true}.
-- Returns the batch id and how many notifications were made (a repeated idempotency key for a
-- recipient makes nothing new). Deliveries follow the type's channels and each recipient's
-- preferences.
create function app.notify(org uuid, notification_type text, title text, body text, data jsonb, recipients jsonb,
                           priority text default null, idempotency_key text default null, sender uuid default null,
                           out batch_id uuid, out created integer)
language plpgsql volatile security definer set search_path = ''
as $$
declare
  kind public.notification_types;
  outsider text;
begin
  select * into kind from public.notification_types t where t.key = notification_type;
  if kind.key is null then
    raise exception 'unknown notification type %', notification_type using errcode = 'NT001';
  end if;
  if title is null or length(title) not between 1 and 200 or length(coalesce(body, '')) > 4000
     or jsonb_typeof(coalesce(data, '{}')) <> 'object' or pg_column_size(coalesce(data, '{}')) > 16384
     or coalesce(priority, kind.default_priority) not in ('low', 'normal', 'high', 'urgent') then
    raise exception 'a notification has a title of 1-200 characters, a body of at most 4000, data as a JSON object of at most 16 kB'
      using errcode = 'NT003';
  end if;
  if recipients ? 'user_ids' then
    select r into outsider from jsonb_array_elements_text(recipients -> 'user_ids') r
    where not exists (select 1 from public.organization_members m where m.org_id = org and m.user_id::text = r) limit 1;
    if outsider is not null then
      raise exception 'recipient % is not a member of organization %', outsider, org using errcode = 'NT002';
    end if;
  elsif not (recipients ? 'role' or coalesce(recipients -> 'everyone' = 'true'::jsonb, false)) then
    raise exception 'recipients must be {"user_ids": [...]}, {"role": ...} or {"everyone": true}' using errcode = 'NT004';
  end if;

  batch_id := gen_random_uuid();
  with targets as (
    select m.user_id from public.organization_members m
    join public.organizations o on o.id = m.org_id and o.deleted_at is null
    where m.org_id = org
      and (recipients -> 'everyone' = 'true'::jsonb
           or m.role::text = recipients ->> 'role'
           or m.user_id::text in (select jsonb_array_elements_text(recipients -> 'user_ids')))
  ), made as (
    insert into public.notifications (org_id, recipient_id, batch_id, type, title, body, data, priority, idempotency_key, created_by)
    select org, t.user_id, notify.batch_id, kind.key, notify.title, coalesce(notify.body, ''), coalesce(notify.data, '{}'),
           coalesce(notify.priority, kind.default_priority), notify.idempotency_key, sender
    from targets t
    on conflict on constraint notifications_org_id_recipient_id_idempotency_key_key do nothing
    returning id, recipient_id
  ), channels as (
    insert into public.notification_deliveries (notification_id, org_id, channel, status)
    select made.id, org, c.channel,
           case when coalesce((select p.enabled from public.notification_preferences p
                               where p.org_id = org and p.user_id = made.recipient_id and p.channel = c.channel
                                 and p.type in (kind.key, '*') order by p.type = '*' limit 1), true)
                then 'pending' else 'skipped' end
    from made cross join unnest(kind.default_channels) c(channel)
    returning 1
  )
  select count(*)::integer into created from made;
end
$$;
revoke all on function app.notify(uuid, text, text, text, jsonb, jsonb, text, text, uuid) from public;
grant execute on function app.notify(uuid, text, text, text, jsonb, jsonb, text, text, uuid) to service_role;

-- The RPC for members who may send (supabase-js rpc('send_notification', ...)).
create function public.send_notification(org_id uuid, type text, title text, body text default '', data jsonb default '{}',
                                         recipients jsonb default '{"everyone": true}', priority text default null,
                                         idempotency_key text default null)
returns table (batch_id uuid, created integer)
language plpgsql volatile security definer set search_path = ''
as $$
begin
  if (select auth.uid()) is null or not app.has_permission(send_notification.org_id, 'notifications.send') then
    raise exception 'notifications.send is required in organization %', send_notification.org_id using errcode = '42501';
  end if;
  return query select * from app.notify(send_notification.org_id, type, title, body, data, recipients, priority, idempotency_key, (select auth.uid()));
end
$$;
revoke all on function public.send_notification(uuid, text, text, text, jsonb, jsonb, text, text) from public, anon;
grant execute on function public.send_notification(uuid, text, text, text, jsonb, jsonb, text, text) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Dispatch: one call of notification-dispatch per batch, after commit (pg_net), with the function's
-- address and key from Vault as for files; the sweep sends again what is due.
create function app.call_function(function_name text, payload jsonb) returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
declare
  base text := app.vault_secret('project_url');
  key text := app.vault_secret('service_role_key');
begin
  if base is null or key is null then
    raise warning 'vault secrets project_url and service_role_key are needed to call %', function_name;
    return false;
  end if;
  perform net.http_post(url := rtrim(base, '/') || '/functions/v1/' || function_name, body := payload,
                        headers := jsonb_build_object('Content-Type', 'application/json', 'Authorization', 'Bearer ' || key),
                        timeout_milliseconds := 120000);
  return true;
end
$$;
revoke all on function app.call_function(text, jsonb) from public;

create function app.dispatch_new_notifications() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  batch uuid;
begin
  for batch in select distinct n.batch_id from new_rows n loop
    perform app.call_function('notification-dispatch', jsonb_build_object('type', 'INSERT', 'table', 'notifications', 'schema', 'public', 'batch_id', batch));
  end loop;
  return null;
end
$$;
revoke all on function app.dispatch_new_notifications() from public;
create trigger dispatch_new_notifications after insert on public.notifications
  referencing new table as new_rows for each statement execute function app.dispatch_new_notifications();

create function app.sweep_notifications() returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  sent integer := 0;
  batch uuid;
begin
  for batch in
    select distinct n.batch_id from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
    where d.status = 'pending' and d.next_attempt_at <= now() - interval '30 seconds' limit 100
  loop
    if app.call_function('notification-dispatch', jsonb_build_object('type', 'SWEEP', 'table', 'notifications', 'schema', 'public', 'batch_id', batch)) then
      sent := sent + 1;
    end if;
  end loop;
  return sent;
end
$$;
revoke all on function app.sweep_notifications() from public;
grant execute on function app.sweep_notifications() to service_role;
select cron.schedule('notifications-sweep', '* * * * *', 'select app.sweep_notifications()');
