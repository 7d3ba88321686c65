-- The custom access token hook, called as GoTrue calls it (as supabase_auth_admin).
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(8);

select tests.create_user(e) from unnest(array['owner@h.test', 'both@h.test', 'loner@h.test']) e;
select tests.authenticate_as('owner@h.test');
create temp table o as select (public.create_organization('Hook A', 'hook-a')).id a, (public.create_organization('Hook B', 'hook-b')).id b;
reset role;
grant select on o to supabase_auth_admin, authenticated;
-- pgTAP lives in extensions; let the hook's role see it for this (rolled back) test only.
grant usage on schema extensions to supabase_auth_admin;
select tests.add_members((select a from o), 'both@h.test', 'student');
select tests.add_members((select b from o), 'both@h.test', 'teacher');

create function pg_temp.claims(email text) returns jsonb language sql as $$
  select public.custom_access_token_hook(jsonb_build_object('user_id', tests.user_id(email),
    'claims', jsonb_build_object('sub', tests.user_id(email), 'role', 'authenticated', 'aud', 'authenticated'),
    'authentication_method', 'password')) -> 'claims'
$$;

set local role supabase_auth_admin;
select is(pg_temp.claims('owner@h.test') ->> 'org_id', (select a::text from o), 'an owner''s token names the active (first) organization');
select is(pg_temp.claims('owner@h.test') ->> 'org_role', 'owner', 'with the owner role');
select ok((pg_temp.claims('owner@h.test') -> 'permissions') ? 'settings.manage', 'and the owner''s permissions');
select is(pg_temp.claims('loner@h.test') -> 'org_id', 'null'::jsonb, 'a user with no organization gets null claims');
select is(pg_temp.claims('owner@h.test') ->> 'aud', 'authenticated', 'standard claims pass through');
reset role;

select tests.authenticate_as('both@h.test');
select public.set_active_organization((select b from o));
reset role;
set local role supabase_auth_admin;
select is(pg_temp.claims('both@h.test') ->> 'org_role', 'teacher', 'switching organization switches the claims');
reset role;
delete from public.organization_members where user_id = tests.user_id('both@h.test') and org_id = (select b from o);
set local role supabase_auth_admin;
select is(pg_temp.claims('both@h.test') ->> 'org_id', (select a::text from o), 'after removal from the active one, the token falls back to a remaining membership');
reset role;

select tests.authenticate_as('both@h.test');
select throws_ok($$ select public.custom_access_token_hook('{}'::jsonb) $$, '42501', null, 'users cannot call the hook');
reset role;

select * from finish();
rollback;
