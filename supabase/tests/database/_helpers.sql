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

grant usage on schema tests to anon, authenticated, service_role, supabase_auth_admin;
grant execute on all functions in schema tests to anon, authenticated, service_role, supabase_auth_admin;
