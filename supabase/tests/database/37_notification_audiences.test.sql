-- Audience delivery (issue 19, item 1): when a send of an audience type to a role or to everyone
-- goes out once per role instead of once per recipient, and every case that keeps per-recipient
-- delivery because one message for all would not say what each recipient chose; who sees the
-- audience delivery; who may read and write a role's topic. As the roles real requests use.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(26);

select tests.create_user(e) from unnest(array['owner@aud.test', 'teacher@aud.test', 's1@aud.test', 's2@aud.test', 's3@aud.test', 'owner@audb.test']) e;
create temp table o as select tests.create_org('owner@aud.test', 'audience-a') a, tests.create_org('owner@audb.test', 'audience-b') b;
grant select on o to authenticated, anon, service_role;
select tests.add_members((select a from o), 'teacher@aud.test', 'teacher', 's1@aud.test', 'student', 's2@aud.test', 'student',
                         's3@aud.test', 'student');
create temp table b (label text primary key, batch uuid, created int);
grant all on b to authenticated;
create function pg_temp.batch(l text) returns uuid language sql as $$ select batch from b where label = l $$;
create function pg_temp.mqtt_rows(l text) returns int language sql as $$
  select count(*)::int from public.notification_deliveries d where d.batch_id = pg_temp.batch(l) and d.channel = 'mqtt' $$;
create function pg_temp.audience(l text) returns text language sql as $$
  select a.roles::text || ' ' || a.recipients || ' ' || a.status from public.notification_audience_deliveries a where a.batch_id = pg_temp.batch(l) $$;

-- Sends that go to an audience
select tests.authenticate_as('teacher@aud.test');
insert into b select 'students', * from public.send_notification((select a from o), 'announcement.broadcast', 'Trip', 'Friday', '{}', '{"role": "student"}');
insert into b select 'everyone', * from public.send_notification((select a from o), 'announcement.broadcast', 'Hello', '', '{}', '{"everyone": true}', null, 'hello-1');
reset role;
select is(pg_temp.audience('students'), '{student} 3 pending', 'a role send of an audience type makes one audience delivery for the role');
select is(pg_temp.mqtt_rows('students'), 0, 'and no MQTT delivery per recipient');
select is((select count(*)::int from public.notification_deliveries where batch_id = pg_temp.batch('students') and channel = 'email'), 3,
          'e-mail is still per recipient');
select is((select count(*)::int from public.notifications where batch_id = pg_temp.batch('students')), 3, 'each recipient has their own notification');
select is(pg_temp.audience('everyone'), '{owner,teacher,student} 5 pending', 'everyone: one audience per role present');

-- Sends that stay per recipient
select tests.authenticate_as('s2@aud.test');
insert into public.notification_preferences (org_id, user_id, type, channel, enabled)
values ((select a from o), tests.user_id('s2@aud.test'), 'announcement.broadcast', 'mqtt', false);
reset role;
select tests.authenticate_as('teacher@aud.test');
insert into b select 'again', * from public.send_notification((select a from o), 'announcement.broadcast', 'Hello', '', '{}', '{"everyone": true}', null, 'hello-1');
insert into b select 'mqtt-off', * from public.send_notification((select a from o), 'announcement.broadcast', 'Off', '', '{}', '{"role": "student"}');
insert into b select 'teachers', * from public.send_notification((select a from o), 'announcement.broadcast', 'Staff', '', '{}', '{"role": "teacher"}');
insert into b select 'listed', * from public.send_notification((select a from o), 'announcement.broadcast', 'You', '', '{}',
                                                               jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('s1@aud.test'))));
