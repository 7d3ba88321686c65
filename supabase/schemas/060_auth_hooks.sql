-- The auth server's hooks, as Postgres functions it calls as supabase_auth_admin (configured in
-- config.toml [auth.hook.*] locally, in the dashboard on a hosted project).

-- ---------------------------------------------------------------------------------------------
-- Custom access token hook (hosted contract: event jsonb -> jsonb), run by GoTrue as
-- supabase_auth_admin. Adds org_id, org_role and permissions for the active organization;
-- null when the user has none or is no longer a member of it.
create function public.custom_access_token_hook(event jsonb) returns jsonb
language plpgsql stable set search_path = ''
as $$
declare
  uid uuid := (event ->> 'user_id')::uuid;
  claims jsonb := coalesce(event -> 'claims', '{}'::jsonb);
  active uuid;
  member_role public.org_role;
begin
  select a.org_id, m.role into active, member_role
  from public.user_active_org a
  join public.organization_members m on m.org_id = a.org_id and m.user_id = a.user_id
  join public.organizations o on o.id = a.org_id and o.deleted_at is null
  where a.user_id = uid;

  if active is null then
    -- No chosen organization: fall back to the oldest membership, so a new member's first token works.
    select m.org_id, m.role into active, member_role
    from public.organization_members m
    join public.organizations o on o.id = m.org_id and o.deleted_at is null
    where m.user_id = uid
    order by m.created_at, m.org_id
    limit 1;
  end if;

  claims := claims || jsonb_build_object(
    'org_id', active,
    'org_role', member_role,
    'permissions', case when active is null then null else to_jsonb(app.permissions_of(active, uid)) end);
  return jsonb_build_object('claims', claims);
end
$$;

grant usage on schema public to supabase_auth_admin;
revoke execute on function public.custom_access_token_hook(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.custom_access_token_hook(jsonb) to supabase_auth_admin;
grant select on public.user_active_org, public.organization_members, public.organizations to supabase_auth_admin;
create policy "the auth server reads active organizations" on public.user_active_org
  for select to supabase_auth_admin using (true);
create policy "the auth server reads memberships" on public.organization_members
  for select to supabase_auth_admin using (true);
create policy "the auth server reads organizations" on public.organizations
  for select to supabase_auth_admin using (true);

-- ---------------------------------------------------------------------------------------------
-- Password verification attempt hook (hosted contract: event {user_id, valid, metadata} ->
-- {decision, message, should_logout_user}), run by the auth server as supabase_auth_admin after
-- each password check. After `max_failures` failed attempts within `failure_window` from one
-- source, the account is locked for that source for `lockout`: every attempt from there, even
-- with the right password, is rejected until it ends.
-- Failures are counted per account and source (the request's address, which GoTrue sends as
-- metadata.ip_address), so an attacker's failures never lock the owner out elsewhere. A rejection
-- reads exactly as a wrong password does and signs nobody out, so a lock tells nothing about
-- whether an account exists. Guessing spread over many addresses is bounded by the auth server's
-- per-address rate limits (config.toml [auth.rate_limit]).

create table app.password_lockout_policy (
  id boolean primary key default true check (id),
  max_failures integer not null check (max_failures between 1 and 100),
  failure_window interval not null check (failure_window between interval '1 second' and interval '1 day'),
  lockout interval not null check (lockout between interval '1 second' and interval '1 day')
);

create table app.password_failures (
  user_id uuid not null references auth.users (id) on delete cascade,
  failures integer not null check (failures >= 0),
  window_started_at timestamptz not null,
  locked_until timestamptz,
  source text not null default '',
  primary key (user_id, source)
);

alter table app.password_lockout_policy enable row level security;
alter table app.password_failures enable row level security;
revoke all on app.password_lockout_policy, app.password_failures from public, anon, authenticated, service_role;
grant select on app.password_lockout_policy to supabase_auth_admin;
grant select, insert, update, delete on app.password_failures to supabase_auth_admin;
create policy "the auth server reads the lockout policy" on app.password_lockout_policy
  for select to supabase_auth_admin using (true);
create policy "the auth server keeps failure counts" on app.password_failures
  for all to supabase_auth_admin using (true) with check (true);

create function public.hook_password_verification_attempt(event jsonb) returns jsonb
language plpgsql volatile set search_path = ''
as $$
declare
  uid uuid := (event ->> 'user_id')::uuid;
  valid boolean := coalesce((event ->> 'valid')::boolean, false);
  src text := left(coalesce(event -> 'metadata' ->> 'ip_address', ''), 64);
  rules app.password_lockout_policy;
  state app.password_failures;
  -- GoTrue's own answer to a wrong password: a lock must not be told apart from it
  rejected constant jsonb := jsonb_build_object('decision', 'reject', 'should_logout_user', false,
                                                'message', 'Invalid login credentials');
begin
  select * into rules from app.password_lockout_policy;
  select * into state from app.password_failures where user_id = uid and source = src for update;

  if state.locked_until > now() then
    return rejected;
  end if;

  if valid then
    delete from app.password_failures where user_id = uid and source = src;
    return jsonb_build_object('decision', 'continue');
  end if;

  insert into app.password_failures as f (user_id, source, failures, window_started_at)
  values (uid, src, 1, now())
  on conflict (user_id, source) do update
    set failures = case when f.window_started_at > now() - rules.failure_window and f.locked_until is null
                        then f.failures + 1 else 1 end,
        window_started_at = case when f.window_started_at > now() - rules.failure_window and f.locked_until is null
                                 then f.window_started_at else now() end,
        locked_until = null
  returning * into state;

  if state.failures >= rules.max_failures then
    update app.password_failures set locked_until = now() + rules.lockout where user_id = uid and source = src;
    return rejected;
  end if;
  -- A wrong password below the limit: the auth server answers "invalid credentials" itself.
  return jsonb_build_object('decision', 'continue');
end
$$;

revoke execute on function public.hook_password_verification_attempt(jsonb) from public, anon, authenticated, service_role;
grant execute on function public.hook_password_verification_attempt(jsonb) to supabase_auth_admin;

-- ---------------------------------------------------------------------------------------------
-- Catalog rows
insert into app.password_lockout_policy (max_failures, failure_window, lockout)
values (5, interval '15 minutes', interval '15 minutes');
