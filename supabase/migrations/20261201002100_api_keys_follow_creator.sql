-- API keys follow the person who made them, live a bounded time, and act on MQTT topics only as
-- far as their scopes allow (issue 16, items 3 and 4). Before, a key kept its scopes after its
-- creator left the organization, was demoted or lost a permission, keys never expired unless
-- asked to, and an org.read key given the pattern exercise/+/control published control messages,
-- read every team's feed and could write the service-only events topic.
-- - A key's effective scopes are its scopes that its creator still holds in its organization
--   (app.api_key_scopes), read live at every request, by the policy helpers, verify_api_key and the
--   broker: demoting the creator or revoking a permission cuts the key at its next request.
-- - When a member leaves (or is removed), the keys they created in that organization and their
--   open invitations there are revoked (revoked_by null: the database did it), so the broker
--   disconnects those keys at once.
-- - A new key expires after 90 days unless asked otherwise, and at most after 365 days. Keys
--   that never expired get 90 days from this migration.
-- - On MQTT a device is judged as a member holding its key's effective scopes would be, plus its
--   patterns: events are read with org.read and never written (service only); an exercise's
--   control topic is read with org.read and written with exercises.control, and only for an
--   exercise of the organization; a team's feeds need exercises.control and an existing team
--   (a key is no team member: it writes feeds as the exercise's controller). Users' topics stay
--   closed to devices; other topics under org/{org}/ are the devices' own, as their patterns say.

create function app.api_key_default_lifetime() returns interval
language sql immutable set search_path = '' as $$ select interval '90 days' $$;
create function app.api_key_max_lifetime() returns interval
language sql immutable set search_path = '' as $$ select interval '365 days' $$;

-- The scopes a key acts with: those of its scopes its creator still holds in its organization.
create function app.api_key_scopes(key_id uuid) returns text[]
language sql stable security definer set search_path = ''
as $$
  select coalesce(array(select s from unnest(k.scopes) s where s = any (app.permissions_of(k.org_id, k.created_by)) order by s), '{}')
  from public.api_keys k where k.id = key_id
$$;
revoke all on function app.api_key_scopes(uuid), app.api_key_default_lifetime(), app.api_key_max_lifetime() from public;
grant execute on function app.api_key_scopes(uuid) to authenticated, service_role;

create or replace function app.caller_permissions(org uuid) returns text[]
language plpgsql stable security definer set search_path = ''
as $$
declare
  uid uuid := (select auth.uid());
  job record;
begin
  if uid is not null then
    return app.permissions_of(org, uid);
  end if;
  select * into job from app.job_principal();
  if job.org_id is not null then
    return case when job.org_id = org and exists (select 1 from public.organizations o where o.id = org and o.deleted_at is null)
                then job.scopes else '{}' end;
  end if;
  return coalesce((select app.api_key_scopes(k.id) from public.api_keys k where k.id = app.current_api_key_id() and k.org_id = org), '{}');
end
$$;

create or replace function app.org_ids_with_permission(permission text) returns setof uuid
language plpgsql stable security definer set search_path = ''
as $$
declare
  uid uuid := (select auth.uid());
  job record;
begin
  if uid is not null then
    return query
      select m.org_id from public.organization_members m
      join public.organizations o on o.id = m.org_id and o.deleted_at is null
      left join public.member_permissions mp
        on mp.org_id = m.org_id and mp.user_id = m.user_id and mp.permission = org_ids_with_permission.permission
      where m.user_id = uid
        and coalesce(mp.granted, exists (select 1 from public.role_permissions rp
                                         where rp.role = m.role and rp.permission = org_ids_with_permission.permission));
    return;
  end if;
  select * into job from app.job_principal();
  if job.org_id is not null then
    return query select o.id from public.organizations o
                 where o.id = job.org_id and o.deleted_at is null and org_ids_with_permission.permission = any (job.scopes);
    return;
  end if;
  return query
    select k.org_id from public.api_keys k
    where k.id = app.current_api_key_id() and org_ids_with_permission.permission = any (app.api_key_scopes(k.id));
end
$$;


create or replace function public.create_api_key(org_id uuid, name text, scopes text[], expires_at timestamptz default null)
returns table (api_key_id uuid, api_key text, key_prefix text)
language plpgsql volatile security definer set search_path = ''
as $$
declare
  held text[] := app.caller_permissions(create_api_key.org_id);
  missing text;
  secret text := app.random_token('sk_');
begin
  if (select auth.uid()) is null or not 'api_keys.manage' = any (held) then
    raise exception 'api_keys.manage is required in organization %', create_api_key.org_id using errcode = '42501';
  end if;
  if create_api_key.expires_at is not null and create_api_key.expires_at <= now() then
    raise exception 'expires_at must be in the future' using errcode = '22023';
  end if;
  if create_api_key.expires_at > now() + app.api_key_max_lifetime() then
    raise exception 'an API key lives at most % days', extract(day from app.api_key_max_lifetime()) using errcode = '22023';
  end if;
  select s into missing from unnest(create_api_key.scopes) s where not s = any (held) limit 1;
  if missing is not null then
    raise exception 'cannot give a key the permission % that you do not hold', missing using errcode = 'TN025';
  end if;
  return query
  insert into public.api_keys (org_id, name, key_prefix, key_hash, scopes, expires_at)
  values (create_api_key.org_id, create_api_key.name, left(secret, 11), app.token_hash(secret), create_api_key.scopes,
          coalesce(create_api_key.expires_at, now() + app.api_key_default_lifetime()))
  returning id, secret, public.api_keys.key_prefix;
end
$$;


create or replace function public.verify_api_key(api_key text, required_scope text default null)
returns table (api_key_id uuid, org_id uuid, scopes text[])
language plpgsql volatile security definer set search_path = ''
as $$
declare
  k public.api_keys;
begin
  select * into k from public.api_keys where key_hash = app.token_hash(verify_api_key.api_key);
  if k.id is null or exists (select 1 from public.organizations o where o.id = k.org_id and o.deleted_at is not null) then
    raise exception 'invalid api key' using errcode = 'TN020';
  elsif k.revoked_at is not null then
    raise exception 'api key % was revoked', k.key_prefix using errcode = 'TN021';
  elsif k.expires_at is not null and k.expires_at <= now() then
    raise exception 'api key % has expired', k.key_prefix using errcode = 'TN022';
  elsif verify_api_key.required_scope is not null and not verify_api_key.required_scope = any (app.api_key_scopes(k.id)) then
    raise exception 'api key % lacks the scope %', k.key_prefix, verify_api_key.required_scope using errcode = 'TN023';
  end if;
  if k.last_used_at is null or k.last_used_at < now() - interval '1 minute' then
    update public.api_keys set last_used_at = now() where id = k.id;
  end if;
  return query select k.id, k.org_id, app.api_key_scopes(k.id);
end
$$;


update public.api_keys set expires_at = now() + app.api_key_default_lifetime() where expires_at is null and revoked_at is null;

-- A member who leaves takes their keys and open invitations in that organization with them.
create function app.revoke_departed_members_credentials() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.api_keys set revoked_at = now(), revoked_by = null
  where org_id = old.org_id and created_by = old.user_id and revoked_at is null;
  update public.invitations set revoked_at = now(), revoked_by = null
  where org_id = old.org_id and created_by = old.user_id and accepted_at is null and revoked_at is null;
  return null;
end
$$;
revoke all on function app.revoke_departed_members_credentials() from public;
create trigger revoke_departed_members_credentials after delete on public.organization_members
  for each row execute function app.revoke_departed_members_credentials();

-- ---------------------------------------------------------------------------------------------
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
  if scopes is null or cardinality(scopes) = 0 or rest[1] = 'users' then
    return false;
  elsif topic ~ '[+#]' then
    return access = 'subscribe';          -- within its patterns; each delivery is judged as a read
  elsif rest = array['events'] then
    return reads and 'org.read' = any (scopes);
  elsif rest[1] <> 'exercise' then
    return true;                          -- the devices' own topics, as the key's patterns say
  elsif cardinality(rest) not in (3, 6) or rest[2] !~ '^[0-9a-f-]{36}$' then
    return false;
  elsif cardinality(rest) = 3 and rest[3] = 'control' then
    return exists (select 1 from public.exercises e where e.org_id = org and e.id = rest[2]::uuid)
       and case when reads then 'org.read' = any (scopes) else 'exercises.control' = any (scopes) end;
  elsif rest[3] = 'team' and rest[5] = 'feeds' and rest[4] ~ '^[0-9a-f-]{36}$' and rest[6] ~ '^[A-Za-z0-9_.-]{1,64}$' then
    return exists (select 1 from public.exercise_teams t
                   where t.org_id = org and t.id = rest[4]::uuid and t.exercise_id = rest[2]::uuid)
       and 'exercises.control' = any (scopes);
  end if;
  return false;
end
$$;
revoke all on function mqtt.device_allows(uuid, uuid, text[], text) from public;
create or replace function mqtt.allows(client_kind text, client_id uuid, topic text, access text) returns boolean
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

drop function mqtt.device_allows(uuid, uuid, text[]);