insert into b select 'permission', * from public.send_notification((select a from o), 'announcement.broadcast', 'Managers', '', '{}', '{"permission": "members.manage"}');
insert into b select 'plain-type', * from public.send_notification((select a from o), 'announcement.posted', 'Plain', '', '{}', '{"role": "teacher"}');
reset role;
select is((select created from b where label = 'again'), 0, 'a repeated idempotency key makes nothing');
select ok(pg_temp.audience('mqtt-off') is null and pg_temp.mqtt_rows('mqtt-off') = 2,
          'a recipient who turned MQTT off for the type keeps the send per recipient (the others get their own rows)');
select is(pg_temp.audience('teachers'), '{teacher} 1 pending', 'a member''s choice counts only in sends that reach them');
select ok(pg_temp.audience('listed') is null and pg_temp.mqtt_rows('listed') = 1, 'a list of users is per recipient');
select ok(pg_temp.audience('permission') is null and pg_temp.mqtt_rows('permission') = 1, 'a permission audience is per recipient');
select ok(pg_temp.audience('plain-type') is null and pg_temp.mqtt_rows('plain-type') = 1, 'a type without audience delivery is per recipient');

-- Quiet hours now, and idempotency keys with earlier rows
select tests.authenticate_as('s2@aud.test');
delete from public.notification_preferences where user_id = tests.user_id('s2@aud.test');
reset role;
select tests.authenticate_as('s1@aud.test');
insert into public.notification_settings (org_id, user_id, quiet_start, quiet_end)
values ((select a from o), tests.user_id('s1@aud.test'), (now() at time zone 'UTC' - interval '1 hour')::time, (now() at time zone 'UTC' + interval '1 hour')::time);
reset role;
select tests.authenticate_as('teacher@aud.test');
insert into b select 'quiet', * from public.send_notification((select a from o), 'announcement.broadcast', 'Quiet', '', '{}', '{"role": "student"}');
insert into b select 'urgent', * from public.send_notification((select a from o), 'announcement.broadcast', 'Fire drill', '', '{}', '{"role": "student"}', 'urgent');
insert into b select 'key-first', * from public.send_notification((select a from o), 'announcement.broadcast', 'Once', '', '{}',
                                                                  jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('s3@aud.test'))), 'urgent', 'once-1');
insert into b select 'key-rest', * from public.send_notification((select a from o), 'announcement.broadcast', 'Once', '', '{}', '{"role": "student"}', 'urgent', 'once-1');
insert into b select 'key-teacher', * from public.send_notification((select a from o), 'announcement.broadcast', 'Twice', '', '{}',
                                                                    jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('teacher@aud.test'))), 'urgent', 'twice-1');
insert into b select 'key-students', * from public.send_notification((select a from o), 'announcement.broadcast', 'Twice', '', '{}', '{"role": "student"}', 'urgent', 'twice-1');
reset role;
select ok(pg_temp.audience('quiet') is null and pg_temp.mqtt_rows('quiet') = 3, 'a recipient in quiet hours keeps the send per recipient');
select ok((select d.next_attempt_at > now() from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
           where d.batch_id = pg_temp.batch('quiet') and d.channel = 'mqtt' and n.recipient_id = tests.user_id('s1@aud.test')),
          'and their delivery waits for the hours to end');
select is(pg_temp.audience('urgent'), '{student} 3 pending', 'an urgent send ignores quiet hours and goes to the audience');
select ok(pg_temp.audience('key-rest') is null and (select created from b where label = 'key-rest') = 2 and pg_temp.mqtt_rows('key-rest') = 2,
          'a key some recipients already had: the others get it per recipient, no one twice');
select is(pg_temp.audience('key-students'), '{student} 3 pending', 'a key only members outside the audience had does not keep it per recipient');

-- Who sees an audience delivery
select tests.authenticate_as('s1@aud.test');
select is((select count(*)::int from public.notification_audience_deliveries where batch_id = pg_temp.batch('students')), 1,
          'a recipient sees how their notification went out');
reset role;
select tests.authenticate_as('teacher@aud.test');
select is((select count(*)::int from public.notification_audience_deliveries where batch_id = pg_temp.batch('students')), 0,
          'a member who was not a recipient does not');
