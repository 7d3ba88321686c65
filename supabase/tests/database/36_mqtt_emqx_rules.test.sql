-- Issue 19, item 4: mqtt.emqx_acl, the broker policy as rows a clustered broker (EMQX's
-- PostgreSQL authorizer: first match wins, no match denies) reads, answers exactly as
-- mqtt.allows for publishing and subscribing, over a generated sample of principals and topics.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(5);

select tests.create_user(e) from unnest(array['owner@em.test', 'teacher@em.test', 'student@em.test', 'owner@emb.test']) e;
create temp table o as select tests.create_org('owner@em.test', 'emqx-a') a, tests.create_org('owner@emb.test', 'emqx-b') b;
grant select on o to authenticated;
select set_config('request.jwt.claims', '', true);
select tests.add_members((select a from o), 'teacher@em.test', 'teacher', 'student@em.test', 'student');
create temp table x as select gen_random_uuid() exercise, gen_random_uuid() red, gen_random_uuid() blue;
grant select on x to authenticated;
insert into public.exercises (id, org_id, title) values ((select exercise from x), (select a from o), 'Drill');
insert into public.exercise_teams (id, org_id, exercise_id, name) values
  ((select red from x), (select a from o), (select exercise from x), 'Red'), ((select blue from x), (select a from o), (select exercise from x), 'Blue');
insert into public.exercise_team_members (org_id, team_id, user_id) values ((select a from o), (select red from x), tests.user_id('student@em.test'));

-- devices: a reader with narrow patterns, a controller with every topic
create temp table k (name text, id uuid);
grant all on k to authenticated;
select tests.authenticate_as('owner@em.test');
insert into k select 'reader', api_key_id from public.create_api_key((select a from o), 'reader', array['org.read']);
insert into k select 'controller', api_key_id from public.create_api_key((select a from o), 'controller', array['org.read', 'exercises.control']);
select public.set_api_key_mqtt_topics((select id from k where name = 'reader'),
  array['events', 'exercise/+/control', 'exercise/+/team/+/feeds/gps', 'sensors/+']);
select public.set_api_key_mqtt_topics((select id from k where name = 'controller'), array['#']);
reset role;

create temp table principals as
  select 'user' kind, tests.user_id(e) id from unnest(array['owner@em.test', 'teacher@em.test', 'student@em.test', 'owner@emb.test']) e
  union all select 'device', id from k;
create temp table topics as
  select t from (select o.a, o.b, x.exercise, x.red, x.blue from o, x) s, lateral unnest(array[
    'system/health',
    format('org/%s/events', s.a),
    format('org/%s/users/%s/notifications', s.a, tests.user_id('student@em.test')),
    format('org/%s/users/%s/notifications', s.a, tests.user_id('teacher@em.test')),
    format('org/%s/roles/student/notifications', s.a),
    format('org/%s/roles/teacher/notifications', s.a),
    format('org/%s/roles/owner/notifications', s.a),
    format('org/%s/roles/student/notifications', s.b),
    format('org/%s/exercise/%s/control', s.a, s.exercise),
    format('org/%s/exercise/%s/control', s.a, gen_random_uuid()),
    format('org/%s/exercise/%s/team/%s/feeds/gps', s.a, s.exercise, s.red),
    format('org/%s/exercise/%s/team/%s/feeds/gps', s.a, s.exercise, s.blue),
    format('org/%s/exercise/%s/team/%s/feeds/radio', s.a, s.exercise, s.red),
    format('org/%s/exercise/%s/team/%s/feeds/gps', s.a, gen_random_uuid(), s.red),
    format('org/%s/exercise/%s', s.a, s.exercise),
    format('org/%s/sensors/t1', s.a),
    format('org/%s/sensors/t1/deep', s.a),
    format('org/%s/events/x', s.a),
    format('org/%s/events', s.b),
    format('org/%s/exercise/%s/control', s.b, s.exercise)
  ]) t;

-- EMQX's evaluation: the first rule whose action fits and whose topic filter matches decides
create function pg_temp.emqx_allows(principal text, topic text, access text) returns boolean language sql as $$
  select coalesce((select r.permission = 'allow' from mqtt.emqx_acl(principal) with ordinality r(permission, action, rule, n)
                   where r.action in ('all', case access when 'write' then 'publish' else 'subscribe' end)
                     and app.mqtt_pattern_covers(r.rule, topic)
                   order by r.n limit 1), false)
$$;

create temp table answers as
  select p.kind, p.id, t.t as topic, a.access,
         mqtt.allows(p.kind, p.id, t.t, a.access) as policy,
         pg_temp.emqx_allows(p.kind || ':' || p.id, t.t, a.access) as emqx
  from principals p, topics t, unnest(array['write', 'subscribe']) a(access);

select is((select count(*)::int from answers), 6 * 20 * 2, 'every principal, topic and access is compared');
select isnt((select count(*)::int from answers where policy), 0, 'the sample has allowed answers');
select isnt((select count(*)::int from answers where not policy), 0, 'and refused ones');
select is_empty($$ select kind, topic, access, policy, emqx from answers where policy <> emqx $$,
                'mqtt.emqx_acl answers exactly as mqtt.allows');

-- A concrete topic's read answer is its subscribe answer (EMQX checks subscriptions only; a broker
-- cache may answer a delivery from the subscription's grant)
select is_empty($$ select p.kind, t.t from principals p, topics t
                   where mqtt.allows(p.kind, p.id, t.t, 'read') <> mqtt.allows(p.kind, p.id, t.t, 'subscribe') $$,
                'for every concrete topic of the sample, read and subscribe are answered alike');

select * from finish();
rollback;
