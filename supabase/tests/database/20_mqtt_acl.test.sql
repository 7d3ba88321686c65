-- The MQTT broker's policy (schema mqtt), judged as the role the broker plugin logs in as
-- (mqtt_broker, not a superuser): every topic rule for every kind of client, wildcard
-- subscriptions, device keys, revocation, and who may call the policy at all.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(71);

select tests.create_user(e) from unnest(array['owner@qa.test', 'teacher@qa.test', 'student@qa.test', 'teamer@qa.test',
                                              'owner@qb.test', 'banned@qa.test', 'gone@qa.test']) e;
create temp table o as select tests.create_org('owner@qa.test', 'mqtt-a') a, tests.create_org('owner@qb.test', 'mqtt-b') b;
grant select on o to authenticated, anon, mqtt_broker;
select tests.add_members((select a from o), 'teacher@qa.test', 'teacher', 'student@qa.test', 'student', 'teamer@qa.test', 'student',
                         'banned@qa.test', 'student', 'gone@qa.test', 'student');
update auth.users set banned_until = now() + interval '1 day' where email = 'banned@qa.test';
update auth.users set deleted_at = now() where email = 'gone@qa.test';

-- An exercise with two teams in A (teamer in Red), one in B
create temp table x as
with ea as (insert into public.exercises (org_id, title) values ((select a from o), 'Drill A') returning id),
     eb as (insert into public.exercises (org_id, title) values ((select b from o), 'Drill B') returning id),
     red as (insert into public.exercise_teams (org_id, exercise_id, name) select (select a from o), id, 'Red' from ea returning id),
     blue as (insert into public.exercise_teams (org_id, exercise_id, name) select (select a from o), id, 'Blue' from ea returning id),
     green as (insert into public.exercise_teams (org_id, exercise_id, name) select (select b from o), id, 'Green' from eb returning id)
select (select id from ea) ea, (select id from eb) eb, (select id from red) red, (select id from blue) blue, (select id from green) green;
insert into public.exercise_team_members (org_id, team_id, user_id) values ((select a from o), (select red from x), tests.user_id('teamer@qa.test'));

-- Device keys in A: a sensor that publishes Red's feeds (as the exercise's controller), one without topics, a revoked and an expired one
select tests.authenticate_as('owner@qa.test');
create temp table k as
select (select api_key_id from public.create_api_key((select a from o), 'sensor', array['org.read', 'exercises.control'])) sensor,
       (select api_key from public.create_api_key((select a from o), 'plain', array['org.read'])) plain_secret;
select is(public.set_api_key_mqtt_topics((select sensor from k), array['exercise/+/team/+/feeds/sensor', 'events', 'events']),
          array['events', 'exercise/+/team/+/feeds/sensor'], 'a key manager gives a key MQTT topic patterns (sorted, without repeats)');
select throws_ok(format('select public.set_api_key_mqtt_topics(%L, array[''events/#/x''])', (select sensor from k)), 'MQ002', null,
                 '# only as the last level');
select throws_ok(format('select public.set_api_key_mqtt_topics(%L, array[''users/+/notifications''])', (select sensor from k)), 'MQ002', null,
                 'a device never gets users'' notifications');
select throws_ok(format('select public.set_api_key_mqtt_topics(%L, array[''org/x/events'', ''a b''])', (select sensor from k)), 'MQ002', null,
                 'levels are letters, digits, _ . -');
reset role;
select tests.authenticate_as('student@qa.test');
select throws_ok(format('select public.set_api_key_mqtt_topics(%L, array[''events''])', (select sensor from k)), 'TN026', null,
                 'a member without api_keys.manage cannot');
reset role;
select tests.authenticate_as('owner@qb.test');
select throws_ok(format('select public.set_api_key_mqtt_topics(%L, array[''events''])', (select sensor from k)), 'TN026', null,
                 'nor can another organization''s owner');
reset role;
alter table k add column revoked uuid, add column expired uuid;
insert into public.api_keys (org_id, name, key_prefix, key_hash, scopes, mqtt_topics, revoked_at)
values ((select a from o), 'revoked', 'sk_revoked1', sha256('r'), '{org.read}', '{events}', now());
insert into public.api_keys (org_id, name, key_prefix, key_hash, scopes, mqtt_topics, expires_at)
values ((select a from o), 'expired', 'sk_expired1', sha256('e'), '{org.read}', '{events}', now() - interval '1 minute');
update k set revoked = (select id from public.api_keys where name = 'revoked' and org_id = (select a from o)),
             expired = (select id from public.api_keys where name = 'expired' and org_id = (select a from o));

