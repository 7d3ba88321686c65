-- The MQTT broker's policy: who may connect, and who may publish, subscribe to or receive a topic.
-- The broker plugin (broker/plugin) verifies access tokens itself and asks these functions, as
-- the role mqtt_broker, for everything that needs tenancy data; it caches the answers and drops
-- those a NOTIFY on channel `mqtt_acl` says changed (an organization's, a principal's, or all).
--
-- Topics (docs/architecture.md):
--   system/health                                          service writes; every client reads
--   org/{org}/events                                       members read; service writes
--   org/{org}/users/{user}/notifications                   that user reads; service writes
--   org/{org}/roles/{role}/notifications                   the role's members read; service writes
--   org/{org}/exercise/{exercise}/control                  members read; exercises.control writes
--   org/{org}/exercise/{exercise}/team/{team}/feeds/{type} team members read and write;
--                                                          exercises.control reads
-- Devices (API keys) act on the topic patterns their key carries (`mqtt_topics`, relative to
-- org/{org}/), and only as far as the key's effective scopes allow: events are read with org.read
-- and never written; an exercise's control topic is read with org.read and written with
-- exercises.control; a team's feeds need exercises.control (a key is no team member: it writes
-- feeds as the exercise's controller); users' and roles' notifications stay closed to devices;
-- other topics under org/{org}/ are the devices' own, as their patterns say.
-- A subscription is judged as a filter: the organization level must name an organization the
-- client belongs to (no `+` or `#` there, so `#` and `org/+/events` are refused); inside it a
-- member may use wildcards, and every message delivered is judged again as a read of its topic.
-- Exercise and team levels are matched as Postgres prints a uuid, so every topic gets an answer
-- (a cast that failed would raise, and the broker cannot cache an error).
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

-- A member reads their current role's audience topic (notifications sent to a role).
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

create function mqtt.device_allows(org uuid, key_id uuid, rest text[], access text) returns boolean
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
    return mqtt.device_allows(levels[2]::uuid, client_id, levels[3:], access);
  end if;
end
$$;

revoke all on function mqtt.user_may_connect(uuid), mqtt.connect_device(text), mqtt.member_of(uuid, uuid),
                       mqtt.user_allows(uuid, uuid, text[], text), mqtt.device_allows(uuid, uuid, text[], text),
                       mqtt.allows(text, uuid, text, text) from public;
grant execute on function mqtt.user_may_connect(uuid), mqtt.connect_device(text), mqtt.allows(text, uuid, text, text) to mqtt_broker;

