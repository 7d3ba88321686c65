-- The MQTT broker's policy: who may connect, and who may publish, subscribe to or receive a topic.
-- The broker plugin (broker/plugin) verifies access tokens itself and asks these functions, as
-- the role mqtt_broker, for everything that needs tenancy data; it caches the answers and drops
-- its cache when a NOTIFY on channel `mqtt_acl` says the data behind them changed.
--
-- Topics (docs/architecture.md):
--   system/health                                          service writes; every client reads
--   org/{org}/events                                       members read; service writes
--   org/{org}/users/{user}/notifications                   that user reads; service writes
--   org/{org}/exercise/{exercise}/control                  members read; exercises.control writes
--   org/{org}/exercise/{exercise}/team/{team}/feeds/{type} team members read and write;
--                                                          exercises.control reads
-- Devices (API keys) publish and subscribe within their organization, on the topic patterns
-- their key carries (`mqtt_topics`, relative to org/{org}/), never on a user's notifications.
-- A subscription is judged as a filter: the organization level must name an organization the
-- client belongs to (no `+` or `#` there, so `#` and `org/+/events` are refused); inside it a
-- member may use wildcards, and every message delivered is judged again as a read of its topic.
-- Errors: MQ001 a key without MQTT topics, MQ002 a bad topic pattern.

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'mqtt_broker') then
    create role mqtt_broker nologin noinherit;
  end if;
end
$$;
comment on role mqtt_broker is 'The MQTT broker plugin: may only call the functions of schema mqtt. Give it LOGIN and a password where a broker runs.';

create schema mqtt;
comment on schema mqtt is 'Authentication and ACL decisions for the MQTT broker; called by the role mqtt_broker only.';
revoke all on schema mqtt from public;
grant usage on schema mqtt to mqtt_broker;

-- ---------------------------------------------------------------------------------------------
-- Topic patterns (in app: API-key constraints and RPCs use them too). A pattern (or a subscription filter) is a topic whose levels may be `+` (one
-- level) or, last, `#` (any rest); a pattern covers a filter when every topic the filter matches
-- is matched by the pattern, which for a topic without wildcards is plain matching.
create function app.is_mqtt_topic_pattern(pattern text) returns boolean
language sql immutable set search_path = ''
as $$
  select pattern ~ '^(?:(?:[A-Za-z0-9_.-]{1,64}|\+)/){0,15}(?:[A-Za-z0-9_.-]{1,64}|\+|#)$'
$$;

create function app.mqtt_pattern_covers(pattern text, filter text) returns boolean
language plpgsql immutable set search_path = ''
as $$
declare
  p text[] := string_to_array(pattern, '/');
  f text[] := string_to_array(filter, '/');
  i integer;
begin
  for i in 1 .. greatest(cardinality(p), cardinality(f)) loop
    if p[i] = '#' then
      return true;                        -- the rest, including nothing more
    elsif i > cardinality(p) or i > cardinality(f) or f[i] = '#' then
      return false;                       -- one is longer, or the filter reaches further than the pattern
    elsif p[i] = '+' then
      continue;                           -- any one level, `+` included
    elsif p[i] is distinct from f[i] then
      return false;                       -- a literal level covers only itself
    end if;
  end loop;
  return true;
end
$$;

create function app.are_mqtt_topic_patterns(patterns text[]) returns boolean
language sql immutable set search_path = ''
as $$
  select coalesce(bool_and(app.is_mqtt_topic_pattern(t)), true) from unnest(patterns) t
$$;

-- ---------------------------------------------------------------------------------------------
-- Device credentials: an API key's MQTT topic patterns, set by the organization's key managers.
alter table public.api_keys add column mqtt_topics text[] not null default '{}';
alter table public.api_keys add constraint api_keys_mqtt_topics_check
  check (cardinality(mqtt_topics) <= 32 and app.are_mqtt_topic_patterns(mqtt_topics));
grant select (mqtt_topics) on public.api_keys to authenticated;

create function public.set_api_key_mqtt_topics(api_key_id uuid, topics text[]) returns text[]
language plpgsql volatile security definer set search_path = ''
as $$
declare
  key_org uuid;
  bad text;
