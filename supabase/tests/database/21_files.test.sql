-- Files: starting uploads (permission, type, size, name, quota), the storage policies on the
-- `files` and `quarantine` buckets, quota accounting through every status change, and shares;
-- each as the role real requests use.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(36);

select tests.create_user(e) from unnest(array['owner@fa.test', 'teacher@fa.test', 'student@fa.test', 'nofiles@fa.test', 'owner@fb.test']) e;
create temp table o as select tests.create_org('owner@fa.test', 'files-a') a, tests.create_org('owner@fb.test', 'files-b') b;
grant select on o to authenticated, anon, service_role;
select tests.add_members((select a from o), 'teacher@fa.test', 'teacher', 'student@fa.test', 'student', 'nofiles@fa.test', 'student');
insert into public.member_permissions (org_id, user_id, permission, granted)
values ((select a from o), tests.user_id('nofiles@fa.test'), 'files.read', false);
create temp table f (label text primary key, id uuid, path text);
grant all on f to authenticated, service_role;

select is((select count(*)::int from public.storage_quotas where org_id in ((select a from o), (select b from o))), 2,
          'every organization gets a storage quota');

-- Starting uploads
select tests.authenticate_as('teacher@fa.test');
insert into f select 'doc', id, object_path from public.request_file_upload((select a from o), 'Lesson 1 (final).pdf', 1000, 'application/pdf');
select matches((select path from f where label = 'doc'), '^' || (select a from o) || '/\d{4}/\d{2}/\d{2}/[0-9a-f-]{36}-Lesson-1-final-\.pdf$',
               'the object path is {org}/{yyyy}/{mm}/{dd}/{uuid}-{safe name}');
select is((select status::text from public.files where id = (select id from f where label = 'doc')), 'pending', 'the file starts pending');
select throws_ok($$ select public.request_file_upload((select a from o), 'x.exe', 10, 'application/x-msdownload') $$, 'FL002', null, 'a type outside the bucket''s list is refused');
select throws_ok($$ select public.request_file_upload((select a from o), 'big.pdf', 10485761, 'application/pdf') $$, 'FL003', null, 'a file over the tier''s size limit is refused');
select throws_ok($$ select public.request_file_upload((select a from o), '../../etc/passwd', 10, 'text/plain') $$, 'FL004', null, 'a name with a path is refused');
select throws_ok($$ select public.request_file_upload((select a from o), e'a\nb.txt', 10, 'text/plain') $$, 'FL004', null, 'a name with control characters is refused');
select throws_ok($$ select public.request_file_upload((select b from o), 'x.pdf', 10, 'application/pdf') $$, '42501', null, 'an upload into another organization is refused');
reset role;
select tests.authenticate_as('student@fa.test');
select throws_ok($$ select public.request_file_upload((select a from o), 'x.pdf', 10, 'application/pdf') $$, '42501', null, 'a student (no files.write) cannot upload');
reset role;
select is((select reserved_bytes from public.storage_quotas where org_id = (select a from o)), 1000::bigint, 'the bytes are reserved');

-- The quota: the free tier has 1 GiB
update public.storage_quotas set used_bytes = 1073741824 - 1000 - 500 where org_id = (select a from o);
select tests.authenticate_as('teacher@fa.test');
insert into f select 'fits', id, object_path from public.request_file_upload((select a from o), 'fits.txt', 500, 'text/plain');
select throws_ok($$ select public.request_file_upload((select a from o), 'over.txt', 1, 'text/plain') $$, 'FL001', null, 'an upload over the quota is refused');
reset role;
select is((select reserved_bytes from public.storage_quotas where org_id = (select a from o)), 1500::bigint, 'the refused upload reserved nothing');

-- Storage policies on the files bucket
create function pg_temp.put(path text, bucket text default 'files') returns text language plpgsql as $$
begin
  insert into storage.objects (bucket_id, name, owner) values (bucket, path, (select auth.uid()));
  return 'stored';
exception when insufficient_privilege then return 'denied';
end $$;
select tests.authenticate_as('teacher@fa.test');
select is(pg_temp.put((select path from f where label = 'doc')), 'stored', 'the uploader writes the path of their pending upload');
select is(pg_temp.put((select a from o) || '/2026/01/01/' || gen_random_uuid() || '-x.pdf'), 'denied', 'not any other path of the organization');
select is(pg_temp.put((select b from o) || '/2026/01/01/' || gen_random_uuid() || '-x.pdf'), 'denied', 'nor another organization''s prefix');
select is(pg_temp.put((select path from f where label = 'doc'), 'quarantine'), 'denied', 'nor the quarantine bucket');
select is_empty($$ select 1 from storage.objects where name = (select path from f where label = 'doc') $$, 'a pending file''s object is not readable yet');
reset role;
select tests.authenticate_as('owner@fa.test');
select is(pg_temp.put((select path from f where label = 'fits')), 'denied', 'another member cannot write someone else''s pending upload');
reset role;