-- ---------------------------------------------------------------------------------------------
create temp table cases (n serial, actual boolean, expected boolean, kind text, client uuid, topic text, access text, description text);
create function pg_temp.topic(org uuid, rest text) returns text language sql as $$ select 'org/' || org || '/' || rest $$;
create function pg_temp.feeds(team uuid, feed text default 'gps') returns text language sql as $$
  select pg_temp.topic((select a from o), format('exercise/%s/team/%s/feeds/%s', (select ea from x), team, feed)) $$;
create function pg_temp.control(org uuid, exercise uuid) returns text language sql as $$
  select pg_temp.topic(org, format('exercise/%s/control', exercise)) $$;
create function pg_temp.u(email text) returns uuid language sql as $$ select tests.user_id(email) $$;

insert into cases (expected, kind, client, topic, access, description) values
  -- system/health
  (true,  'user',    pg_temp.u('student@qa.test'), 'system/health', 'subscribe', 'any user subscribes to system/health'),
  (true,  'user',    pg_temp.u('student@qa.test'), 'system/health', 'read',      'and receives it'),
  (false, 'user',    pg_temp.u('owner@qa.test'),   'system/health', 'write',     'even an owner cannot write system/health'),
  (false, 'device',  (select sensor from k),       'system/health', 'write',     'nor can a device'),
  (true,  'service', null,                         'system/health', 'write',     'the service writes system/health'),
  -- events
  (true,  'user',    pg_temp.u('student@qa.test'), pg_temp.topic((select a from o), 'events'), 'subscribe', 'a member subscribes to the organization''s events'),
  (true,  'user',    pg_temp.u('student@qa.test'), pg_temp.topic((select a from o), 'events'), 'read',      'and receives them'),
  (false, 'user',    pg_temp.u('owner@qa.test'),   pg_temp.topic((select a from o), 'events'), 'write',     'members do not write events'),
  (false, 'user',    pg_temp.u('owner@qb.test'),   pg_temp.topic((select a from o), 'events'), 'read',      'another organization''s owner does not receive them'),
  (false, 'user',    pg_temp.u('owner@qb.test'),   pg_temp.topic((select a from o), 'events'), 'subscribe', 'nor subscribe to them'),
  (true,  'service', null,                         pg_temp.topic((select a from o), 'events'), 'write',     'the service writes events'),
  (true,  'user',    pg_temp.u('banned@qa.test'),  pg_temp.topic((select a from o), 'events'), 'read',      'a banned user''s membership still reads (the broker refuses the banned user at connect and disconnects them)'),
  (false, 'user',    pg_temp.u('gone@qa.test'),    pg_temp.topic((select a from o), 'events'), 'read',      'a deleted user receives nothing'),
  -- notifications
  (true,  'user',    pg_temp.u('student@qa.test'), pg_temp.topic((select a from o), 'users/' || pg_temp.u('student@qa.test') || '/notifications'), 'subscribe', 'a user subscribes to their own notifications'),
  (true,  'user',    pg_temp.u('student@qa.test'), pg_temp.topic((select a from o), 'users/' || pg_temp.u('student@qa.test') || '/notifications'), 'read', 'and receives them'),
  (false, 'user',    pg_temp.u('student@qa.test'), pg_temp.topic((select a from o), 'users/' || pg_temp.u('student@qa.test') || '/notifications'), 'write', 'but does not write them'),
  (false, 'user',    pg_temp.u('owner@qa.test'),   pg_temp.topic((select a from o), 'users/' || pg_temp.u('student@qa.test') || '/notifications'), 'read', 'an owner does not receive a member''s notifications'),
  (false, 'user',    pg_temp.u('teacher@qa.test'), pg_temp.topic((select a from o), 'users/' || pg_temp.u('student@qa.test') || '/notifications'), 'subscribe', 'nor does a teacher subscribe to them'),
  (true,  'service', null,                         pg_temp.topic((select a from o), 'users/' || pg_temp.u('student@qa.test') || '/notifications'), 'write', 'the service writes notifications'),
  -- exercise control
  (true,  'user',    pg_temp.u('student@qa.test'), pg_temp.control((select a from o), (select ea from x)), 'read',  'a student receives exercise control'),
  (false, 'user',    pg_temp.u('student@qa.test'), pg_temp.control((select a from o), (select ea from x)), 'write', 'a student does not write it'),
  (true,  'user',    pg_temp.u('teacher@qa.test'), pg_temp.control((select a from o), (select ea from x)), 'write', 'a teacher writes exercise control'),
  (true,  'user',    pg_temp.u('owner@qa.test'),   pg_temp.control((select a from o), (select ea from x)), 'write', 'so does the owner'),
  (false, 'user',    pg_temp.u('owner@qb.test'),   pg_temp.control((select a from o), (select ea from x)), 'write', 'another organization''s owner does not'),
  (false, 'user',    pg_temp.u('teacher@qa.test'), pg_temp.control((select a from o), (select eb from x)), 'write', 'nor does a teacher for an exercise of another organization'),
  (false, 'user',    pg_temp.u('teacher@qa.test'), pg_temp.control((select a from o), gen_random_uuid()), 'write', 'nor for an exercise that does not exist'),
  -- team feeds
  (true,  'user',    pg_temp.u('teamer@qa.test'),  pg_temp.feeds((select red from x)), 'write',     'a team member writes the team''s feeds'),
  (true,  'user',    pg_temp.u('teamer@qa.test'),  pg_temp.feeds((select red from x)), 'read',      'and receives them'),
  (false, 'user',    pg_temp.u('teamer@qa.test'),  pg_temp.feeds((select blue from x)), 'read',     'not another team''s feeds'),
  (false, 'user',    pg_temp.u('teamer@qa.test'),  pg_temp.feeds((select blue from x)), 'write',    'nor writes them'),
  (false, 'user',    pg_temp.u('student@qa.test'), pg_temp.feeds((select red from x)), 'read',      'a member outside the team does not receive them'),
  (true,  'user',    pg_temp.u('teacher@qa.test'), pg_temp.feeds((select red from x)), 'read',      'a teacher receives every team''s feeds'),
  (false, 'user',    pg_temp.u('teacher@qa.test'), pg_temp.feeds((select red from x)), 'write',     'but does not write them'),
  (false, 'user',    pg_temp.u('teamer@qa.test'),  pg_temp.topic((select a from o), format('exercise/%s/team/%s/feeds/gps', (select eb from x), (select red from x))), 'write',
          'a team is addressed under its own exercise only'),
  (false, 'user',    pg_temp.u('teamer@qa.test'),  pg_temp.feeds((select red from x), 'gps/extra'), 'write', 'nothing below a feed'),
  -- wildcard subscriptions
  (false, 'user',    pg_temp.u('owner@qa.test'),   '#', 'subscribe',                                     '# is refused'),
  (false, 'user',    pg_temp.u('owner@qa.test'),   'org/+/events', 'subscribe',                          'org/+/events is refused'),
  (false, 'user',    pg_temp.u('owner@qa.test'),   'org/#', 'subscribe',                                 'org/# is refused'),
  (false, 'user',    pg_temp.u('owner@qa.test'),   pg_temp.topic((select b from o), '#'), 'subscribe',   'another organization''s # is refused'),
  (true,  'user',    pg_temp.u('student@qa.test'), pg_temp.topic((select a from o), '#'), 'subscribe',   'a member may subscribe to # within the organization (each delivery is judged as a read)'),
  (true,  'user',    pg_temp.u('student@qa.test'), pg_temp.topic((select a from o), 'users/+/notifications'), 'subscribe', 'and to users/+/notifications, receiving only their own'),
  (false, 'user',    pg_temp.u('owner@qb.test'),   pg_temp.topic((select a from o), 'users/+/notifications'), 'subscribe', 'an outsider may not'),
  (true,  'service', null,                         '#', 'subscribe',                                     'the service subscribes to everything'),
  (false, 'user',    pg_temp.u('student@qa.test'), '$SYS/#', 'subscribe',                                'users do not read $SYS'),
  -- devices
  (true,  'device',  (select sensor from k),       pg_temp.feeds((select red from x), 'sensor'), 'write',  'a device writes topics its patterns cover'),
  (true,  'device',  (select sensor from k),       pg_temp.topic((select a from o), 'events'), 'read',     'and reads them'),
  (false, 'device',  (select sensor from k),       pg_temp.feeds((select red from x), 'gps'), 'write',     'not topics they do not cover'),
  (true,  'device',  (select sensor from k),       pg_temp.topic((select a from o), 'exercise/+/team/+/feeds/sensor'), 'subscribe', 'it subscribes to filters its patterns cover'),
  (false, 'device',  (select sensor from k),       pg_temp.topic((select a from o), 'exercise/+/team/+/feeds/+'), 'subscribe', 'not to wider ones'),
  (false, 'device',  (select sensor from k),       pg_temp.topic((select a from o), '#'), 'subscribe',    'nor to #'),
  (false, 'device',  (select sensor from k),       pg_temp.topic((select b from o), 'events'), 'read',    'nor to another organization''s topics'),
  (false, 'device',  (select revoked from k),      pg_temp.topic((select a from o), 'events'), 'read',    'a revoked key reads nothing'),
  (false, 'device',  (select expired from k),      pg_temp.topic((select a from o), 'events'), 'read',    'an expired key reads nothing'),
  (false, 'user',    pg_temp.u('student@qa.test'), pg_temp.topic((select a from o), 'events'), 'publish', 'an unknown access is refused');

