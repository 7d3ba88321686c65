-- Analytics: who may record and read events and roll-ups (as the roles requests use), the events
-- table is append-only, roll-ups equal a GROUP BY over the raw events (with late events and a
-- second run), a run that is rolled back leaves everything as it was, the reading RPCs,
-- partitions ahead and retention per tier.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(28);

select tests.create_user(e) from unnest(array['owner@an.test', 'teacher@an.test', 'student@an.test', 'owner@bn.test']) e;
create temp table o as select tests.create_org('owner@an.test', 'analytics-a') a, tests.create_org('owner@bn.test', 'analytics-b', 'enterprise') b;
grant select on o to authenticated, anon, service_role;
select tests.add_members((select a from o), 'teacher@an.test', 'teacher', 'student@an.test', 'student');

-- Recording: events enter through analytics-ingest, which inserts as the service after its checks
-- (tests/unit and tests/integration/analytics.test.ts); members cannot insert them themselves.
select tests.authenticate_as('student@an.test');
select throws_ok($$ insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
                    values ((select a from o), tests.user_id('student@an.test'), 'lesson.completed', now(), '{"lesson_id": "l", "duration_seconds": 1}') $$,
                 '42501', null, 'a member cannot insert events straight into the table, even their own');
reset role;
select tests.as_service();
select lives_ok($$ insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
                   select (select a from o), tests.user_id('student@an.test'), 'lesson.completed', now() - (i % 6) * interval '20 minutes',
                          jsonb_build_object('lesson_id', 'l1', 'duration_seconds', 60 + i, 'score', i % 100)
                   from generate_series(1, 30) i $$, 'the service records them');
select throws_ok($$ insert into public.analytics_events (org_id, user_id, event_type, occurred_at) values ((select a from o), tests.user_id('student@an.test'), 'no.such', now()) $$,
                 '23503', null, 'an unknown event type is refused by the catalog');
insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
select (select a from o), tests.user_id('teacher@an.test'), 'page.viewed', now() - (i % 3) * interval '1 hour', jsonb_build_object('path', '/p' || i) from generate_series(1, 20) i;
insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties) values ((select b from o), tests.user_id('owner@bn.test'), 'video.watched', now(), '{"video_id": "v", "seconds": 12.5}');
reset role;
select tests.authenticate_as('student@an.test');
select throws_ok($$ update public.analytics_events set properties = '{}' $$, '42501', null, 'events cannot be changed');
select throws_ok($$ delete from public.analytics_events $$, '42501', null, 'or deleted');
select is_empty($$ select 1 from public.analytics_events $$, 'a student (no analytics.read) reads no events');
reset role;
select tests.authenticate_as('teacher@an.test');
select is((select count(*)::int from public.analytics_events), 50, 'a teacher (analytics.read) reads their organization''s events');
reset role;
select tests.authenticate_as('owner@bn.test');
select is_empty($$ select 1 from public.analytics_events where org_id = (select a from o) $$, 'another organization''s owner reads none of them');
reset role;
select is((select sum(events)::int from analytics.rollup_pending where org_id = (select a from o)), (select count(*)::int from public.analytics_events where org_id = (select a from o)),
          'recording partial figures for every event, in the inserting transaction');

-- Roll-ups
create temp view expected_hourly as
  select org_id, event_type, date_trunc('hour', occurred_at, 'UTC') as bucket, count(*)::bigint as events, count(distinct user_id)::bigint as users,
         coalesce(sum((properties ->> 'score')::numeric), 0) as score
  from public.analytics_events group by 1, 2, 3;
create temp view expected_daily as
  select org_id, event_type, date_trunc('day', occurred_at, 'UTC') as bucket, count(*)::bigint as events, count(distinct user_id)::bigint as users
  from public.analytics_events group by 1, 2, 3;
grant select on expected_hourly, expected_daily to authenticated;
-- a run that dies before it commits changes nothing. What it had made by then is counted into a
-- sequence, which the rollback leaves alone, so the assertion is not true of a run that made nothing
create temp sequence made_before_dying minvalue 0;
savepoint before_run;
select app.rollup_analytics();
select setval('made_before_dying', (select count(*) from public.analytics_hourly where org_id in ((select a from o), (select b from o))));
rollback to before_run;
select cmp_ok((select last_value from made_before_dying)::int, '>', 0, 'a run made figures before it died');
select is((select count(*)::int from public.analytics_hourly where org_id in ((select a from o), (select b from o))), 0, 'a run that dies leaves no figures');
select isnt((select count(*)::int from analytics.rollup_pending where org_id = (select a from o)), 0, 'and its partials are still there for the next');
select is((select busy from app.rollup_analytics()), false, 'a run');
select is((select count(*)::int from analytics.rollup_pending where org_id in ((select a from o), (select b from o))), 0, 'takes every partial');
select set_eq($$ select org_id, event_type, bucket, events, users, coalesce((sums ->> 'score')::numeric, 0) from public.analytics_hourly where org_id in ((select a from o), (select b from o)) $$,
              $$ select * from expected_hourly where org_id in ((select a from o), (select b from o)) $$, 'hourly figures equal a GROUP BY over the events');
