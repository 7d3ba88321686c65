-- Audience delivery (issue 19, item 1): a notification sent to a role or to everyone goes out over
-- MQTT as one message per role, on org/{org}/roles/{role}/notifications, which the broker fans out
-- to that role's members, instead of one message and one delivery row per recipient.
--
-- Every recipient still gets their own notification (the inbox, read state, e-mail and digests are
-- per recipient as before). Only the MQTT leg is shared, and only when sharing it changes nothing
-- anyone chose:
-- - the type opts in (notification_types.audience_delivery): a client must listen on its role's
--   topic and resolve the envelope (whose id is the batch id) to its own notification, so types
--   whose clients listen only on their user topic keep per-recipient delivery;
-- - the send is to a role or to everyone (not a list of users, nor a permission, which cut across roles);
-- - no recipient turned MQTT off for the type, none is in quiet hours now (unless urgent), and no
--   notification with the idempotency key exists yet in the organization.
-- Otherwise each recipient gets their own MQTT delivery row, as before. Dispatch falls back the same
-- way (status `expanded`) when a recipient is over their rate limit or changed role since the send.

alter table public.notification_types add column audience_delivery boolean not null default false;
comment on column public.notification_types.audience_delivery is
  'Sends of this type to a role or to everyone go out once per role on org/{org}/roles/{role}/notifications when every recipient takes MQTT now';
insert into public.notification_types (key, description, default_channels, default_priority, audience_delivery) values
  ('announcement.broadcast', 'A message from the organization to a role or to everyone, delivered once on the role''s topic', '{mqtt,email}', 'normal', true);
insert into public.notification_templates (org_id, type, locale, subject, body)
values (null, 'announcement.broadcast', 'en', '{{title}}', e'{{body}}\n\n— sent by your school''s workspace');

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
  turned_off jsonb;
  targets uuid[];
  target_roles public.org_role[];
  to_audience boolean;
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

  -- The channels members turned off for this type, as '<user id>/<channel>' keys (see 003400).
  select coalesce(jsonb_object_agg(c.user_id::text || '/' || c.channel, true) filter (where not c.enabled), '{}')
  into turned_off
  from (select distinct on (p.user_id, p.channel) p.user_id, p.channel, p.enabled
        from public.notification_preferences p
        where p.org_id = org and p.type in (kind.key, '*')
        order by p.user_id, p.channel, p.type = '*') c;

  select coalesce(array_agg(m.user_id), '{}'), array_agg(distinct m.role order by m.role) into targets, target_roles
  from public.organization_members m
  join public.organizations o on o.id = m.org_id and o.deleted_at is null
  where m.org_id = org
    and case when recipients ? 'user_ids' then m.user_id::text in (select jsonb_array_elements_text(recipients -> 'user_ids'))
             when recipients ? 'permission' then recipients ->> 'permission' = any (app.permissions_of(org, m.user_id))
             when recipients ? 'role' then m.role::text = recipients ->> 'role'
             else true end;

  to_audience := kind.audience_delivery and 'mqtt' = any (kind.default_channels) and cardinality(targets) > 0
    and not (recipients ? 'user_ids' or recipients ? 'permission')
    and not exists (select 1 from unnest(targets) t(user_id) where turned_off ? (t.user_id::text || '/mqtt'))
    -- per recipient, a primary key probe (as in the fan-out below): a join on the organization's
    -- settings would meet a nested loop over both sets when the statistics call the organization small
    and (prio = 'urgent' or not exists (
           select 1 from unnest(targets) t(user_id)
           join public.notification_settings s on s.org_id = org and s.user_id = t.user_id
           where s.quiet_start is not null and app.quiet_until(org, s.user_id) is not null))
    and (notify.idempotency_key is null or not exists (
           select 1 from public.notifications n where n.org_id = org and n.idempotency_key = notify.idempotency_key));

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
    where not turned_off ? (made.recipient_id::text || '/' || c.channel)
      and not (to_audience and c.channel = 'mqtt')
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

-- The sweep also resends audience deliveries that are due.
create or replace function app.sweep_notifications() returns integer
language plpgsql volatile security definer set search_path = ''
as $$
declare
  sent integer := 0;
  batch uuid;
