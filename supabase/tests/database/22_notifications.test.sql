-- Notifications: fan-out to users, a role or everyone, idempotency, bad input (NT001-NT004), who
-- may send and which types (NT006: the system's own), who reads and marks read, preferences and
-- templates; as the roles real requests use.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(38);

select tests.create_user(e) from unnest(array['owner@na.test', 'teacher@na.test', 's1@na.test', 's2@na.test', 'owner@nb.test']) e;
create temp table o as select tests.create_org('owner@na.test', 'notify-a') a, tests.create_org('owner@nb.test', 'notify-b') b;
grant select on o to authenticated, anon, service_role;
select tests.add_members((select a from o), 'teacher@na.test', 'teacher', 's1@na.test', 'student', 's2@na.test', 'student');
create temp table b (label text primary key, batch uuid, created int);
grant all on b to authenticated, service_role;

-- Sending
select tests.authenticate_as('teacher@na.test');
insert into b select 'students', * from public.send_notification((select a from o), 'announcement.posted', 'Trip', 'Friday', '{}', '{"role": "student"}');
insert into b select 'everyone', * from public.send_notification((select a from o), 'announcement.posted', 'Hello', '', '{}', '{"everyone": true}', 'high', 'hello-1');
insert into b select 'again', * from public.send_notification((select a from o), 'announcement.posted', 'Hello', '', '{}', '{"everyone": true}', 'high', 'hello-1');
-- the system's types are the system's: a member who could send a usage alert with the key the usage
-- check uses (usage.<level>:<metric>:<day>) would stop the real one, deduplicated by that key
select throws_ok($$ select public.send_notification((select a from o), 'usage.limit', 'Members at 100 % of the plan', '', '{}',
                                                    '{"permission": "settings.manage"}', null, format('usage.limit:members:%s', current_date)) $$,
                 'NT006', null, 'a teacher cannot send a usage alert');
select throws_ok($$ select public.send_notification((select a from o), 'job.failed', 'Export failed') $$, 'NT006', null,
                 'nor any other type the system sends');
select throws_ok($$ select public.send_notification((select a from o), 'no.such', 'x') $$, 'NT001', null, 'an unknown type is refused');
select throws_ok($$ select public.send_notification((select a from o), 'announcement.posted', 'x', '', '{}', jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('owner@nb.test')))) $$,
                 'NT002', null, 'a recipient outside the organization is refused');
select throws_ok($$ select public.send_notification((select a from o), 'announcement.posted', 'x', repeat('x', 4001)) $$, 'NT003', null, 'an oversized body is refused');
select throws_ok($$ select public.send_notification((select a from o), 'announcement.posted', '') $$, 'NT003', null, 'an empty title is refused');
select throws_ok($$ select public.send_notification((select a from o), 'announcement.posted', 'x', '', '{}', '{"who": 1}') $$, 'NT004', null, 'recipients in no known form are refused');
select throws_ok($$ select public.send_notification((select b from o), 'announcement.posted', 'x') $$, '42501', null, 'a teacher cannot send into another organization');
reset role;
select tests.authenticate_as('s1@na.test');
select throws_ok($$ select public.send_notification((select a from o), 'announcement.posted', 'x') $$, '42501', null, 'a student cannot send (no notifications.send)');
reset role;
select tests.as_service();
insert into b select 'one', * from app.notify((select a from o), 'job.failed', 'Export failed', '', '{"job": "x"}', jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('s1@na.test'))));
select is((select created from app.notify((select a from o), 'usage.limit', 'Members at 100 % of the plan', '', '{}', '{"permission": "settings.manage"}',
                                          null, format('usage.limit:members:%s', current_date))), 1,
          'the service makes them, with their keys');
reset role;

select is((select created from b where label = 'students'), 2, 'a role becomes one notification per member with it');
select is((select created from b where label = 'everyone'), 4, 'everyone means every member');
select is((select created from b where label = 'again'), 0, 'the same idempotency key makes nothing new');
select is((select count(*)::int from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
           where n.batch_id = (select batch from b where label = 'one')), 2, 'a job.failed notification goes out on MQTT and e-mail');
select is((select priority from public.notifications where batch_id = (select batch from b where label = 'students') limit 1), 'normal',
          'the type''s default priority applies');

-- Reading
select tests.authenticate_as('s1@na.test');
select is((select count(*)::int from public.notifications), 3, 'a member reads their own notifications only');
select is((select count(*)::int from public.notification_deliveries), 6, 'and how their own went out');
select isnt_empty($$ update public.notifications set read_at = now() where type = 'job.failed' returning 1 $$, 'and marks them read');
select throws_ok($$ update public.notifications set title = 'changed' $$, '42501', null, 'but changes nothing else');
reset role;
select tests.authenticate_as('teacher@na.test');
select is((select count(*)::int from public.notifications where recipient_id = tests.user_id('s1@na.test')), 0, 'a teacher does not read students'' notifications');
reset role;

-- Preferences and templates
select tests.authenticate_as('s2@na.test');
select throws_ok($$ insert into public.notification_preferences (org_id, user_id, type, channel, enabled)
                    values ((select a from o), tests.user_id('s1@na.test'), '*', 'email', false) $$, '42501', null, 'a member cannot set another''s preferences');
insert into public.notification_preferences (org_id, user_id, type, channel, enabled) values ((select a from o), tests.user_id('s2@na.test'), '*', 'email', false);
select throws_ok($$ insert into public.notification_templates (org_id, type, subject, body) values ((select a from o), 'announcement.posted', 'x', 'y') $$,
                 '42501', null, 'a student cannot write templates');
