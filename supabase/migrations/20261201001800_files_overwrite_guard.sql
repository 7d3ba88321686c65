-- A processed file's bytes never change under its verdict. File processing settles a file once,
-- from the object the upload created (the trigger fires on INSERT); an overwrite of that object
-- afterwards (an upsert, directly or through a signed upload URL issued with upsert) would serve
-- new, unscanned bytes as `clean` with the old size and checksum. So an object of the `files`
-- bucket may be replaced only while its file is still pending; a new version is a new upload.
-- Errors: FL006 the file was already processed.

create function app.refuse_processed_file_overwrite() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if exists (select 1 from public.files f where f.object_path = old.name and f.status <> 'pending') then
    raise exception 'file % was already processed; upload a new file instead', old.name using errcode = 'FL006';
  end if;
  return new;
end
$$;
revoke all on function app.refuse_processed_file_overwrite() from public;

create trigger refuse_processed_file_overwrite before update on storage.objects
  for each row when (old.bucket_id = 'files') execute function app.refuse_processed_file_overwrite();