select set_eq($$ select org_id, event_type, bucket, events, users from public.analytics_daily where org_id in ((select a from o), (select b from o)) $$,
              $$ select * from expected_daily where org_id in ((select a from o), (select b from o)) $$, 'and so do daily ones');
-- late events (two days ago, into figures already made), then the next run
insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
select (select a from o), tests.user_id('teacher@an.test'), 'lesson.completed', now() - interval '2 days', '{"lesson_id": "l2", "duration_seconds": 5, "score": 7}' from generate_series(1, 3);
insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
select (select a from o), tests.user_id('student@an.test'), 'lesson.completed', now(), '{"lesson_id": "l3", "duration_seconds": 5, "score": 1}';
select app.rollup_analytics();
select app.rollup_analytics();
select set_eq($$ select org_id, event_type, bucket, events, users, coalesce((sums ->> 'score')::numeric, 0) from public.analytics_hourly where org_id in ((select a from o), (select b from o)) $$,
              $$ select * from expected_hourly where org_id in ((select a from o), (select b from o)) $$, 'late events and a second run keep them equal');
select is((select sums from public.analytics_hourly where org_id = (select b from o)), '{"seconds": 12.5}'::jsonb, 'sums are named by the type''s numeric properties');
-- a run adds to stored sums key by key, and keeps a property the type no longer counts
update public.analytics_hourly set sums = sums || '{"retired": 4}' where org_id = (select b from o);
update public.analytics_daily set sums = sums || '{"retired": 4}' where org_id = (select b from o);
insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties) values ((select b from o), tests.user_id('owner@bn.test'), 'video.watched', now(), '{"video_id": "v", "seconds": 2.5}');
select app.rollup_analytics();
select is((select sums from public.analytics_hourly where org_id = (select b from o)), '{"seconds": 15, "retired": 4}'::jsonb, 'a run adds to an hour''s sums and keeps the others');
select is((select sums from public.analytics_daily where org_id = (select b from o)), '{"seconds": 15, "retired": 4}'::jsonb, 'and to a day''s');

-- Reading
select tests.authenticate_as('teacher@an.test');
select is((select count(*)::int from public.analytics_hourly), (select count(*)::int from expected_hourly where org_id = (select a from o)), 'analytics readers read their organization''s figures');
select is((select count(*)::int from public.analytics_series((select a from o), 'lesson.completed', date_trunc('day', now(), 'UTC') - interval '2 days', date_trunc('day', now(), 'UTC') + interval '1 day')), 3,
          'a daily series has a row per day of the range');
select is((select sum(events)::int from public.analytics_series((select a from o), 'lesson.completed', date_trunc('day', now(), 'UTC') - interval '2 days', date_trunc('day', now(), 'UTC') + interval '1 day')), 34,
          'with every event of the type in it');
select is((select event_type from public.analytics_top_events((select a from o), now() - interval '3 days', now() + interval '1 day') limit 1), 'lesson.completed', 'top event types');
select throws_ok($$ select * from public.analytics_series((select b from o), 'video.watched', now() - interval '1 day', now()) $$, '42501', null, 'not for another organization');
reset role;
select tests.authenticate_as('student@an.test');
select throws_ok($$ select * from public.analytics_series((select a from o), 'lesson.completed', now() - interval '1 day', now()) $$, '42501', null,
                 'nor for members without analytics.read');
reset role;

-- Partitions and retention
-- the daily run (00:07 UTC) makes them a week ahead of its day: between midnight and that run,
-- six days ahead of today
select ok(to_regclass(format('analytics.events_%s', to_char(current_date + 6, 'YYYYMMDD'))) is not null, 'partitions exist six days ahead at any hour');
select app.create_analytics_partitions(40, 0);
insert into public.analytics_events (org_id, user_id, event_type, occurred_at) values
  ((select a from o), tests.user_id('teacher@an.test'), 'page.viewed', now() - interval '35 days'),
  ((select b from o), tests.user_id('owner@bn.test'), 'page.viewed', now() - interval '35 days');
select app.apply_analytics_retention();
select results_eq($$ select org_id from public.analytics_events where occurred_at < now() - interval '30 days' and org_id in ((select a from o), (select b from o)) $$,
                  $$ values ((select b from o)) $$, 'retention follows the tier: 30 days on free, longer on enterprise');

select * from finish();
rollback;
