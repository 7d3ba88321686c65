-- The audience decision of app.notify (migration 003600) as a named helper, with one check made
-- cheaper (issue 19, item 1). "No notification with the idempotency key exists yet" looked for
-- the key anywhere in the organization: no index leads with (org_id, idempotency_key), so the
-- planner read every notification of the organization (a sequential scan, or all of its entries
-- in notifications_org_idx), a cost that grows with the organization's history. It now asks,
-- per recipient, the unique index (org_id, recipient_id, idempotency_key) that makes the key
-- idempotent in the first place: a recipient-bounded cost, and the precise question (whether a
-- recipient of this send already has it; another member's row with the same key is not one).

-- Whether a send goes out over MQTT once per role instead of once per recipient: the type opts
-- in, the send is to a role or to everyone, and sharing the message changes nothing a recipient
-- chose (no one turned MQTT off for the type, no one is in quiet hours unless the send is urgent,
-- no one already has a notification with the idempotency key).
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
