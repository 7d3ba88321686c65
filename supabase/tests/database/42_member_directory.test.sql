-- The member directory (public.organization_members_directory): members of an organization by
-- name, address and role, for its members only. Holders of members.invite or members.manage see
-- every address; everyone else sees their own and the staff's (teachers, admins, owners), never
-- another student's. Another organization's owner, a user in no organization, a member of a
-- deleted organization, an API key, anon and claims naming no real user are refused.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(17);

select tests.create_user(e) from unnest(array['owner@md.test', 'admin@md.test', 'teacher@md.test', 'student@md.test',
                                              'student2@md.test', 'owner@mdb.test', 'loner@md.test']) e;
update auth.users set raw_user_meta_data = jsonb_build_object('full_name', n)
from (values ('owner@md.test', 'Olivia Owner'), ('teacher@md.test', '  Theo Teacher '), ('student@md.test', 'Sam Student'),
             ('student2@md.test', repeat('Long', 40))) v(e, n)
where email = v.e;
create temp table o as select tests.create_org('owner@md.test', 'directory-a') a, tests.create_org('owner@mdb.test', 'directory-b') b,
                              tests.create_org('owner@md.test', 'directory-gone') gone;
grant select on o to authenticated, anon, service_role;
select set_config('request.jwt.claims', '', true);
select tests.add_members((select a from o), 'admin@md.test', 'admin', 'teacher@md.test', 'teacher', 'student@md.test', 'student',
                         'student2@md.test', 'student');
select tests.add_members((select gone from o), 'student@md.test', 'student');
update public.organizations set deleted_at = now() where id = (select gone from o);
create temp table k (api_key_id uuid);
grant all on k to authenticated;
select tests.authenticate_as('owner@md.test');
insert into k select api_key_id from public.create_api_key((select a from o), 'directory', array['org.read', 'members.invite']);
reset role;

create function pg_temp.dir() returns table (email text, display_name text, role text)
language sql as $$ select d.email, d.display_name, d.role::text from public.organization_members_directory((select a from o)) d $$;

select tests.authenticate_as('owner@md.test');
select results_eq($$ select email, role from pg_temp.dir() $$,
                  $$ values ('owner@md.test', 'owner'), ('admin@md.test', 'admin'), ('teacher@md.test', 'teacher'),
                            ('student2@md.test', 'student'), ('student@md.test', 'student') $$,
                  'an owner sees every member with their address and role, highest rank first, then by name');
select results_eq($$ select display_name from pg_temp.dir() where role in ('owner', 'teacher') $$,
                  $$ values ('Olivia Owner'), ('Theo Teacher') $$, 'names are the accounts'' full names, trimmed');
select is((select display_name from pg_temp.dir() where email = 'admin@md.test'), null, 'a member without a name has none');
select is((select length(display_name) from pg_temp.dir() where email = 'student2@md.test'), 100, 'a name is at most 100 characters');
reset role;

select tests.authenticate_as('teacher@md.test');
select is((select count(email)::int from pg_temp.dir()), 5, 'a teacher (members.invite) sees every address');
reset role;

select tests.authenticate_as('student@md.test');
select results_eq($$ select email, role from pg_temp.dir() $$,
                  $$ values ('owner@md.test', 'owner'), ('admin@md.test', 'admin'), ('teacher@md.test', 'teacher'),
                            (null, 'student'), ('student@md.test', 'student') $$,
                  'a student sees the staff''s addresses and their own, not another student''s');
select is((select count(*)::int from pg_temp.dir() where display_name like 'LongLong%'), 1, 'but sees the other student''s name');
reset role;

-- the permission decides, not the role: a student an owner lets invite sees every address
insert into public.member_permissions (org_id, user_id, permission, granted)
values ((select a from o), tests.user_id('student2@md.test'), 'members.invite', true);
select tests.authenticate_as('student2@md.test');
select is((select count(email)::int from pg_temp.dir()), 5, 'a student holding members.invite sees every address');
reset role;

select tests.authenticate_as('owner@mdb.test');
select throws_ok($$ select * from pg_temp.dir() $$, '42501', null, 'another organization''s owner is refused');
reset role;
select tests.authenticate_as('loner@md.test');
select throws_ok($$ select * from pg_temp.dir() $$, '42501', null, 'a user in no organization is refused');
select throws_ok($$ select * from public.organization_members_directory(null) $$, '42501', null, 'so is a null organization');
reset role;
select tests.authenticate_as('student@md.test');
select throws_ok($$ select * from public.organization_members_directory((select gone from o)) $$, '42501', null,
                 'a member of a deleted organization is refused');
reset role;
select tests.authenticate_with_key((select api_key_id from k));
select throws_ok($$ select * from pg_temp.dir() $$, '42501', null, 'an API key is refused, even one that may invite');
reset role;
select tests.as_anon();
select throws_ok($$ select * from pg_temp.dir() $$, '42501', null, 'anon may not call it');
reset role;
select tests.act_as('authenticated', jsonb_build_object('sub', gen_random_uuid()));
select throws_ok($$ select * from pg_temp.dir() $$, '42501', null, 'claims naming no real user are refused');
reset role;
select tests.act_as('authenticated', '{}');
select throws_ok($$ select * from pg_temp.dir() $$, '42501', null, 'and claims naming nobody');
reset role;
select tests.as_service();
select throws_ok($$ select * from pg_temp.dir() $$, '42501', null, 'the service (no member) is refused too');
reset role;

select * from finish();
rollback;
