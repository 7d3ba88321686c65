-- Ranks decide role changes and removals as they decide overrides: the caller outranks both the
-- member's old and new role (owners excepted), nobody changes their own role, leaving stays
-- allowed; API keys rank as their creator (never above admin) and never act on their creator;
-- jobs rank as admins. An override's created_at is the time of writing, whatever the client sent.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(27);

select tests.create_user(e) from unnest(array['owner@rr.test', 'owner2@rr.test', 'admin@rr.test', 'admin2@rr.test',
                                              'teacher@rr.test', 'teacher2@rr.test', 'student@rr.test', 'student2@rr.test',
                                              'student3@rr.test']) e;
create temp table o as select tests.create_org('owner@rr.test', 'role-ranks') a;
grant select on o to authenticated, service_role;
select set_config('request.jwt.claims', '', true); -- members and overrides added by the database owner, not by a user
select tests.add_members((select a from o), 'owner2@rr.test', 'owner', 'admin@rr.test', 'admin', 'admin2@rr.test', 'admin',
                         'teacher@rr.test', 'teacher', 'teacher2@rr.test', 'teacher', 'student@rr.test', 'student',
                         'student2@rr.test', 'student', 'student3@rr.test', 'student');
-- the teacher manages members and keys, as an owner may allow
insert into public.member_permissions (org_id, user_id, permission, granted)
select (select a from o), tests.user_id('teacher@rr.test'), p, true from unnest(array['members.manage', 'api_keys.manage']) p;
create function pg_temp.role_of(email text) returns text language sql as $$
  select role::text from public.organization_members where org_id = (select a from o) and user_id = tests.user_id(email)
$$;

-- A teacher holding members.manage
select tests.authenticate_as('teacher@rr.test');
select throws_ok($$ update public.organization_members set role = 'admin' where user_id = tests.user_id('teacher@rr.test') $$,
                 'TN005', null, 'a teacher cannot make themselves an admin');
select throws_ok($$ update public.organization_members set role = 'student' where user_id = tests.user_id('admin@rr.test') $$,
                 'TN004', null, 'nor demote an admin');
select throws_ok($$ update public.organization_members set role = 'student' where user_id = tests.user_id('teacher2@rr.test') $$,
                 'TN004', null, 'nor a fellow teacher');
select throws_ok($$ update public.organization_members set role = 'teacher' where user_id = tests.user_id('student@rr.test') $$,
                 'TN004', null, 'nor raise a student to their own rank');
select throws_ok($$ delete from public.organization_members where user_id = tests.user_id('admin@rr.test') $$,
                 'TN004', null, 'nor remove an admin');
select lives_ok($$ delete from public.organization_members where user_id = tests.user_id('student3@rr.test') $$,
                'but removes a student');
reset role;
select is(pg_temp.role_of('admin@rr.test'), 'admin', 'the admin is still an admin');

-- An admin
select tests.authenticate_as('admin@rr.test');
select throws_ok($$ update public.organization_members set role = 'teacher' where user_id = tests.user_id('admin2@rr.test') $$,
                 'TN004', null, 'an admin cannot demote a peer admin');
select throws_ok($$ delete from public.organization_members where user_id = tests.user_id('admin2@rr.test') $$,
                 'TN004', null, 'nor remove one');
select throws_ok($$ update public.organization_members set role = 'admin' where user_id = tests.user_id('student@rr.test') $$,
                 'TN004', null, 'nor make one');
select throws_ok($$ update public.organization_members set role = 'teacher' where user_id = tests.user_id('admin@rr.test') $$,
                 'TN005', null, 'nor change their own role');
select lives_ok($$ update public.organization_members set role = 'teacher' where user_id = tests.user_id('student2@rr.test') $$,
                'but raises a student to teacher');
select lives_ok($$ update public.organization_members set role = 'student' where user_id = tests.user_id('student2@rr.test') $$,
                'and lowers a teacher to student');
reset role;

-- An owner changes anyone's role but their own; leaving stays allowed
select tests.authenticate_as('owner@rr.test');
select throws_ok($$ update public.organization_members set role = 'admin' where user_id = tests.user_id('owner@rr.test') $$,
                 'TN005', null, 'an owner does not change their own role either, though another owner remains');
select lives_ok($$ update public.organization_members set role = 'teacher' where user_id = tests.user_id('admin2@rr.test') $$,
                'an owner demotes an admin');
select lives_ok($$ update public.organization_members set role = 'admin' where user_id = tests.user_id('owner2@rr.test') $$,
                'and another owner');
select throws_ok($$ update public.organization_members set role = 'admin' where user_id = tests.user_id('owner@rr.test') $$,
                 'TN001', null, 'the last owner still cannot step down');
reset role;
select tests.authenticate_as('teacher2@rr.test');
select lives_ok($$ delete from public.organization_members where user_id = tests.user_id('teacher2@rr.test') $$, 'a teacher leaves');
reset role;

-- An API key made by the teacher ranks as the teacher, and never acts on the teacher
select tests.authenticate_as('teacher@rr.test');
create temp table k as select api_key_id as id from public.create_api_key((select a from o), 'roster sync', array['members.manage']);
reset role;
grant select on k to authenticated;
select tests.authenticate_with_key((select id from k));
select throws_ok($$ insert into public.member_permissions (org_id, user_id, permission, granted)
                    values ((select a from o), tests.user_id('teacher@rr.test'), 'settings.manage', true) $$,
                 '42501', null, 'a key cannot write its creator''s overrides');
select throws_ok($$ insert into public.member_permissions (org_id, user_id, permission, granted)
                    values ((select a from o), tests.user_id('admin2@rr.test'), 'files.write', false) $$,
                 '42501', null, 'nor those of its creator''s rank');
select throws_ok($$ update public.organization_members set role = 'admin' where user_id = tests.user_id('teacher@rr.test') $$,
                 'TN005', null, 'nor change its creator''s role');
select throws_ok($$ update public.organization_members set role = 'student' where user_id = tests.user_id('admin2@rr.test') $$,
                 'TN004', null, 'nor demote a teacher');
select lives_ok($$ insert into public.member_permissions (org_id, user_id, permission, granted)
                   values ((select a from o), tests.user_id('student@rr.test'), 'files.write', true) $$,
                'but writes a student''s override, as its creator may');
reset role;

-- A job ranks as an admin
select tests.act_as('authenticated', jsonb_build_object('job_id', gen_random_uuid(), 'job_org_id', (select a from o), 'job_scopes', '["members.manage"]'::jsonb));
select throws_ok($$ delete from public.organization_members where user_id = tests.user_id('admin@rr.test') $$,
                 'TN004', null, 'a job cannot remove an admin');
select lives_ok($$ update public.organization_members set role = 'student' where user_id = tests.user_id('admin2@rr.test') $$,
                'but demotes a teacher');
reset role;

-- created_at is the time of writing
select tests.authenticate_as('owner@rr.test');
insert into public.member_permissions (org_id, user_id, permission, granted, created_at)
values ((select a from o), tests.user_id('student2@rr.test'), 'analytics.read', true, '2001-01-01');
update public.member_permissions set created_at = '2001-01-01', granted = false where user_id = tests.user_id('student2@rr.test');
reset role;
select is((select created_at from public.member_permissions where user_id = tests.user_id('student2@rr.test')), now(),
          'an override''s created_at is the time it was written, whatever the client sent or changed');
select is((select granted from public.member_permissions where user_id = tests.user_id('student2@rr.test')), false,
          'while the rest of the change applies');

select * from finish();
rollback;
