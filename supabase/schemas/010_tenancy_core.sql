-- Tenancy core: subscription tiers and their limits, organizations, memberships with one role
-- each, the permission catalog with role defaults and per-member grants/revokes, each user's
-- active organization, and API keys (an organization's machine principals). The helpers that
-- answer "who is calling and what may they do" are in 020_policy_helpers.sql; the rules and RPCs
-- of these tables in 030_tenancy_rules.sql.
-- Errors raised by the tenancy files use stable SQLSTATEs documented in docs/errors.md (class TN).

create schema if not exists app;
comment on schema app is 'Helpers for policies and RPCs; not exposed through the API.';
grant usage on schema app to anon, authenticated, service_role, supabase_auth_admin;

create type public.org_role as enum ('owner', 'admin', 'teacher', 'student');
create type public.subscription_tier as enum ('free', 'basic', 'professional', 'enterprise', 'education');

-- ---------------------------------------------------------------------------------------------
-- Tiers and their limits (read by everyone signed in; changed by migrations only). Members,
-- storage and file size (tenancy, files), notifications per minute (notification-dispatch),
-- analytics retention, events per minute and per day (analytics-ingest), API calls per day (usage).
create table public.subscription_tiers (
  tier public.subscription_tier primary key,
  max_members integer not null check (max_members > 0),
  storage_bytes bigint not null check (storage_bytes >= 0),
  max_file_size_bytes bigint not null check (max_file_size_bytes > 0),
  api_requests_per_minute integer not null check (api_requests_per_minute > 0),
  retention_days integer not null check (retention_days > 0),
  notifications_per_minute integer not null default 600 check (notifications_per_minute > 0),
  analytics_retention_days integer not null default 30 check (analytics_retention_days between 1 and 3650),
  events_per_minute integer not null default 600 check (events_per_minute > 0),
  events_per_day bigint not null default 100000 check (events_per_day > 0),
  api_calls_per_day bigint not null default 10000 check (api_calls_per_day > 0)
);
alter table public.subscription_tiers enable row level security;
revoke all on public.subscription_tiers from anon, authenticated;
grant select on public.subscription_tiers to authenticated;
create policy "signed-in users read the tier catalog" on public.subscription_tiers
  for select to authenticated using (true);

-- ---------------------------------------------------------------------------------------------
create table public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(btrim(name)) between 1 and 200),
  slug text not null unique check (slug ~ '^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$'),
  tier public.subscription_tier not null default 'free' references public.subscription_tiers (tier),
  coppa boolean not null default false,
  ferpa boolean not null default false,
  data_region text not null default 'eu' check (data_region in ('eu', 'us', 'uk', 'ca', 'au')),
  settings jsonb not null default '{}'::jsonb check (jsonb_typeof(settings) = 'object' and pg_column_size(settings) <= 65536),
  deleted_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid references auth.users (id) on delete set null,
  updated_by uuid references auth.users (id) on delete set null
);
create index organizations_live_idx on public.organizations (id) where deleted_at is null;
create index organizations_created_by_idx on public.organizations (created_by) where created_by is not null;
create index organizations_tier_idx on public.organizations (tier);
create index organizations_updated_by_idx on public.organizations (updated_by) where updated_by is not null;

create table public.organization_members (
  org_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role public.org_role not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid references auth.users (id) on delete set null,
  updated_by uuid references auth.users (id) on delete set null,
  primary key (org_id, user_id)
);
create index organization_members_user_idx on public.organization_members (user_id);
create index organization_members_created_by_idx on public.organization_members (created_by) where created_by is not null;
create index organization_members_updated_by_idx on public.organization_members (updated_by) where updated_by is not null;

create table public.permissions (
  key text primary key check (key ~ '^[a-z_]+\.[a-z_]+$'),
  description text not null
);

create table public.role_permissions (
  role public.org_role not null,
  permission text not null references public.permissions (key) on delete cascade,
  primary key (role, permission)
);
create index role_permissions_permission_idx on public.role_permissions (permission);

-- Per-member exceptions to the role's defaults: granted = true adds, false takes away.
create table public.member_permissions (
  org_id uuid not null,
  user_id uuid not null,
  permission text not null references public.permissions (key) on delete cascade,
  granted boolean not null,
  created_at timestamptz not null default now(),
  created_by uuid references auth.users (id) on delete set null,
  primary key (org_id, user_id, permission),
  foreign key (org_id, user_id) references public.organization_members (org_id, user_id) on delete cascade
);
create index member_permissions_created_by_idx on public.member_permissions (created_by) where created_by is not null;
create index member_permissions_permission_idx on public.member_permissions (permission);

-- The user's chosen organization, read by the access token hook.
create table public.user_active_org (
  user_id uuid primary key references auth.users (id) on delete cascade,
  org_id uuid not null references public.organizations (id) on delete cascade,
  updated_at timestamptz not null default now()
);
create index user_active_org_org_idx on public.user_active_org (org_id);

-- ---------------------------------------------------------------------------------------------
-- MQTT topic patterns (in app: API-key constraints and RPCs use them, and the broker's policy in
-- 110_mqtt_policy.sql). A pattern (or a subscription filter) is a topic whose levels may be `+`
-- (one level) or, last, `#` (any rest); a pattern covers a filter when every topic the filter
-- matches is matched by the pattern, which for a topic without wildcards is plain matching.
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
-- The api_keys check below runs with the writing role's rights: definer RPCs, or the service
-- writing keys directly. The broker's policy calls them as its definer.
revoke all on function app.is_mqtt_topic_pattern(text), app.mqtt_pattern_covers(text, text),
                       app.are_mqtt_topic_patterns(text[]) from public;
