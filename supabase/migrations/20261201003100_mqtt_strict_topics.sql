-- The broker's policy answers every topic, junk included (issue 16, item 16). A level of 36
-- dashes passed the loose '^[0-9a-f-]{36}$' check and then failed its cast to uuid, so
-- mqtt.allows raised instead of answering; the broker could not cache an error, and every such
-- packet cost a Postgres round trip on its single thread. The exercise and team levels are now
-- matched as Postgres prints a uuid, so the cast never fails. (The broker plugin also refuses
-- malformed topics itself, before asking: broker/plugin/topic_shape.c.)

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
  if scopes is null or cardinality(scopes) = 0 or rest[1] = 'users' then
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
