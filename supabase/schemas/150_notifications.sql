-- Notifications: a catalog of types, organization templates per type and locale, notifications
-- (one row per recipient user, made by app.notify from a user list, a role, a permission or the
-- whole organization, deduplicated by an idempotency key), the state of each delivery channel, and
-- each member's choices (channels per type, quiet hours, e-mail digests, locale). Members read and
-- mark read only their own; holders of notifications.send send within their organization.
-- Who gets what, when, is decided once per send and set-wise (a school-wide message is 10,000
-- rows): preferences, quiet hours and digests are applied while fanning out, and the audit log
-- gets one entry per send. Producing calls the notification-dispatch function once per batch
-- (statement), which delivers MQTT and hands e-mail to the worker; a sweep resends what is due.
-- Other features produce notifications through app.notify_safely, which never blocks them.
-- Audience delivery: a send of a type that opts in (notification_types.audience_delivery) to a
-- role or to everyone goes out over MQTT as one message per role, on
-- org/{org}/roles/{role}/notifications, which the broker fans out to that role's members; every
-- recipient still gets their own notification (inbox, read state, e-mail and digests). Only the
-- MQTT leg is shared, and only when sharing it changes nothing anyone chose
-- (app.audience_delivery_applies); otherwise each recipient gets their own MQTT delivery row.
-- Dispatch falls back the same way (status `expanded`) when a recipient is over their rate limit
-- or changed role since the send.
-- Members send only the types meant for people (notification_types.sent_by_members); the others
-- (usage alerts, file verdicts, failed jobs, storage warnings, invitations sent) are the system's.
-- Errors: NT001 unknown type, NT002 recipient not in the organization, NT003 bad content (title,
-- body or data too large or empty), NT004 recipients not given as one of the four forms, NT005 an
-- e-mail type without a template, NT006 a member sending a type the system sends.

create table public.notification_types (
  key text primary key check (key ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
  description text not null,
  default_channels text[] not null check (default_channels <@ array['mqtt', 'email']),
  default_priority text not null default 'normal' check (default_priority in ('low', 'normal', 'high', 'urgent')),
  -- a client must listen on its role's topic and resolve the envelope (whose id is the batch id) to
  -- its own notification, so only types whose clients do that opt in
  audience_delivery boolean not null default false,
  -- the system's types are made only through app.notify, whose idempotency keys are predictable
  -- (usage.<level>:<metric>:<day>): a member's send with one would stand in for the real one
  sent_by_members boolean not null default false
);
comment on column public.notification_types.audience_delivery is
  'Sends of this type to a role or to everyone go out once per role on org/{org}/roles/{role}/notifications when every recipient takes MQTT now';
comment on column public.notification_types.sent_by_members is
  'Members (send_notification, org-api) may send this type; the others are made by the system only (app.notify)';
alter table public.notification_types enable row level security;
revoke all on public.notification_types from anon, authenticated;
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
create index notification_templates_created_by_idx on public.notification_templates (created_by) where created_by is not null;
create index notification_templates_type_idx on public.notification_templates (type);
create index notification_templates_updated_by_idx on public.notification_templates (updated_by) where updated_by is not null;

-- ---------------------------------------------------------------------------------------------
-- A row's type and sender are its send's, the same for each of a send's rows: app.notify (the
-- only writer) checks both once per send, where foreign keys would check them once per row, two
-- index probes and row locks for each of 10,000 recipients. What the keys did on the other side is
-- done by the triggers below: a type in use is not removed, a deleted user's sends keep no sender.
create table public.notifications (
  id uuid primary key default gen_random_uuid(),
  -- the organization is checked once, through the recipient's membership below (which cascades)
  org_id uuid not null,
  recipient_id uuid not null,
  batch_id uuid not null,
  type text not null,
  title text not null check (length(title) between 1 and 200),
  body text not null check (length(body) <= 4000),
  data jsonb not null default '{}' check (jsonb_typeof(data) = 'object' and pg_column_size(data) <= 16384),
  priority text not null check (priority in ('low', 'normal', 'high', 'urgent')),
  idempotency_key text check (length(idempotency_key) between 1 and 200),
  read_at timestamptz,
  created_at timestamptz not null default now(),
  created_by uuid,
  unique (org_id, id),
  unique (org_id, recipient_id, idempotency_key),
  foreign key (org_id, recipient_id) references public.organization_members (org_id, user_id) on delete cascade
);
create index notifications_recipient_idx on public.notifications (recipient_id, created_at desc);
create index notifications_org_idx on public.notifications (org_id, created_at desc);
-- with the recipient: dispatch asks whether a member outside a batch's roles holds one of its rows
create index notifications_batch_idx on public.notifications (batch_id, recipient_id);
-- No index on created_by: forget_notification_sender reads the whole table once per deleted user,
-- while an index would cost every inbox row of every send (bench:notify: audience ratio 0.80
-- without it, 0.69-0.71 with it).