-- Settling: clean moves the bytes to used; infected releases them
update public.files set status = 'clean', sha256 = repeat('a', 64) where id = (select id from f where label = 'doc');
update public.files set status = 'infected' where id = (select id from f where label = 'fits');
select results_eq($$ select used_bytes, reserved_bytes from public.storage_quotas where org_id = (select a from o) $$,
                  $$ values ((1073741824 - 1500 + 1000)::bigint, 0::bigint) $$, 'clean adds to used, infected releases its reservation');

select tests.authenticate_as('student@fa.test');
select isnt_empty($$ select 1 from storage.objects where name = (select path from f where label = 'doc') $$, 'a clean file is readable by a member with files.read');
select isnt_empty($$ select 1 from public.files where id = (select id from f where label = 'doc') $$, 'and listed');
select is_empty($$ update public.files set name = 'mine.pdf' where id = (select id from f where label = 'doc') returning 1 $$, 'a student cannot rename it');
reset role;
select tests.authenticate_as('nofiles@fa.test');
select is_empty($$ select 1 from storage.objects where name = (select path from f where label = 'doc') $$, 'a member without files.read cannot read it');
reset role;
select tests.authenticate_as('owner@fb.test');
select is_empty($$ select 1 from storage.objects where name = (select path from f where label = 'doc') $$, 'nor can another organization''s owner');
select is_empty($$ select 1 from public.files where id = (select id from f where label = 'doc') $$, 'who does not see the file either');
reset role;

-- Shares
select tests.authenticate_as('teacher@fa.test');
insert into public.file_shares (org_id, file_id, grantee_user_id, access)
values ((select a from o), (select id from f where label = 'doc'), tests.user_id('nofiles@fa.test'), 'read');
reset role;
select tests.authenticate_as('nofiles@fa.test');
select isnt_empty($$ select 1 from storage.objects where name = (select path from f where label = 'doc') $$, 'a share lets the member read it');
select is_empty($$ update public.files set name = 'x.pdf' where id = (select id from f where label = 'doc') returning 1 $$, 'a read share does not let them change it');
reset role;
update public.file_shares set expires_at = now() - interval '1 second' where file_id = (select id from f where label = 'doc');
select tests.authenticate_as('nofiles@fa.test');
select is_empty($$ select 1 from storage.objects where name = (select path from f where label = 'doc') $$, 'an expired share grants nothing');
reset role;
select tests.authenticate_as('student@fa.test');
select throws_ok($$ insert into public.file_shares (org_id, file_id, grantee_role, access) values ((select a from o), (select id from f where label = 'doc'), 'student', 'write') $$,
                 '42501', null, 'a student cannot share files');
reset role;

-- Deleting and restoring
select tests.authenticate_as('student@fa.test');
select throws_ok($$ select public.delete_file((select id from f where label = 'doc')) $$, 'FL005', null, 'a student cannot delete a file');
reset role;
select tests.authenticate_as('teacher@fa.test');
select lives_ok($$ select public.delete_file((select id from f where label = 'doc')) $$, 'a writer soft-deletes a file');
reset role;
select is((select used_bytes from public.storage_quotas where org_id = (select a from o)), (1073741824 - 500)::bigint,
          'whose bytes stay counted: they are still stored, in the trash, until purged');
select tests.authenticate_as('student@fa.test');
select is_empty($$ select 1 from storage.objects where name = (select path from f where label = 'doc') $$, 'and makes its object unreadable');
reset role;
update public.storage_quotas set used_bytes = 1073741824 - 10 where org_id = (select a from o);
select tests.authenticate_as('teacher@fa.test');
select lives_ok($$ select public.restore_file((select id from f where label = 'doc')) $$,
                'restoring takes no bytes it did not hold, so a full quota does not refuse it');
reset role;

-- Nobody but the service reads quarantine
insert into storage.objects (bucket_id, name) values ('quarantine', (select path from f where label = 'fits'));
select tests.authenticate_as('owner@fa.test');
select is_empty($$ select 1 from storage.objects where bucket_id = 'quarantine' $$, 'an owner cannot read quarantine');
reset role;
select tests.as_service();
select isnt_empty($$ select 1 from storage.objects where bucket_id = 'quarantine' $$, 'the service can');
reset role;

select * from finish();
rollback;