-- All of the above as the broker's role
-- (pgTAP itself is out of the broker's reach: it answers, the assertions run afterwards.)
grant select on o, x, k to mqtt_broker;
grant select, update on cases to mqtt_broker;
set local role mqtt_broker;
update cases set actual = mqtt.allows(kind, client, topic, access);
reset role;
select is(c.actual, c.expected, c.description) from cases c order by c.n;

-- Connecting
create temp table answers (question text primary key, answer text);
grant all on answers to mqtt_broker;
create function pg_temp.ask(question text, statement text) returns void language plpgsql as $$
begin
  execute 'insert into answers select $1, (' || statement || ')::text' using question;
exception when others then
  insert into answers values (question, 'error ' || sqlstate);
end $$;
create temp table questions as
select * from (values
  ('student', format('select mqtt.user_may_connect(%L)', pg_temp.u('student@qa.test'))),
  ('banned', format('select mqtt.user_may_connect(%L)', pg_temp.u('banned@qa.test'))),
  ('gone', format('select mqtt.user_may_connect(%L)', pg_temp.u('gone@qa.test'))),
  ('unknown', format('select mqtt.user_may_connect(%L)', gen_random_uuid())),
  ('plain key', format('select api_key_id from mqtt.connect_device(%L)', (select plain_secret from k))),
  ('unknown key', $$ select api_key_id from mqtt.connect_device('sk_not_a_key') $$),
  ('tables', 'select count(*) from public.organizations')) q(question, statement);
grant select on questions to mqtt_broker;
set local role mqtt_broker;
select pg_temp.ask(question, statement) from questions;
reset role;
select is((select answer from answers where question = 'student'), 'true', 'an existing user may connect');
select is((select answer from answers where question = 'banned'), 'false', 'a banned user may not');
select is((select answer from answers where question = 'gone'), 'false', 'a deleted user may not');
select is((select answer from answers where question = 'unknown'), 'false', 'an unknown user may not');
select is((select answer from answers where question = 'plain key'), 'error MQ001', 'a key without MQTT topics cannot connect');
select is((select answer from answers where question = 'unknown key'), 'error TN020', 'an unknown key cannot connect');
select is((select answer from answers where question = 'tables'), 'error 42501', 'the broker''s role reads no table itself');

-- Changes take effect at once
delete from public.organization_members where user_id = pg_temp.u('student@qa.test');
update public.organizations set deleted_at = now() where id = (select b from o);
insert into questions values
  ('removed', format('select mqtt.allows(''user'', %L, %L, ''read'')', pg_temp.u('student@qa.test'), pg_temp.topic((select a from o), 'events'))),
  ('deleted org', format('select mqtt.allows(''user'', %L, %L, ''read'')', pg_temp.u('owner@qb.test'), pg_temp.topic((select b from o), 'events')));
set local role mqtt_broker;
select pg_temp.ask(question, statement) from questions where question in ('removed', 'deleted org');
reset role;
select is((select answer from answers where question = 'removed'), 'false', 'a removed member receives nothing more');
select is((select answer from answers where question = 'deleted org'), 'false', 'nor does the owner of a deleted organization');

-- Only the broker asks
select tests.authenticate_as('owner@qa.test');
select throws_ok($$ select mqtt.allows('service', null, '#', 'subscribe') $$, '42501', null, 'a signed-in user cannot call the policy');
reset role;
select tests.as_anon();
select throws_ok($$ select mqtt.user_may_connect(gen_random_uuid()) $$, '42501', null, 'nor can anon');
reset role;

select * from finish();
rollback;