begin
  for batch in
    select d.batch_id from public.notification_deliveries d
    where d.status = 'pending' and not d.digest and d.next_attempt_at <= now() - interval '30 seconds'
    union
    select a.batch_id from public.notification_audience_deliveries a
    where a.status = 'pending' and a.next_attempt_at <= now() - interval '30 seconds'
    limit 100
  loop
    if app.call_function('notification-dispatch', jsonb_build_object('type', 'SWEEP', 'table', 'notifications', 'schema', 'public', 'batch_id', batch)) then
      sent := sent + 1;
    end if;
  end loop;
  return sent;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- The broker policy: a member reads their current role's audience topic; devices never touch it.
create or replace function mqtt.user_allows(org uuid, member uuid, rest text[], access text) returns boolean
language plpgsql stable set search_path = ''
as $$
declare
  reads boolean := access in ('read', 'subscribe');
begin
  if not mqtt.member_of(org, member) then
    return false;
  elsif array_to_string(rest, '/') ~ '[+#]' then
    return access = 'subscribe';          -- inside a member's organization; each delivery is judged as a read
  elsif rest = array['events'] then
    return reads;
  elsif cardinality(rest) = 3 and rest[1] = 'users' and rest[3] = 'notifications' then
    return reads and rest[2] = member::text;
  elsif cardinality(rest) = 3 and rest[1] = 'roles' and rest[3] = 'notifications' then
    return reads and exists (select 1 from public.organization_members m
                             where m.org_id = org and m.user_id = member and m.role::text = rest[2]);
  elsif rest[1] <> 'exercise' or cardinality(rest) not in (3, 6) or rest[2] !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    return false;
  elsif cardinality(rest) = 3 and rest[3] = 'control' then
    return exists (select 1 from public.exercises e where e.org_id = org and e.id = rest[2]::uuid)
       and (reads or 'exercises.control' = any (app.permissions_of(org, member)));
  elsif rest[3] = 'team' and rest[5] = 'feeds' and rest[4] ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' and rest[6] ~ '^[A-Za-z0-9_.-]{1,64}$' then
    return exists (select 1 from public.exercise_teams t
                   where t.org_id = org and t.id = rest[4]::uuid and t.exercise_id = rest[2]::uuid)
       and (exists (select 1 from public.exercise_team_members tm where tm.team_id = rest[4]::uuid and tm.user_id = member)
            or (reads and 'exercises.control' = any (app.permissions_of(org, member))));
  end if;
  return false;
end
$$;

create or replace function mqtt.device_allows(org uuid, key_id uuid, rest text[], access text) returns boolean
language plpgsql stable set search_path = ''
as $$
declare
  scopes text[];
  reads boolean := access in ('read', 'subscribe');
  topic text := array_to_string(rest, '/');
begin
  select app.api_key_scopes(k.id) into scopes
  from public.api_keys k join public.organizations o on o.id = k.org_id and o.deleted_at is null
  where k.id = key_id and k.org_id = org and k.revoked_at is null and (k.expires_at is null or k.expires_at > now())
    and exists (select 1 from unnest(k.mqtt_topics) p where app.mqtt_pattern_covers(p, topic));
  if scopes is null or cardinality(scopes) = 0 or rest[1] in ('users', 'roles') then
    return false;
  elsif topic ~ '[+#]' then
    return access = 'subscribe';          -- within its patterns; each delivery is judged as a read
  elsif rest = array['events'] then
    return reads and 'org.read' = any (scopes);
  elsif rest[1] <> 'exercise' then
    return true;                          -- the devices' own topics, as the key's patterns say
  elsif cardinality(rest) not in (3, 6) or rest[2] !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    return false;
  elsif cardinality(rest) = 3 and rest[3] = 'control' then
    return exists (select 1 from public.exercises e where e.org_id = org and e.id = rest[2]::uuid)
       and case when reads then 'org.read' = any (scopes) else 'exercises.control' = any (scopes) end;
  elsif rest[3] = 'team' and rest[5] = 'feeds' and rest[4] ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' and rest[6] ~ '^[A-Za-z0-9_.-]{1,64}$' then
    return exists (select 1 from public.exercise_teams t
                   where t.org_id = org and t.id = rest[4]::uuid and t.exercise_id = rest[2]::uuid)
       and 'exercises.control' = any (scopes);
  end if;
  return false;
end
$$;

