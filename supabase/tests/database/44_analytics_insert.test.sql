-- app.insert_analytics_events, the analytics-ingest function's insert in one statement.
-- It is called as the login role the functions connect with (here, as there, postgres) outside a
-- transaction of the caller's: it must take the service's request context before it touches
-- anything, store events only for a member of the organization or a live key of it holding
-- events.write, and be out of reach of every API role.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(19);

select tests.create_user(e) from unnest(array['owner@ia.test', 'student@ia.test', 'owner@other-ia.test', 'outsider@ia.test']) e;
create temp table o as select tests.create_org('owner@ia.test', 'insert-a', 'basic') a, tests.create_org('owner@other-ia.test', 'insert-b') b;
grant select on o to authenticated, service_role;
select tests.add_members((select a from o), 'student@ia.test', 'student');
select set_config('request.jwt.claims', '', true);

select tests.authenticate_as('owner@ia.test');
create temp table k as
  select (select api_key_id from public.create_api_key((select a from o), 'events key', array['events.write'])) as events_key,
         (select api_key_id from public.create_api_key((select a from o), 'files key', array['files.write'])) as files_key,
         (select api_key_id from public.create_api_key((select a from o), 'revoked key', array['events.write'])) as revoked_key,
         (select api_key_id from public.create_api_key((select a from o), 'expiring key', array['events.write'], now() + interval '1 hour')) as expired_key;
select public.revoke_api_key((select revoked_key from k));
reset role;
select set_config('request.jwt.claims', '', true);
update public.api_keys set expires_at = now() - interval '1 second' where id = (select expired_key from k);
select tests.authenticate_as('owner@other-ia.test');
alter table k add column other_key uuid;
update k set other_key = (select api_key_id from public.create_api_key((select b from o), 'other key', array['events.write']));
grant select on k to authenticated, service_role;
reset role;
select set_config('request.jwt.claims', '', true);

create temp table ev as select '[{"event_type": "page.viewed", "occurred_at": "2026-12-07T10:00:00Z", "properties": {"path": "/a"}},
                                  {"event_type": "lesson.completed", "occurred_at": "2026-12-07T10:01:00Z", "properties": {"lesson_id": "l1", "duration_seconds": 30}}]'::jsonb as batch;

-- out of reach of the API roles
select is(has_function_privilege(r, 'app.insert_analytics_events(text, uuid, uuid, uuid, jsonb)', 'execute'), false,
          format('%s may not call it', r))
from unnest(array['anon', 'authenticated', 'service_role']) r;
select tests.authenticate_as('student@ia.test');
select throws_ok($$ select app.insert_analytics_events('r', (select a from o), tests.user_id('student@ia.test'), null, (select batch from ev)) $$,
                 '42501', null, 'a member calling it is refused');
reset role;

-- a member
select is(app.insert_analytics_events('req-1', (select a from o), tests.user_id('student@ia.test'), null, (select batch from ev)), 2,
          'a member''s events are stored');
select is(current_user::text, 'service_role', 'by the service: the call took its role');
select is(current_setting('request.headers')::jsonb ->> 'x-request-id', 'req-1', 'with the request''s id for the audit trail');
reset role;
select is((select array_agg(event_type order by occurred_at) from public.analytics_events where org_id = (select a from o) and user_id = tests.user_id('student@ia.test')),
          array['page.viewed', 'lesson.completed'], 'each stamped with the organization and the member');

select is(app.insert_analytics_events('r', (select a from o), tests.user_id('outsider@ia.test'), null, (select batch from ev)), 0,
          'someone who is not a member stores nothing');
reset role;
select is(app.insert_analytics_events('r', (select b from o), tests.user_id('student@ia.test'), null, (select batch from ev)), 0,
          'nor does a member in another organization');
reset role;

-- keys
select is(app.insert_analytics_events('r', (select a from o), null, (select events_key from k), (select batch from ev)), 2,
          'a live key holding events.write stores events');
reset role;
select is((select count(*)::int from public.analytics_events where org_id = (select a from o) and user_id is null), 2, 'naming no user');
select is(app.insert_analytics_events('r', (select a from o), null, (select files_key from k), (select batch from ev)), 0,
          'a key without events.write stores nothing');
reset role;
select is(app.insert_analytics_events('r', (select a from o), null, (select revoked_key from k), (select batch from ev)), 0,
          'nor does a revoked key');
reset role;
select is(app.insert_analytics_events('r', (select a from o), null, (select expired_key from k), (select batch from ev)), 0,
          'nor an expired one');
reset role;
select is(app.insert_analytics_events('r', (select a from o), null, (select other_key from k), (select batch from ev)), 0,
          'nor another organization''s key sending for this one');
reset role;

-- what the statement still refuses
select throws_ok($$ select app.insert_analytics_events('r', (select a from o), null, null, (select batch from ev)) $$, 'AN002', null,
                 'an insert naming no sender is refused');
select throws_ok($$ select app.insert_analytics_events('r', (select a from o), tests.user_id('student@ia.test'), (select events_key from k), (select batch from ev)) $$,
                 'AN002', null, 'and one naming both');
select throws_ok($$ select app.insert_analytics_events('r', (select a from o), tests.user_id('student@ia.test'), null,
                      '[{"event_type": "video.watched", "occurred_at": "2026-12-07T10:00:00Z", "properties": {"video_id": "v", "seconds": 2e12}}]') $$,
                 '23514', null, 'the bound on stored numbers holds for it');
reset role;

select * from finish();
rollback;