-- ---------------------------------------------------------------------------------------------
-- The same policy as rules a clustered broker reads. EMQX's PostgreSQL authorizer reads a
-- principal's rules as rows of (permission, action, topic), first match wins, no match denied:
--   SELECT permission, action, topic FROM mqtt.emqx_acl(${username})
-- mqtt.emqx_acl gives each principal ('user:<id>', 'device:<api key id>', 'service') exactly the
-- answers mqtt.allows gives for publishing to and subscribing to a topic (pgTAP
-- 36_mqtt_emqx_rules compares them over a generated sample). It lists concrete topics (the
-- organization's exercises and teams as they are now), so the cluster must re-read a principal's
-- rules when the data behind them changes (EMQX caches authorization; keep its cache TTL as short
-- as the plugin's). Differences by construction, documented in docs/scaling.md: EMQX does not
-- re-check each delivery, so a member's wildcard subscription inside the organization
-- (org/<org>/#), which Mosquitto allows and then filters message by message, is refused there;
-- members subscribe to the listed topics instead.

-- A pattern narrowed to a topic template (concrete levels, and '+' where any value is meant): the
-- filter both match, or null when they have nothing in common.
create function mqtt.narrow_pattern(pattern text, template text) returns text
language plpgsql immutable set search_path = ''
as $$
declare
  p text[] := string_to_array(pattern, '/');
  t text[] := string_to_array(template, '/');
  out text[] := '{}';
  i integer;
begin
  for i in 1 .. greatest(cardinality(p), cardinality(t)) loop
    if p[i] = '#' then
      return array_to_string(out || t[i:], '/');
    elsif i > cardinality(p) or i > cardinality(t) then
      return null;
    elsif p[i] = '+' then
      out := out || t[i];
    elsif t[i] = '+' or p[i] = t[i] then
      out := out || p[i];
    else
      return null;
    end if;
  end loop;
  return array_to_string(out, '/');
end
$$;

create function mqtt.emqx_acl(principal text) returns table (permission text, action text, topic text)
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
revoke all on function mqtt.narrow_pattern(text, text), mqtt.emqx_acl(text) from public;
grant execute on function mqtt.emqx_acl(text) to mqtt_broker;

-- ---------------------------------------------------------------------------------------------
-- Invalidation: the broker caches decisions, so every change to the data behind them tells it
-- (after commit) which answers to drop: 'org <id>' for the answers about an organization's topics
-- (memberships, permissions, the organization, its exercises and teams: every answer about
-- org/<id>/... reads only these, the asking user's own row and the asking key's own row),
-- 'principal user:<id>' / 'principal device:<id>' for one principal's answers (a user deleted or
-- banned, a key changed), 'flush' for all of them (role defaults, which every organization reads).
-- Naming the organization keeps one tenant's changes, made as often as it likes, from emptying
-- every tenant's cache on the broker's single thread. Revoked keys and deleted or banned users are
-- named with 'kick', so the broker also disconnects them. The broker drops everything for a
-- payload it cannot read.
create function app.notify_mqtt_acl_changed() returns trigger
language plpgsql set search_path = ''
as $$
begin
  perform pg_notify('mqtt_acl', 'flush');
  return null;
end
$$;

-- Statement-level with transition tables named new_rows and old_rows (one trigger per event, as
-- Postgres requires): one NOTIFY per organization the statement touched, before or after; past
-- 100 of them one flush, cheaper for the broker than a queue of hundreds.
create function app.notify_mqtt_acl_orgs() returns trigger
language plpgsql set search_path = ''
as $$
declare
  orgs uuid[];
  org uuid;
begin
  if tg_op = 'INSERT' then
    select array_agg(distinct n.org_id) into orgs from new_rows n;
  elsif tg_op = 'DELETE' then
    select array_agg(distinct o.org_id) into orgs from old_rows o;
  else
    select array_agg(distinct x.org_id) into orgs
    from (select n.org_id from new_rows n union all select o.org_id from old_rows o) x;
  end if;
  if cardinality(orgs) > 100 then
    perform pg_notify('mqtt_acl', 'flush');
  else
    foreach org in array coalesce(orgs, '{}') loop
      perform pg_notify('mqtt_acl', 'org ' || org);
    end loop;
  end if;
  return null;
end
$$;

-- Row-level, for triggers on columns (transition tables cannot be had there).
create function app.notify_mqtt_organization_changed() returns trigger
language plpgsql set search_path = ''
as $$
begin
  perform pg_notify('mqtt_acl', 'org ' || old.id);
  return null;
end
$$;

create function app.notify_mqtt_key_changed() returns trigger
language plpgsql set search_path = ''
as $$
begin
  perform pg_notify('mqtt_acl', 'principal device:' || old.id);
  return null;
end
$$;

create function app.notify_mqtt_user_changed() returns trigger
language plpgsql set search_path = ''
as $$
begin
  perform pg_notify('mqtt_acl', 'principal user:' || old.id);
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
revoke all on function app.notify_mqtt_acl_changed(), app.notify_mqtt_acl_orgs(), app.notify_mqtt_organization_changed(),
                       app.notify_mqtt_key_changed(), app.notify_mqtt_user_changed(), app.notify_mqtt_key_revoked(),
                       app.notify_mqtt_user_revoked() from public;

create trigger notify_mqtt_acl_insert after insert on public.organization_members
  referencing new table as new_rows for each statement execute function app.notify_mqtt_acl_orgs();
create trigger notify_mqtt_acl_update after update on public.organization_members
  referencing new table as new_rows old table as old_rows for each statement execute function app.notify_mqtt_acl_orgs();
create trigger notify_mqtt_acl_delete after delete on public.organization_members
  referencing old table as old_rows for each statement execute function app.notify_mqtt_acl_orgs();
create trigger notify_mqtt_acl_insert after insert on public.member_permissions
  referencing new table as new_rows for each statement execute function app.notify_mqtt_acl_orgs();
create trigger notify_mqtt_acl_update after update on public.member_permissions
  referencing new table as new_rows old table as old_rows for each statement execute function app.notify_mqtt_acl_orgs();
create trigger notify_mqtt_acl_delete after delete on public.member_permissions
  referencing old table as old_rows for each statement execute function app.notify_mqtt_acl_orgs();
create trigger notify_mqtt_acl after update of deleted_at or delete on public.organizations
  for each row execute function app.notify_mqtt_organization_changed();
create trigger notify_mqtt_acl_insert after insert on public.exercises
  referencing new table as new_rows for each statement execute function app.notify_mqtt_acl_orgs();
create trigger notify_mqtt_acl_update after update on public.exercises
  referencing new table as new_rows old table as old_rows for each statement execute function app.notify_mqtt_acl_orgs();
create trigger notify_mqtt_acl_delete after delete on public.exercises
  referencing old table as old_rows for each statement execute function app.notify_mqtt_acl_orgs();
create trigger notify_mqtt_acl_insert after insert on public.exercise_teams
  referencing new table as new_rows for each statement execute function app.notify_mqtt_acl_orgs();
create trigger notify_mqtt_acl_update after update on public.exercise_teams
  referencing new table as new_rows old table as old_rows for each statement execute function app.notify_mqtt_acl_orgs();
create trigger notify_mqtt_acl_delete after delete on public.exercise_teams
  referencing old table as old_rows for each statement execute function app.notify_mqtt_acl_orgs();
create trigger notify_mqtt_acl_insert after insert on public.exercise_team_members
  referencing new table as new_rows for each statement execute function app.notify_mqtt_acl_orgs();
create trigger notify_mqtt_acl_update after update on public.exercise_team_members
  referencing new table as new_rows old table as old_rows for each statement execute function app.notify_mqtt_acl_orgs();
create trigger notify_mqtt_acl_delete after delete on public.exercise_team_members
  referencing old table as old_rows for each statement execute function app.notify_mqtt_acl_orgs();
create trigger notify_mqtt_acl after insert or update or delete on public.role_permissions
  for each statement execute function app.notify_mqtt_acl_changed();
create trigger notify_mqtt_acl after update of revoked_at, expires_at, mqtt_topics, scopes, created_by or delete on public.api_keys
  for each row execute function app.notify_mqtt_key_changed();
create trigger notify_mqtt_key_revoked after update of revoked_at or delete on public.api_keys
  for each row execute function app.notify_mqtt_key_revoked();
create trigger notify_mqtt_acl after update of deleted_at, banned_until or delete on auth.users
  for each row execute function app.notify_mqtt_user_changed();
create trigger notify_mqtt_user_revoked after update of deleted_at, banned_until or delete on auth.users
  for each row execute function app.notify_mqtt_user_revoked();
