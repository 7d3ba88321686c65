-- Organizations, memberships and permissions, checked as the users real requests carry.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(31);

-- Setup (as the migration owner): two organizations and one user per role.
select tests.create_user(e) from unnest(array['owner@a.test', 'admin@a.test', 'teacher@a.test', 'student@a.test',
                                              'owner@b.test', 'outsider@x.test', 'both@ab.test']) e;
select tests.authenticate_as('owner@a.test');
select ok((select slug from public.create_organization('School A', 'school-a')) = 'school-a', 'a signed-in user creates an organization');
reset role;
select tests.authenticate_as('owner@b.test');
select lives_ok($$ select public.create_organization('School B', 'school-b') $$, 'another user creates another');
reset role;
create temp table ids as select (select id from public.organizations where slug = 'school-a') a, (select id from public.organizations where slug = 'school-b') b;
grant select on ids to authenticated, anon, service_role;
select tests.add_members((select a from ids), 'admin@a.test', 'admin', 'teacher@a.test', 'teacher', 'student@a.test', 'student',
                         'both@ab.test', 'student');
select tests.add_members((select b from ids), 'both@ab.test', 'teacher');

-- Who sees what
select tests.authenticate_as('student@a.test');
select results_eq($$ select slug from public.organizations $$, array['school-a'], 'a student sees only their organization');
select is((select count(*)::int from public.organization_members), 5, 'a student sees their organization''s members');
select is_empty($$ update public.organizations set name = 'Hacked' where slug = 'school-a' returning 1 $$, 'a student cannot rename the organization');
select throws_ok($$ update public.organizations set tier = 'enterprise' $$, '42501', null, 'nobody but the service changes the tier');
select throws_ok($$ insert into public.organizations (name, slug) values ('X', 'xx-direct') $$, '42501', null, 'organizations are created through the RPC only');
select is_empty($$ delete from public.organization_members where user_id = tests.user_id('teacher@a.test') returning 1 $$, 'a student cannot remove a teacher');
select ok(not app.has_permission((select a from ids), 'members.manage'), 'a student may not manage members');
reset role;

select tests.authenticate_as('teacher@a.test');
select ok(app.has_permission((select a from ids), 'files.write'), 'a teacher may write files by default');
select ok(not app.has_permission((select a from ids), 'settings.manage'), 'a teacher may not manage settings');
reset role;

select tests.authenticate_as('admin@a.test');
select isnt_empty($$ update public.organizations set name = 'School A (renamed)' where slug = 'school-a' returning 1 $$, 'an admin renames their organization');
select is_empty($$ update public.organizations set name = 'Hacked' where slug = 'school-b' returning 1 $$, 'an admin cannot touch another organization');
select is_empty($$ select 1 from public.organization_members where org_id = (select b from ids) and user_id <> tests.user_id('both@ab.test') $$,
  'an admin sees nothing of another organization''s members');
select throws_ok($$ update public.organization_members set role = 'owner' where user_id = tests.user_id('teacher@a.test') $$,
  'TN002', null, 'an admin cannot make owners');
select lives_ok($$ insert into public.member_permissions (org_id, user_id, permission, granted)
                   values ((select a from ids), tests.user_id('student@a.test'), 'analytics.read', true),
                          ((select a from ids), tests.user_id('teacher@a.test'), 'files.write', false) $$,
  'an admin grants and revokes single permissions');
reset role;

select tests.authenticate_as('student@a.test');
select ok(app.has_permission((select a from ids), 'analytics.read'), 'a granted permission applies at the next request');
reset role;
select tests.authenticate_as('teacher@a.test');
select ok(not app.has_permission((select a from ids), 'files.write'), 'a revoked permission is cut at the next request');
reset role;

select tests.authenticate_as('outsider@x.test');
select is_empty($$ select 1 from public.organizations $$, 'an outsider sees no organization');
select is_empty($$ select 1 from public.organization_members $$, 'an outsider sees no membership');
select throws_ok($$ select public.set_active_organization((select a from ids)) $$, 'TN003', null, 'an outsider cannot pick an organization');
reset role;

select tests.as_anon();
select throws_ok($$ select * from public.organizations $$, '42501', null, 'anon cannot read organizations');
select throws_ok($$ select public.create_organization('Anon', 'anon-org') $$, '42501', null, 'anon cannot create organizations');
reset role;

select tests.as_service();
select is((select count(*)::int from public.organizations where slug in ('school-a', 'school-b')), 2, 'service_role sees every organization');
reset role;

-- Owners
select tests.authenticate_as('owner@a.test');
select throws_ok($$ delete from public.organization_members where user_id = tests.user_id('owner@a.test') $$,
  'TN001', null, 'the last owner cannot leave');
select throws_ok($$ update public.organization_members set role = 'admin' where user_id = tests.user_id('owner@a.test') $$,
  'TN001', null, 'the last owner cannot step down');
select lives_ok($$ update public.organization_members set role = 'owner' where user_id = tests.user_id('admin@a.test') $$,
  'an owner makes another owner');
select isnt_empty($$ delete from public.organization_members where user_id = tests.user_id('owner@a.test') returning 1 $$,
  'then the first owner may leave');
select is_empty($$ select 1 from public.organizations where slug = 'school-a' $$, 'and leaving cuts access at once');
reset role;

-- Removing a member cuts access at their next request
delete from public.organization_members where user_id = tests.user_id('student@a.test');
select tests.authenticate_as('student@a.test');
select is_empty($$ select 1 from public.organizations $$, 'a removed member sees nothing at the next request');
select ok(not app.has_permission((select a from ids), 'analytics.read'), 'and keeps no permission');
reset role;

select * from finish();
rollback;
