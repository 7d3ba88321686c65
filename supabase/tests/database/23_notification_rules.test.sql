-- Notification delivery rules decided at fan-out: e-mail digests (hourly, daily in the member's
-- time zone; high and urgent ones not digested), locale and digest settings checked, a type
-- without an e-mail template refused (NT005), recipients by permission, one audit entry per send,
-- and the producers in other features (file settled, storage at 80 %, invitation sent).
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(30);

select tests.create_user(e) from unnest(array['owner@nr.test', 'teacher@nr.test', 's1@nr.test', 's2@nr.test']) e;
create temp table o as select tests.create_org('owner@nr.test', 'notify-rules') a;
grant select on o to authenticated, anon, service_role;
select tests.add_members((select a from o), 'teacher@nr.test', 'teacher', 's1@nr.test', 'student', 's2@nr.test', 'student');
create temp table b (label text primary key, batch uuid, created int);
grant all on b to authenticated;
create function pg_temp.email_of(label text, member text) returns public.notification_deliveries language sql as $$
  select d.* from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
  where d.batch_id = (select batch from b where b.label = email_of.label) and n.recipient_id = tests.user_id(member) and d.channel = 'email'
$$;

-- Settings: digests and locale
select tests.authenticate_as('s1@nr.test');
select throws_ok($$ insert into public.notification_settings (org_id, user_id, email_digest) values ((select a from o), tests.user_id('s1@nr.test'), 'weekly') $$,
                 '23514', null, 'a digest other than off, hourly or daily is refused');
select throws_ok($$ insert into public.notification_settings (org_id, user_id, locale) values ((select a from o), tests.user_id('s1@nr.test'), 'french') $$,
                 '23514', null, 'a locale that is not a language tag is refused');
insert into public.notification_settings (org_id, user_id, email_digest, locale) values ((select a from o), tests.user_id('s1@nr.test'), 'hourly', 'fr');
reset role;
select tests.authenticate_as('s2@nr.test');
insert into public.notification_settings (org_id, user_id, email_digest, digest_time, time_zone) values ((select a from o), tests.user_id('s2@nr.test'), 'daily', '07:00', 'Asia/Tokyo');
reset role;

select tests.authenticate_as('teacher@nr.test');
insert into b select 'normal', * from public.send_notification((select a from o), 'announcement.posted', 'Trip', 'Friday', '{}', '{"role": "student"}');
insert into b select 'high', * from public.send_notification((select a from o), 'announcement.posted', 'Closed today', '', '{}', '{"role": "student"}', 'high');
reset role;
select is((pg_temp.email_of('normal', 's1@nr.test')).digest, true, 'a member with a digest has normal e-mail wait for it');
select is((pg_temp.email_of('normal', 's1@nr.test')).next_attempt_at, date_trunc('hour', now()) + interval '1 hour', 'an hourly digest goes out at the next full hour');
select ok((select (d.next_attempt_at at time zone 'Asia/Tokyo')::time = '07:00' and d.next_attempt_at > now() and d.next_attempt_at <= now() + interval '1 day'
           from pg_temp.email_of('normal', 's2@nr.test') d), 'a daily digest goes out at the member''s digest time in their time zone');
select is((pg_temp.email_of('high', 's1@nr.test')).digest, false, 'high priority e-mail is not digested');
select ok((pg_temp.email_of('high', 's1@nr.test')).next_attempt_at <= now(), 'and goes out at once');
select is((select count(*)::int from public.notification_deliveries d join public.notifications n on n.id = d.notification_id
           where d.batch_id = (select batch from b where label = 'normal') and d.channel = 'mqtt' and (d.digest or d.next_attempt_at > now())), 0,
          'MQTT is never digested');

-- A type with e-mail but no template anywhere is refused before anything is made
insert into public.notification_types (key, description, default_channels, sent_by_members)
values ('course.graded', 'A grade was posted', '{mqtt,email}', true), ('course.live', 'A lesson started', '{mqtt}', true);
select tests.authenticate_as('teacher@nr.test');
select throws_ok($$ select public.send_notification((select a from o), 'course.graded', 'Graded') $$, 'NT005', null, 'an e-mail type without a template is refused');
select lives_ok($$ select public.send_notification((select a from o), 'course.live', 'Live') $$, 'a type without e-mail needs no template');
reset role;
select tests.authenticate_as('owner@nr.test');
insert into public.notification_templates (org_id, type, locale, subject, body) values ((select a from o), 'course.graded', 'en', '{{title}}', '{{body}}');
select lives_ok($$ select public.send_notification((select a from o), 'course.graded', 'Graded') $$, 'the organization''s own template is enough');
reset role;

-- Recipients by permission
select tests.authenticate_as('teacher@nr.test');
insert into b select 'managers', * from public.send_notification((select a from o), 'announcement.posted', 'To managers', '', '{}', '{"permission": "members.manage"}');
select throws_ok($$ select public.send_notification((select a from o), 'announcement.posted', 'x', '', '{}', '{"permission": "no.such"}') $$, 'NT004', null,
                 'an unknown permission is refused');
select throws_ok($$ select public.send_notification((select a from o), 'announcement.posted', 'x', '', '{}', '{"user_ids": "everyone"}') $$, 'NT004', null,
                 'user_ids that are not an array are refused');
reset role;
select results_eq($$ select recipient_id from public.notifications where batch_id = (select batch from b where label = 'managers') $$,
                  array[tests.user_id('owner@nr.test')], 'a permission means the members holding it (the owner, not the teacher or students)');
-- A member's own grant or revoke decides, as it does in app.permissions_of
insert into public.member_permissions (org_id, user_id, permission, granted) values
  ((select a from o), tests.user_id('s1@nr.test'), 'members.manage', true),
  ((select a from o), tests.user_id('owner@nr.test'), 'members.manage', false);
