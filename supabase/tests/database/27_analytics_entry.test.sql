-- A member cannot halt analytics for everyone. Events enter only through the
-- service (analytics-ingest); numbers in properties are bounded where they are stored; a roll-up
-- run sets aside a partial it cannot add up and rolls up every other organization's figures.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(13);

select tests.create_user(e) from unnest(array['owner@ae.test', 'student@ae.test', 'owner@be.test']) e;
create temp table o as select tests.create_org('owner@ae.test', 'entry-a') a, tests.create_org('owner@be.test', 'entry-b') b;
grant select on o to authenticated, service_role;
select tests.add_members((select a from o), 'student@ae.test', 'student');

-- the attack as it was: two 42-byte events straight into the table
select tests.authenticate_as('student@ae.test');
select throws_ok($$ insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
                    select (select a from o), tests.user_id('student@ae.test'), 'lesson.completed', now(), '{"lesson_id": "l", "duration_seconds": 9e131071}'
                    from generate_series(1, 2) $$,
                 '42501', null, 'a member cannot insert events directly');
reset role;

select tests.as_service();
select throws_ok($$ insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
                    values ((select a from o), tests.user_id('student@ae.test'), 'lesson.completed', now(), '{"lesson_id": "l", "duration_seconds": 9e131071}') $$,
                 '23514', null, 'nor can anyone store a number out of bounds');
select throws_ok($$ insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
                    values ((select a from o), tests.user_id('student@ae.test'), 'video.watched', now(), '{"video_id": "v", "seconds": -2e12}') $$,
                 '23514', null, 'negative ones included');
select throws_ok($$ insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
                    values ((select a from o), tests.user_id('student@ae.test'), 'video.watched', now(), '{"video_id": "v", "seconds": 1000000000000.5}') $$,
                 '23514', null, 'the bound is exact: 10^12 + 0.5 is refused');
select lives_ok($$ insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
                   values ((select b from o), tests.user_id('owner@be.test'), 'exercise.submitted', now(), '{"exercise_id": "e", "score": -1e12}') $$,
                '10^12 itself is stored');
select lives_ok($$ insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
                   values ((select b from o), tests.user_id('owner@be.test'), 'page.viewed', now(), '{"path": "/", "nested": {"n": 5e20}, "list": [7e30]}') $$,
                'numbers below the top level are not summed, so not bounded');
select lives_ok($$ insert into public.analytics_events (org_id, user_id, event_type, occurred_at, properties)
                   values ((select a from o), tests.user_id('student@ae.test'), 'video.watched', now(), '{"video_id": "v", "seconds": "NaN"}'),
                          ((select b from o), tests.user_id('owner@be.test'), 'video.watched', now(), '{"video_id": "v", "seconds": 30}') $$,
                'a number written as a string is stored');
reset role;
select is((select count(*)::int from analytics.rollup_pending where org_id = (select a from o) and event_type = 'video.watched' and s1 is not null), 0,
          'but not summed');

-- a partial stored before the bound (or by any other path) that cannot be added up
insert into analytics.rollup_pending (org_id, event_type, hour, user_id, events, s1)
select (select a from o), 'lesson.completed', date_trunc('hour', now(), 'UTC'), tests.user_id('student@ae.test'), 1, 9e131071
from generate_series(1, 2);
insert into analytics.rollup_pending (org_id, event_type, hour, user_id, events, s1)
values ((select a from o), 'video.watched', date_trunc('hour', now(), 'UTC'), tests.user_id('student@ae.test'), 1, 'NaN');
select lives_ok($$ select app.rollup_analytics() $$, 'a run with out-of-bounds partials still completes');
select is((select events::int from public.analytics_hourly where org_id = (select b from o) and event_type = 'video.watched'), 1,
          'and rolls up the other organization''s events');
select is((select sums from public.analytics_hourly where org_id = (select b from o) and event_type = 'exercise.submitted'), '{"score": -1000000000000}'::jsonb,
          'a number at the bound is summed exactly');
select is((select count(*)::int from analytics.rollup_rejected where org_id = (select a from o)), 3,
          'the partials it could not add up are set aside where an operator sees them');
select is((select count(*)::int from analytics.rollup_pending where org_id in ((select a from o), (select b from o))), 0, 'and none is left waiting');

select * from finish();
rollback;
