-- The audit log: an entry per change with actor, organization, values and origin; append-only for
-- every role; readable by members holding audit.read, for their own organization only.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(23);

select tests.create_user(e) from unnest(array['owner@au.test', 'teacher@au.test', 'owner@av.test']) e;
select tests.set_headers('203.0.113.7, 10.0.0.1', 'vitest/1.0', 'req-create');
create temp table o as select tests.create_org('owner@au.test', 'audit-a') a, tests.create_org('owner@av.test', 'audit-b') b;
grant select on o to authenticated, anon, service_role;

create function pg_temp.last_entry(tbl text) returns audit.log language sql as $$
  select * from audit.log where table_name = tbl order by id desc limit 1
$$;

-- Who, what, where
select is((pg_temp.last_entry('public.organizations')).action, 'INSERT', 'creating an organization is recorded');
select is((pg_temp.last_entry('public.organizations')).actor_user_id, tests.user_id('owner@av.test'), 'with the acting user');
select is((pg_temp.last_entry('public.organizations')).ip, '10.0.0.1'::inet,
          'the IP the trusted proxy appended, not the x-forwarded-for entry the client wrote (issue 16, item 18)');
select is((pg_temp.last_entry('public.organizations')).forwarded_for, '203.0.113.7, 10.0.0.1', 'the raw header kept apart');
select is((pg_temp.last_entry('public.organizations')).user_agent, 'vitest/1.0', 'the user agent');
select is((pg_temp.last_entry('public.organizations')).request_id, 'req-create', 'and the request id');
select is((pg_temp.last_entry('public.organizations')).db_role, 'authenticated', 'and the database role of the request');

select tests.set_headers('198.51.100.2', 'browser', 'req-rename');
select tests.authenticate_as('owner@au.test');
update public.organizations set name = 'Audit A renamed' where id = (select a from o);
reset role;
select is((pg_temp.last_entry('public.organizations')).changed_columns, array['name'], 'an update records only the changed columns');
select is((pg_temp.last_entry('public.organizations')).old_values, '{"name": "Audit A"}'::jsonb, 'with old values');
select is((pg_temp.last_entry('public.organizations')).new_values, '{"name": "Audit A renamed"}'::jsonb, 'and new values');
select is((pg_temp.last_entry('public.organizations')).org_id, (select a from o), 'under the organization');

select tests.authenticate_as('owner@au.test');
select public.create_invitation((select a from o), 'teacher@au.test', 'teacher');
reset role;
select ok(not (pg_temp.last_entry('public.invitations')).new_values ? 'token_hash', 'secrets are never recorded');

insert into public.organization_members (org_id, user_id, role) values ((select a from o), tests.user_id('teacher@au.test'), 'teacher');
select tests.authenticate_as('owner@au.test');
delete from public.organization_members where user_id = tests.user_id('teacher@au.test');
reset role;
select is((pg_temp.last_entry('public.organization_members')).action, 'DELETE', 'removing a member is recorded');
select is((pg_temp.last_entry('public.organization_members')).old_values ->> 'role', 'teacher', 'with the removed row');

-- A machine client is recorded as its key
select tests.authenticate_as('owner@au.test');
create temp table k as select api_key_id id from public.create_api_key((select a from o), 'HR sync', array['org.read', 'settings.manage']);
reset role;
grant select on k to authenticated;
select tests.authenticate_with_key((select id from k));
update public.organizations set settings = '{"locale": "fi"}' where id = (select a from o);
reset role;
select results_eq($$ select actor_user_id, actor_api_key_id from pg_temp.last_entry('public.organizations') $$,
  $$ values (null::uuid, (select id from k)) $$, 'a change made with an API key names the key');

-- A malformed header never blocks a write
select tests.set_headers('not-an-ip', 'x', 'req-bad');
select tests.authenticate_as('owner@au.test');
select lives_ok($$ update public.organizations set name = 'Audit A again' where id = (select a from o) $$, 'a bad IP header does not block the write');
reset role;
select is((pg_temp.last_entry('public.organizations')).ip, null, 'and is recorded as unknown');

-- Reading
select tests.authenticate_as('owner@au.test');
select is_empty($$ select 1 from audit.log where org_id <> (select a from o) $$, 'an owner reads only their organization''s entries');
select isnt_empty($$ select 1 from audit.log $$, 'and does read them');
reset role;
insert into public.organization_members (org_id, user_id, role) values ((select a from o), tests.user_id('teacher@au.test'), 'teacher');
select tests.authenticate_as('teacher@au.test');
select is_empty($$ select 1 from audit.log $$, 'a member without audit.read reads nothing');

-- Append-only
select throws_ok($$ update audit.log set action = 'INSERT' $$, '42501', null, 'a member cannot change entries');
reset role;
select tests.as_service();
select throws_ok($$ delete from audit.log $$, '42501', null, 'nor can the service delete them');
reset role;
select throws_ok($$ update audit.log set request_id = 'forged' $$, 'TN090', null, 'not even the table owner rewrites history');

select * from finish();
rollback;