create or replace function mqtt.emqx_acl(principal text) returns table (permission text, action text, topic text)
language plpgsql stable security definer set search_path = ''
as $$
declare
  pid uuid;
  key record;
  scopes text[];
begin
  if principal = 'service' then
    return query select 'allow'::text, 'all'::text, '#'::text;
    return;
  end if;
  if principal !~ '^(user|device):[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    return;
  end if;
  pid := split_part(principal, ':', 2)::uuid;
  return query select 'allow'::text, 'subscribe'::text, 'system/health'::text;

  if split_part(principal, ':', 1) = 'user' then
    return query
      with orgs as (
        select m.org_id, m.role, app.permissions_of(m.org_id, pid) as perms
        from public.organization_members m
        join public.organizations o on o.id = m.org_id and o.deleted_at is null
        join auth.users u on u.id = m.user_id and u.deleted_at is null
        where m.user_id = pid
      )
      select 'allow'::text, 'subscribe'::text, format('org/%s/events', o.org_id) from orgs o
      union all
      select 'allow', 'subscribe', format('org/%s/users/%s/notifications', o.org_id, pid) from orgs o
      union all
      select 'allow', 'subscribe', format('org/%s/roles/%s/notifications', o.org_id, o.role) from orgs o
      union all
      select 'allow', case when 'exercises.control' = any (o.perms) then 'all' else 'subscribe' end,
             format('org/%s/exercise/%s/control', o.org_id, e.id)
      from orgs o join public.exercises e on e.org_id = o.org_id
      union all
      -- team members read and write their team's feeds; exercise runners read every team's
      select 'allow', case when tm.user_id is not null then 'all' else 'subscribe' end,
             format('org/%s/exercise/%s/team/%s/feeds/+', o.org_id, t.exercise_id, t.id)
      from orgs o join public.exercise_teams t on t.org_id = o.org_id
      left join public.exercise_team_members tm on tm.team_id = t.id and tm.user_id = pid
      where tm.user_id is not null or 'exercises.control' = any (o.perms);
    return;
  end if;

  select k.* into key from public.api_keys k join public.organizations o on o.id = k.org_id and o.deleted_at is null
  where k.id = pid and k.revoked_at is null and (k.expires_at is null or k.expires_at > now());
  scopes := app.api_key_scopes(key.id);
  if key.id is null or coalesce(cardinality(scopes), 0) = 0 then
    return;
  end if;
  -- 1. the organization's own topics, where the key's patterns and scopes both allow them
  return query
    select 'allow'::text, 'subscribe'::text, format('org/%s/events', key.org_id)
    where 'org.read' = any (scopes) and exists (select 1 from unnest(key.mqtt_topics) p where app.mqtt_pattern_covers(p, 'events'));
  return query
    select 'allow'::text,
           case when 'org.read' = any (scopes) and 'exercises.control' = any (scopes) then 'all'
                when 'exercises.control' = any (scopes) then 'publish' else 'subscribe' end,
           format('org/%s/exercise/%s/control', key.org_id, e.id)
    from public.exercises e
    where e.org_id = key.org_id and ('org.read' = any (scopes) or 'exercises.control' = any (scopes))
      and exists (select 1 from unnest(key.mqtt_topics) p where app.mqtt_pattern_covers(p, format('exercise/%s/control', e.id)));
  return query
    select distinct 'allow'::text, 'all'::text, format('org/%s/%s', key.org_id, n.filter)
    from public.exercise_teams t
    cross join lateral unnest(key.mqtt_topics) p
    cross join lateral (select mqtt.narrow_pattern(p, format('exercise/%s/team/%s/feeds/+', t.exercise_id, t.id)) as filter) n
    where t.org_id = key.org_id and 'exercises.control' = any (scopes) and n.filter is not null;
  -- 2. nothing else of those, nor a user's or a role's notifications
  return query values ('deny'::text, 'all'::text, format('org/%s/events', key.org_id)),
                      ('deny', 'all', format('org/%s/users/#', key.org_id)),
                      ('deny', 'all', format('org/%s/roles/#', key.org_id)),
                      ('deny', 'all', format('org/%s/exercise/#', key.org_id));
  -- 3. the devices' own topics, as the key's patterns say
  return query select 'allow'::text, 'all'::text, format('org/%s/%s', key.org_id, p) from unnest(key.mqtt_topics) p;
end
$$;
