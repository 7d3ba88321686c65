-- A processed file's object is never replaced (FL006): not by its uploader's upsert, not by the
-- service (a signed upload URL writes as the service); a pending file's object still may be.
begin;
create extension if not exists pgtap with schema extensions;
\ir _helpers.sql
select plan(4);

select tests.create_user('teacher@fo.test');
create temp table o as select tests.create_org('teacher@fo.test', 'files-overwrite') a;
grant select on o to authenticated, service_role;
create temp table f (id uuid, path text);
grant all on f to authenticated, service_role;

select tests.authenticate_as('teacher@fo.test');
insert into f select id, object_path from public.request_file_upload((select a from o), 'notes.txt', 5, 'text/plain');
insert into storage.objects (bucket_id, name, owner, metadata)
select 'files', path, tests.user_id('teacher@fo.test'), '{"size": 5}' from f;
reset role;

select lives_ok($$ update storage.objects set metadata = '{"size": 5, "again": true}' where bucket_id = 'files' and name = (select path from f) $$,
  'a pending file''s object may be replaced (the upload is still arriving)');

update public.files set status = 'clean', sha256 = repeat('0', 64) where id = (select id from f);
select throws_ok($$ update storage.objects set metadata = '{"size": 68}' where bucket_id = 'files' and name = (select path from f) $$,
  'FL006', null, 'a processed file''s object is not replaced, even by the service');
select tests.authenticate_as('teacher@fo.test');
select throws_ok($$ insert into storage.objects (bucket_id, name, owner, metadata)
                   select 'files', path, tests.user_id('teacher@fo.test'), '{"size": 68}' from f
                   on conflict (bucket_id, name) do update set metadata = excluded.metadata $$,
  '42501', 'new row violates row-level security policy for table "objects"',
  'nor by its uploader''s upsert (no policy lets a user update an object: RLS refuses it before FL006 would)');
reset role;
select is((select metadata ->> 'size' from storage.objects where bucket_id = 'files' and name = (select path from f)), '5',
  'the object is as it was scanned');

select * from finish();
rollback;