grant execute on function app.is_mqtt_topic_pattern(text), app.are_mqtt_topic_patterns(text[]) to service_role;

-- API keys for machine clients. A key belongs to one organization, carries a set of permission
-- scopes, expires (90 days unless asked otherwise, at most 365), can be revoked, and is shown
-- once: only its SHA-256 is stored (a random 192-bit secret needs no slow hash). A request made
-- with a key runs as `authenticated` with the claim `api_key_id` and no `sub`; the policy helpers
-- then answer from the key's effective scopes, looked up live, so revoking a key cuts access at
-- its next request. Its MQTT topic patterns (`mqtt_topics`, relative to org/{org}/) are what a
-- device may use on the broker, within its scopes (110_mqtt_policy.sql).
create table public.api_keys (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (length(btrim(name)) between 1 and 100),
  key_prefix text not null check (key_prefix ~ '^sk_[A-Za-z0-9_-]{8}$'),
  key_hash bytea not null unique check (length(key_hash) = 32),
  scopes text[] not null check (cardinality(scopes) between 1 and 64),
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz,
  revoked_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid references auth.users (id) on delete set null,
  updated_by uuid references auth.users (id) on delete set null,
  mqtt_topics text[] not null default '{}' check (cardinality(mqtt_topics) <= 32 and app.are_mqtt_topic_patterns(mqtt_topics))
);
create index api_keys_org_idx on public.api_keys (org_id, created_at desc);
create index api_keys_created_by_idx on public.api_keys (created_by) where created_by is not null;
create index api_keys_revoked_by_idx on public.api_keys (revoked_by) where revoked_by is not null;
create index api_keys_updated_by_idx on public.api_keys (updated_by) where updated_by is not null;

-- ---------------------------------------------------------------------------------------------
-- Who and when are set by the database, never by clients. A creator stamp never changes, except
-- that deleting its user clears it: the foreign key's on delete set null is an UPDATE that passes
-- through these triggers, and is not an edit (who last edited the row and when stay). Restoring
-- the stamp there would leave the row naming a user who no longer exists: Postgres does not
-- re-check a foreign key an update leaves unchanged.
create function app.user_is_deleted(user_id uuid) returns boolean
language sql stable security definer set search_path = ''
as $$
  select not exists (select 1 from auth.users u where u.id = user_is_deleted.user_id)
$$;
revoke all on function app.user_is_deleted(uuid) from public;
-- the roles whose writes pass through the stamp triggers (app is not an exposed schema)
grant execute on function app.user_is_deleted(uuid) to authenticated, service_role;

create function app.stamp_row() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    new.created_at := now();
    new.created_by := (select auth.uid());
  else
    new.created_at := old.created_at;
    if new.created_by is distinct from old.created_by then
      if new.created_by is null and app.user_is_deleted(old.created_by) then
        return new;
      end if;
      new.created_by := old.created_by;
    end if;
    if new.updated_by is null and old.updated_by is not null and app.user_is_deleted(old.updated_by) then
      return new;
    end if;
  end if;
  new.updated_at := now();
  new.updated_by := (select auth.uid());
  return new;
end
$$;
-- Triggers fire without EXECUTE on their function: nobody needs to call it.
revoke all on function app.stamp_row() from public;

create trigger stamp_row before insert or update on public.organizations
  for each row execute function app.stamp_row();
create trigger stamp_row before insert or update on public.organization_members
  for each row execute function app.stamp_row();
create trigger stamp_row before insert or update on public.api_keys
  for each row execute function app.stamp_row();

-- ---------------------------------------------------------------------------------------------
-- Catalog rows
insert into public.subscription_tiers values
  ('free',          5,        1073741824,   10485760,    60,   30,    600, 30,    600,    100000,    10000),
  ('basic',         25,       10737418240,  52428800,    300,  90,   3000, 90,   3000,   1000000,   100000),
  ('professional',  100,      107374182400, 104857600,   1200, 365, 12000, 365, 12000,  10000000,  1000000),
  ('enterprise',    10000,    1099511627776, 524288000,  6000, 730, 60000, 730, 60000, 100000000, 10000000),
  ('education',     2000,     214748364800, 104857600,   3000, 365, 60000, 730, 60000, 100000000, 10000000);

insert into public.permissions (key, description) values
  ('org.read',         'See the organization and its members'),
  ('settings.manage',  'Change the organization''s name, settings and compliance flags'),
  ('members.invite',   'Invite people to the organization'),
  ('members.manage',   'Change members'' roles and permissions, remove members'),
  ('files.read',       'Read the organization''s files'),
  ('files.write',      'Upload and change files'),
  ('analytics.read',   'See the organization''s analytics'),
  ('audit.read',       'Read the organization''s audit log'),
  ('api_keys.manage',  'Create and revoke API keys'),
  ('notifications.send', 'Send notifications to members'),
  ('exercises.control', 'Run exercises (control topics)'),
  ('jobs.manage',      'See, retry and cancel the organization''s background jobs'),
  ('data.export',      'Export the organization''s data and download the archives'),
  ('events.write',     'Send analytics events (what an API key needs; signed-in members send their own as themselves)');

insert into public.role_permissions (role, permission)
select 'owner'::public.org_role, key from public.permissions
union all
select 'admin'::public.org_role, key from public.permissions
union all
select 'teacher'::public.org_role, p from unnest(array['org.read', 'files.read', 'files.write', 'analytics.read', 'notifications.send',
                                      'exercises.control', 'members.invite', 'events.write']) p
union all
select 'student'::public.org_role, p from unnest(array['org.read', 'files.read', 'events.write']) p;
