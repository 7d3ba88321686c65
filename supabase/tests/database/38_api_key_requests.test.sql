-- Issue 31: what a request made with an API key may do in the RPCs the functions call for it. A key
-- starts uploads, sends notifications and invites with its scopes, ranked as its creator (never
-- above admin, never an owner), never writes its creator's overrides, and a job still does none of it.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(18);

select tests.create_user(e) from unnest(array['owner@kr.test', 'admin@kr.test', 'teacher@kr.test', 'teacher2@kr.test',
                                                'student@kr.test', 'owner@other-kr.test']) e;
create temp table o as select tests.create_org('owner@kr.test', 'key-requests', 'basic') a, tests.create_org('owner@other-kr.test', 'key-requests-b') b;
grant select on o to authenticated, service_role;
select set_config('request.jwt.claims', '', true);
select tests.add_members((select a from o), 'admin@kr.test', 'admin', 'teacher@kr.test', 'teacher', 'teacher2@kr.test', 'teacher',
                         'student@kr.test', 'student');
-- a teacher trusted with keys and member management
insert into public.member_permissions (org_id, user_id, permission, granted) values
  ((select a from o), tests.user_id('teacher@kr.test'), 'api_keys.manage', true),
  ((select a from o), tests.user_id('teacher@kr.test'), 'members.manage', true);

select tests.authenticate_as('owner@kr.test');
create temp table k as
  select (select api_key_id from public.create_api_key((select a from o), 'owner key',
            array['files.write', 'notifications.send', 'members.invite', 'members.manage', 'events.write'])) as owner_key;
reset role;
select tests.authenticate_as('teacher@kr.test');
alter table k add column teacher_key uuid;
update k set teacher_key = (select api_key_id from public.create_api_key((select a from o), 'teacher key',
                                                                          array['members.manage', 'members.invite']));
reset role;
grant select on k to authenticated, service_role;

select is((select array_agg(role::text order by role) from public.role_permissions where permission = 'events.write'),
          array['owner', 'admin', 'teacher', 'student'], 'every role may send events, so every creator can give a key events.write');

-- uploads and notifications
select tests.authenticate_with_key((select owner_key from k));
select is((select uploaded_by from public.request_file_upload((select a from o), 'scan.pdf', 100, 'application/pdf')), null,
          'a key starts an upload; the file names no user');
select throws_ok($$ select public.request_file_upload((select b from o), 'scan.pdf', 100, 'application/pdf') $$, '42501', null,
                 'but not in another organization');
select is((select created from public.send_notification((select a from o), 'announcement.posted', 'From the office', '', '{}',
                                                         jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('student@kr.test'))),
                                                         null, 'kr-1')), 1, 'a key sends a notification');
select is((select created from public.send_notification((select a from o), 'announcement.posted', 'From the office', '', '{}',
                                                         jsonb_build_object('user_ids', jsonb_build_array(tests.user_id('student@kr.test'))),
                                                         null, 'kr-1')), 0, 'with the idempotency key honoured');
reset role;
select is((select actor_api_key_id from audit.log where table_name = 'public.notifications' and org_id = (select a from o)),
          (select owner_key from k), 'the send is audited with the key as its actor');
select is((select actor_user_id from audit.log where table_name = 'public.notifications' and org_id = (select a from o)),
          null, 'and no user');

-- invitations: an owner's key invites as an admin would, never an owner or an admin
select tests.authenticate_with_key((select owner_key from k));
select isnt((select invitation_id from public.create_invitation((select a from o), 'new@kr.test', 'teacher')), null,
            'an owner''s key invites a teacher');
select throws_ok($$ select public.create_invitation((select a from o), 'boss@kr.test', 'owner') $$, 'TN017', null,
                 'but never an owner');
select throws_ok($$ select public.create_invitation((select a from o), 'boss@kr.test', 'admin') $$, 'TN017', null,
                 'nor an admin: a key is never above admin');
reset role;
select tests.authenticate_with_key((select teacher_key from k));
select throws_ok($$ select public.create_invitation((select a from o), 'peer@kr.test', 'teacher') $$, 'TN017', null,
                 'a teacher''s key invites no teacher, as the teacher could not');
reset role;
-- and withdraws what it could have sent, nothing above
select tests.authenticate_as('owner@kr.test');
create temp table adm as select invitation_id from public.create_invitation((select a from o), 'deputy@kr.test', 'admin');
reset role;
grant select on adm to authenticated;
select tests.authenticate_with_key((select owner_key from k));
select throws_ok($$ select public.revoke_invitation((select invitation_id from adm)) $$, 'TN017', null,
                 'an owner''s key cannot revoke the owner''s admin invitation');
select lives_ok($$ select public.revoke_invitation((select id from public.invitations where email = 'new@kr.test')) $$,
                'but revokes the teacher invitation it sent');
reset role;

-- overrides: a key ranks as its creator and never writes its creator's
select tests.authenticate_with_key((select teacher_key from k));
select throws_ok($$ insert into public.member_permissions (org_id, user_id, permission, granted)
                    values ((select a from o), tests.user_id('teacher@kr.test'), 'audit.read', true) $$,
                 '42501', null, 'a teacher''s key cannot grant its creator anything');
select throws_ok($$ insert into public.member_permissions (org_id, user_id, permission, granted)
                    values ((select a from o), tests.user_id('teacher2@kr.test'), 'audit.read', true) $$,
                 '42501', null, 'nor override a fellow teacher, as its creator could not');
select lives_ok($$ insert into public.member_permissions (org_id, user_id, permission, granted)
                   values ((select a from o), tests.user_id('student@kr.test'), 'files.write', true) $$,
                'but does a student''s');
reset role;
select tests.authenticate_with_key((select owner_key from k));
select throws_ok($$ insert into public.member_permissions (org_id, user_id, permission, granted)
                    values ((select a from o), tests.user_id('owner@kr.test'), 'audit.read', false) $$,
                 '42501', null, 'an owner''s key cannot touch its creator''s overrides either');
reset role;

-- a job holding the scopes still may not upload (uploads belong to members and keys)
select tests.act_as('authenticated', jsonb_build_object('job_id', gen_random_uuid(), 'job_org_id', (select a from o),
                                                        'job_scopes', '["files.write"]'::jsonb));
select throws_ok($$ select public.request_file_upload((select a from o), 'scan.pdf', 100, 'application/pdf') $$, '42501', null,
                 'a job starts no upload');
reset role;

select * from finish();
rollback;
