-- Test helpers in the spirit of Basejump's supabase_test_helpers, included with \ir by each test
-- file inside its transaction (so they vanish with its rollback).
create schema if not exists tests;

create or replace function tests.create_user(email text) returns uuid
language sql as $$
  insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data, raw_user_meta_data)
  values (gen_random_uuid(), 'authenticated', 'authenticated', email, now(), '{}', '{}')
  returning id
$$;

-- Definer: tests name users by email while acting as roles that rightly cannot read auth.users.
create or replace function tests.user_id(email text) returns uuid
language sql stable security definer set search_path = '' as $$ select id from auth.users where auth.users.email = user_id.email $$;

-- Acts as a role with the given claims for the rest of the transaction, as PostgREST does per request.
create or replace function tests.act_as(role text, claims jsonb) returns void
language plpgsql as $$
begin
  if role not in ('anon', 'authenticated', 'service_role') then raise exception 'unknown role %', role; end if;
  perform set_config('request.jwt.claims', (claims || jsonb_build_object('role', role))::text, true);
  execute format('set local role %I', role);
end $$;

create or replace function tests.authenticate_as(email text) returns void
language sql as $$ select tests.act_as('authenticated', jsonb_build_object('sub', tests.user_id(email), 'email', email)) $$;

create or replace function tests.as_anon() returns void
language sql as $$ select tests.act_as('anon', '{}') $$;

create or replace function tests.as_service() returns void
language sql as $$ select tests.act_as('service_role', '{}') $$;

-- A machine client: a request made with an API key carries its id and no user.
create or replace function tests.authenticate_with_key(api_key_id uuid) returns void
language sql as $$ select tests.act_as('authenticated', jsonb_build_object('api_key_id', api_key_id)) $$;

-- The request headers PostgREST passes on (the audit log reads them).
create or replace function tests.set_headers(ip text, user_agent text, request_id text) returns void
language sql as $$
  select set_config('request.headers', jsonb_build_object('x-forwarded-for', ip, 'user-agent', user_agent, 'x-request-id', request_id)::text, true)
$$;

-- An organization owned by the given user (made first if there is none with that address),
-- created the way a user does it.
create or replace function tests.create_org(owner_email text, slug text, tier public.subscription_tier default 'free') returns uuid
language plpgsql as $$
declare
  org uuid;
begin
  if tests.user_id(owner_email) is null then
    perform tests.create_user(owner_email);
  end if;
  perform tests.authenticate_as(owner_email);
  org := (public.create_organization(initcap(replace(slug, '-', ' ')), slug)).id;
  reset role;
  update public.organizations o set tier = create_org.tier where o.id = org and o.tier <> create_org.tier;
  return org;
end $$;

-- Members of an organization, given as address and role pairs:
--   select tests.add_members((select a from o), 'teacher@a.test', 'teacher', 'student@a.test', 'student');
-- Each address becomes a user first if there is none. The rows are inserted as the database owner
-- with no caller (as seeding does, so no caller's rank or permissions apply); the request claims
-- the transaction had are put back afterwards.
create or replace function tests.add_members(org uuid, variadic email_role text[]) returns void
language plpgsql as $$
declare
  claims text := current_setting('request.jwt.claims', true);
  i integer;
begin
  if coalesce(array_length(email_role, 1), 0) % 2 <> 0 then
    raise exception 'tests.add_members takes address and role pairs, got %', email_role;
  end if;
  perform set_config('request.jwt.claims', '', true);
  for i in 1 .. coalesce(array_length(email_role, 1), 0) by 2 loop
    if tests.user_id(email_role[i]) is null then
      perform tests.create_user(email_role[i]);
    end if;
    insert into public.organization_members (org_id, user_id, role)
    values (org, tests.user_id(email_role[i]), email_role[i + 1]::public.org_role);
  end loop;
  perform set_config('request.jwt.claims', coalesce(claims, ''), true);
end $$;

grant usage on schema tests to anon, authenticated, service_role, supabase_auth_admin;
grant execute on all functions in schema tests to anon, authenticated, service_role, supabase_auth_admin;