reset role;
select tests.authenticate_as('owner@audb.test');
select is((select count(*)::int from public.notification_audience_deliveries), 0, 'nor does another organization');
reset role;
set local role anon;
select throws_ok($$ select 1 from public.notification_audience_deliveries $$, '42501', null, 'anon cannot read audience deliveries');
reset role;
select tests.authenticate_as('s1@aud.test');
select throws_ok($$ update public.notification_audience_deliveries set status = 'sent' $$, '42501', null, 'and members cannot change them');
reset role;

-- The broker: a member reads their current role's topic only; devices never
select results_eq($$ select mqtt.allows('user', tests.user_id('s1@aud.test'), format('org/%s/roles/student/notifications', (select a from o)), 'subscribe'),
                            mqtt.allows('user', tests.user_id('s1@aud.test'), format('org/%s/roles/student/notifications', (select a from o)), 'read'),
                            mqtt.allows('user', tests.user_id('s1@aud.test'), format('org/%s/roles/student/notifications', (select a from o)), 'write'),
                            mqtt.allows('user', tests.user_id('s1@aud.test'), format('org/%s/roles/teacher/notifications', (select a from o)), 'subscribe'),
                            mqtt.allows('user', tests.user_id('owner@audb.test'), format('org/%s/roles/student/notifications', (select a from o)), 'subscribe') $$,
                  $$ values (true, true, false, false, false) $$,
                  'a student reads the students'' topic, cannot publish to it, and reads no other role''s or organization''s');
update public.organization_members set role = 'teacher' where org_id = (select a from o) and user_id = tests.user_id('s3@aud.test');
select results_eq($$ select mqtt.allows('user', tests.user_id('s3@aud.test'), format('org/%s/roles/student/notifications', (select a from o)), 'read'),
                            mqtt.allows('user', tests.user_id('s3@aud.test'), format('org/%s/roles/teacher/notifications', (select a from o)), 'read') $$,
                  $$ values (false, true) $$, 'a member whose role changed reads the new role''s topic, not the old');
create temp table k (id uuid);
grant all on k to authenticated;
select tests.authenticate_as('owner@aud.test');
insert into k select api_key_id from public.create_api_key((select a from o), 'everything', array['org.read', 'exercises.control']);
select public.set_api_key_mqtt_topics((select id from k), array['#']);
reset role;
select results_eq($$ select mqtt.allows('device', (select id from k), format('org/%s/roles/student/notifications', (select a from o)), 'subscribe'),
                            mqtt.allows('device', (select id from k), format('org/%s/roles/student/notifications', (select a from o)), 'write'),
                            mqtt.allows('device', (select id from k), format('org/%s/sensors/t1', (select a from o)), 'write') $$,
                  $$ values (false, false, true) $$, 'a device with every topic in its patterns still cannot read or write a role''s topic');

-- The sweep sends again an audience delivery that is due, and leaves one that is done alone
update public.notification_audience_deliveries set next_attempt_at = now() - interval '1 minute' where batch_id = pg_temp.batch('urgent');
update public.notification_audience_deliveries set next_attempt_at = now() - interval '1 minute', status = 'sent' where batch_id = pg_temp.batch('teachers');
select cmp_ok(app.sweep_notifications(), '>=', 1, 'the sweep calls dispatch');
select results_eq($$ select convert_from(q.body, 'utf8')::jsonb ->> 'batch_id' from net.http_request_queue q
                    where convert_from(q.body, 'utf8')::jsonb ->> 'type' = 'SWEEP'
                      and convert_from(q.body, 'utf8')::jsonb ->> 'batch_id' in (pg_temp.batch('urgent')::text, pg_temp.batch('teachers')::text) $$,
                  $$ values (pg_temp.batch('urgent')::text) $$, 'for a due audience delivery, not for a sent one');

select * from finish();
rollback;
