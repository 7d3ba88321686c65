-- A file that is not clean (being checked, infected, rejected, failed) is seen only by those who may
-- write their organization's files (uploaders and staff follow the verdict): a student, who reads
-- files by role or by a share, never reads an infected file's row, versions or bytes, in the
-- `files` bucket or in quarantine, even with a write share, and cannot delete what it cannot see.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(15);

select tests.create_user(e) from unnest(array['owner@uf.test', 'teacher@uf.test', 'student@uf.test', 'owner@ufb.test']) e;
create temp table o as select tests.create_org('owner@uf.test', 'unclean-a') a, tests.create_org('owner@ufb.test', 'unclean-b') b;
grant select on o to authenticated, service_role;
select tests.add_members((select a from o), 'teacher@uf.test', 'teacher', 'student@uf.test', 'student');
create temp table f (label text primary key, id uuid, path text);
grant all on f to authenticated, service_role;
select tests.authenticate_as('teacher@uf.test');
insert into f select v.l, r.id, r.object_path
from (values ('clean'), ('infected'), ('rejected'), ('pending')) v(l)
cross join lateral public.request_file_upload((select a from o), v.l || '.txt', 10, 'text/plain') r;
reset role;
update public.files set status = x.status::public.file_status, sha256 = repeat('a', 64),
                        status_reason = case x.status when 'infected' then 'Eicar-Test-Signature' end
from (values ('clean', 'clean'), ('infected', 'infected'), ('rejected', 'rejected')) x(l, status)
where files.id = (select id from f where label = x.l);
insert into public.file_versions (org_id, file_id, version, object_path, size_bytes, sha256)
select (select a from o), id, 1, path, 10, repeat('a', 64) from f where label in ('clean', 'infected');
-- the infected object, as the scanner leaves it: in quarantine, and (before the move) at its path
insert into storage.objects (bucket_id, name) values ('quarantine', (select path from f where label = 'infected')),
                                                      ('files', (select path from f where label = 'infected')),
                                                      ('files', (select path from f where label = 'clean'));
-- shares naming students, read and write, on the infected file
insert into public.file_shares (org_id, file_id, grantee_role, access)
values ((select a from o), (select id from f where label = 'infected'), 'student', 'read'),
       ((select a from o), (select id from f where label = 'infected'), 'student', 'write');

select tests.authenticate_as('student@uf.test');
select results_eq($$ select name from public.files where org_id = (select a from o) order by name $$, $$ values ('clean.txt') $$,
                  'a student lists only the clean file, not the infected, rejected or pending ones, despite the shares');
select is_empty($$ select 1 from public.files where id = (select id from f where label = 'infected') $$,
                'nor finds the infected file by its id');
select results_eq($$ select file_id from public.file_versions $$, $$ select id from f where label = 'clean' $$,
                  'and sees the versions of the clean file only');
select is_empty($$ select 1 from storage.objects where bucket_id = 'files' and name = (select path from f where label = 'infected') $$,
                'the infected bytes are not readable in the files bucket');
select is_empty($$ select 1 from storage.objects where bucket_id = 'quarantine' $$, 'nor in quarantine');
select isnt_empty($$ select 1 from storage.objects where bucket_id = 'files' and name = (select path from f where label = 'clean') $$,
                  'the clean file''s bytes are (the control)');
select is_empty($$ update public.files set name = 'renamed.txt' where id = (select id from f where label = 'infected') returning 1 $$,
                'the write share does not reach the infected file either');
select throws_ok($$ select public.delete_file((select id from f where label = 'infected')) $$, 'FL005', null,
                 'nor deletes it: the answer for a file that does not exist');
reset role;
select is((select deleted_at from public.files where id = (select id from f where label = 'infected')), null, 'the infected file stays');

select tests.authenticate_as('teacher@uf.test');
select results_eq($$ select status::text from public.files where org_id = (select a from o) order by 1 $$,
                  $$ values ('clean'), ('infected'), ('pending'), ('rejected') $$,
                  'a teacher (files.write) sees every file with its verdict');
select is((select count(*)::int from public.file_versions), 2, 'and every version');
select is_empty($$ select 1 from storage.objects where bucket_id = 'quarantine' $$, 'but no quarantined bytes');
reset role;

select tests.authenticate_as('owner@ufb.test');
select is_empty($$ select 1 from public.files where org_id = (select a from o) $$, 'another organization''s owner sees none of them');
reset role;
select tests.as_anon();
select throws_ok($$ select 1 from public.files $$, '42501', null, 'anon reads no files');
reset role;

-- the control: once clean, the same write share deletes it
update public.files set status = 'clean', status_reason = null where id = (select id from f where label = 'infected');
select tests.authenticate_as('student@uf.test');
select lives_ok($$ select public.delete_file((select id from f where label = 'infected')) $$, 'the write share deletes the file once it is clean');
reset role;

select * from finish();
rollback;
