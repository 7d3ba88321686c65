-- API keys: scopes checked against the permission catalog, visible to key managers without their
-- hash, created with scopes the creator holds and shown once, revoked, and verified by servers
-- that receive one (functions, the MQTT broker). The table is in 010_tenancy_core.sql. A key acts
-- with the scopes its creator still holds (app.api_key_scopes), and the keys of a member who
-- leaves are revoked (app.revoke_departed_members_credentials in 050_invitations.sql).

-- Scopes are permission keys; arrays cannot carry foreign keys, so a trigger checks them.
create function app.check_api_key_scopes() returns trigger
language plpgsql set search_path = ''
as $$
declare
  unknown text;
begin
  select s into unknown from unnest(new.scopes) s
  where not exists (select 1 from public.permissions p where p.key = s) limit 1;
  if unknown is not null then
    raise exception 'unknown permission %', unknown using errcode = 'TN024';
  end if;
  new.scopes := array(select distinct s from unnest(new.scopes) s order by s);
  return new;
end
$$;
revoke all on function app.check_api_key_scopes() from public;
create trigger check_scopes before insert or update of scopes on public.api_keys
  for each row execute function app.check_api_key_scopes();

-- ---------------------------------------------------------------------------------------------
alter table public.api_keys enable row level security;
revoke all on public.api_keys from anon, authenticated;
-- The hash never leaves the database.
grant select (id, org_id, name, key_prefix, scopes, expires_at, last_used_at, revoked_at, revoked_by,
              created_at, updated_at, created_by, updated_by, mqtt_topics) on public.api_keys to authenticated;

create policy "key managers see their organization's keys" on public.api_keys
  for select to authenticated using (org_id = any (array(select app.org_ids_with_permission('api_keys.manage'))));

-- ---------------------------------------------------------------------------------------------
-- RPCs
create function app.random_token(prefix text) returns text
language sql volatile set search_path = ''
as $$
  select prefix || translate(encode(extensions.gen_random_bytes(24), 'base64'), '+/', '-_')
$$;

create function app.token_hash(token text) returns bytea
language sql immutable set search_path = ''
as $$ select sha256(convert_to(token, 'UTF8')) $$;

-- A new key lives 90 days unless asked otherwise, and at most 365.
create function app.api_key_default_lifetime() returns interval
language sql immutable set search_path = '' as $$ select interval '90 days' $$;
create function app.api_key_max_lifetime() returns interval
language sql immutable set search_path = '' as $$ select interval '365 days' $$;

revoke all on function app.random_token(text), app.token_hash(text), app.api_key_default_lifetime(), app.api_key_max_lifetime()
  from public;

-- Creates a key with scopes the caller holds; the returned api_key is never shown again.
create function public.create_api_key(org_id uuid, name text, scopes text[], expires_at timestamptz default null)
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

create function public.revoke_api_key(api_key_id uuid) returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
  key_org uuid;
begin
  select k.org_id into key_org from public.api_keys k where k.id = revoke_api_key.api_key_id;
  if key_org is null or not app.has_permission(key_org, 'api_keys.manage') then
    raise exception 'api key % not found', revoke_api_key.api_key_id using errcode = 'TN026';
  end if;
  update public.api_keys set revoked_at = now(), revoked_by = (select auth.uid())
  where id = revoke_api_key.api_key_id and revoked_at is null;
end
$$;

-- For servers that receive a key (functions, the MQTT broker): which organization and effective
-- scopes it stands for. Raises TN020 unknown, TN021 revoked, TN022 expired, TN023 without the
-- required scope. last_used_at is written at most once a minute per key to keep verification cheap.
create function public.verify_api_key(api_key text, required_scope text default null)
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

-- Device credentials: an API key's MQTT topic patterns, set by the organization's key managers.
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

revoke all on function public.create_api_key(uuid, text, text[], timestamptz), public.revoke_api_key(uuid),
                       public.verify_api_key(text, text), public.set_api_key_mqtt_topics(uuid, text[]) from public, anon;
grant execute on function public.create_api_key(uuid, text, text[], timestamptz), public.revoke_api_key(uuid),
                          public.set_api_key_mqtt_topics(uuid, text[]) to authenticated;
revoke execute on function public.verify_api_key(text, text) from authenticated;
grant execute on function public.verify_api_key(text, text) to service_role;
