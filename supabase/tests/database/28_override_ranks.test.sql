-- Permission overrides are written only for lower ranks (owners for
-- anyone, nobody their own), created_by is the writer, and a job cannot make an owner.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(14);

select tests.create_user(e) from unnest(array['owner@or.test', 'owner2@or.test', 'admin@or.test', 'teacher@or.test',
                                                'teacher2@or.test', 'student@or.test', 'owner@other.test']) e;
create temp table o as select tests.create_org('owner@or.test', 'ranks-a') a, tests.create_org('owner@other.test', 'ranks-b') b;
grant select on o to authenticated, service_role;
select tests.add_members((select a from o), 'owner2@or.test', 'owner', 'admin@or.test', 'admin', 'teacher@or.test', 'teacher',
                         'teacher2@or.test', 'teacher', 'student@or.test', 'student');

-- the attack: an admin revokes the owners' permissions
select tests.authenticate_as('admin@or.test');
select throws_ok($$ insert into public.member_permissions (org_id, user_id, permission, granted)
                    values ((select a from o), tests.user_id('owner@or.test'), 'members.manage', false) $$,
                 '42501', null, 'an admin cannot revoke an owner''s permissions');
select throws_ok($$ insert into public.member_permissions (org_id, user_id, permission, granted)
                    values ((select a from o), tests.user_id('admin@or.test'), 'settings.manage', true) $$,
                 '42501', null, 'nor grant themselves anything');
reset role;
select tests.authenticate_as('owner@or.test');
select lives_ok($$ insert into public.member_permissions (org_id, user_id, permission, granted) values
                   ((select a from o), tests.user_id('owner2@or.test'), 'settings.manage', false),
                   ((select a from o), tests.user_id('teacher@or.test'), 'members.manage', true) $$,
                'an owner writes overrides for another owner and for a teacher');
reset role;
select tests.authenticate_as('admin@or.test');
delete from public.member_permissions where user_id = tests.user_id('owner2@or.test');
update public.member_permissions set granted = true where user_id = tests.user_id('owner2@or.test');
reset role;
select is((select granted from public.member_permissions where user_id = tests.user_id('owner2@or.test')), false,
          'an admin can neither remove nor change an owner''s override');

select tests.authenticate_as('admin@or.test');
select lives_ok($$ insert into public.member_permissions (org_id, user_id, permission, granted, created_by)
                   values ((select a from o), tests.user_id('teacher2@or.test'), 'files.write', false, tests.user_id('owner@other.test')) $$,
                'an admin writes a teacher''s override');
reset role;
select is((select created_by from public.member_permissions where user_id = tests.user_id('teacher2@or.test')), tests.user_id('admin@or.test'),
          'stamped with the admin as its author, whatever the client named');

-- a teacher given members.manage manages students, not fellow teachers or themselves
select tests.authenticate_as('teacher@or.test');
select throws_ok($$ insert into public.member_permissions (org_id, user_id, permission, granted)
                    values ((select a from o), tests.user_id('teacher2@or.test'), 'files.write', true) $$,
                 '42501', null, 'a teacher cannot override a teacher');
select is_empty($$ update public.member_permissions set granted = false where user_id = tests.user_id('teacher@or.test') returning 1 $$,
                'nor change their own grant');
select lives_ok($$ insert into public.member_permissions (org_id, user_id, permission, granted)
                   values ((select a from o), tests.user_id('student@or.test'), 'files.write', true) $$,
                'but does a student''s');
reset role;
select tests.authenticate_as('owner@other.test');
select throws_ok($$ insert into public.member_permissions (org_id, user_id, permission, granted)
                    values ((select a from o), tests.user_id('student@or.test'), 'analytics.read', true) $$,
                 '42501', null, 'another organization''s owner writes none');
reset role;

-- an API key with members.manage ranks as an admin
select tests.authenticate_as('owner@or.test');
create temp table k as select api_key_id as id from public.create_api_key((select a from o), 'ranks', array['members.manage']);
reset role;
select tests.authenticate_with_key((select id from k));
select throws_ok($$ insert into public.member_permissions (org_id, user_id, permission, granted)
                    values ((select a from o), tests.user_id('admin@or.test'), 'members.manage', false) $$,
                 '42501', null, 'a key cannot override an admin');
reset role;

-- item 17: a job holding members.manage cannot make or unmake an owner
select tests.act_as('authenticated', jsonb_build_object('job_id', gen_random_uuid(), 'job_org_id', (select a from o), 'job_scopes', '["members.manage"]'::jsonb));
select throws_ok($$ update public.organization_members set role = 'owner' where user_id = tests.user_id('teacher@or.test') $$,
                 'TN002', null, 'a job cannot make an owner');
select throws_ok($$ update public.organization_members set role = 'admin' where user_id = tests.user_id('owner2@or.test') $$,
                 'TN002', null, 'nor unmake one');
select lives_ok($$ update public.organization_members set role = 'teacher' where user_id = tests.user_id('student@or.test') $$,
                'but changes other roles');
reset role;

select * from finish();
rollback;
