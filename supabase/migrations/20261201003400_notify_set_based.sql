-- The fan-out of app.notify, faster for a large audience (issue 19, item 1), with the same
-- answers: `npm run bench:notify` (10,000 members, e-mail off for all) spent most of the send in
-- two places.
-- - Each recipient's preference was a correlated subquery per recipient and channel (20,000
--   probes, ~175 ms of ~375 ms); it is now read once for the organization and hash-joined.
-- - A channel a member turned off made a delivery row with status `skipped` (10,000 rows no one
--   acts on). It now makes none: a notification's deliveries are the channels it goes out on.
--   Existing `skipped` rows stay valid; nothing makes new ones.

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

  -- The channels members turned off for this type, read once for the organization as a set of
  -- '<user id>/<channel>' keys (a preference for the type wins over one for '*'). A set in a
  -- variable keeps each recipient's lookup cheap whatever the planner believes about the tables: a
  -- join here meets a nested loop over 10,000 x 10,000 rows when the organization is new to the
  -- statistics (measured: 10 s instead of 12 ms).
  select coalesce(jsonb_object_agg(c.user_id::text || '/' || c.channel, true) filter (where not c.enabled), '{}')
  into turned_off
  from (select distinct on (p.user_id, p.channel) p.user_id, p.channel, p.enabled
        from public.notification_preferences p
        where p.org_id = org and p.type in (kind.key, '*')
        order by p.user_id, p.channel, p.type = '*') c;

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
  ), planned as (
    select made.id, made.recipient_id, c.channel, s as settings, s.quiet_start is not null as has_quiet_hours,
           c.channel = 'email' and prio in ('low', 'normal') and coalesce(s.email_digest, 'off') <> 'off' as digest
    from made cross join unnest(kind.default_channels) c(channel)
    -- looked up per recipient (a primary key probe): most members have no settings
    left join public.notification_settings s on s.org_id = org and s.user_id = made.recipient_id
    where not turned_off ? (made.recipient_id::text || '/' || c.channel)
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
