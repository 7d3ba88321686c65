-- Stored bytes follow their files (issue 16, items 6 and 20). Before, the storage insert policy
-- checked a pending file's path but not the size, so a 1-byte reservation admitted a 500 MB
-- upload; rejected files' objects stayed in storage, and deleted files' objects stayed forever and
-- kept answering signed download URLs issued before the delete.
-- - An object written at a pending file's path may not be larger than the file's reservation
--   (FL007), whoever writes it.
-- - Rejected files' objects are removed by file processing (_shared/files/pipeline.ts).
-- - Deleting a file moves its object (and thumbnail) into the private `trash` bucket, through
--   the Storage API (the worker's files.place job, enqueued here), so signed URLs issued for it
--   stop working at once; restoring moves them back. No policy lets a member read `trash`.
-- - When the tier's retention after the delete has passed, the daily files sweep removes the
--   objects from `trash` and forgets the file (app.forget_deleted_file); it also places any
--   object a missed job left in the wrong bucket.
-- - A move is not an overwrite: the processed-file guard (FL006) now refuses only a change of an
--   object that stays at its place.

insert into storage.buckets (id, name, public, file_size_limit)
values ('trash', 'trash', false, 524288000)
on conflict (id) do nothing;

create or replace function app.refuse_processed_file_overwrite() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.bucket_id = old.bucket_id and new.name = old.name
     and exists (select 1 from public.files f where f.object_path = old.name and f.status <> 'pending') then
    raise exception 'file % was already processed; upload a new file instead', old.name using errcode = 'FL006';
  end if;
  return new;
end
$$;

create function app.refuse_upload_over_reservation() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  reserved bigint := (select f.size_bytes from public.files f where f.object_path = new.name and f.status = 'pending');
begin
  if reserved is not null and jsonb_typeof(new.metadata -> 'size') = 'number' and (new.metadata ->> 'size')::numeric > reserved then
    raise exception 'the upload is larger than the % bytes reserved for file %', reserved, new.name using errcode = 'FL007';
  end if;
  return new;
end
$$;
revoke all on function app.refuse_upload_over_reservation() from public;
create trigger refuse_upload_over_reservation before insert or update of metadata on storage.objects
  for each row when (new.bucket_id = 'files') execute function app.refuse_upload_over_reservation();

-- Asks the worker to put a file's object where its state says (files, or trash when deleted).
-- Without the worker's queue (a database migrated before its worker) the daily sweep does it.
create function app.place_file_object(f public.files) returns void
language plpgsql volatile security definer set search_path = ''
as $$
begin
  if f.status = 'clean' and to_regclass('pgboss.queue') is not null
     and exists (select 1 from pgboss.queue where name = 'files.place') then
    perform app.enqueue_job('files.place', jsonb_build_object('org_id', f.org_id, 'file_id', f.id));
  end if;
end
$$;
revoke all on function app.place_file_object(public.files) from public;

create or replace function public.delete_file(file_id uuid) returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
  f public.files;
begin
  select * into f from public.files where id = delete_file.file_id and deleted_at is null for update;
  if f.id is null or (select auth.uid()) is null or not app.file_access(f, 'write') then
    raise exception 'file % not found', delete_file.file_id using errcode = 'FL005';
  end if;
  update public.files set deleted_at = now() where id = f.id;     -- frees its bytes
  perform app.place_file_object(f);
end
$$;

create or replace function public.restore_file(file_id uuid) returns void
language plpgsql volatile security definer set search_path = ''
as $$
declare
  f public.files;
begin
  select * into f from public.files where id = restore_file.file_id and deleted_at is not null for update;
  if f.id is null or (select auth.uid()) is null or not app.has_permission(f.org_id, 'files.write') then
    raise exception 'file % not found', restore_file.file_id using errcode = 'FL005';
  end if;
  update public.files set deleted_at = null where id = f.id;       -- takes its bytes again (FL001)
  perform app.place_file_object(f);
end
$$;

-- The files sweep's last step, once the objects are gone from trash.
create function app.forget_deleted_file(file_id uuid) returns boolean
language plpgsql volatile security definer set search_path = ''
as $$
begin
  delete from public.files f using public.organizations o, public.subscription_tiers t
  where f.id = forget_deleted_file.file_id and o.id = f.org_id and t.tier = o.tier
    and f.deleted_at < now() - make_interval(days => t.retention_days);
  return found;
end
$$;
revoke all on function app.forget_deleted_file(uuid) from public;
grant execute on function app.forget_deleted_file(uuid) to service_role;