create function app.keep_notification_types_in_use() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if tg_op = 'UPDATE' and new.key = old.key then
    return new;
  end if;
  if exists (select 1 from public.notifications n where n.type = old.key) then
    raise exception 'notification type % is in use', old.key using errcode = '23503';
  end if;
  return case tg_op when 'DELETE' then old else new end;
end
$$;
revoke all on function app.keep_notification_types_in_use() from public;
create trigger keep_notification_types_in_use before update of key or delete on public.notification_types
  for each row execute function app.keep_notification_types_in_use();

create function app.forget_notification_sender() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.notifications n set created_by = null where n.created_by = old.id;
  return old;
end
$$;
revoke all on function app.forget_notification_sender() from public;
-- before the delete, while the memberships its cascade removes still hold the rows it updates
create trigger forget_notification_sender before delete on auth.users
  for each row execute function app.forget_notification_sender();

-- One row per notification and channel it goes out on (in-app is the notification itself). The
-- batch is on each delivery: dispatch claims a batch's deliveries by its index, a plan that holds
-- even when the table's statistics still describe it as small (a first 10,000-member send
-- otherwise meets a nested loop over both tables). Digests are e-mail that waits for the
-- recipient's hourly or daily digest (sent by the worker's notifications.digest). A channel a
-- recipient turned off gets no row (`skipped` is not made by app.notify).
-- The foreign key names the notification by its primary key alone: Postgres checks it with one
-- query per inserted delivery, planned once per connection, and by (org_id, id) the planner took
-- notifications_org_idx for an organization the statistics did not know yet and read every
-- notification of it per check. That a delivery's organization is its notification's is kept by
-- the only writers (app.notify and notification-dispatch copy it; API roles may only select).
create table public.notification_deliveries (
  notification_id uuid not null references public.notifications (id) on delete cascade,
  org_id uuid not null,
  channel text not null check (channel in ('mqtt', 'email')),
  status text not null default 'pending' check (status in ('pending', 'sent', 'failed', 'skipped')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_error text check (length(last_error) <= 500),
  delivered_at timestamptz,
  batch_id uuid not null,
  digest boolean not null default false,
  primary key (notification_id, channel),
  constraint digests_are_email check (not digest or channel = 'email')
);
create index notification_deliveries_org_idx on public.notification_deliveries (org_id);
create index notification_deliveries_due_idx on public.notification_deliveries (next_attempt_at) where status = 'pending';
create index notification_deliveries_batch_idx on public.notification_deliveries (batch_id, channel) where status = 'pending';
create index notification_deliveries_digest_due_idx on public.notification_deliveries (next_attempt_at) where status = 'pending' and digest;

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

-- A member's quiet hours (deliveries wait until they end, unless urgent: deferred, not dropped),
-- e-mail digest (low and normal priority e-mail waits and goes out as one message, hourly or daily
-- at digest_time in their time zone) and the locale their e-mail is written in.
create table public.notification_settings (
  org_id uuid not null,
  user_id uuid not null,
  quiet_start time,
  quiet_end time,
  time_zone text not null default 'UTC' check (length(time_zone) <= 64),
  updated_at timestamptz not null default now(),
  email_digest text not null default 'off' check (email_digest in ('off', 'hourly', 'daily')),
  digest_time time not null default '07:00',
  locale text not null default 'en' check (locale ~ '^[a-z]{2}(-[A-Z]{2})?$'),
  primary key (org_id, user_id),
  check ((quiet_start is null) = (quiet_end is null) and (quiet_start is null or quiet_start <> quiet_end)),
  foreign key (org_id, user_id) references public.organization_members (org_id, user_id) on delete cascade
);

-- Sends are audited once each by app.notify; delivery rows record their own state, and read_at
-- changes are not worth an entry.
create trigger audit_changes after insert or update or delete on public.notification_templates
  for each row execute function app.audit_record_change('org_id', 'id', '', '');
create trigger audit_changes after insert or update or delete on public.notification_preferences
  for each row execute function app.audit_record_change('org_id', 'user_id,type,channel', '', '');
create trigger stamp_row before insert or update on public.notification_templates for each row execute function app.stamp_row();
create trigger audit_changes after insert or update or delete on public.notification_settings
  for each row execute function app.audit_record_change('org_id', 'user_id', '', '');

-- A time zone Postgres does not know is refused when it is set, not when a notification is due.
create function app.check_time_zone() returns trigger
language plpgsql set search_path = ''
as $$
begin
  perform now() at time zone new.time_zone;
  return new;
exception when invalid_parameter_value then
  raise exception 'unknown time zone %', new.time_zone using errcode = '22023';
end
$$;
revoke all on function app.check_time_zone() from public;
create trigger check_time_zone before insert or update of time_zone on public.notification_settings
  for each row execute function app.check_time_zone();

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
alter table public.notification_settings enable row level security;
revoke all on public.notification_settings from anon, authenticated;
grant select, insert (org_id, user_id, quiet_start, quiet_end, time_zone, email_digest, digest_time, locale),
  update (quiet_start, quiet_end, time_zone, email_digest, digest_time, locale), delete
  on public.notification_settings to authenticated;
create policy "users read their own notification settings" on public.notification_settings
  for select to authenticated using (user_id = (select auth.uid()) and org_id = any (array(select app.user_org_ids())));
create policy "users make their own notification settings" on public.notification_settings
  for insert to authenticated with check (user_id = (select auth.uid()) and org_id = any (array(select app.user_org_ids())));
create policy "users change their own notification settings" on public.notification_settings
  for update to authenticated
  using (user_id = (select auth.uid()) and org_id = any (array(select app.user_org_ids())))
  with check (user_id = (select auth.uid()));
create policy "users remove their own notification settings" on public.notification_settings
  for delete to authenticated using (user_id = (select auth.uid()) and org_id = any (array(select app.user_org_ids())));

-- When a member's quiet hours end, if they are in them now (they may run past midnight); null if not.
create function app.quiet_until(org uuid, member uuid, at timestamptz default now()) returns timestamptz
language sql stable set search_path = ''
as $$
  select case
    when s.quiet_start < s.quiet_end and local_time >= s.quiet_start and local_time < s.quiet_end
      then ((local_at::date + s.quiet_end) at time zone s.time_zone)
    when s.quiet_start > s.quiet_end and local_time >= s.quiet_start
      then (((local_at::date + 1) + s.quiet_end) at time zone s.time_zone)
    when s.quiet_start > s.quiet_end and local_time < s.quiet_end
      then ((local_at::date + s.quiet_end) at time zone s.time_zone)
  end
  from public.notification_settings s,
       lateral (select at at time zone s.time_zone as local_at) l,
       lateral (select l.local_at::time as local_time) t
  where s.org_id = org and s.user_id = member and s.quiet_start is not null
$$;
revoke all on function app.quiet_until(uuid, uuid, timestamptz) from public;

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
-- One row per batch delivered to its audience: the roles it is published to, and how it went.
create table public.notification_audience_deliveries (
  batch_id uuid primary key,
  org_id uuid not null references public.organizations (id) on delete cascade,
  roles public.org_role[] not null check (cardinality(roles) between 1 and 4),
  recipients integer not null check (recipients > 0),
  status text not null default 'pending' check (status in ('pending', 'sent', 'failed', 'expanded')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_error text check (length(last_error) <= 500),
  delivered_at timestamptz,
  created_at timestamptz not null default now()
);
create index notification_audience_deliveries_org_idx on public.notification_audience_deliveries (org_id);
create index notification_audience_deliveries_due_idx on public.notification_audience_deliveries (next_attempt_at) where status = 'pending';

alter table public.notification_audience_deliveries enable row level security;
revoke all on public.notification_audience_deliveries from anon, authenticated;
grant select on public.notification_audience_deliveries to authenticated;
create policy "users see how a notification of theirs went out to its audience" on public.notification_audience_deliveries
  for select to authenticated
  using (org_id = any (array(select app.user_org_ids()))
         and exists (select 1 from public.notifications n where n.batch_id = notification_audience_deliveries.batch_id
                                                             and n.recipient_id = (select auth.uid())));

-- Whether a send goes out over MQTT once per role instead of once per recipient: the type opts
-- in, the send is to a role or to everyone (not a list of users, nor a permission, which cut
-- across roles), and sharing the message changes nothing a recipient chose (no one turned MQTT off
-- for the type, no one is in quiet hours unless the send is urgent, no one already has a
-- notification with the idempotency key: asked per recipient of the unique index
-- (org_id, recipient_id, idempotency_key), a cost bounded by the audience, not the history).
create function app.audience_delivery_applies(org uuid, kind public.notification_types, recipients jsonb, targets uuid[],
                                              turned_off jsonb, prio text, idempotency_key text) returns boolean
language sql stable set search_path = ''
as $$
  select kind.audience_delivery and 'mqtt' = any (kind.default_channels) and cardinality(targets) > 0
    and not (recipients ? 'user_ids' or recipients ? 'permission')
    and not exists (select 1 from unnest(targets) t(user_id) where turned_off ? (t.user_id::text || '/mqtt'))
    -- per recipient, primary key and unique key probes: a join on the organization's rows would
    -- meet a nested loop over both sets when the statistics call the organization small
    and (prio = 'urgent' or not exists (
           select 1 from unnest(targets) t(user_id)
           join public.notification_settings s on s.org_id = org and s.user_id = t.user_id
           where s.quiet_start is not null and app.quiet_until(org, s.user_id) is not null))
    and (idempotency_key is null or not exists (
           select 1 from unnest(targets) t(user_id)
           join public.notifications n on n.org_id = org and n.recipient_id = t.user_id and n.idempotency_key = audience_delivery_applies.idempotency_key))
$$;
revoke all on function app.audience_delivery_applies(uuid, public.notification_types, jsonb, uuid[], jsonb, text, text) from public;

-- ---------------------------------------------------------------------------------------------
-- Producing. recipients: {"user_ids": [...]} | {"role": "teacher"} | {"permission": "jobs.manage"}
-- | {"everyone": true}. Returns the batch id and how many notifications were made (a repeated
-- idempotency key for a recipient makes nothing new). Each delivery follows the type's channels
-- and the recipient's preferences; non-urgent ones wait out quiet hours; low and normal e-mail
-- waits for the recipient's digest when they chose one. The channels members turned off are read
-- once for the organization into a set in a variable, which keeps each recipient's lookup cheap
-- whatever the planner believes about the tables (a join meets a nested loop over both sets when
-- the organization is new to the statistics).
create function app.notify(org uuid, notification_type text, title text, body text, data jsonb, recipients jsonb,
                           priority text default null, idempotency_key text default null, sender uuid default null,
                           out batch_id uuid, out created integer)
language plpgsql volatile security definer set search_path = ''
as $$
declare
  kind public.notification_types;
  prio text;
  outsider text;
  origin record;
  turned_off jsonb;
  targets uuid[];
  target_roles public.org_role[];
  to_audience boolean;
  by_users boolean;
  by_permission text;
  by_role text;
begin
  -- locked as a foreign key would lock them, once: neither goes away before this send commits
  select * into kind from public.notification_types t where t.key = notification_type for key share;
  if kind.key is null then
    raise exception 'unknown notification type %', notification_type using errcode = 'NT001';
  end if;
  if sender is not null and not exists (select 1 from auth.users u where u.id = sender for key share) then
    raise exception 'sender % is not a user', sender using errcode = '23503';
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

  -- The channels members turned off for this type, as '<user id>/<channel>' keys.
  select coalesce(jsonb_object_agg(c.user_id::text || '/' || c.channel, true) filter (where not c.enabled), '{}')
  into turned_off
  from (select distinct on (p.user_id, p.channel) p.user_id, p.channel, p.enabled
        from public.notification_preferences p
        where p.org_id = org and p.type in (kind.key, '*')
        order by p.user_id, p.channel, p.type = '*') c;

  -- the form is read once here, not for each member
  by_users := recipients ? 'user_ids';
  by_permission := case when recipients ? 'permission' then coalesce(recipients ->> 'permission', '') end;
  by_role := case when recipients ? 'role' then coalesce(recipients ->> 'role', '') end;
  select coalesce(array_agg(m.user_id), '{}'), array_agg(distinct m.role order by m.role) into targets, target_roles
  from public.organization_members m
  join public.organizations o on o.id = m.org_id and o.deleted_at is null
  where m.org_id = org
    and case when by_users then m.user_id::text in (select jsonb_array_elements_text(recipients -> 'user_ids'))
             -- app.permissions_of's rule for one permission (the member's grant or revoke, else the
             -- role's default), looked up by key: permissions_of for each member made a 10,000-member
             -- organization's usage warning take a third of a second on every usage run
             when by_permission is not null then coalesce(
               (select mp.granted from public.member_permissions mp
                where mp.org_id = org and mp.user_id = m.user_id and mp.permission = by_permission),
               exists (select 1 from public.role_permissions rp where rp.role = m.role and rp.permission = by_permission))
             when by_role is not null then m.role::text = by_role
             else true end;

  to_audience := app.audience_delivery_applies(org, kind, recipients, targets, turned_off, prio, notify.idempotency_key);

  batch_id := gen_random_uuid();
  with made as (
    insert into public.notifications (org_id, recipient_id, batch_id, type, title, body, data, priority, idempotency_key, created_by)
    select org, t.user_id, notify.batch_id, kind.key, notify.title, coalesce(notify.body, ''), coalesce(notify.data, '{}'),
           prio, notify.idempotency_key, sender
    from unnest(targets) t(user_id)
    on conflict on constraint notifications_org_id_recipient_id_idempotency_key_key do nothing
    returning id, recipient_id
  ), planned as (
    select made.id, made.recipient_id, c.channel, s as settings, s.quiet_start is not null as has_quiet_hours,
           c.channel = 'email' and prio in ('low', 'normal') and coalesce(s.email_digest, 'off') <> 'off' as digest
    from made cross join unnest(kind.default_channels) c(channel)
    -- looked up per recipient (a primary key probe): most members have no settings
    left join public.notification_settings s on s.org_id = org and s.user_id = made.recipient_id
    where not (to_audience and c.channel = 'mqtt')
      and not turned_off ? (made.recipient_id::text || '/' || c.channel)
  ), channels as (
    insert into public.notification_deliveries (notification_id, org_id, batch_id, channel, digest, next_attempt_at)
    select p.id, org, notify.batch_id, p.channel, p.digest,
           case when p.digest
                  then coalesce(app.quiet_until(org, p.recipient_id, app.next_digest_at(p.settings)), app.next_digest_at(p.settings))
                when coalesce(p.has_quiet_hours, false) and prio <> 'urgent'
                  then coalesce(app.quiet_until(org, p.recipient_id), now())
                else now() end
    from planned p
    returning 1
  )
  select count(*)::integer into created from made;

  if created > 0 and to_audience then
    insert into public.notification_audience_deliveries (batch_id, org_id, roles, recipients)
    values (notify.batch_id, org, target_roles, notify.created);
  end if;

  if created > 0 then
    origin := app.audit_request_origin();
    insert into audit.log (org_id, actor_user_id, actor_api_key_id, db_role, table_name, row_id, action, changed_columns,
                           new_values, ip, user_agent, request_id)
    values (org, sender, case when sender is null then nullif((select auth.jwt()) ->> 'api_key_id', '')::uuid end,
            case current_setting('role') when 'none' then session_user::text else current_setting('role') end,
            'public.notifications', batch_id::text, 'INSERT', '{batch_id,created,priority,recipients,title,type}',
            jsonb_build_object('batch_id', batch_id, 'type', kind.key, 'title', title, 'priority', prio,
                               'recipients', recipients, 'created', created, 'mqtt', case when to_audience then 'audience' else 'per_recipient' end),
            origin.ip, origin.user_agent, origin.request_id);
  end if;
end
$$;
revoke all on function app.notify(uuid, text, text, text, jsonb, jsonb, text, text, uuid) from public;
grant execute on function app.notify(uuid, text, text, text, jsonb, jsonb, text, text, uuid) to service_role;

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

-- The RPC for members who may send (supabase-js rpc('send_notification', ...)).
create function public.send_notification(org_id uuid, type text, title text, body text default '', data jsonb default '{}',
                                         recipients jsonb default '{"everyone": true}', priority text default null,
                                         idempotency_key text default null)
returns table (batch_id uuid, created integer)
language plpgsql volatile security definer set search_path = ''
as $$
begin
  -- members and API keys (app.notify records a key as the sender's actor in the audit log); not jobs
  if ((select auth.uid()) is null and app.current_api_key_id() is null)
     or not app.has_permission(send_notification.org_id, 'notifications.send') then
    raise exception 'notifications.send is required in organization %', send_notification.org_id using errcode = '42501';
  end if;
  if exists (select 1 from public.notification_types t where t.key = send_notification.type and not t.sent_by_members) then
    raise exception 'notifications of type % are sent by the system only', send_notification.type using errcode = 'NT006';
  end if;
  return query select * from app.notify(send_notification.org_id, type, title, body, data, recipients, priority, idempotency_key, (select auth.uid()));
end
$$;
revoke all on function public.send_notification(uuid, text, text, text, jsonb, jsonb, text, text) from public, anon;
grant execute on function public.send_notification(uuid, text, text, text, jsonb, jsonb, text, text) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Dispatch: one call of notification-dispatch per batch, after commit (app.call_function); the
-- sweep sends again what is due.
create function app.dispatch_new_notifications() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  batch uuid;
  org uuid;
begin
  -- a batch is one organization's (its org_id lets the net worker count the call against it)
  for batch, org in select distinct on (n.batch_id) n.batch_id, n.org_id from new_rows n loop
    perform app.call_function('notification-dispatch',
      jsonb_build_object('type', 'INSERT', 'table', 'notifications', 'schema', 'public', 'batch_id', batch, 'org_id', org));
  end loop;
  return null;
end
$$;
revoke all on function app.dispatch_new_notifications() from public;
create trigger dispatch_new_notifications after insert on public.notifications
  referencing new table as new_rows for each statement execute function app.dispatch_new_notifications();

-- The sweep resends what is due (audience deliveries too), except digests, which the worker's
-- notifications.digest sends. pg_cron runs it every minute (the schedule is below).
create function app.sweep_notifications() returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  sent integer := 0;
  batch uuid;
  org uuid;
begin
  for batch, org in
    select due.batch_id, due.org_id from (
      select d.batch_id, d.org_id from public.notification_deliveries d
      where d.status = 'pending' and not d.digest and d.next_attempt_at <= now() - interval '30 seconds'
      union
      select a.batch_id, a.org_id from public.notification_audience_deliveries a
      where a.status = 'pending' and a.next_attempt_at <= now() - interval '30 seconds'
    ) due
    -- a deleted organization's deliveries wait for its purge (its jobs are refused): resent every
    -- minute, they would take the run's places from live organizations' retries
    where exists (select 1 from public.organizations o where o.id = due.org_id and o.deleted_at is null)
    limit 100
  loop
    if app.call_function('notification-dispatch',
         jsonb_build_object('type', 'SWEEP', 'table', 'notifications', 'schema', 'public', 'batch_id', batch, 'org_id', org)) then
      sent := sent + 1;
    end if;
  end loop;
  return sent;
end
$$;
revoke all on function app.sweep_notifications() from public;
grant execute on function app.sweep_notifications() to service_role;

-- ---------------------------------------------------------------------------------------------
-- Producers. Each is idempotent by key, so a repeated event notifies once.

-- A file settles: its uploader hears it is ready, or why it was not accepted: in words a person
-- (and the e-mail) can use, with the reason's code in data (size_mismatch, type_mismatch,
-- upload_never_arrived, infected…). The checks' own text (a scanner's signature name, the MIME types
-- found) stays in files.status_reason.
create function app.file_refusal_text(status public.file_status, reason text) returns text
language sql immutable set search_path = ''
as $$
  select case
    when status = 'infected' then 'It looks like it carries a virus, so it was not kept. Check the device it came from with a virus scanner.'
    when reason like 'size_mismatch%' then 'Its size differs from what was announced when the upload started. Upload it again.'
    when reason like 'type_mismatch%' then 'Its content does not match its type (for example a picture named .pdf). Save it in the right format and upload it again.'
    when reason = 'upload_never_arrived' then 'The upload did not finish. Upload it again.'
    else 'It could not be checked. Upload it again.'
  end
$$;
revoke all on function app.file_refusal_text(public.file_status, text) from public;

create function app.notify_file_settled() returns trigger
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
    perform app.notify_safely(new.org_id, 'file.rejected', format('%s was not accepted', left(new.name, 150)),
                       app.file_refusal_text(new.status, new.status_reason),
                       jsonb_build_object('file_id', new.id, 'status', new.status,
                                          'reason', case when new.status = 'infected' then 'infected'
                                                         else coalesce(substring(new.status_reason from '^[a-z_]+'), new.status::text) end),
                       jsonb_build_object('user_ids', jsonb_build_array(new.uploaded_by)),
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
    perform app.notify_safely(new.org_id, 'quota.warning', 'Storage is over 80 % of the plan',
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
  perform app.notify_safely(new.org_id, 'invitation.sent', format('%s was invited as %s', left(new.email, 150), new.role), '',
                     jsonb_build_object('invitation_id', new.id, 'role', new.role), '{"permission": "members.manage"}',
                     null, 'invitation.sent:' || new.id, new.created_by);
  return null;
end
$$;
revoke all on function app.notify_invitation_sent() from public;
create trigger notify_invitation_sent after insert on public.invitations
  for each row execute function app.notify_invitation_sent();

-- ---------------------------------------------------------------------------------------------
-- Catalog rows and schedules (the usage types are in 170_usage.sql)
insert into public.notification_types (key, description, default_channels, default_priority, audience_delivery, sent_by_members) values
  ('announcement.posted', 'A message from the organization', '{mqtt,email}', 'normal', false, true),
  ('announcement.broadcast', 'A message from the organization to a role or to everyone, delivered once on the role''s topic', '{mqtt,email}', 'normal', true, true),
  ('file.ready', 'A file finished processing', '{mqtt}', 'low', false, false),
  ('file.rejected', 'A file was rejected or quarantined', '{mqtt,email}', 'normal', false, false),
  ('invitation.sent', 'An invitation was sent', '{mqtt}', 'low', false, false),
  ('job.failed', 'A background job failed', '{mqtt,email}', 'high', false, false),
  ('quota.warning', 'Storage use passed 80 % of the plan', '{mqtt,email}', 'high', false, false);
insert into public.notification_templates (org_id, type, locale, subject, body)
select null, key, 'en', '{{title}}', e'{{body}}\n\n— sent by your school''s workspace' from public.notification_types;

select cron.schedule('notifications-sweep', '* * * * *', 'select app.sweep_notifications()');
