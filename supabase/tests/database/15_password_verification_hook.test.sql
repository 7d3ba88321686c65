-- The password verification attempt hook, called as the auth server calls it (supabase_auth_admin):
-- lockout after repeated failures within the window, and unlock after it.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(12);

select tests.create_user(e) from unnest(array['pat@p.test', 'kim@p.test']) e;
update app.password_lockout_policy set max_failures = 3, failure_window = interval '10 minutes', lockout = interval '15 minutes';
grant usage on schema extensions to supabase_auth_admin; -- pgTAP lives there; rolled back with the test

-- as GoTrue sends it: the request's address in metadata.ip_address
create function pg_temp.attempt(email text, valid boolean, ip text default '198.51.100.7') returns jsonb language sql as $$
  select public.hook_password_verification_attempt(jsonb_build_object(
    'metadata', jsonb_build_object('uuid', gen_random_uuid(), 'time', now(), 'name', 'password-verification', 'ip_address', ip),
    'user_id', tests.user_id(email), 'valid', valid))
$$;

set local role supabase_auth_admin;
select is(pg_temp.attempt('pat@p.test', false) ->> 'decision', 'continue', 'a first wrong password is left to the auth server');
select is(pg_temp.attempt('pat@p.test', false) ->> 'decision', 'continue', 'so is a second');
select is(pg_temp.attempt('pat@p.test', false) ->> 'decision', 'reject', 'the third within the window locks the account');
select is(pg_temp.attempt('pat@p.test', true) ->> 'decision', 'reject', 'while locked, even the right password is rejected');
select is(pg_temp.attempt('pat@p.test', true) - 'decision', '{"message": "Invalid login credentials", "should_logout_user": false}'::jsonb,
          'answered exactly as a wrong password is (an unknown address is too), signing nobody out');
select is(pg_temp.attempt('kim@p.test', true) ->> 'decision', 'continue', 'other accounts are unaffected');
select is(pg_temp.attempt('pat@p.test', true, '203.0.113.50') ->> 'decision', 'continue',
          'and so is the same account signing in from another address (issue 16, item 13)');
reset role;

-- The lockout ends
update app.password_failures set locked_until = now() - interval '1 second' where user_id = tests.user_id('pat@p.test') and source = '198.51.100.7';
set local role supabase_auth_admin;
select is(pg_temp.attempt('pat@p.test', true) ->> 'decision', 'continue', 'after the lockout the right password works');
select is_empty($$ select 1 from app.password_failures where user_id = tests.user_id('pat@p.test') $$, 'and clears the count');

-- Failures spread beyond the window do not add up
select pg_temp.attempt('kim@p.test', false);
select pg_temp.attempt('kim@p.test', false);
reset role;
update app.password_failures set window_started_at = now() - interval '11 minutes' where user_id = tests.user_id('kim@p.test');
set local role supabase_auth_admin;
select is(pg_temp.attempt('kim@p.test', false) ->> 'decision', 'continue', 'failures outside the window start a new count');
reset role;

-- Nobody but the auth server calls the hook or reads the counts
select tests.authenticate_as('pat@p.test');
select throws_ok($$ select public.hook_password_verification_attempt('{}') $$, '42501', null, 'a user cannot call the hook');
select throws_ok($$ select * from app.password_failures $$, '42501', null, 'nor read failure counts');
reset role;

select * from finish();
rollback;