begin
  select k.org_id into key_org from public.api_keys k where k.id = set_api_key_mqtt_topics.api_key_id;
  if key_org is null or not app.has_permission(key_org, 'api_keys.manage') or (select auth.uid()) is null then
    raise exception 'api key % not found', set_api_key_mqtt_topics.api_key_id using errcode = 'TN026';
  end if;
  select t into bad from unnest(topics) t where not app.is_mqtt_topic_pattern(t) or t ~ '^users(/|$)' limit 1;
  if bad is not null or topics is null or cardinality(topics) > 32 then
    raise exception 'bad MQTT topic pattern %: levels of letters, digits, _ . - or +, # only last; relative to org/{org_id}/; not users/...', coalesce(bad, '(none)')
      using errcode = 'MQ002';
  end if;
  update public.api_keys set mqtt_topics = array(select distinct t from unnest(topics) t order by t)
  where id = set_api_key_mqtt_topics.api_key_id
  returning mqtt_topics into topics;
  return topics;
end
$$;
revoke all on function public.set_api_key_mqtt_topics(uuid, text[]) from public, anon;
grant execute on function public.set_api_key_mqtt_topics(uuid, text[]) to authenticated;

-- ---------------------------------------------------------------------------------------------
-- Connecting. A user's token is verified by the broker; the user must still exist and not be
-- banned. A device presents its API key, which must be live and carry MQTT topics.
create function mqtt.user_may_connect(user_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select exists (select 1 from auth.users u
                 where u.id = user_may_connect.user_id and u.deleted_at is null
                   and (u.banned_until is null or u.banned_until <= now()))
$$;

create function mqtt.connect_device(api_key text)
returns table (api_key_id uuid, org_id uuid, expires_at timestamptz)
language plpgsql volatile security definer set search_path = ''
as $$
declare
  verified record;
begin
  select * into verified from public.verify_api_key(connect_device.api_key);  -- raises TN020-TN022
  return query
    select k.id, k.org_id, k.expires_at from public.api_keys k
    where k.id = verified.api_key_id and cardinality(k.mqtt_topics) > 0;
  if not found then
    raise exception 'api key has no MQTT topics' using errcode = 'MQ001';
  end if;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Access. client_kind is 'user' (client_id = auth.users.id), 'device' (client_id = api_keys.id)
-- or 'service'; access is 'read' (a message is delivered), 'write' (publish) or 'subscribe'.
create function mqtt.member_of(org uuid, member uuid) returns boolean
language sql stable set search_path = ''
as $$
  select exists (select 1 from public.organization_members m
                 join public.organizations o on o.id = m.org_id and o.deleted_at is null
                 join auth.users u on u.id = m.user_id and u.deleted_at is null
                 where m.org_id = org and m.user_id = member)
$$;

create function mqtt.user_allows(org uuid, member uuid, rest text[], access text) returns boolean
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
  elsif rest[1] <> 'exercise' or cardinality(rest) not in (3, 6) or rest[2] !~ '^[0-9a-f-]{36}$' then
    return false;
  elsif cardinality(rest) = 3 and rest[3] = 'control' then
    return exists (select 1 from public.exercises e where e.org_id = org and e.id = rest[2]::uuid)
       and (reads or 'exercises.control' = any (app.permissions_of(org, member)));
  elsif rest[3] = 'team' and rest[5] = 'feeds' and rest[4] ~ '^[0-9a-f-]{36}$' and rest[6] ~ '^[A-Za-z0-9_.-]{1,64}$' then
    return exists (select 1 from public.exercise_teams t
                   where t.org_id = org and t.id = rest[4]::uuid and t.exercise_id = rest[2]::uuid)
       and (exists (select 1 from public.exercise_team_members tm where tm.team_id = rest[4]::uuid and tm.user_id = member)
            or (reads and 'exercises.control' = any (app.permissions_of(org, member))));
  end if;
  return false;
end
$$;

create function mqtt.device_allows(org uuid, key_id uuid, rest text[]) returns boolean
language sql stable set search_path = ''
as $$
  select rest[1] <> 'users' and exists (
    select 1 from public.api_keys k
    join public.organizations o on o.id = k.org_id and o.deleted_at is null
    where k.id = key_id and k.org_id = org and k.revoked_at is null and (k.expires_at is null or k.expires_at > now())
      and exists (select 1 from unnest(k.mqtt_topics) p where app.mqtt_pattern_covers(p, array_to_string(rest, '/'))))
$$;

create function mqtt.allows(client_kind text, client_id uuid, topic text, access text) returns boolean
language plpgsql stable security definer set search_path = ''
as $$
declare
  levels text[] := string_to_array(topic, '/');
begin
  if access not in ('read', 'write', 'subscribe') or client_kind not in ('user', 'device', 'service') then
    return false;
  elsif client_kind = 'service' then
    return true;
  elsif topic = 'system/health' then
    return access <> 'write';
  elsif levels[1] <> 'org' or cardinality(levels) < 3 or levels[2] !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    return false;
  elsif client_kind = 'user' then
    return mqtt.user_allows(levels[2]::uuid, client_id, levels[3:], access);
  else
    return mqtt.device_allows(levels[2]::uuid, client_id, levels[3:]);
  end if;
end
$$;

revoke all on function mqtt.user_may_connect(uuid), mqtt.connect_device(text), mqtt.member_of(uuid, uuid),
                       mqtt.user_allows(uuid, uuid, text[], text), mqtt.device_allows(uuid, uuid, text[]),
                       mqtt.allows(text, uuid, text, text) from public;
grant execute on function mqtt.user_may_connect(uuid), mqtt.connect_device(text), mqtt.allows(text, uuid, text, text) to mqtt_broker;

-- ---------------------------------------------------------------------------------------------
-- Invalidation: the broker caches decisions, so every change to the data behind them tells it
-- (after commit) to drop its cache; revoked keys and deleted or banned users are also named, so
-- the broker disconnects them.
create function app.notify_mqtt_acl_changed() returns trigger
language plpgsql set search_path = ''
as $$
begin
  perform pg_notify('mqtt_acl', 'flush');
  return null;
end
$$;

create function app.notify_mqtt_key_revoked() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if tg_op = 'DELETE' or new.revoked_at is not null then
    perform pg_notify('mqtt_acl', 'kick device:' || old.id);
  end if;
  return null;
end
$$;

create function app.notify_mqtt_user_revoked() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if tg_op = 'DELETE' or new.deleted_at is not null or new.banned_until > now() then
    perform pg_notify('mqtt_acl', 'kick user:' || old.id);
  end if;
  return null;
end
$$;
revoke all on function app.notify_mqtt_acl_changed(), app.notify_mqtt_key_revoked(), app.notify_mqtt_user_revoked() from public;

create trigger notify_mqtt_acl after insert or update or delete on public.organization_members
  for each statement execute function app.notify_mqtt_acl_changed();
create trigger notify_mqtt_acl after insert or update or delete on public.member_permissions
  for each statement execute function app.notify_mqtt_acl_changed();
create trigger notify_mqtt_acl after update of deleted_at or delete on public.organizations
  for each statement execute function app.notify_mqtt_acl_changed();
create trigger notify_mqtt_acl after insert or update or delete on public.exercises
  for each statement execute function app.notify_mqtt_acl_changed();
create trigger notify_mqtt_acl after insert or update or delete on public.exercise_teams
  for each statement execute function app.notify_mqtt_acl_changed();
create trigger notify_mqtt_acl after insert or update or delete on public.exercise_team_members
  for each statement execute function app.notify_mqtt_acl_changed();
create trigger notify_mqtt_acl after update of revoked_at, expires_at, mqtt_topics or delete on public.api_keys
  for each statement execute function app.notify_mqtt_acl_changed();
create trigger notify_mqtt_key_revoked after update of revoked_at or delete on public.api_keys
  for each row execute function app.notify_mqtt_key_revoked();
create trigger notify_mqtt_acl after update of deleted_at, banned_until or delete on auth.users
  for each statement execute function app.notify_mqtt_acl_changed();
create trigger notify_mqtt_user_revoked after update of deleted_at, banned_until or delete on auth.users
  for each row execute function app.notify_mqtt_user_revoked();