select tests.authenticate_as('teacher@nr.test');
insert into b select 'managers now', * from public.send_notification((select a from o), 'announcement.posted', 'To managers now', '', '{}', '{"permission": "members.manage"}');
reset role;
select results_eq($$ select recipient_id from public.notifications where batch_id = (select batch from b where label = 'managers now') $$,
                  array[tests.user_id('s1@nr.test')], 'a student granted the permission is among its holders, an owner it was taken from is not');
select results_eq($$ select recipient_id from public.notifications where batch_id = (select batch from b where label = 'managers now') order by 1 $$,
                  $$ select m.user_id from public.organization_members m where m.org_id = (select a from o)
                     and 'members.manage' = any (app.permissions_of(m.org_id, m.user_id)) order by 1 $$,
                  'the holders are exactly the members app.permissions_of gives the permission');
delete from public.member_permissions where org_id = (select a from o);

-- The audit log: one entry per send
select is((select count(*)::int from audit.log where table_name = 'public.notifications' and row_id = (select batch::text from b where label = 'normal')), 1,
          'a send is one audit entry');
select is((select new_values ->> 'created' from audit.log where table_name = 'public.notifications' and row_id = (select batch::text from b where label = 'normal')), '2',
          'which says how many were made');
select is((select actor_user_id from audit.log where table_name = 'public.notifications' and row_id = (select batch::text from b where label = 'normal')),
          tests.user_id('teacher@nr.test'), 'and who sent it');
select is((select count(*)::int from audit.log where table_name in ('public.notifications', 'public.notification_deliveries')
           and row_id in (select id::text from public.notifications where batch_id = (select batch from b where label = 'normal'))), 0,
          'not one per recipient row');

-- Producers: a file settles
select tests.authenticate_as('teacher@nr.test');
create temp table f as select 'essay' as label, id from public.request_file_upload((select a from o), 'Essay.pdf', 1000, 'application/pdf')
                  union all select 'virus', id from public.request_file_upload((select a from o), 'Virus.pdf', 1000, 'application/pdf');
reset role;
update public.files set status = 'scanning' where id in (select id from f);
update public.files set status = 'clean' where id = (select id from f where label = 'essay');
update public.files set status = 'infected', status_reason = 'Eicar-Signature' where id = (select id from f where label = 'virus');
update public.files set status = 'clean' where id = (select id from f where label = 'essay');
select results_eq($$ select type, title from public.notifications where recipient_id = tests.user_id('teacher@nr.test') and type like 'file.%' order by type $$,
                  $$ values ('file.ready', 'Essay.pdf is ready'), ('file.rejected', 'Virus.pdf was not accepted') $$,
                  'the uploader hears that a file is ready, or was not accepted');
select is((select body || ' ' || (data ->> 'reason') from public.notifications where recipient_id = tests.user_id('teacher@nr.test') and type = 'file.rejected'),
          'It looks like it carries a virus, so it was not kept. Check the device it came from with a virus scanner. infected',
          'with the reason in words, its code in data, never the scanner''s signature name');
select is((select count(*)::int from public.notifications where type = 'file.ready' and org_id = (select a from o)), 1, 'once per file');

-- A notification that cannot be made (here: no e-mail template left for file.rejected) does not stop the file settling
delete from public.notification_templates where org_id is null and type = 'file.rejected';
select tests.authenticate_as('teacher@nr.test');
insert into f select 'broken', id from public.request_file_upload((select a from o), 'Broken.pdf', 1000, 'application/pdf');
reset role;
update public.files set status = 'scanning' where id = (select id from f where label = 'broken');
select lives_ok($$ update public.files set status = 'rejected', status_reason = 'spoofed' where id = (select id from f where label = 'broken') $$,
                'a file settles even when its notification cannot be made');
select is((select count(*)::int from public.notifications where title = 'Broken.pdf was not accepted'), 0, 'and the notification is left out (a warning in the log)');

-- Producers: storage passes 80 % of the plan (free tier), once a day at most
update public.storage_quotas set used_bytes = (select storage_bytes * 0.5 from public.subscription_tiers where tier = 'free')::bigint where org_id = (select a from o);
select is((select count(*)::int from public.notifications where type = 'quota.warning' and org_id = (select a from o)), 0, 'storage under 80 % says nothing');
update public.storage_quotas set used_bytes = (select storage_bytes * 0.85 from public.subscription_tiers where tier = 'free')::bigint where org_id = (select a from o);
select results_eq($$ select recipient_id from public.notifications where type = 'quota.warning' and org_id = (select a from o) $$,
                  array[tests.user_id('owner@nr.test')], 'passing 80 % tells those who manage settings');
update public.storage_quotas set used_bytes = 0 where org_id = (select a from o);
update public.storage_quotas set used_bytes = (select storage_bytes * 0.9 from public.subscription_tiers where tier = 'free')::bigint where org_id = (select a from o);
select is((select count(*)::int from public.notifications where type = 'quota.warning' and org_id = (select a from o)), 1, 'passing it again the same day says nothing new');

-- Producers: an invitation is sent
select tests.authenticate_as('teacher@nr.test');
select lives_ok($$ select public.create_invitation((select a from o), 'new@nr.test', 'student') $$, 'a teacher invites a student');
reset role;
select results_eq($$ select recipient_id, created_by from public.notifications where type = 'invitation.sent' and org_id = (select a from o) $$,
                  $$ values (tests.user_id('owner@nr.test'), tests.user_id('teacher@nr.test')) $$, 'those who manage members hear it, from the inviter');

select * from finish();
rollback;