reset role;
select tests.authenticate_as('teacher@na.test');
insert into b select 'prefs', * from public.send_notification((select a from o), 'announcement.posted', 'Prefs', '', '{}', '{"role": "student"}');
reset role;
select results_eq($$ select n.recipient_id, d.status from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
                    where n.batch_id = (select batch from b where label = 'prefs') and d.channel = 'email' $$,
                  $$ values (tests.user_id('s1@na.test'), 'pending') $$, 'a channel turned off makes no delivery, for that member only');
select is((select count(*)::int from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
           where n.batch_id = (select batch from b where label = 'prefs') and n.recipient_id = tests.user_id('s2@na.test') and d.channel = 'mqtt'),
          1, 'the member''s other channels still go out');
-- A choice for the type wins over one for every type ('*'): s1 turns MQTT off for all but announcements
select tests.authenticate_as('s1@na.test');
insert into public.notification_preferences (org_id, user_id, type, channel, enabled) values
  ((select a from o), tests.user_id('s1@na.test'), '*', 'mqtt', false),
  ((select a from o), tests.user_id('s1@na.test'), 'announcement.posted', 'mqtt', true);
reset role;
select tests.authenticate_as('teacher@na.test');
insert into b select 'precedence-on', * from public.send_notification((select a from o), 'announcement.posted', 'On', '', '{}', jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('s1@na.test'))));
reset role;
select tests.as_service();
insert into b select 'precedence-off', * from app.notify((select a from o), 'job.failed', 'Off', '', '{}', jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('s1@na.test'))));
reset role;
select results_eq($$ select b.label, d.channel from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
                    join b on b.batch = n.batch_id where b.label like 'precedence-%' order by 1, 2 $$,
                  $$ values ('precedence-off', 'email'), ('precedence-on', 'email'), ('precedence-on', 'mqtt') $$,
                  'a choice for the type wins over one for every type');
select tests.authenticate_as('s1@na.test');
delete from public.notification_preferences where user_id = tests.user_id('s1@na.test');
reset role;

-- Quiet hours: deliveries wait until they end; urgent ones do not
select tests.authenticate_as('s1@na.test');
select throws_ok($$ insert into public.notification_settings (org_id, user_id, quiet_start, quiet_end, time_zone)
                    values ((select a from o), tests.user_id('s1@na.test'), '22:00', '07:00', 'Mars/Olympus') $$, '22023', null, 'an unknown time zone is refused');
-- quiet from an hour ago to an hour from now, in UTC
insert into public.notification_settings (org_id, user_id, quiet_start, quiet_end)
values ((select a from o), tests.user_id('s1@na.test'), (now() at time zone 'UTC' - interval '1 hour')::time, (now() at time zone 'UTC' + interval '1 hour')::time);
reset role;
select tests.authenticate_as('teacher@na.test');
insert into b select 'quiet', * from public.send_notification((select a from o), 'announcement.posted', 'Quiet', '', '{}', jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('s1@na.test'), tests.user_id('s2@na.test'))));
insert into b select 'urgent', * from public.send_notification((select a from o), 'announcement.posted', 'Fire drill', '', '{}', jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('s1@na.test'))), 'urgent');
reset role;
select ok((select bool_and(d.next_attempt_at between now() + interval '59 minutes' and now() + interval '61 minutes')
           from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
           where n.batch_id = (select batch from b where label = 'quiet') and n.recipient_id = tests.user_id('s1@na.test')),
          'a member in quiet hours gets their deliveries when the hours end');
select ok((select bool_and(d.next_attempt_at <= now()) from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
           where n.batch_id = (select batch from b where label = 'quiet') and n.recipient_id = tests.user_id('s2@na.test')),
          'others at once');
select ok((select bool_and(d.next_attempt_at <= now()) from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
           where n.batch_id = (select batch from b where label = 'urgent')), 'urgent notifications ignore quiet hours');
select tests.authenticate_as('s2@na.test');
select is_empty($$ select 1 from public.notification_settings $$, 'a member does not see another''s settings');
reset role;

-- A send's type and sender are checked once per send (no per-row foreign keys), with what the
-- keys did on the other side kept: a type in use stays, a deleted sender's sends keep no sender.
reset role;
select is((select created from app.notify((select a from o), 'announcement.posted', 'x', '', '{}', '{"role": null}')), 0,
          'a role given as null reaches no one');
select is((select count(distinct created_by)::int from public.notifications where batch_id = (select batch from b where label = 'students')), 1,
          'a member''s send records its sender');
select throws_ok($$ select app.notify((select a from o), 'job.failed', 'x', '', '{}', jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('s1@na.test'))),
                                      null, null, '00000000-0000-4000-8000-0000000000ff') $$,
                 '23503', null, 'a sender who is not a user is refused');
select throws_ok($$ delete from public.notification_types where key = 'announcement.posted' $$, '23503', null, 'a type in use is not removed');
select throws_ok($$ update public.notification_types set key = 'announcement.renamed' where key = 'announcement.posted' $$, '23503', null, 'nor renamed');
insert into public.notification_types (key, description, default_channels) values ('tests.unused', 'unused', '{mqtt}');
update public.notification_types set description = 'still unused' where key = 'tests.unused';
delete from public.notification_types where key = 'tests.unused';
select is_empty($$ select 1 from public.notification_types where key = 'tests.unused' $$, 'an unused type is removed');
delete from auth.users where id = tests.user_id('teacher@na.test');
select is((select count(*)::int from public.notifications where batch_id = (select batch from b where label = 'students') and created_by is not null), 0,
          'a deleted user''s sends keep no sender');
select isnt((select count(*)::int from public.notifications where batch_id = (select batch from b where label = 'students')), 0,
          'and stay with their recipients');

select * from finish();
rollback;
