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

-- Acts as the user for the rest of the transaction, the way PostgREST does for a request.
create or replace function tests.authenticate_as(email text) returns void
language plpgsql as $$
begin
  perform set_config('request.jwt.claims', json_build_object('sub', tests.user_id(email), 'role', 'authenticated', 'email', email)::text, true);
  execute 'set local role authenticated';
end $$;

create or replace function tests.as_anon() returns void
language plpgsql as $$
begin
  perform set_config('request.jwt.claims', '{"role":"anon"}', true);
  execute 'set local role anon';
end $$;

create or replace function tests.as_service() returns void
language plpgsql as $$
begin
  perform set_config('request.jwt.claims', '{"role":"service_role"}', true);
  execute 'set local role service_role';
end $$;

grant usage on schema tests to anon, authenticated, service_role, supabase_auth_admin;
grant execute on all functions in schema tests to anon, authenticated, service_role, supabase_auth_admin;
