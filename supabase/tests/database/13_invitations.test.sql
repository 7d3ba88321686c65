-- Invitations: who may invite whom (and revoke: the same rank), single-use hashed tokens, expiry, e-mail check,
-- member limit.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(34);

select tests.create_user(e) from unnest(array['owner@i.test', 'teacher@i.test', 'student@i.test', 'new@i.test',
                                              'other@i.test', 'boss@i.test', 'late@i.test', 'owner@j.test']) e;
create temp table o as select tests.create_org('owner@i.test', 'inv-a') a, tests.create_org('owner@j.test', 'inv-b') b;
grant select on o to authenticated, anon, service_role;
select tests.add_members((select a from o), 'teacher@i.test', 'teacher', 'student@i.test', 'student');
create temp table t (name text primary key, token text, id uuid);
grant all on t to authenticated, anon;

-- Creating
select tests.authenticate_as('teacher@i.test');
select lives_ok($$ insert into t select 'new', token, invitation_id from public.create_invitation((select a from o), ' New@I.test ', 'student') $$,
  'a teacher invites a student');
select is((select email from public.invitations where id = (select id from t where name = 'new')), 'new@i.test',
  'the address is stored trimmed and lower-cased');
select throws_ok($$ select public.create_invitation((select a from o), 'x@i.test', 'teacher') $$, 'TN017', null,
  'a teacher cannot invite a teacher');
select throws_ok($$ select public.create_invitation((select b from o), 'x@i.test', 'student') $$, '42501', null,
  'nobody invites into another organization');
select throws_ok($$ select public.create_invitation((select a from o), 'student@i.test', 'student') $$, 'TN016', null,
  'a member cannot be invited again');
select throws_ok($$ select public.create_invitation((select a from o), 'not an address', 'student') $$, '23514', null,
  'a malformed address is refused');
select throws_ok($$ select public.create_invitation((select a from o), 'x@i.test', 'student', interval '90 days') $$, '22023', null,
  'validity is bounded');
select throws_ok($$ select token_hash from public.invitations $$, '42501', null, 'token hashes are not readable');
reset role;

select tests.authenticate_as('student@i.test');
select throws_ok($$ select public.create_invitation((select a from o), 'x@i.test', 'student') $$, '42501', null,
  'a student cannot invite');
select is_empty($$ select 1 from public.invitations $$, 'a student does not see invitations');
reset role;

select tests.authenticate_as('owner@i.test');
select lives_ok($$ insert into t select 'boss', token, invitation_id from public.create_invitation((select a from o), 'boss@i.test', 'owner') $$,
  'an owner invites an owner');
select lives_ok($$ insert into t select 'other', token, invitation_id from public.create_invitation((select a from o), 'other@i.test', 'teacher') $$,
  'an owner invites a teacher');
select lives_ok($$ insert into t select 'late', token, invitation_id from public.create_invitation((select a from o), 'late@i.test', 'student') $$,
  'and a student');
insert into t select 'adm', token, invitation_id from public.create_invitation((select a from o), 'adm@i.test', 'admin');
insert into t select 'pupil', token, invitation_id from public.create_invitation((select a from o), 'pupil@i.test', 'student');
select lives_ok($$ select public.create_invitation((select a from o), 'twice@i.test', 'teacher');
                   select public.create_invitation((select a from o), 'twice@i.test', 'teacher') $$,
  'inviting an address again for the same role sends a new invitation');
select is((select count(*)::int from public.invitations where email = 'twice@i.test' and revoked_at is null), 1,
  'and the first one is replaced');
select throws_ok($$ select public.create_invitation((select a from o), 'twice@i.test', 'student') $$, 'TN019', null,
  'for another role it is refused, not silently replaced');
reset role;
update public.invitations set expires_at = now() - interval '1 second' where email = 'late@i.test';

-- Accepting
select tests.authenticate_as('new@i.test');
select results_eq($$ select email from public.invitations $$, array['new@i.test'], 'an invitee sees their own open invitation only');
select throws_ok($$ select public.accept_invitation((select token from t where name = 'other')) $$, 'TN014', null,
  'an invitation for another address cannot be accepted');
select throws_ok($$ select public.accept_invitation('inv_forged') $$, 'TN010', null, 'an unknown token is refused');
select is((select role::text from public.accept_invitation((select token from t where name = 'new'))), 'student',
  'the invitee accepts and joins with the invited role');
select results_eq($$ select slug from public.organizations $$, array['inv-a'], 'and sees the organization at once');
select throws_ok($$ select public.accept_invitation((select token from t where name = 'new')) $$, 'TN012', null,
  'a token is single-use');
reset role;

select tests.authenticate_as('late@i.test');
select throws_ok($$ select public.accept_invitation((select token from t where name = 'late')) $$, 'TN011', null,
  'an expired invitation is refused');
reset role;

select tests.authenticate_as('boss@i.test');
select is((select role::text from public.accept_invitation((select token from t where name = 'boss'))), 'owner',
  'an owner''s invitation makes an owner');
reset role;

-- Revoking
select tests.authenticate_as('student@i.test');
select throws_ok($$ select public.revoke_invitation((select id from t where name = 'other')) $$, 'TN010', null,
  'a student cannot revoke an invitation');
reset role;
-- withdrawing asks the rank sending asks: a teacher who could withdraw the owner's admin invitation
-- could invite the address again as a student
select tests.authenticate_as('teacher@i.test');
select throws_ok($$ select public.revoke_invitation((select id from t where name = 'adm')) $$, 'TN017', null,
  'a teacher cannot revoke an admin invitation');
select throws_ok($$ select public.revoke_invitation((select id from t where name = 'other')) $$, 'TN017', null,
  'nor a teacher invitation');
select lives_ok($$ select public.revoke_invitation((select id from t where name = 'pupil')) $$, 'a teacher revokes a student invitation');
reset role;
select results_eq($$ select name from t join public.invitations i on i.id = t.id where i.revoked_at is null and name in ('adm', 'other', 'pupil') order by 1 $$,
  array['adm', 'other'], 'the admin and teacher invitations stay open');
select tests.authenticate_as('owner@i.test');
select lives_ok($$ select public.revoke_invitation((select id from t where name = 'adm'));
                   select public.revoke_invitation((select id from t where name = 'other')) $$, 'an owner revokes any invitation');
reset role;
select tests.authenticate_as('other@i.test');
select throws_ok($$ select public.accept_invitation((select token from t where name = 'other')) $$, 'TN013', null,
  'a revoked invitation cannot be accepted');
reset role;

-- The tier's member limit (free: 5). The organization has 5 members now.
select tests.authenticate_as('owner@i.test');
select is((select count(*)::int from public.organization_members where org_id = (select a from o)), 5, 'the organization is full');
select throws_ok($$ select public.create_invitation((select a from o), 'sixth@i.test', 'student') $$, 'TN015', null,
  'a full organization cannot invite');
reset role;
-- An invitation made before the organization filled up cannot overshoot the limit either.
update public.subscription_tiers set max_members = 6 where tier = 'free';
select tests.authenticate_as('owner@i.test');
insert into t select 'other2', token, invitation_id from public.create_invitation((select a from o), 'other@i.test', 'student');
reset role;
update public.subscription_tiers set max_members = 5 where tier = 'free';
select tests.authenticate_as('other@i.test');
select throws_ok($$ select public.accept_invitation((select token from t where name = 'other2')) $$, 'TN015', null,
  'accepting checks the member limit');
reset role;

select * from finish();
rollback;
