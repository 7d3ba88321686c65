-- The broker policy, readable by a clustered broker (issue 19, item 4). Mosquitto is one node; a
-- customer who outgrows it moves to a cluster such as EMQX, whose PostgreSQL authorizer reads a
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
        select m.org_id, app.permissions_of(m.org_id, pid) as perms
        from public.organization_members m
        join public.organizations o on o.id = m.org_id and o.deleted_at is null
        join auth.users u on u.id = m.user_id and u.deleted_at is null
        where m.user_id = pid
      )
      select 'allow'::text, 'subscribe'::text, format('org/%s/events', o.org_id) from orgs o
      union all
      select 'allow', 'subscribe', format('org/%s/users/%s/notifications', o.org_id, pid) from orgs o
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
  -- 2. nothing else of those, nor a user's notifications
  return query values ('deny'::text, 'all'::text, format('org/%s/events', key.org_id)),
                      ('deny', 'all', format('org/%s/users/#', key.org_id)),
                      ('deny', 'all', format('org/%s/exercise/#', key.org_id));
  -- 3. the devices' own topics, as the key's patterns say
  return query select 'allow'::text, 'all'::text, format('org/%s/%s', key.org_id, p) from unnest(key.mqtt_topics) p;
end
$$;
revoke all on function mqtt.narrow_pattern(text, text), mqtt.emqx_acl(text) from public;
grant execute on function mqtt.emqx_acl(text) to mqtt_broker;
