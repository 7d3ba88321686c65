-- API keys: created by key managers with scopes they hold, shown once, verified by the service,
-- revocable and expiring; a request made with a key sees only its organization, within its scopes.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(26);

select tests.create_user(e) from unnest(array['owner@k.test', 'teacher@k.test', 'owner@l.test']) e;
create temp table o as select tests.create_org('owner@k.test', 'keys-a') a, tests.create_org('owner@l.test', 'keys-b') b;
grant select on o to authenticated, anon, service_role;
select tests.add_members((select a from o), 'teacher@k.test', 'teacher');
create temp table k (name text primary key, secret text, id uuid);
grant all on k to authenticated, anon, service_role;

select tests.authenticate_as('owner@k.test');
select lives_ok($$ insert into k select 'reader', api_key, api_key_id from public.create_api_key((select a from o), 'LMS sync', array['org.read', 'files.read', 'files.read']) $$,
  'an owner creates a key');
select is((select scopes from public.api_keys where id = (select id from k where name = 'reader')), array['files.read', 'org.read'],
  'scopes are stored once each, sorted');
select ok((select secret from k where name = 'reader') like (select key_prefix from public.api_keys where id = (select id from k where name = 'reader')) || '%',
  'the listed prefix identifies the key');
select throws_ok($$ select key_hash from public.api_keys $$, '42501', null, 'key hashes are not readable');
select throws_ok($$ select public.create_api_key((select a from o), 'bad', array['files.delete_everything']) $$, 'TN025', null,
  'a scope outside the catalog is refused');
select throws_ok($$ select public.create_api_key((select a from o), 'old', array['org.read'], now() - interval '1 day') $$, '22023', null,
  'a key cannot be born expired');
select throws_ok($$ select public.create_api_key((select b from o), 'theirs', array['org.read']) $$, '42501', null,
  'nobody creates keys for another organization');
select throws_ok($$ insert into public.api_keys (org_id, name, key_prefix, key_hash, scopes) values ((select a from o), 'x', 'sk_abcdefgh', sha256('x'), '{org.read}') $$,
  '42501', null, 'keys are made through the RPC only');
insert into k select 'short', api_key, api_key_id from public.create_api_key((select a from o), 'Short-lived', array['org.read'], now() + interval '1 hour');
insert into k select 'revoked', api_key, api_key_id from public.create_api_key((select a from o), 'To revoke', array['org.read']);
reset role;

select tests.authenticate_as('teacher@k.test');
select throws_ok($$ select public.create_api_key((select a from o), 'mine', array['org.read']) $$, '42501', null,
  'a teacher may not manage keys');
select is_empty($$ select 1 from public.api_keys $$, 'nor see them');
select throws_ok($$ select public.revoke_api_key((select id from k where name = 'revoked')) $$, 'TN026', null, 'nor revoke them');
select throws_ok($$ select public.verify_api_key((select secret from k where name = 'reader')) $$, '42501', null,
  'only the service verifies keys');
reset role;

select tests.authenticate_as('owner@k.test');
select lives_ok($$ select public.revoke_api_key((select id from k where name = 'revoked')) $$, 'an owner revokes a key');
reset role;
update public.api_keys set expires_at = now() - interval '1 second' where id = (select id from k where name = 'short');

-- Verification, as a server that received a key does it
select tests.as_service();
select results_eq($$ select org_id, scopes from public.verify_api_key((select secret from k where name = 'reader'), 'files.read') $$,
  $$ values ((select a from o), array['files.read', 'org.read']) $$, 'a valid key names its organization and scopes');
select isnt((select last_used_at from public.api_keys where id = (select id from k where name = 'reader')), null, 'and records its use');
select throws_ok($$ select public.verify_api_key((select secret from k where name = 'reader'), 'files.write') $$, 'TN023', null,
  'a key without the required scope is refused');
select throws_ok($$ select public.verify_api_key((select secret from k where name = 'revoked')) $$, 'TN021', null, 'a revoked key is refused');
select throws_ok($$ select public.verify_api_key((select secret from k where name = 'short')) $$, 'TN022', null, 'an expired key is refused');
select throws_ok($$ select public.verify_api_key('sk_forgedforgedforgedforged') $$, 'TN020', null, 'an unknown key is refused');
reset role;

-- Requests made with a key
select tests.authenticate_with_key((select id from k where name = 'reader'));
select results_eq($$ select slug from public.organizations $$, array['keys-a'], 'a key sees its own organization only');
select ok(app.has_permission((select a from o), 'files.read') and not app.has_permission((select a from o), 'files.write'),
  'within its scopes');
reset role;
select tests.authenticate_with_key((select id from k where name = 'revoked'));
select is_empty($$ select 1 from public.organizations $$, 'a revoked key sees nothing at its next request');
reset role;

-- A key with members.manage still never makes or unmakes owners
select tests.authenticate_as('owner@k.test');
insert into k select 'manager', api_key, api_key_id from public.create_api_key((select a from o), 'HR', array['org.read', 'members.manage']);
reset role;
select tests.authenticate_with_key((select id from k where name = 'manager'));
select throws_ok($$ update public.organization_members set role = 'owner' where user_id = tests.user_id('teacher@k.test') $$,
  'TN002', null, 'a key cannot make an owner');
reset role;
select tests.as_service();
select throws_ok($$ insert into public.api_keys (org_id, name, key_prefix, key_hash, scopes) values ((select a from o), 'x', 'sk_abcdefgh', sha256('x'), '{files.fly}') $$,
  'TN024', null, 'even the service cannot store a scope outside the catalog');
reset role;

-- Deleting the organization disables its keys
select tests.authenticate_as('owner@k.test');
select public.delete_organization((select a from o));
reset role;
select tests.as_service();
select throws_ok($$ select public.verify_api_key((select secret from k where name = 'reader')) $$, 'TN020', null,
  'keys of a deleted organization are refused');
reset role;
select tests.authenticate_with_key((select id from k where name = 'reader'));
select is_empty($$ select 1 from public.organizations $$, 'and see nothing');
reset role;

select * from finish();
rollback;
