-- Usage per organization per day against the tier's limits: what is counted, who reads it, and
-- the notifications at 80 % and 100 % (once per metric, level and day).
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(28);

select tests.create_user(e) from unnest(array['owner@us.test', 's1@us.test', 's2@us.test', 's3@us.test', 's4@us.test']) e;
create temp table o as select tests.create_org('owner@us.test', 'usage-a') a; -- free: 5 members, 1 GB, 100,000 events a day
grant select on o to authenticated, anon, service_role;
select tests.add_members((select a from o), 's1@us.test', 'student', 's2@us.test', 'student', 's3@us.test', 'student');
insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
select (select a from o), tests.user_id(e), 'page.viewed', now(), '{"path": "/"}' from unnest(array['s1@us.test', 's2@us.test', 's1@us.test']) e;
select app.rollup_analytics();
update public.storage_quotas set used_bytes = 1000 where org_id = (select a from o);

-- the alerts' keys are predictable (usage.<level>:<metric>:<day>); a member's send with one would
-- stand in for the real alert, so members send no usage types
select tests.authenticate_as('owner@us.test');
select throws_ok($$ select public.send_notification((select a from o), 'usage.warning', 'Members at 80 % of the plan', 'All fine', '{}',
                                                    '{"permission": "settings.manage"}', null, format('usage.warning:members:%s', current_date)) $$,
                 'NT006', null, 'nobody sends a usage alert, not even an owner');
reset role;
select tests.as_service();
select cmp_ok(app.track_usage(), '>=', 1, 'the service tracks the day''s usage');
reset role;
select results_eq($$ select members, active_users, storage_bytes, events, api_calls from public.usage_daily where org_id = (select a from o) and day = current_date $$,
                  $$ values (4, 2, 1000::bigint, 3::bigint, 0::bigint) $$, 'members, active users, storage, events; no API calls yet');
select results_eq($$ select type, data ->> 'metric' from public.notifications where org_id = (select a from o) and type like 'usage.%' $$,
                  $$ values ('usage.warning', 'members') $$, '4 of 5 members is a warning to the owner');
select is((select title || ' / ' || body from public.notifications where org_id = (select a from o) and type = 'usage.warning'),
          format('Members at 80 %% of the plan / 4 of 5 used on %s.', to_char(current_date, 'FMDD FMMonth YYYY')),
          'in words: the metric''s name, the amounts and the day');
select is((select recipient_id from public.notifications where org_id = (select a from o) and type like 'usage.%'), tests.user_id('owner@us.test'), 'the owner manages settings');
select tests.add_members((select a from o), 's4@us.test', 'student');
select app.track_usage();
select app.track_usage();
select results_eq($$ select type from public.notifications where org_id = (select a from o) and type like 'usage.%' order by type $$,
                  $$ values ('usage.limit'), ('usage.warning') $$, 'reaching the limit says so once, however often usage is tracked');

select tests.authenticate_as('owner@us.test');
select results_eq($$ select metric, used, limit_value from public.usage_versus_limits((select a from o)) where limit_value is not null order by metric $$,
                  $$ values ('api_calls', 0::bigint, 10000::bigint), ('events', 3::bigint, 100000::bigint), ('members', 5::bigint, 5::bigint),
                            ('storage_bytes', 1000::bigint, 1073741824::bigint) $$,
                  'the owner reads usage against the limits');
select is((select count(*)::int from public.usage_daily), 1, 'and their organization''s usage rows');
reset role;
select tests.authenticate_as('s1@us.test');
select throws_ok($$ select * from public.usage_versus_limits((select a from o)) $$, '42501', null, 'a student (no analytics.read) does not');
select is_empty($$ select 1 from public.usage_daily $$, 'nor reads the rows');
reset role;
select tests.authenticate_as('owner@us.test');
select throws_ok($$ select app.track_usage() $$, '42501', null, 'only the service tracks usage');
select throws_ok($$ select app.record_api_calls(current_date, '{}') $$, '42501', null, 'or records API calls');
reset role;

-- API calls: the functions' counters, copied in by the service; they only grow during a day.
create temp table b as select tests.create_org('owner@us.test', 'usage-b') b;
grant select on b to service_role;
update public.organizations set deleted_at = now() where id = (select b from b);
select tests.as_service();
select is(app.record_api_calls(current_date, jsonb_build_object((select a from o), 7999, (select b from b), 5, gen_random_uuid(), 3)), 1,
          'the service records a day''s API call counts (deleted and unknown organizations skipped)');
select is(app.record_api_calls(current_date, jsonb_build_object((select a from o), 10)), 0, 'an older, smaller count changes nothing');
select is((select api_calls from public.usage_daily where org_id = (select a from o) and day = current_date), 7999::bigint, 'the count is kept');
select is_empty($$ select 1 from public.notifications where org_id = (select a from o) and data ->> 'metric' = 'api_calls' $$, 'under 80 % of the plan, nobody is told');
select app.record_api_calls(current_date, jsonb_build_object((select a from o), 8000));
select app.record_api_calls(current_date, jsonb_build_object((select a from o), 10000));
select app.record_api_calls(current_date, jsonb_build_object((select a from o), 10001));
select results_eq($$ select type, (data ->> 'used')::bigint from public.notifications where org_id = (select a from o) and data ->> 'metric' = 'api_calls' order by type $$,
                  $$ values ('usage.limit', 10000::bigint), ('usage.warning', 8000::bigint) $$, '80 % and 100 % of the free tier''s 10,000 calls a day, told once each');
select throws_ok($$ select app.record_api_calls(current_date, '{"not-an-org": 1}') $$, 'UG001', null, 'keys must be organization ids');
select throws_ok($$ select app.record_api_calls(current_date, jsonb_build_object(gen_random_uuid(), -1)) $$, 'UG001', null, 'counts whole and non-negative');
select throws_ok($$ select app.record_api_calls(current_date, jsonb_build_object(gen_random_uuid(), 1.5)) $$, 'UG001', null, 'no fractions');
select throws_ok($$ select app.record_api_calls(current_date, '[1]') $$, 'UG001', null, 'an object, not an array');
select throws_ok($$ select app.record_api_calls(current_date - 30, '{}') $$, 'UG001', null, 'for the last days only');
reset role;

-- MQTT messages: the broker hands over what was published since its last hand-over; it adds up.
-- (pgTAP is not the broker's to call: its answers are kept in settings and checked after.)
grant select on o, b to mqtt_broker;
set local role mqtt_broker;
select set_config('test.first', mqtt.record_messages(jsonb_build_object((select a from o), 3, (select b from b), 4))::text, true);
select mqtt.record_messages(jsonb_build_object((select a from o), 2));
do $$ begin perform mqtt.record_messages('{"a": 1}'); exception when sqlstate 'UG001' then perform set_config('test.bad', 'UG001', true); end $$;
reset role;
select is(current_setting('test.first'), '1', 'the broker records messages per organization (deleted ones skipped)');
select is((select mqtt_messages from public.usage_daily where org_id = (select a from o) and day = current_date), 5::bigint, 'each hand-over adds to the day');
select is(current_setting('test.bad', true), 'UG001', 'counts are per organization id');
select tests.authenticate_as('owner@us.test');
select throws_ok($$ select mqtt.record_messages(jsonb_build_object((select a from o), 1)) $$, '42501', null, 'only the broker records messages');
select results_eq($$ select used from public.usage_versus_limits((select a from o)) where metric = 'mqtt_messages' $$, $$ values (5::bigint) $$,
                  'the owner reads them with the rest of the usage');
reset role;

select * from finish();
rollback;
