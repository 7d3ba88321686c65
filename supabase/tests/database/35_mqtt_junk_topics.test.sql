-- Issue 16, item 16: the broker's policy answers "no" to junk topics instead of raising.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(4);

select tests.create_user('owner@mj.test');
create temp table o as select tests.create_org('owner@mj.test', 'mqtt-junk') a;
select set_config('request.jwt.claims', '', true);
create temp table k as select null::uuid id;
grant all on k, o to authenticated;
select tests.authenticate_as('owner@mj.test');
update k set id = (select api_key_id from public.create_api_key((select a from o), 'junk', array['org.read', 'exercises.control']));
select public.set_api_key_mqtt_topics((select id from k), array['#']);
reset role;

select lives_ok(format($$ select mqtt.allows('user', %L, %L, 'read') $$, tests.user_id('owner@mj.test'),
                       format('org/%s/exercise/%s/control', (select a from o), repeat('-', 36))),
                'a user''s junk exercise level is answered');
select is(mqtt.allows('user', tests.user_id('owner@mj.test'), format('org/%s/exercise/%s/control', (select a from o), repeat('-', 36)), 'read'),
          false, 'with no');
select is(mqtt.allows('user', tests.user_id('owner@mj.test'),
                      format('org/%s/exercise/%s/team/%s/feeds/x', (select a from o), gen_random_uuid(), repeat('-', 36)), 'read'),
          false, 'a junk team level too');
select is(mqtt.allows('device', (select id from k), format('org/%s/exercise/%s/control', (select a from o), repeat('-', 36)), 'write'),
          false, 'and a device''s');

select * from finish();
rollback;
