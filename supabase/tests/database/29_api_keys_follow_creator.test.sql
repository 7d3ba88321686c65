-- Issue 16, items 3 and 4: a key acts only with the scopes its creator still holds, dies with the
-- creator's membership, lives at most a year (90 days by default), and on MQTT does only what its
-- scopes would let a member do.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(17);

select tests.create_user(e) from unnest(array['owner@kf.test', 'admin@kf.test', 'teacher@kf.test']) e;
create temp table o as select tests.create_org('owner@kf.test', 'keys-follow') a;
grant select on o to authenticated, service_role, mqtt_broker;
select set_config('request.jwt.claims', '', true);
select tests.add_members((select a from o), 'admin@kf.test', 'admin', 'teacher@kf.test', 'teacher');
create temp table x as select gen_random_uuid() exercise, gen_random_uuid() team;
grant select on x to authenticated, mqtt_broker;
insert into public.exercises (id, org_id, title) values ((select exercise from x), (select a from o), 'Drill');
insert into public.exercise_teams (id, org_id, exercise_id, name) values ((select team from x), (select a from o), (select exercise from x), 'Red');

-- lifetimes
select tests.authenticate_as('admin@kf.test');
create temp table k as select api_key_id id, api_key secret from public.create_api_key((select a from o), 'admin sync', array['org.read', 'members.manage', 'audit.read']);
grant select on k to service_role;
select ok((select expires_at between now() + interval '89 days' and now() + interval '91 days' from public.api_keys where id = (select id from k)),
          'a key expires after 90 days unless asked otherwise');
select throws_ok($$ select public.create_api_key((select a from o), 'forever', array['org.read'], now() + interval '400 days') $$, '22023', null,
                 'and lives at most 365 days');
reset role;

-- the creator's permissions bound the key, live
select tests.as_service();
select is((select scopes from public.verify_api_key((select secret from k))), array['audit.read', 'members.manage', 'org.read'], 'the key acts with its scopes');
reset role;
select tests.authenticate_as('owner@kf.test');
update public.organization_members set role = 'teacher' where user_id = tests.user_id('admin@kf.test');
reset role;
select tests.as_service();
select is((select scopes from public.verify_api_key((select secret from k))), array['org.read'], 'once its creator is demoted, only what the creator still holds');
select throws_ok(format('select public.verify_api_key(%L, %L)', (select secret from k), 'members.manage'), 'TN023', null,
                 'a scope the creator lost is refused');
reset role;
select tests.authenticate_with_key((select id from k));
select is_empty($$ select 1 from audit.log $$, 'reads none of the audit log the creator may no longer read');
select ok(not app.has_permission((select a from o), 'members.manage'), 'and the policy helpers agree');
reset role;
-- the creator's permissions are read once per answer, not once per scope the key has (policies
-- call this on every request a key makes)
set local track_functions = 'pl';
select is(app.api_key_scopes((select id from k)), array['org.read'], 'the key''s scopes, asked directly');
select is((select calls::int from pg_stat_xact_user_functions where schemaname = 'app' and funcname = 'permissions_of'), 1,
          'asking for a key of three scopes reads its creator''s permissions once');

-- the creator leaves: the key and their open invitations are revoked
select tests.authenticate_as('owner@kf.test');
update public.organization_members set role = 'admin' where user_id = tests.user_id('admin@kf.test');
reset role;
select tests.authenticate_as('admin@kf.test');
select public.create_invitation((select a from o), 'new@kf.test', 'student');
reset role;
select tests.authenticate_as('owner@kf.test');
delete from public.organization_members where user_id = tests.user_id('admin@kf.test');
reset role;
select isnt((select revoked_at from public.api_keys where id = (select id from k)), null, 'a departing member''s keys are revoked');
select isnt((select revoked_at from public.invitations where email = 'new@kf.test'), null, 'and their open invitations');
select tests.as_service();
select throws_ok(format('select public.verify_api_key(%L)', (select secret from k)), 'TN021', null, 'the key is refused');
reset role;

-- MQTT: an org.read key given control, feeds and events patterns
select tests.authenticate_as('owner@kf.test');
create temp table d as select api_key_id id from public.create_api_key((select a from o), 'reader', array['org.read']);
select public.set_api_key_mqtt_topics((select id from d), array['exercise/+/control', 'exercise/+/team/+/feeds/+', 'events']);
reset role;
-- (mqtt.allows is what the broker calls; it is a definer function, so the caller's role does not matter)
select ok(not mqtt.allows('device', (select id from d), format('org/%s/exercise/%s/control', (select a from o), (select exercise from x)), 'write'),
          'an org.read key does not publish control messages');
select ok(mqtt.allows('device', (select id from d), format('org/%s/exercise/%s/control', (select a from o), (select exercise from x)), 'read'),
          'it reads them, as a member would');
select ok(not mqtt.allows('device', (select id from d), format('org/%s/exercise/%s/team/%s/feeds/gps', (select a from o), (select exercise from x), (select team from x)), 'read'),
          'it reads no team''s feed');
select ok(not mqtt.allows('device', (select id from d), format('org/%s/events', (select a from o)), 'write'),
          'and never writes the service''s events topic');
select ok(not mqtt.allows('device', (select id from d), format('org/%s/exercise/%s/control', (select a from o), gen_random_uuid()), 'read'),
          'nor reads the control topic of an exercise that does not exist');
reset role;

select * from finish();
rollback;
